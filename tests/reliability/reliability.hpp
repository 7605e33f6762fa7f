// SPDX-License-Identifier: MIT
// Test support for the reliability tests: allocation-free packet builders, established flows that check
// their own forwarding, and the director's bookkeeping invariants.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/verify.hpp>

#include "support/build.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IPVS_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define IPVS_TEST_ASAN 1
#endif
#if defined(IPVS_TEST_ASAN)
// From the sanitizer runtime (<sanitizer/allocator_interface.h>, which g++ does not ship).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

namespace ipvs::test {

/// Bytes the process has allocated and not freed (ASan's count under ASan, glibc's otherwise): the
/// floods assert that the director's packet path leaves it unchanged.
inline std::size_t heap_in_use() {
#if defined(IPVS_TEST_ASAN)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/// Builds IPv4 packets into one reused buffer: no allocation once the buffer has grown (a flood loop
/// must not allocate, so that heap_in_use() measures the director alone).
class packet_maker {
public:
    packet_maker() { m_buf.reserve(1600); }

    /// A TCP segment client → server (or back), 20-byte header, `payload` bytes of 0x61, checksums valid.
    std::vector<std::uint8_t>& tcp(const endpoint& src, const endpoint& dst, std::uint8_t flags,
                                   std::size_t payload = 0) {
        begin(ipproto::tcp, src.addr, dst.addr, 20 + payload);
        put16(m_buf, 20, src.port);
        put16(m_buf, 22, dst.port);
        put32(m_buf, 24, 1000);
        put32(m_buf, 28, (flags & tcp_flag::ack) ? 2000 : 0);
        m_buf[32] = 0x50;
        m_buf[33] = flags;
        put16(m_buf, 34, 64240);
        for (std::size_t i = 0; i < payload; ++i) m_buf[40 + i] = 0x61;
        return finish(ipproto::tcp);
    }
    std::vector<std::uint8_t>& udp(const endpoint& src, const endpoint& dst, std::size_t payload = 8) {
        begin(ipproto::udp, src.addr, dst.addr, 8 + payload);
        put16(m_buf, 20, src.port);
        put16(m_buf, 22, dst.port);
        put16(m_buf, 24, static_cast<std::uint16_t>(8 + payload));
        for (std::size_t i = 0; i < payload; ++i) m_buf[28 + i] = 0x62;
        return finish(ipproto::udp);
    }
    /// ICMP destination unreachable / fragmentation needed from `src` to `dst`, quoting the first
    /// 28 bytes of `quoted` (an IPv4 packet). `good_csum` false: the ICMP checksum is off by one.
    std::vector<std::uint8_t>& icmp_frag_needed(const inet_addr& src, const inet_addr& dst,
                                                std::span<const std::uint8_t> quoted, bool good_csum = true) {
        std::array<std::uint8_t, 28> q{};
        for (std::size_t i = 0; i < q.size() && i < quoted.size(); ++i) q[i] = quoted[i];
        begin(ipproto::icmp, src, dst, 8 + q.size());
        m_buf[20] = icmp_type::dest_unreach;
        m_buf[21] = icmp_type::code_frag_needed;
        put32(m_buf, 24, 1400);
        for (std::size_t i = 0; i < q.size(); ++i) m_buf[28 + i] = q[i];
        finish(ipproto::icmp);
        if (!good_csum) put16(m_buf, 22, static_cast<std::uint16_t>(((m_buf[22] << 8) | m_buf[23]) ^ 1));
        return m_buf;
    }

private:
    void begin(std::uint8_t proto, const inet_addr& s, const inet_addr& d, std::size_t l4_len) {
        m_buf.assign(20 + l4_len, 0);
        m_buf[0] = 0x45;
        put16(m_buf, 2, static_cast<std::uint16_t>(20 + l4_len));
        put16(m_buf, 4, 0x1234);
        put16(m_buf, 6, ipv4_hdr::flag_df);
        m_buf[8] = 64;
        m_buf[9] = proto;
        s.store(reinterpret_cast<std::byte*>(m_buf.data() + 12));
        d.store(reinterpret_cast<std::byte*>(m_buf.data() + 16));
    }
    std::vector<std::uint8_t>& finish(std::uint8_t proto) {
        put16(m_buf, 10, internet_checksum(as_bytes(m_buf).first(20)));
        fill_l4_checksum(m_buf, family::v4, proto, 20);
        return m_buf;
    }
    std::vector<std::uint8_t> m_buf;
};

/// The director's bookkeeping (spec §1.6, §1.8, §3): dest counters never negative and equal to the
/// connections / templates bound to each dest (dests of the services and any trashed dest still
/// referenced), table sizes equal to the entries visited, sizes within capacity. Empty when it holds.
inline std::string bookkeeping_errors(const director& d) {
    std::map<const dest*, std::array<int, 3>> bound;
    std::size_t n4 = 0, n6 = 0;
    d.for_each_conn([&](const auto& e) {
        (e.addr_len == 4 ? n4 : n6) += 1;
        if (e.dest) ++bound[e.dest][e.is_template() ? 2 : e.is_inactive() ? 1 : 0];
    });
    std::string err;
    auto check = [&](const dest& x) {
        const auto b = bound.count(&x) ? bound.at(&x) : std::array<int, 3>{};
        if (x.active_conns < 0 || x.inactive_conns < 0 || x.persist_conns < 0 || b[0] != x.active_conns ||
            b[1] != x.inactive_conns || b[2] != x.persist_conns)
            err += "dest " + std::to_string(x.ep.port) + " counters " + std::to_string(x.active_conns) + "/" +
                   std::to_string(x.inactive_conns) + "/" + std::to_string(x.persist_conns) + " bound " +
                   std::to_string(b[0]) + "/" + std::to_string(b[1]) + "/" + std::to_string(b[2]) + "; ";
    };
    std::map<const dest*, bool> seen;
    for (const auto& s : d.services())
        for (const dest* x : s->svc.dests()) {
            check(*x);
            seen[x] = true;
        }
    for (const auto& [x, b] : bound)
        if (!seen.count(x)) check(*x);
    auto& dd = const_cast<director&>(d); // the table accessors are non-const; only sizes are read
    if (n4 != dd.table_v4().size() || n6 != dd.table_v6().size()) err += "size differs from entries; ";
    if (dd.table_v4().size() > dd.table_v4().capacity() || dd.table_v6().size() > dd.table_v6().capacity())
        err += "over capacity; ";
    return err;
}

/// A client flow through a NAT service, remembering its dest, that checks every packet of it is
/// forwarded and rewritten as NAT should (spec §6.2, §6.3).
struct nat_flow {
    std::uint8_t proto = ipproto::tcp;
    endpoint client{}, vip{};
    const dest* to = nullptr;

    /// Client → VIP: forwarded to `to` with daddr / dport rewritten and checksums valid.
    bool send_in(director& d, packet_maker& m, time_ns now, std::uint8_t flags = tcp_flag::ack) const {
        auto& p = proto == ipproto::tcp ? m.tcp(client, vip, flags, 16) : m.udp(client, vip);
        const auto v = d.in(p, now);
        if (v.act != action::forward || v.to != to || to == nullptr) return false;
        const auto r = parse(p);
        return r.ok() && r.info.ip.daddr == to->ep.addr && r.info.l4.dport == to->ep.port &&
               r.info.ip.saddr == client.addr && r.info.l4.sport == client.port && valid(p, r);
    }
    /// Real server → client: forwarded with saddr / sport back to the VIP.
    bool send_out(director& d, packet_maker& m, time_ns now, std::uint8_t flags = tcp_flag::ack) const {
        if (!to) return false;
        auto& p = proto == ipproto::tcp ? m.tcp(to->ep, client, flags, 16) : m.udp(to->ep, client);
        const auto v = d.out(p, now);
        if (v.act != action::forward) return false;
        const auto r = parse(p);
        return r.ok() && r.info.ip.saddr == vip.addr && r.info.l4.sport == vip.port &&
               r.info.ip.daddr == client.addr && valid(p, r);
    }
    static bool valid(const std::vector<std::uint8_t>& p, const parse_result& r) {
        const auto b = as_bytes(p);
        return verify_ip_header(b, r.info.ip) == verify_status::ok &&
               verify_l4(b, r.info) == verify_status::ok;
    }
};

/// Opens a NAT flow the way a client and server would (TCP: SYN, SYN-ACK, ACK; UDP: a datagram and its
/// reply); `to` is the dest the director picked, nullptr if the first packet was not forwarded.
inline nat_flow open_flow(director& d, packet_maker& m, time_ns now, std::uint8_t proto,
                          const endpoint& client, const endpoint& vip) {
    nat_flow f{proto, client, vip, nullptr};
    auto& p = proto == ipproto::tcp ? m.tcp(client, vip, tcp_flag::syn) : m.udp(client, vip);
    const auto v = d.in(p, now);
    if (v.act != action::forward) return f;
    f.to = v.to;
    if (proto == ipproto::tcp) {
        if (!f.send_out(d, m, now, tcp_flag::syn | tcp_flag::ack) || !f.send_in(d, m, now)) f.to = nullptr;
    } else if (!f.send_out(d, m, now)) {
        f.to = nullptr;
    }
    return f;
}

/// A deterministic source of spoofed addresses and ports (the table's splitmix64, fixed seed).
struct spoofer {
    detail::rng64 rng{0x5eedULL};
    /// A source in 100.64.0.0/10 (shared address space: never one of the test's clients) and a port.
    endpoint source() {
        const std::uint64_t r = rng.next();
        return {inet_addr::v4(0x64400000U | static_cast<std::uint32_t>(r & 0x3fffff)),
                static_cast<std::uint16_t>(1024 + (r >> 32) % 64000)};
    }
};

inline endpoint ep4(const char* text) { return *parse_endpoint(text); }

/// Client i of the established set: 10.1.x.y, port 20000 + i % 30000.
inline endpoint client(std::size_t i) {
    return {inet_addr::v4(0x0a010000U + static_cast<std::uint32_t>(i / 200 * 256 + i % 200 + 1)),
            static_cast<std::uint16_t>(20000 + i % 30000)};
}

} // namespace ipvs::test
