// SPDX-License-Identifier: MIT
// The director: the kernel's ip_vs_in / ip_vs_out as one call per packet, tying parse, tables, schedulers,
// states and rewrite together.
#pragma once

// Design
// ------
// A `director` is one core's IPVS: services (by protocol + VIP + port, or by fwmark), their dests and
// schedulers, one connection table per family, the state machines and the sysctls. The datapath calls
//
//   in(pkt, now, mark)   for a packet from the client side  (the kernel's ip_vs_in, spec §7.1)
//   out(pkt, now)        for a packet from the real-server side (ip_vs_out, spec §7.2)
//   in_burst / out_burst the same for up to 32 packets at a time, their lookups batched
//   poll(now, budget)    from its loop, to expire connections (bounded work per call); once a second
//                        it also runs the kernel's defense (drop_entry, drop_packet, secure_tcp against
//                        amemthresh, spec §3.8) and every 60 s the trash timer (§1.8)
//
// and gets a `verdict`: forward (rewritten in place: NAT addresses and ports, TTL − 1, checksums; the
// datapath does L2, and TUN encapsulation with `encapsulate()` and the verdict's `tun`), drop with a
// reason, accept (not IPVS's packet: hand it to the host stack), reply (the director answers itself:
// ICMP time exceeded, port unreachable, fragmentation needed — bytes in `reply`, valid until the next
// call), or reassemble (an IPv4 fragment: run it through `ipv4_reassembler` first and offer the whole
// datagram).
//
// The flow of in(), after the kernel's: parse → ICMP error? (in_icmp: the quoted flow's connection,
// rewrite of outer + quoted headers) → in-lookup → conn reuse / expire_nodest (§3.7) → dest
// available? (§1.8) → on a miss: the protocol's scheduling gate (§4.4, §5.2), the service (fwmark,
// then protocol+VIP+port, then port 0), persistence templates (§3.5), the scheduler, a new
// connection (§3.4) — or ip_vs_leave (§7.3) → stats → state transition INPUT (§4, §5) with the
// counter bookkeeping (§1.6) → transmit by the connection's method (§6) → re-arm its timer (§3.6).
// out() is the mirror: out-lookup, SNAT for MASQ connections, state transition OUTPUT.
//
// Single writer: a director is used by one thread (one per core, share-nothing; steer both
// directions of a flow to the same core with flow_hash.hpp). Configuration calls (add_service,
// add_dest, …) run on that same thread between packets; they may allocate and throw
// std::invalid_argument on mistakes. in(), out() and poll() never allocate, lock or throw.
//
// Run-time configuration: add/edit/del of services (ipvsadm -A/-E/-D) and dests (-a/-e/-d) with the
// kernel's effects on live connections — they keep their dest; a deleted dest goes to the trash and its
// connections are dropped or (expire_nodest_conn) expired on their next client packet (spec §1.8), and
// once nothing is bound to it for 120 s the trash frees it (a deleted service goes with its last
// dest); an edited service gets a fresh scheduler attached to its dests when the scheduler changes (§1.9).
//
// Speed. The packet a director sees most — IPv4 without options, TCP or UDP, of an established NAT
// connection — takes shortcuts that produce the very same result as the general code (the tests
// compare them on random packets): detail::parse_v4_simple instead of parse(), forward_nat_v4 (TTL,
// address, port, RFC 1624 L4 update, IPv4 header sum from registers) instead of forward_ttl +
// nat_rewrite. in_burst() hands up to 32 packets' lookups to the table's prefetching batch, so at 1M
// connections their cache misses overlap; a table change inside the burst (generation()) makes the
// later packets look up again. bench/README.md has the figures.
//
// Deviations (none visible in the recorded vectors): no FTP helper, no persistence engines (SIP), no
// conntrack, no cache_bypass, no LOCALNODE delivery; a full table refuses a new connection with
// drop_reason::table_full instead of growing.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <ipvs/conn.hpp>
#include <ipvs/conn_table.hpp>
#include <ipvs/flow_hash.hpp>
#include <ipvs/icmp.hpp>
#include <ipvs/memory.hpp>
#include <ipvs/nat.hpp>
#include <ipvs/packet_view.hpp>
#include <ipvs/parse.hpp>
#include <ipvs/proto/sctp_state.hpp>
#include <ipvs/proto/tcp_state.hpp>
#include <ipvs/proto/timeouts.hpp>
#include <ipvs/proto/udp.hpp>
#include <ipvs/sched/any.hpp>
#include <ipvs/service.hpp>
#include <ipvs/tun.hpp>
#include <ipvs/verify.hpp>

namespace ipvs {

/// The net.ipv4.vs.* sysctls the director reads (spec §9), at the kernel's defaults.
struct director_sysctl {
    unsigned conn_reuse_mode = 1;
    bool expire_nodest_conn = false;
    bool expire_quiescent_template = false;
    bool sloppy_tcp = false;
    bool sloppy_sctp = false;
    /// The defense modes of spec §3.8: 0 off, 1 automatic (the director sets 2 while memory is low and 1
    /// again after), 3 always. poll() reevaluates them once a second.
    int secure_tcp = 0;
    int drop_entry = 0;
    int drop_packet = 0;
    int am_droprate = 10; ///< drop_packet 3: one new connection in this many is dropped
    /// "Low memory": fewer free connection slots than this in either table (the kernel counts free
    /// pages; a fixed-capacity table's free slots are what runs out here).
    long amemthresh = 1024;
    bool nat_icmp_send = false;
    bool pmtu_disc = true;
};

enum class action : std::uint8_t {
    forward,    ///< send the (rewritten) packet to `to` by `method`
    drop,       ///< drop it; `reason` says why
    accept,     ///< not IPVS's: let the host stack have it
    reply,      ///< drop it and send `reply` back to its source instead
    reassemble, ///< an IPv4 fragment: reassemble and offer the whole datagram
};

enum class drop_reason : std::uint8_t {
    none,
    malformed,        ///< the packet did not parse
    no_dest,          ///< the service has no usable dest (a port unreachable is in `reply`)
    dest_unavailable, ///< the connection's dest was deleted (expire_nodest_conn = 0)
    table_full,       ///< no room for a new connection (flood defense refused it)
    defense,          ///< drop_packet defense (todrop)
    ttl_exceeded,     ///< TTL / hop limit 1 (a time exceeded is in `reply`)
    too_big,          ///< DF packet larger than the path MTU (a frag-needed is in `reply`)
    bad_checksum,     ///< an ICMP error with a wrong checksum
    rewrite_failed,   ///< the rewrite refused the packet (left untouched)
};

[[nodiscard]] constexpr const char* to_string(drop_reason r) noexcept {
    constexpr const char* names[] = {"none",         "malformed",     "no dest",      "dest unavailable",
                                     "table full",   "defense",       "TTL exceeded", "too big",
                                     "bad checksum", "rewrite failed"};
    return names[static_cast<std::size_t>(r)];
}

struct verdict {
    action act = action::accept;
    drop_reason reason = drop_reason::none;
    fwd_method method = fwd_method::masq;
    const dest* to = nullptr;           ///< the real server (forward)
    std::span<const std::byte> reply{}; ///< the answer (reply), an IP packet
    bool new_conn = false;              ///< this packet created the connection
};

/// How a service is configured (ipvsadm -A / -E).
struct service_config {
    family af = family::v4;
    std::uint8_t protocol = ipproto::tcp; ///< tcp / udp / sctp (ignored for fwmark services)
    endpoint vip{};                       ///< VIP and port (port 0: any port, needs persistence)
    std::uint32_t fwmark = 0;             ///< non-zero: a -f service
    std::string_view scheduler = "wlc";
    sched::sched_flags sched_flags{};
    bool persistent = false;
    time_ns persist_timeout = std::chrono::seconds(300); ///< ipvsadm's default -p
    unsigned netmask_prefix = 128;                       ///< -M as a prefix length (IPv4: ≤ 32)
    bool one_packet = false;                             ///< -o
};

struct director_config {
    std::size_t capacity_v4 = 1 << 16;
    std::size_t capacity_v6 = 1 << 14;
    bool huge_pages = true; ///< back the connection tables with transparent huge pages (memory.hpp)
    /// The established lanes and batched bursts (off: every packet takes the general path, one at a
    /// time — the same results, slower; for differential tests).
    bool fast_paths = true;
    std::uint32_t path_mtu = 1500; ///< MTU towards the real servers (tunnels, DF checks)
    inet_addr tunnel_src_v4{};     ///< outer source address of IPv4 tunnels (the director's own)
    inet_addr tunnel_src_v6{};
};

namespace detail {

/// The checks of probe_v4_simple (IPv4 without options, not a fragment) or probe_v6_simple (IPv6 without
/// extension headers) — then TCP with a sane data offset or UDP with a sane length — and the few facts
/// they read at fixed offsets. The director's established lanes work from these alone.
struct lane_probe {
    std::uint32_t off = 0;  ///< the IP header's offset in the buffer
    std::uint32_t tot = 0;  ///< IP total length
    std::uint32_t hlen = 0; ///< L4 header length
    std::uint16_t frag = 0; ///< the flags + fragment offset word
    std::uint8_t proto = 0; ///< tcp or udp
};
/// TCP with a data offset in [20, avail] or UDP with a length in [8, avail], as parse() requires of an
/// unfragmented datagram; `hlen` the L4 header length.
inline bool probe_l4(const std::byte* q, std::size_t avail, std::uint8_t pr, std::uint32_t& hlen) noexcept {
    if (pr == ipproto::tcp) {
        if (avail < tcp_hdr::min_len) return false;
        hlen = (std::to_integer<std::uint32_t>(q[tcp_hdr::doff]) >> 4) * 4;
        return hlen >= tcp_hdr::min_len && hlen <= avail;
    }
    if (pr == ipproto::udp) {
        if (avail < udp_hdr::len) return false;
        const std::size_t ulen = load_be16(q + udp_hdr::length);
        hlen = udp_hdr::len;
        return ulen >= udp_hdr::len && ulen <= avail;
    }
    return false;
}

/// IPv6 whose next header is TCP or UDP itself (no extension headers, so not a fragment).
inline bool probe_v6_simple(std::span<const std::byte> b, std::size_t off, lane_probe& s) noexcept {
    if (off > b.size() || b.size() - off < ipv6_hdr::len + udp_hdr::len) return false;
    const std::byte* p = b.data() + off;
    if ((std::to_integer<std::uint8_t>(p[0]) >> 4) != 6) return false;
    const std::size_t plen = load_be16(p + ipv6_hdr::payload_len);
    const std::uint8_t pr = load_u8(p + ipv6_hdr::next_header);
    if (plen > b.size() - off - ipv6_hdr::len) return false;
    std::uint32_t hlen;
    if (!probe_l4(p + ipv6_hdr::len, plen, pr, hlen)) return false;
    s.off = static_cast<std::uint32_t>(off);
    s.tot = static_cast<std::uint32_t>(ipv6_hdr::len + plen);
    s.hlen = hlen;
    s.frag = 0;
    s.proto = pr;
    return true;
}

inline bool probe_v4_simple(std::span<const std::byte> b, std::size_t off, lane_probe& s) noexcept {
    if (off > b.size() || b.size() - off < ipv4_hdr::min_len + udp_hdr::len) return false;
    const std::byte* p = b.data() + off;
    if (std::to_integer<std::uint8_t>(p[0]) != 0x45) return false; // version 4, IHL 5
    const std::size_t tot = load_be16(p + ipv4_hdr::total_len);
    const std::uint16_t frag = load_be16(p + ipv4_hdr::frag);
    const std::uint8_t pr = load_u8(p + ipv4_hdr::protocol);
    if (tot > b.size() - off || (frag & (ipv4_hdr::flag_mf | ipv4_hdr::offset_mask)) != 0) return false;
    const std::size_t avail = tot < ipv4_hdr::min_len ? 0 : tot - ipv4_hdr::min_len;
    std::uint32_t hlen;
    if (!probe_l4(p + ipv4_hdr::min_len, avail, pr, hlen)) return false;
    s.off = static_cast<std::uint32_t>(off);
    s.tot = static_cast<std::uint32_t>(tot);
    s.hlen = hlen;
    s.frag = frag;
    s.proto = pr;
    return true;
}

/// parse() for the packet a director sees most (probe_v4_simple's). Precondition: `info` is
/// default-constructed (packet_info{}); only the fields that differ from their defaults are written, so
/// nothing is zeroed twice. Fills `info` exactly as parse() would (the director's tests check this
/// field by field against parse() on random packets) and returns true; returns false, `info` untouched,
/// for anything else — the caller then runs parse(), which knows every other case.
/// parse_v4_simple's second half: fills `info` (default-constructed) from a packet probe_v4_simple accepted.
inline void fill_v4_simple(std::span<const std::byte> b, const lane_probe& s, packet_info& info) noexcept {
    const std::byte* p = b.data() + s.off;
    const std::byte* q = p + ipv4_hdr::min_len;
    ip_info& ip = info.ip; // every field not set below keeps its default (the precondition)
    ip.af = family::v4;
    ip.protocol = s.proto;
    ip.ttl = load_u8(p + ipv4_hdr::ttl);
    ip.tos = load_u8(p + ipv4_hdr::tos);
    ip.offset = s.off;
    ip.header_len = ipv4_hdr::min_len;
    ip.total_len = s.tot;
    // Straight into the (zeroed, IPv4) address bytes: building a temporary byte by byte and copying it
    // whole would stall on store forwarding.
    std::memcpy(ip.saddr.bytes.data(), p + ipv4_hdr::saddr, 4);
    std::memcpy(ip.daddr.bytes.data(), p + ipv4_hdr::daddr, 4);
    ip.df = (s.frag & ipv4_hdr::flag_df) != 0;
    ip.frag_id = load_be16(p + ipv4_hdr::id);
    l4_info& l = info.l4;
    l.offset = s.off + ipv4_hdr::min_len;
    l.header_len = s.hlen;
    l.length = s.tot - ipv4_hdr::min_len;
    l.sport = load_be16(q); // TCP and UDP: ports first
    l.dport = load_be16(q + 2);
    if (s.proto == ipproto::tcp) {
        l.check_offset = l.offset + tcp_hdr::check;
        l.seq = load_be32(q + tcp_hdr::seq);
        l.ack_seq = load_be32(q + tcp_hdr::ack);
        l.tcp_flags = load_u8(q + tcp_hdr::flags);
    } else {
        l.check_offset = l.offset + udp_hdr::check;
    }
}

inline bool parse_v4_simple(std::span<const std::byte> b, std::size_t off, packet_info& info) noexcept {
    lane_probe s;
    if (!probe_v4_simple(b, off, s)) return false;
    fill_v4_simple(b, s, info);
    return true;
}

} // namespace detail

class sync_agent; // include/ipvs/sync_agent.hpp: the sync master / backup glue (a friend of director)

/// Called by the director after a client-side packet has updated a hashed connection's state, where
/// the kernel calls ip_vs_sync_conn (spec §7.1 step 14). The default does nothing; one virtual call per
/// packet, made only when an observer is set.
class conn_observer {
public:
    virtual void on_in_packet(basic_conn<4>& e, const verdict& v) noexcept = 0;
    virtual void on_in_packet(basic_conn<16>& e, const verdict& v) noexcept = 0;
    /// poll()'s expiry reached `e` (before the director's own bookkeeping): `deferred` — a template
    /// still controlling connections, re-armed for 60 s — or `timed_out` (about to be removed).
    virtual void on_expire(basic_conn<4>& e, expire_reason why) noexcept {
        (void)e;
        (void)why;
    }
    virtual void on_expire(basic_conn<16>& e, expire_reason why) noexcept {
        (void)e;
        (void)why;
    }

protected:
    ~conn_observer() = default;
};

class director {
    friend class sync_agent;
    struct clock_ref {
        const time_ns* t;
        [[nodiscard]] time_ns now() const noexcept { return *t; }
    };
    template <std::size_t N>
    using table_t = conn_table<basic_conn<N>, flow_hasher, clock_ref, huge_page_allocator<basic_conn<N>>>;

public:
    using svc_type = service<sched::any_scheduler>;
    struct svc_entry {
        service_config cfg;
        svc_type svc;
        traffic_stats stats{};
        svc_entry(const service_config& c, sched::any_scheduler s, service_params p)
            : cfg(c), svc(std::move(s), p) {}
    };

    explicit director(director_config cfg = {}, director_sysctl sys = {})
        : m_now(std::make_unique<time_ns>(0)), m_cfg(cfg), m_sys(sys),
          m_t4(conn_table_config{.capacity = cfg.capacity_v4}, flow_hasher(), clock_ref{m_now.get()},
               huge_page_allocator<basic_conn<4>>(cfg.huge_pages)),
          m_t6(conn_table_config{.capacity = cfg.capacity_v6}, flow_hasher(), clock_ref{m_now.get()},
               huge_page_allocator<basic_conn<16>>(cfg.huge_pages)) {}

    director(const director&) = delete;
    director& operator=(const director&) = delete;

    // ---- configuration (control path) -------------------------------------------------------------

    director_sysctl& sysctl() noexcept { return m_sys; }
    /// Sets (or, with nullptr, clears) the observer of client-side packets; not owned.
    void set_observer(conn_observer* o) noexcept { m_observer = o; }
    proto_timeouts& timeouts() noexcept { return m_timeouts; }

    /// ipvsadm -A. Throws std::invalid_argument for a duplicate service or an unknown scheduler.
    svc_entry& add_service(const service_config& c) {
        if (find_service_exact(c)) throw std::invalid_argument("ipvs: service exists");
        service_params p;
        p.af = c.af;
        p.protocol = c.fwmark ? ipproto::tcp : c.protocol;
        p.vip = c.vip;
        p.fwmark = c.fwmark;
        p.sched = c.sched_flags;
        p.persistent = c.persistent;
        p.one_packet = c.one_packet;
        p.persist_timeout = c.persist_timeout;
        p.netmask_prefix = c.netmask_prefix;
        m_services.emplace_back(
            std::make_unique<svc_entry>(c, sched::make_scheduler(c.scheduler, c.sched_flags), p));
        svc_entry& e = *m_services.back();
        // The caller's string may not outlive the call: keep the scheduler's own (static) name.
        e.cfg.scheduler = e.svc.scheduler().name();
        return e;
    }

    /// ipvsadm -E: the service named by `c`'s identity (af + protocol + VIP:port, or fwmark) takes
    /// `c`'s scheduler, scheduler flags, persistence (timeout, netmask) and one-packet flag, as
    /// ip_vs_edit_service does. A changed scheduler (or scheduler flags) is a new instance attached
    /// to the dests the service has (the kernel's init_service, spec §1.9: rr's cursor at the head,
    /// wrr at cw = mw, sh/dh/mh tables built afresh). Live connections and templates keep their dest;
    /// templates stay until they expire, also when persistence is turned off (new connections of a
    /// non-persistent service no longer look them up). Throws std::invalid_argument for an unknown
    /// service or scheduler (the service is left as it was).
    svc_entry& edit_service(const service_config& c) {
        svc_entry* s = find_service_exact(c);
        if (!s) throw std::invalid_argument("ipvs: no such service");
        const bool new_sched = c.scheduler != s->svc.scheduler().name() ||
                               c.sched_flags.fallback != s->cfg.sched_flags.fallback ||
                               c.sched_flags.port != s->cfg.sched_flags.port;
        if (new_sched) {
            auto fresh = sched::make_scheduler(c.scheduler, c.sched_flags); // may throw: nothing changed yet
            const auto list = s->svc.dests();
            std::visit(
                [&](auto& x) {
                    if constexpr (requires { x.init_service(list); })
                        x.init_service(list);
                    else if (!list.empty())
                        x.add_dest(list, *list[0]); // the index-keeping ones rebuild from the whole list
                },
                fresh.variant());
            s->svc.scheduler() = std::move(fresh);
        }
        service_params& p = s->svc.params();
        p.sched = c.sched_flags;
        p.persistent = c.persistent;
        p.one_packet = c.one_packet;
        p.persist_timeout = c.persist_timeout;
        p.netmask_prefix = c.netmask_prefix;
        s->cfg.sched_flags = c.sched_flags;
        s->cfg.persistent = c.persistent;
        s->cfg.persist_timeout = c.persist_timeout;
        s->cfg.netmask_prefix = c.netmask_prefix;
        s->cfg.one_packet = c.one_packet;
        s->cfg.scheduler = s->svc.scheduler().name();
        return *s;
    }

    /// ipvsadm -D: the service's dests go to the trash; its connections live on (spec §1.8).
    void del_service(const service_config& c) {
        svc_entry* s = find_service_exact(c);
        if (!s) throw std::invalid_argument("ipvs: no such service");
        while (s->svc.num_dests() != 0) del_dest(*s, s->svc.dests()[0]->ep);
        for (auto it = m_services.begin(); it != m_services.end(); ++it)
            if (it->get() == s) {
                m_dead_services.push_back(std::move(*it)); // its trashed dests still point at it
                m_services.erase(it);
                break;
            }
    }

    /// ipvsadm -a: a dest at the head of the list, revived from the trash with its counters if there.
    dest& add_dest(svc_entry& s, const dest_config& dc) {
        for (auto it = m_trash.begin(); it != m_trash.end(); ++it) {
            if ((*it).owner_id && same_identity((*it).owner_id->cfg, s.cfg) && (*it).d->ep == dc.ep) {
                // service::add_dest leaves the dest with the caller when it refuses the config, so the
                // trash keeps owning it (live connections may point at it) until it is accepted.
                dest& r = s.svc.add_dest(std::move((*it).d), dc);
                m_trash.erase(it);
                r.owner = &s;
                return r;
            }
        }
        dest& r = s.svc.add_dest(dc);
        r.owner = &s;
        return r;
    }
    /// ipvsadm -e.
    dest& edit_dest(svc_entry& s, const dest_config& dc) { return s.svc.edit_dest(dc); }
    /// ipvsadm -d: to the trash; with expire_nodest_conn its connections expire at the next poll.
    void del_dest(svc_entry& s, const endpoint& ep) {
        auto d = s.svc.del_dest(ep);
        dest* raw = d.get();
        m_trash.push_back({&s, std::move(d)});
        arm_trash_timer(*m_now);
        if (m_sys.expire_nodest_conn) {
            expire_dest(m_t4, raw);
            expire_dest(m_t6, raw);
        }
    }

    [[nodiscard]] std::span<const std::unique_ptr<svc_entry>> services() const noexcept { return m_services; }
    [[nodiscard]] svc_entry* find_service(family af, std::uint8_t proto, const endpoint& vip) noexcept {
        for (auto& s : m_services)
            if (!s->cfg.fwmark && s->cfg.af == af && s->cfg.protocol == proto && s->cfg.vip == endpoint{vip})
                return s.get();
        return nullptr;
    }
    [[nodiscard]] svc_entry* find_fwmark_service(family af, std::uint32_t mark) noexcept {
        for (auto& s : m_services)
            if (s->cfg.fwmark == mark && s->cfg.af == af) return s.get();
        return nullptr;
    }

    [[nodiscard]] table_t<4>& table_v4() noexcept { return m_t4; }
    [[nodiscard]] table_t<16>& table_v6() noexcept { return m_t6; }
    [[nodiscard]] std::size_t connections() const noexcept { return m_t4.size() + m_t6.size(); }

    // ---- the packet path ----------------------------------------------------------------------------

    /// A packet from the client side (ip_vs_in). `mark` is the packet's fwmark (0: none).
    template <class P>
    [[nodiscard]] verdict in(P& pkt, time_ns now, std::uint32_t mark = 0) noexcept {
        IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
        *m_now = now;
        const auto b = std::span<const std::byte>(packet_bytes(pkt));
        detail::lane_probe s;
        basic_conn<4>* e = nullptr;
        const bool looked_up = m_cfg.fast_paths && detail::probe_v4_simple(b, l3_offset(pkt), s);
        if (looked_up) {
            in_tuple<4> key;
            lane_key(b.data() + s.off, s.proto, key);
            e = m_t4.find_in(key);
            verdict v;
            if (e && established_lane(pkt, s, *e, v)) return v;
        }
        parse_result r;
        if (looked_up) { // parse_v4_simple's result without probing again
            detail::fill_v4_simple(b, s, r.info);
            return in_af<4>(pkt, r.info, mark, m_t4, e, true);
        }
        basic_conn<16>* e6 = nullptr;
        const bool looked_up6 = m_cfg.fast_paths && detail::probe_v6_simple(b, l3_offset(pkt), s);
        if (looked_up6) {
            in_tuple<16> key;
            lane_key(b.data() + s.off, s.proto, key);
            e6 = m_t6.find_in(key);
            verdict v;
            if (e6 && established_lane(pkt, s, *e6, v)) return v;
        }
        if (auto early = begin_packet(pkt, now, r)) return *early;
        if (r.info.ip.af == family::v4) return in_af<4>(pkt, r.info, mark, m_t4);
        return in_af<16>(pkt, r.info, mark, m_t6, e6, looked_up6);
    }

    /// A burst of client-side packets (ip_vs_in for each, in order): res[i] is in(pkts[i], now, mark).
    /// The IPv4 lookups of up to 32 packets at a time go through the table's prefetching batch, so
    /// their cache misses overlap instead of queueing; a packet after one that changed the table (a
    /// new or expired connection) is looked up again. Precondition: res.size() >= pkts.size().
    template <class P>
    void in_burst(std::span<P> pkts, std::span<verdict> res, time_ns now, std::uint32_t mark = 0) noexcept {
        IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
        run_burst<true>(pkts, res, now, mark);
    }
    /// The same for packets from the real-server side: res[i] is out(pkts[i], now).
    template <class P>
    void out_burst(std::span<P> pkts, std::span<verdict> res, time_ns now) noexcept {
        IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
        run_burst<false>(pkts, res, now, 0);
    }

    /// A packet from the real-server side (ip_vs_out).
    template <class P>
    [[nodiscard]] verdict out(P& pkt, time_ns now) noexcept {
        IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
        *m_now = now;
        const auto b = std::span<const std::byte>(packet_bytes(pkt));
        detail::lane_probe s;
        parse_result r;
        if (m_cfg.fast_paths && detail::probe_v4_simple(b, l3_offset(pkt), s)) {
            out_tuple<4> key;
            lane_key(b.data() + s.off, s.proto, key);
            basic_conn<4>* e = m_t4.find_out(key);
            verdict v;
            if (e && reply_lane(pkt, s, *e, v)) return v;
            detail::fill_v4_simple(b, s, r.info); // parse_v4_simple's result without probing again
            return out_af<4>(pkt, r.info, m_t4, e, true);
        }
        basic_conn<16>* e6 = nullptr;
        const bool looked_up6 = m_cfg.fast_paths && detail::probe_v6_simple(b, l3_offset(pkt), s);
        if (looked_up6) {
            out_tuple<16> key;
            lane_key(b.data() + s.off, s.proto, key);
            e6 = m_t6.find_out(key);
            verdict v;
            if (e6 && reply_lane(pkt, s, *e6, v)) return v;
        }
        if (auto early = begin_packet(pkt, now, r)) return *early;
        if (r.info.ip.af == family::v4) return out_af<4>(pkt, r.info, m_t4);
        return out_af<16>(pkt, r.info, m_t6, e6, looked_up6);
    }

    /// Expires connections whose time has come, at most `budget` of them; returns how many.
    std::size_t poll(time_ns now, std::size_t budget = 4096) noexcept {
        *m_now = now;
        // The kernel's 1 s defense timer; a clock that went back more than a second restarts it.
        if (now >= m_next_defense || now + defense_period < m_next_defense) {
            m_next_defense = now + defense_period;
            defend();
        }
        if (m_next_trash != never && (now >= m_next_trash || now + trash_period < m_next_trash)) {
            m_next_trash = never;
            expire_trash(now);
            if (std::any_of(m_trash.begin(), m_trash.end(),
                            [](const trashed& t) { return t.owner_id != nullptr; }))
                arm_trash_timer(now);
        }
        std::size_t n =
            m_t4.expire(budget, [this](auto& e, expire_reason why) { expired(m_t4, e, why); }).expired;
        if (n < budget)
            n += m_t6.expire(budget - n, [this](auto& e, expire_reason why) { expired(m_t6, e, why); })
                     .expired;
        return n;
    }

    /// Visits every connection and template: f(const basic_conn<N>&) for N = 4 and 16.
    template <class F>
    void for_each_conn(F&& f) const {
        m_t4.for_each(f);
        m_t6.for_each(f);
    }
    /// When a connection expires (for a listing's "expires" column).
    template <std::size_t N>
    [[nodiscard]] time_ns deadline(const basic_conn<N>& e) const noexcept {
        if constexpr (N == 4)
            return m_t4.deadline(e);
        else
            return m_t6.deadline(e);
    }

private:
    struct trashed {
        const svc_entry* owner_id; ///< the service it left (kept alive in m_dead_services if deleted)
        std::unique_ptr<dest> d;
        time_ns idle_since = never; ///< the trash timer's idle stamp (never: not stamped yet)
    };
    static constexpr time_ns never = time_ns::min();
    static constexpr time_ns defense_period = std::chrono::seconds(1);
    static constexpr time_ns trash_period = std::chrono::seconds(120); // IP_VS_DEST_TRASH_PERIOD

    /// update_defense_level and the defense work of spec §3.8, once a second from poll(): the modes
    /// from the sysctls (written back: automatic modes flip 1 ↔ 2), random_dropentry on both tables
    /// while drop_entry is active (its victims go in this poll's expiry), and the trash's expiry.
    void defend() noexcept {
        m_defense.drop_entry = m_sys.drop_entry;
        m_defense.drop_packet = m_sys.drop_packet;
        m_defense.secure_tcp = m_sys.secure_tcp;
        m_defense.am_droprate = m_sys.am_droprate;
        m_defense.amemthresh = m_sys.amemthresh;
        m_defense.update(static_cast<long>(std::min(m_t4.available(), m_t6.available())));
        m_sys.drop_entry = m_defense.drop_entry;
        m_sys.drop_packet = m_defense.drop_packet;
        m_sys.secure_tcp = m_defense.secure_tcp;
        if (m_defense.drop_entry_active()) {
            (void)m_t4.drop_entry();
            (void)m_t6.drop_entry();
        }
    }

    /// The trash timer (spec §1.8): it runs every 60 s while the trash is not empty, stamps a dest
    /// nothing uses (its connection counters are zero: every bound connection and template is counted)
    /// the first time it sees it so, and frees it on the first run ≥ 120 s after that stamp — as the
    /// kernel, which does not clear the stamp if the dest is used again meanwhile. A deleted service goes
    /// with its last trashed dest. The sync agent's placeholders (no owner) are its own to free.
    void expire_trash(time_ns now) noexcept {
        for (auto it = m_trash.begin(); it != m_trash.end();) {
            trashed& t = *it;
            const dest& d = *t.d;
            if (!t.owner_id || d.active_conns != 0 || d.inactive_conns != 0 || d.persist_conns != 0) {
                ++it;
                continue;
            }
            if (t.idle_since == never || now < t.idle_since) {
                t.idle_since = now;
                ++it;
                continue;
            }
            if (now - t.idle_since < trash_period) {
                ++it;
                continue;
            }
            IPVS_ASSERT(!references(m_t4, t.d.get()) && !references(m_t6, t.d.get()));
            const svc_entry* owner = t.owner_id;
            it = m_trash.erase(it);
            if (std::none_of(m_trash.begin(), m_trash.end(),
                             [&](const trashed& x) { return x.owner_id == owner; }))
                std::erase_if(m_dead_services, [&](const auto& sp) { return sp.get() == owner; });
        }
    }
    void arm_trash_timer(time_ns now) noexcept {
        if (m_next_trash == never) m_next_trash = now + trash_period / 2;
    }
    template <std::size_t N>
    static bool references(const table_t<N>& t, const dest* d) noexcept {
        bool any = false;
        t.for_each([&](const basic_conn<N>& e) { any = any || e.dest == d; });
        return any;
    }
    /// The kernel finds a trashed dest by its service's identity (spec §1.8), so a service deleted and
    /// added again revives its dests with their counters.
    static bool same_identity(const service_config& a, const service_config& b) noexcept {
        if (a.af != b.af || a.fwmark != b.fwmark) return false;
        return a.fwmark != 0 || (a.protocol == b.protocol && a.vip == b.vip);
    }

    /// What in() and out() share: set the clock, parse, and settle the packets IPVS never looks into
    /// (fragments: reassemble first; unknown protocols: not ours; malformed: drop).
    template <class P>
    std::optional<verdict> begin_packet(const P& pkt, time_ns now, parse_result& r) noexcept {
        *m_now = now;
        if (detail::parse_v4_simple(std::span<const std::byte>(packet_bytes(pkt)), l3_offset(pkt), r.info)) {
            r.status = parse_status::ok;
            return std::nullopt;
        }
        r = parse(pkt);
        if (r.status == parse_status::fragment ||
            (r.ok() && r.info.ip.af == family::v4 && r.info.ip.is_fragment()))
            return fragment_verdict(r.info);
        if (r.status == parse_status::unknown_protocol) return verdict{};
        if (!r.ok()) return drop(drop_reason::malformed);
        return std::nullopt;
    }

    static verdict drop(drop_reason why) noexcept {
        verdict v;
        v.act = action::drop;
        v.reason = why;
        return v;
    }
    static verdict fragment_verdict(const packet_info& info) noexcept {
        verdict v;
        // IPv6 non-first fragments are not scheduled and carry no ports (spec §7.1 step 10): ACCEPT.
        v.act = info.ip.af == family::v4 ? action::reassemble : action::accept;
        return v;
    }

    // -- services ---------------------------------------------------------------------------------
    svc_entry* find_service_exact(const service_config& c) noexcept {
        if (c.fwmark) return find_fwmark_service(c.af, c.fwmark);
        return find_service(c.af, c.protocol, c.vip);
    }
    svc_entry* lookup_service(family af, std::uint8_t proto, const inet_addr& vaddr, std::uint16_t vport,
                              std::uint32_t mark) noexcept {
        if (mark)
            if (auto* s = find_fwmark_service(af, mark)) return s;
        if (auto* s = find_service(af, proto, endpoint{vaddr, vport})) return s;
        return find_service(af, proto, endpoint{vaddr, 0}); // a port-0 (any port) service
    }
    static svc_entry& owner_of(const dest& d) noexcept { return *static_cast<svc_entry*>(d.owner); }
    bool in_service(const dest& d) const noexcept {
        for (const auto& t : m_trash)
            if (t.d.get() == &d) return false;
        return true;
    }

    // -- counters -----------------------------------------------------------------------------------
    void bind(dest& d, conn_counter c) noexcept {
        if (in_service(d))
            owner_of(d).svc.bind(d, c);
        else
            bind_counts(d, c);
    }
    void unbind(dest& d, conn_counter c) noexcept {
        if (in_service(d))
            owner_of(d).svc.unbind(d, c);
        else
            unbind_counts(d, c);
    }
    void move(dest& d, bool to_active) noexcept {
        if (in_service(d)) {
            if (to_active)
                owner_of(d).svc.move_to_active(d);
            else
                owner_of(d).svc.move_to_inactive(d);
        } else {
            if (to_active) {
                --d.inactive_conns;
                ++d.active_conns;
            } else {
                --d.active_conns;
                ++d.inactive_conns;
            }
        }
    }

    template <std::size_t N>
    void expired(table_t<N>& t, basic_conn<N>& e, expire_reason why) noexcept {
        if (m_observer) m_observer->on_expire(e, why); // the sync master's expire-later hook
        on_remove(t, e, why);
    }
    template <std::size_t N>
    void on_remove(table_t<N>& t, basic_conn<N>& e, expire_reason why) noexcept {
        (void)t;
        if (why == expire_reason::deferred || e.dest == nullptr) return;
        if (e.is_template())
            unbind(*e.dest, conn_counter::persist);
        else
            unbind(*e.dest, e.is_inactive() ? conn_counter::inactive : conn_counter::active);
    }

    template <std::size_t N>
    void expire_dest(table_t<N>& t, const dest* d) noexcept {
        t.for_each([&](basic_conn<N>& e) {
            if (e.dest == d) t.expire_now(e);
        });
    }

    // -- state machines -----------------------------------------------------------------------------
    /// Runs the protocol state transition for one packet (spec §4, §5), moves counters (§1.6), sets
    /// the timeout, and confirms / assures on ESTABLISHED. Returns nothing; the packet is not touched.
    template <std::size_t N>
    void set_state(table_t<N>& t, basic_conn<N>& e, const std::span<const std::byte> b,
                   const packet_info& info, bool from_client) noexcept {
        const conn_dir dir = conn_direction(from_client, (e.flags & conn_flag::nooutput) != 0);
        bool established = false;
        if (e.protocol == ipproto::tcp) {
            const auto cur = static_cast<tcp_state>(e.state);
            const auto nxt = next_tcp_state(e, tcp_flags{info.l4.tcp_flags}, from_client);
            transition(e, cur, nxt);
            e.set_timeout(m_timeouts[nxt]);
            established = nxt == tcp_state::established;
        } else if (e.protocol == ipproto::sctp) {
            const auto cur = static_cast<sctp_state>(e.state);
            const auto chunks = b.subspan(info.l4.offset + sctp_hdr::len, info.l4.length - sctp_hdr::len);
            const auto ev = sctp_classify(chunks);
            const auto nxt = ev ? sctp_next_state(cur, dir, *ev) : cur;
            transition(e, cur, nxt);
            e.set_timeout(m_timeouts[nxt]);
            established = nxt == sctp_state::established;
        } else {
            e.set_timeout(m_timeouts.udp);
            established = !from_client; // a UDP flow is confirmed by its first reply
        }
        if (established) {
            if (e.is_embryonic()) t.confirm(e);
            if (e.is_controlled()) {
                auto& tpl = t.at(e.control);
                tpl.state |= template_assured;
            }
        }
    }
    /// The TCP state table's answer for a segment with flags `f` on `e` (spec §4: normal or secure_tcp).
    template <std::size_t N>
    [[nodiscard]] tcp_state next_tcp_state(const basic_conn<N>& e, tcp_flags f,
                                           bool from_client) const noexcept {
        const conn_dir dir = conn_direction(from_client, (e.flags & conn_flag::nooutput) != 0);
        const auto table =
            tcp_table_for_secure_tcp(m_sys.secure_tcp == 3 || m_defense.secure_tcp_active() ? 3 : 0);
        return tcp_next_state(static_cast<tcp_state>(e.state), dir, f, table);
    }
    template <std::size_t N, class State>
    void transition(basic_conn<N>& e, State cur, State nxt) noexcept {
        e.state = static_cast<std::uint8_t>(nxt);
        if (cur == nxt || e.dest == nullptr) return;
        const bool inactive = e.is_inactive();
        if (!inactive && !is_active(nxt)) {
            move(*e.dest, false);
            e.flags |= conn_flag::inactive;
        } else if (inactive && is_active(nxt)) {
            move(*e.dest, true);
            e.flags &= ~conn_flag::inactive;
        }
    }

    // -- in ---------------------------------------------------------------------------------------------
    /// `found`: the in-lookup already made for this packet (in_burst), or nullptr with `looked_up` false.
    template <std::size_t N, class P>
    verdict in_af(P& pkt, const packet_info& info, std::uint32_t mark, table_t<N>& t,
                  basic_conn<N>* found = nullptr, bool looked_up = false) noexcept {
        const std::uint8_t pr = info.ip.protocol;
        if (pr == ipproto::icmp || pr == ipproto::icmpv6) return in_icmp<N>(pkt, info, t);
        const auto b = std::span<const std::byte>(packet_bytes(pkt));

        basic_conn<N>* e =
            looked_up
                ? found
                : t.find_in(make_in_tuple<N>(pr, info.ip.saddr, info.l4.sport, info.ip.daddr, info.l4.dport));
        const bool new_conn_pkt = pr == ipproto::tcp    ? tcp_is_new_conn_packet(tcp_flags{info.l4.tcp_flags})
                                  : pr == ipproto::sctp ? sctp_is_new_conn_packet(info.l4.chunk_types[0])
                                                        : false;
        // Connection reuse and expire_nodest_conn on a new-connection packet (spec §3.7).
        if (e && new_conn_pkt) {
            bool resched = false;
            if (m_sys.expire_nodest_conn && e->dest && e->dest->weight == 0) {
                resched = true;
            } else if (!e->is_controlled()) {
                if (pr == ipproto::tcp)
                    resched = tcp_conn_expects_new(static_cast<tcp_state>(e->state), m_sys.conn_reuse_mode,
                                                   (e->flags & conn_flag::nooutput) != 0);
                else
                    resched = sctp_conn_expects_new(static_cast<sctp_state>(e->state), m_sys.conn_reuse_mode);
            }
            if (resched) {
                if (e->n_control == 0) expire_conn_now(t, *e);
                e = nullptr;
            }
        }
        // The connection's dest was deleted (spec §1.8, §7.1 step 9).
        if (e && e->dest && !e->dest->available()) {
            if (!m_sys.expire_nodest_conn) return drop(drop_reason::dest_unavailable);
            expire_conn_now(t, *e);
            e = nullptr;
        }
        verdict v;
        if (!e) {
            const bool may =
                pr == ipproto::tcp    ? tcp_may_create_conn(tcp_flags{info.l4.tcp_flags}, m_sys.sloppy_tcp)
                : pr == ipproto::sctp ? sctp_may_create_conn(info.l4.chunk_types[0], m_sys.sloppy_sctp)
                                      : udp_may_create_conn();
            if (!may) return {}; // not a connection IPVS would start: the host stack answers
            svc_entry* s = lookup_service(info.ip.af, pr, info.ip.daddr, info.l4.dport, mark);
            if (!s) return {};
            if (m_defense.todrop()) return drop(drop_reason::defense);
            bool one_packet = false;
            basic_conn<N> once{};
            const auto made = schedule<N>(t, *s, info, one_packet, e, once);
            if (made == sched_outcome::leave) return leave(b, info);
            if (made == sched_outcome::full) return drop(drop_reason::table_full);
            v.new_conn = true;
            if (one_packet) { // forwarded once, never hashed (spec §3.4)
                if (once.dest) count_in(*once.dest, info.ip.total_len);
                return transmit_in(pkt, info, once, v);
            }
        }
        // Stats (spec §7.1 step 11).
        if (e->dest && e->dest->available()) {
            count_in(*e->dest, info.ip.total_len);
        }
        set_state(t, *e, b, info, true);
        v = transmit_in(pkt, info, *e, v);
        t.touch(*e);
        if (m_observer) m_observer->on_in_packet(*e, v); // sync hook
        return v;
    }

    /// The in- or out-lookup key of a packet a probe accepted (IPv4: probe_v4_simple, IPv6: probe_v6_simple),
    /// straight from its bytes (TCP, UDP: ports first) — not from a packet_info whose fields were just
    /// stored piecewise. Written in place: a copy of a key just built byte-wise would stall on store
    /// forwarding.
    template <class Key>
    static void lane_key(const std::byte* ip, std::uint8_t proto, Key& key) noexcept {
        constexpr std::size_t N = std::tuple_size_v<decltype(key.caddr)>;
        constexpr std::size_t src = N == 4 ? ipv4_hdr::saddr : ipv6_hdr::saddr;
        constexpr std::size_t dst = N == 4 ? ipv4_hdr::daddr : ipv6_hdr::daddr;
        constexpr std::size_t l4 = N == 4 ? ipv4_hdr::min_len : ipv6_hdr::len;
        // In-lookup: the client is the source; out-lookup (a reply): the real server is.
        constexpr bool in = std::is_same_v<Key, in_tuple<N>>;
        std::memcpy(key.caddr.data(), ip + (in ? src : dst), N);
        if constexpr (in) {
            std::memcpy(key.vaddr.data(), ip + dst, N);
            key.cport = load_be16(ip + l4);
            key.vport = load_be16(ip + l4 + 2);
        } else {
            std::memcpy(key.daddr.data(), ip + src, N);
            key.dport = load_be16(ip + l4);
            key.cport = load_be16(ip + l4 + 2);
        }
        key.protocol = proto;
    }

    /// One family's share of a burst: the probed packets' keys, lane facts and batched lookups.
    template <bool In, std::size_t N>
    struct burst_part {
        static constexpr std::size_t burst = 32;
        using key_type = std::conditional_t<In, in_tuple<N>, out_tuple<N>>;
        std::array<key_type, burst> keys;
        std::array<basic_conn<N>*, burst> found;
        std::array<detail::lane_probe, burst> lane;
        std::size_t k = 0;
        std::uint64_t gen = 0;

        /// Probes packet bytes `b` (IP header at `off`); on success keys it and returns its index.
        bool add(std::span<const std::byte> b, std::size_t off, std::uint8_t& index) noexcept {
            const bool ok =
                N == 4 ? detail::probe_v4_simple(b, off, lane[k]) : detail::probe_v6_simple(b, off, lane[k]);
            if (!ok) return false;
            lane_key(b.data() + lane[k].off, lane[k].proto, keys[k]);
            index = static_cast<std::uint8_t>(k++);
            return true;
        }
        /// The batched lookups, then a prefetch of each found entry's last line (the lookup read its
        /// key; dest and timer hook may sit on the next line).
        void look_up(table_t<N>& t) noexcept {
            const auto ks = std::span<const key_type>(keys.data(), k);
            if constexpr (In)
                t.find_in_batch(ks, std::span(found.data(), k));
            else
                t.find_out_batch(ks, std::span(found.data(), k));
            for (std::size_t j = 0; j < k; ++j)
                if (found[j])
                    __builtin_prefetch(reinterpret_cast<const char*>(found[j]) + sizeof(basic_conn<N>) - 1, 1,
                                       3);
            gen = t.generation();
        }
    };

    /// in_burst and out_burst: probe and key every packet (IPv4 and IPv6 apart), one batch lookup per
    /// family, then each packet in order through its lane or the general path.
    template <bool In, class P>
    void run_burst(std::span<P> pkts, std::span<verdict> res, time_ns now, std::uint32_t mark) noexcept {
        IPVS_ASSERT(res.size() >= pkts.size());
        constexpr std::size_t burst = 32;
        constexpr std::uint8_t general = 0xff, v6_bit = 0x40; // slot[i]: in() / out(), or which part
        std::array<std::uint8_t, burst> slot;
        burst_part<In, 4> p4;
        burst_part<In, 16> p6;
        *m_now = now;
        if (!m_cfg.fast_paths) {
            for (std::size_t i = 0; i < pkts.size(); ++i) {
                if constexpr (In)
                    res[i] = in(pkts[i], now, mark);
                else
                    res[i] = out(pkts[i], now);
            }
            return;
        }
        for (std::size_t base = 0; base < pkts.size(); base += burst) {
            const std::size_t n = std::min(burst, pkts.size() - base);
            p4.k = p6.k = 0;
            for (std::size_t i = 0; i < n; ++i) {
                auto& pkt = pkts[base + i];
                const auto b = std::span<const std::byte>(packet_bytes(pkt));
                std::uint8_t j = 0;
                if (p4.add(b, l3_offset(pkt), j))
                    slot[i] = j;
                else if (p6.add(b, l3_offset(pkt), j))
                    slot[i] = static_cast<std::uint8_t>(v6_bit | j);
                else
                    slot[i] = general;
            }
            if (p4.k) p4.look_up(m_t4);
            if (p6.k) p6.look_up(m_t6);
            for (std::size_t i = 0; i < n; ++i) {
                auto& pkt = pkts[base + i];
                verdict& v = res[base + i];
                const std::uint8_t j = slot[i];
                if (j == general) {
                    if constexpr (In)
                        v = in(pkt, now, mark);
                    else
                        v = out(pkt, now);
                } else if (j & v6_bit) {
                    v = burst_packet<In>(pkt, p6, j & (v6_bit - 1), now, mark);
                } else {
                    v = burst_packet<In>(pkt, p4, j, now, mark);
                }
            }
        }
    }
    /// One probed packet of a burst: its lane, else in_af / out_af with the batch's lookup when no
    /// table change since has made it stale.
    template <bool In, class P, std::size_t N>
    verdict burst_packet(P& pkt, const burst_part<In, N>& part, std::size_t j, time_ns now,
                         std::uint32_t mark) noexcept {
        table_t<N>& t = table_of<N>();
        const bool fresh = t.generation() == part.gen;
        basic_conn<N>* e = fresh ? part.found[j] : nullptr;
        verdict v;
        if constexpr (In) {
            if (e && established_lane(pkt, part.lane[j], *e, v)) return v;
        } else {
            if (e && reply_lane(pkt, part.lane[j], *e, v)) return v;
        }
        parse_result r;
        if constexpr (N == 4) {
            detail::fill_v4_simple(std::span<const std::byte>(packet_bytes(pkt)), part.lane[j], r.info);
        } else {
            if (auto early = begin_packet(pkt, now, r)) return *early; // (not for a probed packet)
        }
        if constexpr (In)
            return in_af<N>(pkt, r.info, mark, t, e, fresh);
        else
            return out_af<N>(pkt, r.info, t, e, fresh);
    }

    /// What both lanes check of the packet itself, and where its fields are: checksum state none or
    /// unnecessary, TTL > 1, a UDP checksum present (a zero one gains a full checksum: general path).
    template <std::size_t N>
    struct lane_frame {
        static constexpr std::size_t ip_len = N == 4 ? ipv4_hdr::min_len : ipv6_hdr::len;
        static constexpr std::size_t ttl_at = N == 4 ? ipv4_hdr::ttl : ipv6_hdr::hop_limit;
        std::byte* iph = nullptr;
        std::byte* l4 = nullptr;
        std::byte* check = nullptr;
        bool udp = false;
        template <class P>
        bool take(P& pkt, const detail::lane_probe& s) noexcept {
            const csum_state cs = checksum_state(pkt);
            if (cs != csum_state::none && cs != csum_state::unnecessary) return false;
            iph = packet_bytes(pkt).data() + s.off;
            l4 = iph + ip_len;
            udp = s.proto == ipproto::udp;
            check = l4 + (udp ? udp_hdr::check : tcp_hdr::check);
            return load_u8(iph + ttl_at) > 1 && (!udp || load_be16(check) != 0);
        }
        /// The one-pass NAT: forward_nat_v4_bytes / forward_nat_v6_bytes.
        void rewrite(nat_dir dir, const inet_addr& to, std::uint16_t old_port,
                     std::uint16_t to_port) const noexcept {
            if constexpr (N == 4)
                detail::forward_nat_v4_bytes(iph, l4, check, udp, dir, to.v4_host(), old_port, to_port);
            else
                detail::forward_nat_v6_bytes(iph, l4, check, udp, dir, to, old_port, to_port);
        }
    };
    template <std::size_t N>
    table_t<N>& table_of() noexcept {
        if constexpr (N == 4)
            return m_t4;
        else
            return m_t6;
    }

    /// in_af for the packet a busy director sees most, from a probe in in() or in_burst: TCP/UDP over
    /// IPv4 without options (probe_v4_simple) or IPv6 without extension headers (probe_v6_simple), TTL /
    /// hop limit > 1, checksum state none or unnecessary, of a MASQ connection to an available dest of the
    /// same family, a TCP segment that neither may start a connection nor moves the state (and, in
    /// ESTABLISHED, of a confirmed entry). Does what in_af's steps do for it — stats, timeout, template
    /// assured, the one-pass DNAT, timer, sync hook — without building a packet_info. Returns false,
    /// nothing changed, when a condition fails: the caller takes in_af.
    template <class P, std::size_t N>
    bool established_lane(P& pkt, const detail::lane_probe& s, basic_conn<N>& e, verdict& v) noexcept {
        dest* const d = e.dest;
        if (e.fwd() != fwd_method::masq || d == nullptr || !d->available() ||
            d->ep.addr.af != (N == 4 ? family::v4 : family::v6))
            return false;
        lane_frame<N> fr;
        if (!fr.take(pkt, s)) return false;
        time_ns timeout = m_timeouts.udp;
        if (!fr.udp) {
            const tcp_flags f{load_u8(fr.l4 + tcp_hdr::flags)};
            if (tcp_is_new_conn_packet(f)) return false;
            const auto nxt = next_tcp_state(e, f, true);
            if (nxt != static_cast<tcp_state>(e.state)) return false;
            const bool est = nxt == tcp_state::established;
            if (est && e.is_embryonic()) return false; // confirm(): the general path
            timeout = m_timeouts[nxt];
            if (est && e.is_controlled()) table_of<N>().at(e.control).state |= template_assured;
        }
        count_in(*d, s.tot);
        e.set_timeout(timeout);
        fr.rewrite(nat_dir::dnat, d->ep.addr, load_be16(fr.l4 + 2), e.dport());
        table_of<N>().touch(e);
        v = verdict{};
        v.act = action::forward;
        v.method = fwd_method::masq;
        v.to = d;
        if (m_observer) m_observer->on_in_packet(e, v); // sync hook
        return true;
    }

    /// out_af for a reply of an established NAT connection (the counterpart of established_lane): the
    /// same packet shapes, a MASQ connection with a dest, a TCP segment that does not move the state, and
    /// no embryonic entry to confirm (a UDP reply confirms: the general path does that once). Returns
    /// false, nothing changed, otherwise.
    template <class P, std::size_t N>
    bool reply_lane(P& pkt, const detail::lane_probe& s, basic_conn<N>& e, verdict& v) noexcept {
        dest* const d = e.dest;
        // NOOUTPUT (set on MASQ only by a sync backup) is cleared by out_af before its state change.
        if (e.fwd() != fwd_method::masq || d == nullptr || e.is_embryonic() ||
            (e.flags & conn_flag::nooutput))
            return false;
        lane_frame<N> fr;
        if (!fr.take(pkt, s)) return false;
        time_ns timeout = m_timeouts.udp;
        bool assure = e.is_controlled();
        if (!fr.udp) {
            const auto nxt = next_tcp_state(e, tcp_flags{load_u8(fr.l4 + tcp_hdr::flags)}, false);
            if (nxt != static_cast<tcp_state>(e.state)) return false;
            timeout = m_timeouts[nxt];
            assure = assure && nxt == tcp_state::established;
        }
        count_out(*d, s.tot);
        fr.rewrite(nat_dir::snat, to_inet<N>(e.vaddr), load_be16(fr.l4), e.vport);
        e.set_timeout(timeout);
        if (assure) table_of<N>().at(e.control).state |= template_assured;
        table_of<N>().touch(e);
        v = verdict{};
        v.act = action::forward;
        v.method = fwd_method::masq;
        v.to = d;
        return true;
    }

    enum class sched_outcome : std::uint8_t { created, leave, full };

    /// ip_vs_schedule (spec §3.5): persistence, scheduler, the new connection. Sets `e`.
    template <std::size_t N>
    sched_outcome schedule(table_t<N>& t, svc_entry& s, const packet_info& info, bool& one_packet,
                           basic_conn<N>*& e, basic_conn<N>& once) noexcept {
        const service_config& c = s.cfg;
        const std::uint8_t pr = info.ip.protocol;
        sched::sched_input in{info.ip.saddr, info.ip.daddr, info.l4.sport, info.l4.dport, pr, *m_now};
        const std::uint16_t vp = info.l4.dport;
        dest* d = nullptr;
        basic_conn<N>* tpl = nullptr;
        if (c.persistent) {
            const unsigned prefix =
                info.ip.af == family::v4 ? std::min(c.netmask_prefix, 32U) : c.netmask_prefix;
            const auto snet = to_bytes<N>(info.ip.saddr.masked(prefix));
            in_tuple<N> tkey;
            if (c.fwmark)
                tkey = make_fwmark_template_key<N>(snet, c.fwmark);
            else
                tkey = make_template_key<N>(pr, snet, to_bytes<N>(info.ip.daddr), vp == c.vip.port ? vp : 0);
            tpl = t.find_template(tkey);
            if (tpl && (!tpl->dest || !tpl->dest->available() ||
                        (m_sys.expire_quiescent_template && tpl->dest->weight == 0))) {
                t.invalidate_template(*tpl);
                tpl = nullptr;
            }
            if (!tpl) {
                d = s.svc.schedule(in);
                if (!d) return sched_outcome::leave;
                basic_conn<N> proto{};
                proto.caddr = tkey.caddr;
                proto.vaddr = tkey.vaddr;
                proto.cport = 0;
                proto.vport = tkey.vport;
                proto.protocol = tkey.protocol;
                proto.flags = conn_flag::template_ | static_cast<std::uint32_t>(d->fwd);
                if (d->fwd != fwd_method::masq) proto.flags |= conn_flag::nooutput;
                proto.dest = d;
                proto.set_dport(vp == c.vip.port && !c.fwmark ? d->ep.port : 0);
                proto.set_timeout(c.persist_timeout);
                auto ins = t.insert(proto, admit::embryonic,
                                    [&](auto& victim) { on_remove(t, victim, expire_reason::evicted); });
                if (!ins) return sched_outcome::full;
                tpl = ins.entry;
                bind(*d, conn_counter::persist);
            } else {
                d = tpl->dest;
            }
        } else {
            if (!c.fwmark && vp != c.vip.port) return sched_outcome::leave; // a port-0 service needs -p
            d = s.svc.schedule(in);
            if (!d) return sched_outcome::leave;
        }
        basic_conn<N> proto{};
        proto.caddr = to_bytes<N>(info.ip.saddr);
        proto.vaddr = to_bytes<N>(info.ip.daddr);
        proto.cport = info.l4.sport;
        proto.vport = vp;
        proto.protocol = pr;
        proto.flags = static_cast<std::uint32_t>(d->fwd) | conn_flag::inactive;
        if (d->fwd != fwd_method::masq) proto.flags |= conn_flag::nooutput;
        proto.dest = d;
        proto.set_dport(d->ep.port != 0 && (c.fwmark || vp == c.vip.port) ? d->ep.port : vp);
        proto.set_timeout(std::chrono::seconds(3));
        one_packet = c.one_packet && pr == ipproto::udp;
        ++d->stats.conns;
        ++s.stats.conns;
        if (one_packet) {
            // ONE_PACKET: forwarded once and freed, never hashed (spec §3.4): counted and uncounted.
            once = proto;
            bind(*d, conn_counter::inactive);
            unbind(*d, conn_counter::inactive);
            if (tpl) t.touch(*tpl);
            return sched_outcome::created;
        }
        auto ins = t.insert(
            proto, admit::embryonic, [&](auto& victim) { on_remove(t, victim, expire_reason::evicted); },
            tpl);
        if (!ins) return sched_outcome::full;
        e = ins.entry;
        // The kernel binds the connection inactive and its first state change (a SYN: NONE → SYN_RECV)
        // moves it to active inside the same packet; nothing can look in between, so a TCP connection
        // whose first state counts as active is bound active at once — one scheduler index update
        // instead of two, the same counters after the packet.
        if (pr == ipproto::tcp && is_active(next_tcp_state(*e, tcp_flags{info.l4.tcp_flags}, true))) {
            e->flags &= ~conn_flag::inactive;
            bind(*d, conn_counter::active);
        } else {
            bind(*d, conn_counter::inactive);
        }
        if (tpl) t.touch(*tpl); // insert() linked the connection to its template
        return sched_outcome::created;
    }

    /// ip_vs_leave (spec §7.3): an ICMP port unreachable for the client.
    verdict leave(std::span<const std::byte> b, const packet_info& info) noexcept {
        auto ip = info.ip;
        const auto n = build_port_unreachable(m_reply, b.subspan(ip.offset), with_offset0(ip));
        verdict v = drop(drop_reason::no_dest);
        if (n) {
            v.act = action::reply;
            v.reply = std::span<const std::byte>(m_reply.data(), n);
        }
        return v;
    }
    static ip_info with_offset0(ip_info ip) noexcept {
        ip.offset = 0;
        return ip;
    }

    void count_in(dest& d, std::uint32_t len) noexcept {
        ++d.stats.in_pkts;
        d.stats.in_bytes += len;
        auto& s = owner_of(d);
        ++s.stats.in_pkts;
        s.stats.in_bytes += len;
    }
    void count_out(dest& d, std::uint32_t len) noexcept {
        ++d.stats.out_pkts;
        d.stats.out_bytes += len;
        auto& s = owner_of(d);
        ++s.stats.out_pkts;
        s.stats.out_bytes += len;
    }

    template <std::size_t N>
    void expire_conn_now(table_t<N>& t, basic_conn<N>& e) noexcept {
        // The kernel's expire_now then a later timer run; here the entry goes at once, with its
        // bookkeeping, so the new connection for the same tuple can take its key.
        if (e.n_control != 0) {
            t.expire_now(e); // a template still in use: its timer decides
            return;
        }
        on_remove(t, e, expire_reason::timed_out);
        t.erase(e);
    }

    /// Transmit by the connection's method, client → real server (spec §6.2, §6.5).
    template <class P, class Conn>
    verdict transmit_in(P& pkt, const packet_info& info, Conn& e, verdict v) noexcept {
        auto b = packet_bytes(pkt);
        v.method = e.fwd();
        v.to = e.dest;
        if (info.ip.ttl <= 1) {
            const auto n = build_time_exceeded(m_reply, b.subspan(info.ip.offset), with_offset0(info.ip));
            v = drop(drop_reason::ttl_exceeded);
            if (n) v.act = action::reply, v.reply = std::span<const std::byte>(m_reply.data(), n);
            return v;
        }
        if (v.method == fwd_method::masq) {
            const inet_addr daddr = e.dest ? e.dest->ep.addr : inet_addr{};
            if (!forward_nat_v4(pkt, info, nat_dir::dnat, daddr, e.dport())) { // the common case in one pass
                (void)forward_ttl(pkt, info.ip);
                // forward_ttl changed only the TTL (and the IPv4 header checksum nat_rewrite recomputes).
                if (nat_rewrite(pkt, info, nat_dir::dnat, daddr, e.dport()) != nat_status::ok)
                    return drop(drop_reason::rewrite_failed);
            }
        } else if (v.method == fwd_method::tunnel && e.dest) {
            const std::size_t over =
                tun_overhead({e.dest->tun, e.dest->ep.addr, e.dest->ep.addr, 0, 0, true});
            const bool df = info.ip.af == family::v6 || info.ip.df;
            if (df && info.ip.total_len + over > m_cfg.path_mtu) {
                (void)forward_ttl(pkt, info.ip); // the error quotes the packet after the decrement
                const auto n = build_frag_needed(m_reply, b.subspan(info.ip.offset), with_offset0(info.ip),
                                                 static_cast<std::uint32_t>(m_cfg.path_mtu - over));
                v = drop(drop_reason::too_big);
                if (n) v.act = action::reply, v.reply = std::span<const std::byte>(m_reply.data(), n);
                return v;
            }
            (void)forward_ttl(pkt, info.ip);
        } else {
            (void)forward_ttl(pkt, info.ip);
        }
        v.act = action::forward;
        return v;
    }

    /// An ICMP error IPVS looks into (spec §6.4): IPv4 dest unreachable, source quench, time exceeded;
    /// any IPv6 error; quoting a TCP/UDP/SCTP packet of the same family with its ports.
    static bool icmp_related(const packet_info& info) noexcept {
        const auto t = info.l4.icmp_type;
        const bool handled = info.ip.af == family::v4
                                 ? (t == icmp_type::dest_unreach || t == icmp_type::source_quench ||
                                    t == icmp_type::time_exceeded)
                                 : t < 128;
        const auto& q = info.inner;
        return handled && q.present && q.has_ports && q.ip.af == info.ip.af;
    }

    /// in_icmp (spec §6.4): an ICMP error from the client side about a flow we SNATed.
    template <std::size_t N, class P>
    verdict in_icmp(P& pkt, const packet_info& info, table_t<N>& t) noexcept {
        const auto& q = info.inner;
        if (!icmp_related(info)) return {};
        // The quote went VIP → client; turned around it is the client → VIP tuple.
        auto key = make_in_tuple<N>(q.ip.protocol, q.ip.daddr, q.dport, q.ip.saddr, q.sport);
        basic_conn<N>* e = t.find_in(key);
        if (!e) return {};
        const auto b = std::span<const std::byte>(packet_bytes(pkt));
        if (verify_l4(b, info) == verify_status::bad) return drop(drop_reason::bad_checksum);
        verdict v;
        v.method = e->fwd();
        v.to = e->dest;
        if (info.ip.ttl <= 1) return drop(drop_reason::ttl_exceeded);
        (void)forward_ttl(pkt, info.ip);
        if (v.method == fwd_method::masq && e->dest &&
            nat_rewrite(pkt, info, nat_dir::dnat, e->dest->ep.addr, e->dport()) != nat_status::ok)
            return drop(drop_reason::rewrite_failed);
        v.act = action::forward;
        return v;
    }

    // -- out --------------------------------------------------------------------------------------------
    template <std::size_t N, class P>
    verdict out_af(P& pkt, const packet_info& info, table_t<N>& t, basic_conn<N>* found = nullptr,
                   bool looked_up = false) noexcept {
        const std::uint8_t pr = info.ip.protocol;
        if (pr == ipproto::icmp || pr == ipproto::icmpv6) return out_icmp<N>(pkt, info, t);
        basic_conn<N>* e = looked_up ? found
                                     : t.find_out(make_out_tuple<N>(pr, info.ip.saddr, info.l4.sport,
                                                                    info.ip.daddr, info.l4.dport));
        if (!e) return {};
        const auto b = std::span<const std::byte>(packet_bytes(pkt));
        verdict v;
        v.method = e->fwd();
        v.to = e->dest;
        if (e->dest) count_out(*e->dest, info.ip.total_len);
        if (e->fwd() == fwd_method::masq) {
            if (info.ip.ttl <= 1) {
                const auto n = build_time_exceeded(m_reply, b.subspan(info.ip.offset), with_offset0(info.ip));
                v = drop(drop_reason::ttl_exceeded);
                if (n) v.act = action::reply, v.reply = std::span<const std::byte>(m_reply.data(), n);
                return v;
            }
            const inet_addr vaddr = to_inet<N>(e->vaddr);
            if (!forward_nat_v4(pkt, info, nat_dir::snat, vaddr, e->vport)) {
                (void)forward_ttl(pkt, info.ip);
                if (nat_rewrite(pkt, info, nat_dir::snat, vaddr, e->vport) != nat_status::ok)
                    return drop(drop_reason::rewrite_failed);
            }
        }
        e->flags &= ~conn_flag::nooutput;
        set_state(t, *e, b, info, false);
        if (e->protocol == ipproto::udp && e->is_controlled()) t.at(e->control).state |= template_assured;
        t.touch(*e);
        v.act = action::forward;
        return v;
    }

    /// out_icmp (spec §6.4): an ICMP error from a real server about a flow we DNATed.
    template <std::size_t N, class P>
    verdict out_icmp(P& pkt, const packet_info& info, table_t<N>& t) noexcept {
        const auto& q = info.inner;
        if (!icmp_related(info)) return {};
        // The quote went client → RS; turned around it is the RS → client reply tuple.
        auto key = make_out_tuple<N>(q.ip.protocol, q.ip.daddr, q.dport, q.ip.saddr, q.sport);
        basic_conn<N>* e = t.find_out(key);
        if (!e || e->fwd() != fwd_method::masq) return {};
        verdict v;
        v.method = e->fwd();
        v.to = e->dest;
        if (info.ip.ttl <= 1) return drop(drop_reason::ttl_exceeded);
        (void)forward_ttl(pkt, info.ip);
        if (nat_rewrite(pkt, info, nat_dir::snat, to_inet<N>(e->vaddr), e->vport) != nat_status::ok)
            return drop(drop_reason::rewrite_failed);
        v.act = action::forward;
        return v;
    }

    std::unique_ptr<time_ns> m_now;
    director_config m_cfg;
    director_sysctl m_sys;
    proto_timeouts m_timeouts{};
    table_t<4> m_t4;
    table_t<16> m_t6;
    std::vector<std::unique_ptr<svc_entry>> m_services;
    std::list<trashed> m_trash;
    std::vector<std::unique_ptr<svc_entry>>
        m_dead_services; // deleted, still owning what trashed dests point at
    defense m_defense{};
    time_ns m_next_defense{0};
    time_ns m_next_trash = never;
    std::array<std::byte, 1280> m_reply{};
    conn_observer* m_observer = nullptr;
};

} // namespace ipvs
