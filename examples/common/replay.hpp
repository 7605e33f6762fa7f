// SPDX-License-Identifier: MIT
// The offline replay shared by pcap_nat and dpdk_director: a capture taken in front of a service, through a
// director.
#pragma once

// A capture taken in front of a service holds client → VIP requests and VIP → client replies. The
// replay sends every request through `director::in()`, and plays every reply as if the real server
// the director chose had sent it: the reply is turned into the RS's own packet (source = the RS's
// address and port, checksums fixed) and sent through `director::out()`, whose SNAT must give back the
// original reply exactly — the same bytes except the TTL / hop limit (one forwarding more) and the IPv4
// header checksum that covers it (CLARIFICATIONS "Round trips"). Any other difference is counted.
//
// Frames leave with the director's MACs: towards the real servers from `server_mac` to `server_nh`,
// towards the clients from `client_mac` to `client_nh` (a Linux router rewrites L2 the same way).

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <span>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/ethernet.hpp>
#include <ipvs/frag.hpp>
#include <ipvs/verify.hpp>

#include "rules.hpp"

namespace ipvs::examples {

struct replay_macs {
    mac_addr client_mac{0x02, 0, 0, 0, 0x01, 0x01}; ///< the director's client-side interface
    mac_addr server_mac{0x02, 0, 0, 0, 0x02, 0x01}; ///< the director's server-side interface
    mac_addr client_nh{0x02, 0, 0, 0, 0x01, 0x02};  ///< next hop towards the clients
    mac_addr server_nh{0x02, 0, 0, 0, 0x02, 0x02};  ///< next hop towards the real servers
};

struct replay_stats {
    std::uint64_t frames = 0, not_ip = 0, malformed_l2 = 0;
    std::uint64_t requests = 0, forwarded = 0, own_replies = 0, accepted = 0, reassembled = 0;
    std::uint64_t replies = 0, replies_restored = 0, replies_differ = 0, replies_without_conn = 0;
    std::uint64_t bad_checksum_inputs = 0; ///< TCP/UDP inputs with a wrong checksum (forwarded still wrong)
    std::map<drop_reason, std::uint64_t> drops;

    /// Adds another replay's counts (several workers, one summary).
    replay_stats& operator+=(const replay_stats& o) {
        static constexpr std::uint64_t replay_stats::*counters[] = {&replay_stats::frames,
                                                                    &replay_stats::not_ip,
                                                                    &replay_stats::malformed_l2,
                                                                    &replay_stats::requests,
                                                                    &replay_stats::forwarded,
                                                                    &replay_stats::own_replies,
                                                                    &replay_stats::accepted,
                                                                    &replay_stats::reassembled,
                                                                    &replay_stats::replies,
                                                                    &replay_stats::replies_restored,
                                                                    &replay_stats::replies_differ,
                                                                    &replay_stats::replies_without_conn,
                                                                    &replay_stats::bad_checksum_inputs};
        for (auto c : counters) this->*c += o.*c;
        for (const auto& [why, n] : o.drops) drops[why] += n;
        return *this;
    }
};

/// "drops: REASON N; …" (or "none") and a newline.
inline void print_drops(std::FILE* out, const std::map<drop_reason, std::uint64_t>& drops) {
    std::fprintf(out, "drops:");
    if (drops.empty()) std::fprintf(out, " none");
    for (const auto& [why, n] : drops)
        std::fprintf(out, " %s %llu;", to_string(why), static_cast<unsigned long long>(n));
    std::fprintf(out, "\n");
}

/// The summary an operator reads after a replay (pcap_nat and dpdk_director print the same lines; the
/// tests match "SNAT restored N, differ 0, without connection 0").
inline void print_summary(std::FILE* out, const replay_stats& s, std::uint64_t written, double secs) {
    const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out, "frames read %llu, written %llu, in %.3f s\n", u(s.frames), u(written), secs);
    std::fprintf(
        out,
        "requests %llu: forwarded %llu, director replies %llu, not for a service %llu, reassembled %llu\n",
        u(s.requests), u(s.forwarded), u(s.own_replies), u(s.accepted), u(s.reassembled));
    std::fprintf(out, "replies %llu: SNAT restored %llu, differ %llu, without connection %llu\n",
                 u(s.replies), u(s.replies_restored), u(s.replies_differ), u(s.replies_without_conn));
    std::fprintf(out, "inputs with a wrong TCP/UDP checksum (forwarded still wrong, as Linux does): %llu\n",
                 u(s.bad_checksum_inputs));
    print_drops(out, s.drops);
    std::fprintf(out, "not IP %llu, malformed L2 %llu\n", u(s.not_ip), u(s.malformed_l2));
}

/// Sets up `d` from parsed rules (ipvsadm-save -n semantics). Throws std::invalid_argument on a rule the
/// library refuses (the rules reader has already checked the syntax).
inline void configure_director(director& d, const rule_set& rules) {
    for (const auto& s : rules.services) {
        service_config c;
        c.af = s.af;
        c.protocol = s.protocol;
        c.vip = s.vip;
        c.fwmark = s.fwmark;
        c.scheduler = s.scheduler;
        c.sched_flags = s.flags;
        c.persistent = s.persistent;
        c.persist_timeout = std::chrono::seconds(s.persist_timeout);
        c.netmask_prefix = s.netmask_prefix;
        c.one_packet = s.one_packet;
        auto& svc = d.add_service(c);
        for (const auto& r : s.dests) {
            dest_config dc;
            dc.ep = r.ep;
            dc.weight = static_cast<int>(r.weight);
            dc.u_threshold = r.u_threshold;
            dc.l_threshold = r.l_threshold;
            dc.fwd = r.fwd;
            dc.tun = r.tun;
            d.add_dest(svc, dc);
        }
    }
}

/// A frame as the director sees it: the bytes of packet view `P` (a whole Ethernet frame, in place),
/// the IP header at `l3`, and P's checksum state passed through (an mbuf's offload flags, say).
template <class P>
struct frame_at {
    P* frame;
    std::size_t l3;
};

class offline_replay {
public:
    offline_replay(director& d, const rule_set& rules, replay_macs macs = {})
        : m_d(d), m_rules(rules), m_macs(macs) {
        for (const auto& s : rules.services)
            if (!s.fwmark) m_vips.push_back(s.vip.addr);
    }

    /// Feeds one captured Ethernet frame (copied first). `emit(std::span<const std::byte> frame, bool
    /// bad_input)` is called for every frame the director sends; `bad_input` marks frames made from an
    /// input whose TCP/UDP checksum was already wrong (Linux forwards those still wrong).
    template <class Emit>
    void process(std::span<const std::byte> frame, time_ns now, Emit&& emit) {
        m_frame.assign(frame.begin(), frame.end());
        process_in_place(m_frame, now, emit);
    }

    /// The same, on a frame the caller owns and lets the director rewrite in place (any mutable packet
    /// view over the whole Ethernet frame: a vector, an rte_mbuf view). Each frame handed to `emit` is
    /// either the input frame itself — rewritten, same length, new MACs (`frame.data()` is the input's
    /// data: a zero-copy datapath transmits the input buffer) — or a new frame in the replay's scratch
    /// buffer, valid until the next emit (the director's own ICMP answers, re-fragmented datagrams,
    /// frames whose VLAN tag the output drops).
    template <class P, class Emit>
    void process_in_place(P& frame, time_ns now, Emit&& emit) {
        IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
        ++m_stats.frames;
        m_d.poll(now);
        const std::span<std::byte> fb = packet_bytes(frame);
        const auto eth = parse_ethernet(fb);
        if (!eth) return void(++m_stats.malformed_l2);
        if (eth->ethertype != ethertype::ipv4 && eth->ethertype != ethertype::ipv6)
            return void(++m_stats.not_ip);
        frame_at<P> view{&frame, eth->l3_offset};
        const auto pr = parse(std::span<const std::byte>(fb), eth->l3_offset);
        const bool to_vip = pr.status != parse_status::truncated_l3 && is_vip(pr.info.ip.daddr);
        const bool from_vip = pr.status != parse_status::truncated_l3 && is_vip(pr.info.ip.saddr);
        const std::uint32_t mark =
            (pr.ok() || pr.status == parse_status::fragment)
                ? match_mark(m_rules.marks, pr.info.ip.daddr, pr.info.ip.protocol, pr.info.l4.dport)
                : 0;
        if (from_vip && pr.ok()) return reply(view, pr, now, emit);
        if (!to_vip && mark == 0 && pr.ok()) return void(++m_stats.accepted);
        ++m_stats.requests;
        const bool bad = pr.ok() &&
                         (pr.info.ip.protocol == ipproto::tcp || pr.info.ip.protocol == ipproto::udp) &&
                         verify_l4(std::span<const std::byte>(fb), pr.info) == verify_status::bad;
        if (bad) ++m_stats.bad_checksum_inputs;
        const verdict v = m_d.in(view, now, mark);
        if (v.act == action::reassemble) return reassemble(fb.subspan(eth->l3_offset), now, mark, emit);
        finish(view, v, eth->ethertype, bad, emit);
    }

    [[nodiscard]] const replay_stats& stats() const noexcept { return m_stats; }

    /// A VIP of the rules' (non-fwmark) services: traffic to it is a request, from it a reply to replay.
    [[nodiscard]] bool is_vip(const inet_addr& a) const noexcept {
        for (const auto& v : m_vips)
            if (v == a) return true;
        return false;
    }

private:
    /// An IPv4 fragment: into the reassembler; a whole datagram goes through in() and, forwarded, out as
    /// fragments of the same geometry (what Linux's nf_defrag + re-fragmentation do).
    template <class Emit>
    void reassemble(std::span<const std::byte> l3, time_ns now, std::uint32_t mark, Emit& emit) {
        m_buf.assign(l3.begin(), l3.end());
        const auto ip = parse(std::span<const std::byte>(m_buf)).info.ip;
        auto r = m_reasm.add(std::span<const std::byte>(m_buf), ip, now);
        if (r.status != reasm_status::complete) return;
        ++m_stats.reassembled;
        std::vector<std::byte> dg(r.datagram.begin(), r.datagram.end());
        const verdict v = m_d.in(dg, now, mark);
        if (v.act == action::forward) {
            std::vector<std::byte> scratch(dg.size() + 64);
            (void)refragment(std::span<const std::byte>(dg), r.geom, scratch,
                             [&](std::span<const std::byte> f) {
                                 send(f, m_macs.server_nh, m_macs.server_mac, ethertype::ipv4, false, emit);
                             });
            ++m_stats.forwarded;
            return;
        }
        auto whole = frame_at<std::vector<std::byte>>{&dg, 0};
        finish(whole, v, ethertype::ipv4, false, emit);
    }

    template <class P, class Emit>
    void finish(frame_at<P>& f, const verdict& v, std::uint16_t et, bool bad, Emit& emit) {
        switch (v.act) {
        case action::forward:
            ++m_stats.forwarded;
            send_in_place(f, m_macs.server_nh, m_macs.server_mac, et, bad, emit);
            break;
        case action::reply:
            ++m_stats.own_replies;
            ++m_stats.drops[v.reason];
            send(v.reply, m_macs.client_nh, m_macs.client_mac, et, false, emit);
            break;
        case action::drop:
            ++m_stats.drops[v.reason];
            break;
        case action::accept:
        case action::reassemble:
            ++m_stats.accepted;
            break;
        }
    }

    /// A VIP → client reply: replay it as the chosen real server's packet through out().
    template <class P, class Emit>
    void reply(frame_at<P>& f, const parse_result& pr, time_ns now, Emit& emit) {
        ++m_stats.replies;
        const auto& ip = pr.info.ip;
        const dest* rs = nullptr;
        std::uint16_t rport = 0;
        find_dest(pr.info, rs, rport);
        if (!rs) return void(++m_stats.replies_without_conn);
        const auto l3 = [&] { return packet_bytes(*f.frame).subspan(f.l3); };
        m_orig.assign(l3().begin(), l3().end());
        const bool bad =
            verify_l4(std::span<const std::byte>(packet_bytes(*f.frame)), pr.info) == verify_status::bad;
        if (nat_rewrite(f, pr.info, nat_dir::snat, rs->ep.addr, rport) != nat_status::ok)
            return void(++m_stats.replies_differ);
        const std::uint16_t et = ip.af == family::v4 ? ethertype::ipv4 : ethertype::ipv6;
        const verdict v = m_d.out(f, now);
        if (v.act != action::forward) {
            ++m_stats.replies_differ;
            return finish(f, v, et, bad, emit);
        }
        ++m_stats.forwarded;
        // Identical but for the TTL / hop limit and the IPv4 header checksum (one forwarding more).
        m_cmp.assign(l3().begin(), l3().end());
        if (m_orig.size() == m_cmp.size() && m_orig.size() > 12) {
            const std::size_t ttl = ip.af == family::v4 ? ipv4_hdr::ttl : ipv6_hdr::hop_limit;
            m_orig[ttl] = m_cmp[ttl] = std::byte{0};
            if (ip.af == family::v4) m_orig[10] = m_orig[11] = m_cmp[10] = m_cmp[11] = std::byte{0};
        }
        if (m_orig == m_cmp)
            ++m_stats.replies_restored;
        else
            ++m_stats.replies_differ;
        send_in_place(f, m_macs.client_nh, m_macs.client_mac, et, bad, emit);
    }

    /// The real server (and its port) of the connection a VIP → client reply belongs to.
    void find_dest(const packet_info& info, const dest*& rs, std::uint16_t& rport) {
        const auto& ip = info.ip;
        auto look = [&](auto& table) {
            using T = std::decay_t<decltype(table)>;
            constexpr std::size_t N = T::addr_len;
            auto k = make_in_tuple<N>(ip.protocol, ip.daddr, info.l4.dport, ip.saddr, info.l4.sport);
            if (auto* e = table.find_in(k); e && e->dest) {
                rs = e->dest;
                rport = e->dport();
            }
        };
        if (ip.af == family::v4)
            look(m_d.table_v4());
        else
            look(m_d.table_v6());
    }

    static std::uint16_t ethertype_of(std::span<const std::byte> ip, std::uint16_t et) noexcept {
        if (ip.empty()) return et;
        return (std::to_integer<unsigned>(ip[0]) >> 4) == 6 ? ethertype::ipv6 : ethertype::ipv4;
    }

    /// The frame leaves with the director's MACs, in place when its IP header follows a plain Ethernet
    /// header; a tagged frame leaves untagged, as a new frame (the director's interfaces carry no VLAN).
    template <class P, class Emit>
    void send_in_place(frame_at<P>& f, const mac_addr& dst, const mac_addr& src, std::uint16_t et, bool bad,
                       Emit& emit) {
        const std::span<std::byte> fb = packet_bytes(*f.frame);
        if (f.l3 != eth_hdr::len) return send(fb.subspan(f.l3), dst, src, et, bad, emit);
        set_macs(fb, dst, src);
        store_be16(fb.data() + eth_hdr::type, ethertype_of(fb.subspan(f.l3), et));
        emit(std::span<const std::byte>(fb), bad);
    }

    /// A new frame around IP packet `ip`, in the scratch buffer.
    template <class Emit>
    void send(std::span<const std::byte> ip, const mac_addr& dst, const mac_addr& src, std::uint16_t et,
              bool bad, Emit& emit) {
        m_out.resize(eth_hdr::len + ip.size());
        set_macs(m_out, dst, src);
        store_be16(m_out.data() + eth_hdr::type, ethertype_of(ip, et));
        std::memcpy(m_out.data() + eth_hdr::len, ip.data(), ip.size());
        emit(std::span<const std::byte>(m_out), bad);
    }

    director& m_d;
    const rule_set& m_rules;
    replay_macs m_macs;
    std::vector<inet_addr> m_vips;
    std::vector<std::byte> m_frame, m_buf, m_out, m_orig, m_cmp; // scratch, reused (no per-frame allocation)
    ipv4_reassembler<> m_reasm;
    replay_stats m_stats;
};

} // namespace ipvs::examples

/// frame_at<P> is a packet view: P's bytes and checksum state, the L3 offset the replay found.
template <class P>
struct ipvs::packet_traits<ipvs::examples::frame_at<P>> {
    using view = ipvs::examples::frame_at<P>;
    static auto bytes(const view& v) noexcept { return ipvs::packet_bytes(*v.frame); }
    static std::size_t l3_offset(const view& v) noexcept { return v.l3; }
    static ipvs::csum_state checksum_state(const view& v) noexcept { return ipvs::checksum_state(*v.frame); }
    static void set_checksum_state(view& v, ipvs::csum_state s) noexcept {
        ipvs::set_checksum_state(*v.frame, s);
    }
};
