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
};

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

class offline_replay {
public:
    offline_replay(director& d, const rule_set& rules, replay_macs macs = {})
        : m_d(d), m_rules(rules), m_macs(macs) {
        for (const auto& s : rules.services)
            if (!s.fwmark) m_vips.push_back(s.vip.addr);
    }

    /// Feeds one captured Ethernet frame. `emit(std::span<const std::byte> frame, bool bad_input)` is called
    /// for every frame the director sends; `bad_input` marks frames made from an input whose TCP/UDP checksum
    /// was already wrong (Linux forwards those still wrong).
    template <class Emit>
    void process(std::span<const std::byte> frame, time_ns now, Emit&& emit) {
        ++m_stats.frames;
        m_d.poll(now);
        const auto eth = parse_ethernet(frame);
        if (!eth) return void(++m_stats.malformed_l2);
        if (eth->ethertype != ethertype::ipv4 && eth->ethertype != ethertype::ipv6)
            return void(++m_stats.not_ip);
        m_buf.assign(frame.begin() + static_cast<long>(eth->l3_offset), frame.end());
        const auto pr = parse(std::span<const std::byte>(m_buf));
        const bool to_vip = pr.status != parse_status::truncated_l3 && is_vip(pr.info.ip.daddr);
        const bool from_vip = pr.status != parse_status::truncated_l3 && is_vip(pr.info.ip.saddr);
        const std::uint32_t mark =
            (pr.ok() || pr.status == parse_status::fragment)
                ? match_mark(m_rules.marks, pr.info.ip.daddr, pr.info.ip.protocol, pr.info.l4.dport)
                : 0;
        if (from_vip && pr.ok()) return reply(pr, now, emit);
        if (!to_vip && mark == 0 && pr.ok()) return void(++m_stats.accepted);
        ++m_stats.requests;
        const bool bad = pr.ok() &&
                         (pr.info.ip.protocol == ipproto::tcp || pr.info.ip.protocol == ipproto::udp) &&
                         verify_l4(std::span<const std::byte>(m_buf), pr.info) == verify_status::bad;
        if (bad) ++m_stats.bad_checksum_inputs;
        verdict v = m_d.in(m_buf, now, mark);
        if (v.act == action::reassemble) {
            auto r = m_reasm.add(std::span<const std::byte>(m_buf), pr.info.ip, now);
            if (r.status != reasm_status::complete) return;
            ++m_stats.reassembled;
            std::vector<std::byte> dg(r.datagram.begin(), r.datagram.end());
            v = m_d.in(dg, now, mark);
            if (v.act == action::forward) {
                std::vector<std::byte> scratch(dg.size() + 64);
                (void)refragment(
                    std::span<const std::byte>(dg), r.geom, scratch, [&](std::span<const std::byte> f) {
                        send(f, m_macs.server_nh, m_macs.server_mac, eth->ethertype, false, emit);
                    });
                ++m_stats.forwarded;
                return;
            }
        }
        finish(v, eth->ethertype, bad, emit);
    }

    [[nodiscard]] const replay_stats& stats() const noexcept { return m_stats; }

private:
    bool is_vip(const inet_addr& a) const noexcept {
        for (const auto& v : m_vips)
            if (v == a) return true;
        return false;
    }

    template <class Emit>
    void finish(const verdict& v, std::uint16_t et, bool bad, Emit& emit) {
        switch (v.act) {
        case action::forward:
            ++m_stats.forwarded;
            send(m_buf, m_macs.server_nh, m_macs.server_mac, et, bad, emit);
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
    template <class Emit>
    void reply(const parse_result& pr, time_ns now, Emit& emit) {
        ++m_stats.replies;
        const auto& ip = pr.info.ip;
        const dest* rs = nullptr;
        std::uint16_t rport = 0;
        find_dest(pr.info, rs, rport);
        if (!rs) return void(++m_stats.replies_without_conn);
        const std::vector<std::byte> original = m_buf;
        if (nat_rewrite(m_buf, pr.info, nat_dir::snat, rs->ep.addr, rport) != nat_status::ok)
            return void(++m_stats.replies_differ);
        const bool bad = verify_l4(std::span<const std::byte>(original), pr.info) == verify_status::bad;
        const verdict v = m_d.out(m_buf, now);
        if (v.act != action::forward) {
            ++m_stats.replies_differ;
            return finish(v, ip.af == family::v4 ? ethertype::ipv4 : ethertype::ipv6, bad, emit);
        }
        ++m_stats.forwarded;
        // Identical but for the TTL / hop limit and the IPv4 header checksum (one forwarding more).
        std::vector<std::byte> a = original, b = m_buf;
        if (a.size() == b.size() && a.size() > 12) {
            const std::size_t ttl = ip.af == family::v4 ? ipv4_hdr::ttl : ipv6_hdr::hop_limit;
            a[ttl] = b[ttl] = std::byte{0};
            if (ip.af == family::v4) a[10] = a[11] = b[10] = b[11] = std::byte{0};
        }
        if (a == b)
            ++m_stats.replies_restored;
        else
            ++m_stats.replies_differ;
        send(m_buf, m_macs.client_nh, m_macs.client_mac,
             ip.af == family::v4 ? ethertype::ipv4 : ethertype::ipv6, bad, emit);
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

    template <class Emit>
    void send(std::span<const std::byte> ip, const mac_addr& dst, const mac_addr& src, std::uint16_t et,
              bool bad, Emit& emit) {
        m_out.resize(eth_hdr::len + ip.size());
        set_macs(m_out, dst, src);
        const std::uint16_t type = (!ip.empty() && (std::to_integer<unsigned>(ip[0]) >> 4) == 6)
                                       ? ethertype::ipv6
                                   : !ip.empty() ? ethertype::ipv4
                                                 : et;
        store_be16(m_out.data() + eth_hdr::type, type);
        std::memcpy(m_out.data() + eth_hdr::len, ip.data(), ip.size());
        emit(std::span<const std::byte>(m_out), bad);
    }

    director& m_d;
    const rule_set& m_rules;
    replay_macs m_macs;
    std::vector<inet_addr> m_vips;
    std::vector<std::byte> m_buf, m_out;
    ipv4_reassembler<> m_reasm;
    replay_stats m_stats;
};

} // namespace ipvs::examples
