// SPDX-License-Identifier: MIT
// A connection entry (spec §3.1): compact IPv4 / IPv6 layouts that reach the real server through their dest.
#pragma once

// Design
// ------
// Source: `struct ip_vs_conn` (spec §3.1), cut down to what the library's paths read, so that an IPv4
// connection costs ≤ 64 bytes and an IPv6 one ≤ 96 bytes *including* conn_table's index.
//
// basic_conn<4> — 56 bytes                          basic_conn<16> — 80 bytes
//  0 caddr[4]      4 vaddr[4]                        0 caddr[16]     16 vaddr[16]
//  8 cport u16    10 vport u16                      32 cport        34 vport
// 12 protocol     13 state   14 old_state           36 protocol     37 state   38 old_state
// 15 table_bits   16 flags u32                      39 table_bits   40 flags
// 20 timeout_ms   24 timer{deadline,next,prev}      44 timeout_ms   48 timer (12 B)
// 36 control u32  40 dest*                          60 control      64 dest*
// 48 in_pkts      52 n_control                      72 in_pkts      76 n_control
//
// - The first 2N+5 bytes (caddr, vaddr, cport, vport, protocol) have exactly the layout of
//   `in_tuple<N>`: an inbound lookup compares them with one memcmp.
// - daddr / dport are not stored: the real server is `dest->ep`. `dport` is the dest's port, the
//   virtual port (a port-less dest, or a persistent port-0 / fwmark service: spec §3.5 step 4), 0
//   (templates of port-0 and fwmark services) or 0xffff (an invalidated template) — two bits of
//   `table_bits` say which. A connection without a dest (BYPASS) has daddr 0.
// - `control` is a conn_table handle (the controlling template), `n_control` counts the connections a
//   template controls; `in_pkts` is the sync counter (spec §7.1 step 14, §8.3), counted by sync_agent
//   (the director leaves it alone; a sync backup sets it to sync_threshold). The kernel's other sync
//   field, `sync_endtime`, does not fit the budget: sync_agent keeps it in a side array by handle.
// - Addresses are network-order bytes; ports are host order; `flags` uses the kernel's values.
// - Per-connection packet / byte counters are an opt-in policy (`Stats = conn_counters`, +16 bytes):
//   the kernel keeps none (its statistics live on the dest and service), and they would take the
//   IPv4 entry over its budget. With `no_stats` the member takes no space ([[no_unique_address]]).
// Deviations: no `fwmark` member (fwmark templates carry the mark in vaddr, spec §3.5; a connection's
// mark is its service's), no pe_data, no app helper / seq deltas, no refcnt (one writer per table).
// A connection must be bound to a dest for its real server address: a sync backup that knows no local
// dest for a received connection binds it to a placeholder dest holding the daddr/dport.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <ipvs/addr.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/timer_wheel.hpp>

namespace ipvs {

/// Connection flags, IP_VS_CONN_F_* (spec §3.1); bits 0..15 are the ones sync sends.
namespace conn_flag {
inline constexpr std::uint32_t fwd_mask = 0x0007;
inline constexpr std::uint32_t sync = 0x0020;
inline constexpr std::uint32_t hashed = 0x0040;
inline constexpr std::uint32_t nooutput = 0x0080;
inline constexpr std::uint32_t inactive = 0x0100;
inline constexpr std::uint32_t out_seq = 0x0200;
inline constexpr std::uint32_t in_seq = 0x0400;
inline constexpr std::uint32_t seq_mask = 0x0600;
inline constexpr std::uint32_t no_cport = 0x0800;
inline constexpr std::uint32_t template_ = 0x1000;
inline constexpr std::uint32_t one_packet = 0x2000;
inline constexpr std::uint32_t nfct = 1U << 16;
inline constexpr std::uint32_t backup_mask = fwd_mask | nooutput | inactive | seq_mask | no_cport | template_;
inline constexpr std::uint32_t backup_upd_mask = inactive | seq_mask;
inline constexpr std::uint32_t dest_mask = fwd_mask | one_packet | nfct;
} // namespace conn_flag

/// Template state bit IP_VS_CTPL_S_ASSURED (spec §3.5 step 5): a controlled connection got established.
inline constexpr std::uint8_t template_assured = 0x1;

template <std::size_t N>
using addr_bytes = std::array<std::uint8_t, N>;

/// The tuple of a client → VIP packet (in-lookup, spec §3.3); also a template key with cport 0.
/// Same leading layout as basic_conn<N>.
template <std::size_t N>
struct in_tuple {
    addr_bytes<N> caddr{};
    addr_bytes<N> vaddr{};
    std::uint16_t cport = 0;
    std::uint16_t vport = 0;
    std::uint8_t protocol = 0;
    friend constexpr bool operator==(const in_tuple&, const in_tuple&) noexcept = default;
};

/// The tuple of a real server → client reply (out-lookup, spec §3.3): source = the RS, destination =
/// the client.
template <std::size_t N>
struct out_tuple {
    addr_bytes<N> daddr{}; ///< the packet's source: the real server (or the VIP for non-NAT replies)
    addr_bytes<N> caddr{}; ///< the packet's destination: the client
    std::uint16_t dport = 0;
    std::uint16_t cport = 0;
    std::uint8_t protocol = 0;
    friend constexpr bool operator==(const out_tuple&, const out_tuple&) noexcept = default;
};

using in_tuple4 = in_tuple<4>;
using in_tuple6 = in_tuple<16>;
using out_tuple4 = out_tuple<4>;
using out_tuple6 = out_tuple<16>;

/// The N network-order bytes of an address (precondition: its family has N-byte addresses).
template <std::size_t N>
[[nodiscard]] constexpr addr_bytes<N> to_bytes(const inet_addr& a) noexcept {
    IPVS_ASSERT(a.size() == N);
    addr_bytes<N> b{};
    for (std::size_t i = 0; i < N; ++i) b[i] = a.bytes[i];
    return b;
}
/// Back to the library's address type.
template <std::size_t N>
[[nodiscard]] constexpr inet_addr to_inet(const addr_bytes<N>& b) noexcept {
    inet_addr a;
    a.af = N == 4 ? family::v4 : family::v6;
    for (std::size_t i = 0; i < N; ++i) a.bytes[i] = b[i];
    return a;
}

/// Builds the in-lookup tuple from a client → VIP packet's fields.
template <std::size_t N>
[[nodiscard]] constexpr in_tuple<N> make_in_tuple(std::uint8_t proto, const inet_addr& saddr,
                                                  std::uint16_t sport, const inet_addr& daddr,
                                                  std::uint16_t dport) noexcept {
    return in_tuple<N>{to_bytes<N>(saddr), to_bytes<N>(daddr), sport, dport, proto};
}
/// Builds the out-lookup tuple from a real server → client packet's fields.
template <std::size_t N>
[[nodiscard]] constexpr out_tuple<N> make_out_tuple(std::uint8_t proto, const inet_addr& saddr,
                                                    std::uint16_t sport, const inet_addr& daddr,
                                                    std::uint16_t dport) noexcept {
    return out_tuple<N>{to_bytes<N>(saddr), to_bytes<N>(daddr), sport, dport, proto};
}

/// Persistence: the client address masked with an IPv4 netmask (host order, e.g. 0xffffff00; the
/// kernel applies it bitwise, so it need not be contiguous) — spec §3.5 step 1.
[[nodiscard]] constexpr addr_bytes<4> mask_client(const addr_bytes<4>& c, std::uint32_t netmask) noexcept {
    return {static_cast<std::uint8_t>(c[0] & (netmask >> 24)),
            static_cast<std::uint8_t>(c[1] & (netmask >> 16)),
            static_cast<std::uint8_t>(c[2] & (netmask >> 8)), static_cast<std::uint8_t>(c[3] & netmask)};
}
/// Persistence: the first `prefix_len` bits of the client address (IPv6 prefix lengths, or IPv4 /n).
template <std::size_t N>
[[nodiscard]] constexpr addr_bytes<N> mask_prefix(const addr_bytes<N>& c, unsigned prefix_len) noexcept {
    addr_bytes<N> r{};
    for (std::size_t i = 0; i < N; ++i) {
        const unsigned first = static_cast<unsigned>(8 * i);
        if (prefix_len >= first + 8)
            r[i] = c[i];
        else if (prefix_len > first)
            r[i] = static_cast<std::uint8_t>(c[i] & (0xffU << (8 - (prefix_len - first))));
    }
    return r;
}

/// The template key of spec §3.5 step 2 for an address/port service: (proto, snet, cport 0, vaddr,
/// vport). Pass vport 0 for a port-0 service or an FTP (port 21) service: 0 means "any port".
template <std::size_t N>
[[nodiscard]] constexpr in_tuple<N> make_template_key(std::uint8_t proto, const addr_bytes<N>& snet,
                                                      const addr_bytes<N>& vaddr,
                                                      std::uint16_t vport) noexcept {
    return in_tuple<N>{snet, vaddr, 0, vport, proto};
}
/// The template key of a fwmark service: protocol IPPROTO_IP (0), the mark big-endian in the first
/// four bytes of vaddr (`htonl(fwmark)` in the IPv4 slot, also for IPv6 services), vport 0.
template <std::size_t N>
[[nodiscard]] constexpr in_tuple<N> make_fwmark_template_key(const addr_bytes<N>& snet,
                                                             std::uint32_t fwmark) noexcept {
    in_tuple<N> k{snet, {}, 0, 0, 0};
    k.vaddr[0] = static_cast<std::uint8_t>(fwmark >> 24);
    k.vaddr[1] = static_cast<std::uint8_t>(fwmark >> 16);
    k.vaddr[2] = static_cast<std::uint8_t>(fwmark >> 8);
    k.vaddr[3] = static_cast<std::uint8_t>(fwmark);
    return k;
}

/// Stats policy: nothing (the default; the kernel keeps no per-connection counters).
struct no_stats {
    constexpr void count(std::size_t) noexcept {}
};
/// Stats policy: packets and bytes through the connection, both directions.
struct conn_counters {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    constexpr void count(std::size_t len) noexcept {
        ++packets;
        bytes += len;
    }
};

/// Bits of `basic_conn::table_bits`, owned by conn_table (read them, don't write them).
namespace conn_bit {
inline constexpr std::uint8_t in_use = 0x01;
inline constexpr std::uint8_t embryonic = 0x02; ///< not yet confirmed established (flood defense)
inline constexpr std::uint8_t dport_shift = 2;  ///< 2 bits: where dport comes from, see dport_mode
inline constexpr std::uint8_t dport_bits = 0x0c;
inline constexpr std::uint8_t invalidated = 0x10; ///< a template that failed check_template (spec §3.5)
} // namespace conn_bit

/// Where a connection's dport comes from (it is not stored).
enum class dport_mode : std::uint8_t { dest_port = 0, vport = 1, zero = 2, all_ones = 3 };

template <std::size_t N, class Stats = no_stats>
struct basic_conn {
    static_assert(N == 4 || N == 16, "ipvs: basic_conn<N> needs N = 4 (IPv4) or 16 (IPv6)");
    static constexpr std::size_t addr_len = N;
    static constexpr family af = N == 4 ? family::v4 : family::v6;
    using addr_type = addr_bytes<N>;
    using in_type = in_tuple<N>;
    using out_type = out_tuple<N>;
    using stats_type = Stats;

    // --- lookup key: the layout of in_tuple<N> ---
    addr_type caddr{};
    addr_type vaddr{}; ///< VIP; the fwmark (big-endian, first 4 bytes) for fwmark templates
    std::uint16_t cport = 0;
    std::uint16_t vport = 0;
    std::uint8_t protocol = 0;
    // --- state ---
    std::uint8_t state = 0;     ///< protocol state (TCP / SCTP enum value); templates: template_assured
    std::uint8_t old_state = 0; ///< state at the last sync decision (spec §8.3)
    std::uint8_t table_bits = 0;
    std::uint32_t flags = 0;      ///< conn_flag bits
    std::uint32_t timeout_ms = 0; ///< the timer re-arms to now + timeout on every touch (spec §3.6)
    timer_hook timer{};
    std::uint32_t control = nil_handle; ///< handle of the controlling template, or nil
    ipvs::dest* dest = nullptr;         ///< the real server; nullptr for BYPASS
    std::uint32_t in_pkts = 0;
    std::uint32_t n_control = 0; ///< connections this entry controls
    [[no_unique_address]] Stats stats{};

    [[nodiscard]] constexpr in_type key() const noexcept {
        return in_type{caddr, vaddr, cport, vport, protocol};
    }
    [[nodiscard]] constexpr fwd_method fwd() const noexcept {
        return static_cast<fwd_method>(flags & conn_flag::fwd_mask);
    }
    [[nodiscard]] constexpr bool is_template() const noexcept { return (flags & conn_flag::template_) != 0; }
    [[nodiscard]] constexpr bool is_inactive() const noexcept { return (flags & conn_flag::inactive) != 0; }
    [[nodiscard]] constexpr bool is_embryonic() const noexcept {
        return (table_bits & conn_bit::embryonic) != 0;
    }
    [[nodiscard]] constexpr bool is_invalidated() const noexcept {
        return (table_bits & conn_bit::invalidated) != 0;
    }
    [[nodiscard]] constexpr bool is_controlled() const noexcept { return control != nil_handle; }

    [[nodiscard]] constexpr time_ns timeout() const noexcept { return std::chrono::milliseconds(timeout_ms); }
    /// Sets the timeout (rounded down to ms, clamped to 2^32−1 ms ≈ 49 days); the next touch uses it.
    constexpr void set_timeout(time_ns t) noexcept {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
        timeout_ms = ms <= 0 ? 0 : ms >= 0xffffffffLL ? 0xffffffffU : static_cast<std::uint32_t>(ms);
    }

    [[nodiscard]] constexpr dport_mode dport_source() const noexcept {
        return static_cast<dport_mode>((table_bits & conn_bit::dport_bits) >> conn_bit::dport_shift);
    }
    /// The real server's port (or whatever spec §3.5 puts in dport for this entry).
    [[nodiscard]] constexpr std::uint16_t dport() const noexcept {
        switch (dport_source()) {
        case dport_mode::dest_port:
            return dest ? dest->ep.port : 0;
        case dport_mode::vport:
            return vport;
        case dport_mode::zero:
            return 0;
        case dport_mode::all_ones:
            break;
        }
        return 0xffff;
    }
    /// Records where `port` comes from; false if it is none of dest port, vport, 0, 0xffff.
    constexpr bool set_dport(std::uint16_t port) noexcept {
        dport_mode m;
        if (dest && port == dest->ep.port)
            m = dport_mode::dest_port;
        else if (port == vport)
            m = dport_mode::vport;
        else if (port == 0)
            m = dport_mode::zero;
        else if (port == 0xffff)
            m = dport_mode::all_ones;
        else
            return false;
        table_bits = static_cast<std::uint8_t>((table_bits & ~conn_bit::dport_bits) |
                                               (static_cast<std::uint8_t>(m) << conn_bit::dport_shift));
        return true;
    }
    /// The real server's address: the dest's, or all zeros without a dest.
    [[nodiscard]] constexpr addr_type daddr() const noexcept {
        addr_type a{};
        if (dest)
            for (std::size_t i = 0; i < N; ++i) a[i] = dest->ep.addr.bytes[i];
        return a;
    }
    [[nodiscard]] constexpr endpoint client() const noexcept { return {to_inet(caddr), cport}; }
    [[nodiscard]] constexpr endpoint vip() const noexcept { return {to_inet(vaddr), vport}; }
    [[nodiscard]] constexpr endpoint real_server() const noexcept { return {to_inet(daddr()), dport()}; }
};

using conn4 = basic_conn<4>;
using conn6 = basic_conn<16>;
/// The default conn_table entry (IPv4); an IPv6 table uses conn6.
using conn = conn4;

/// A new connection for `t` bound (pointer only: the caller does the dest's counters) to `d`, with
/// dport `dport` (spec §3.5 step 4 says which) and the kernel flags `flags`. Returns false in `ok`
/// when dport cannot be represented (see the design block).
template <class Entry = conn4>
[[nodiscard]] constexpr Entry make_conn(const typename Entry::in_type& t, ipvs::dest* d, std::uint16_t dport,
                                        std::uint32_t flags, time_ns timeout, bool* ok = nullptr) noexcept {
    Entry e;
    e.caddr = t.caddr;
    e.vaddr = t.vaddr;
    e.cport = t.cport;
    e.vport = t.vport;
    e.protocol = t.protocol;
    e.dest = d;
    e.flags = flags;
    e.set_timeout(timeout);
    const bool good = e.set_dport(dport);
    IPVS_ASSERT(good || ok != nullptr);
    if (ok) *ok = good;
    return e;
}

/// A persistence template (spec §3.5 step 3): `key` from make_template_key / make_fwmark_template_key,
/// TEMPLATE added to `flags`, timeout = the service's persistence timeout.
template <class Entry = conn4>
[[nodiscard]] constexpr Entry make_template(const typename Entry::in_type& key, ipvs::dest* d,
                                            std::uint16_t dport, std::uint32_t flags, time_ns timeout,
                                            bool* ok = nullptr) noexcept {
    return make_conn<Entry>(key, d, dport, flags | conn_flag::template_, timeout, ok);
}

// The layout promises of the design block.
static_assert(sizeof(conn4) == 56, "IPv4 entry must stay 56 bytes (≤ 64 with the index)");
static_assert(sizeof(conn6) == 80, "IPv6 entry must stay 80 bytes (≤ 96 with the index)");
static_assert(sizeof(basic_conn<4, conn_counters>) == 72);
static_assert(offsetof(conn4, protocol) == offsetof(in_tuple4, protocol) &&
              offsetof(conn4, vport) == offsetof(in_tuple4, vport));
static_assert(offsetof(conn6, protocol) == offsetof(in_tuple6, protocol) &&
              offsetof(conn6, vport) == offsetof(in_tuple6, vport));
static_assert(offsetof(conn4, protocol) == 12 && offsetof(conn6, protocol) == 36);

} // namespace ipvs
