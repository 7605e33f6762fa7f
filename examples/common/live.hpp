// SPDX-License-Identifier: MIT
// Live mode of the demo: a director between a client-side and a server-side interface, on libpcap.
#pragma once

// Design
// ------
// The director's own kernel neither answers nor forwards (forwarding off, the VIP on no interface):
// every frame arrives here through a live_port capturing inbound frames only, and leaves through
// pcap_inject on the other (or the same) port. This file holds what a datapath adds around
// `director::in()` / `out()`:
// - Layer 2. Frames leave with the outgoing interface's MAC as source. The destination MAC is the next
//   hop's: towards a real server, its entry in the director namespace's neighbour table (static entries
//   in the test, `ip neigh add … nud permanent`); towards a client, the MAC its own frames came from
//   (learned per client address, so a client behind a router is answered through that router), else
//   the neighbour table. The table is read with `ip neigh show dev IF` — at start and again on a miss,
//   at most once a second — because a demo should not carry a netlink client; a miss drops the frame
//   and counts it.
// - Fragments: the director says `reassemble`; the datagram is reassembled, sent through in() whole
//   and re-fragmented with the original geometry (what Linux's nf_defrag does around IPVS).
// - fwmark services: the demo assigns marks itself from the rules' `--mark` lines (CLARIFICATIONS).
// Nothing here allocates per packet after warm-up except the neighbour refresh (a popen, rate-limited).

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/ethernet.hpp>
#include <ipvs/frag.hpp>

#include "pcap_io.hpp"
#include "rules.hpp"

namespace ipvs::examples {

/// "02:00:00:00:01:01" → the MAC, or nullopt.
[[nodiscard]] inline std::optional<mac_addr> parse_mac(std::string_view s) noexcept {
    mac_addr m{};
    std::size_t pos = 0;
    for (std::size_t i = 0; i < 6; ++i) {
        unsigned v = 0;
        int digits = 0;
        while (pos < s.size() && digits < 2) {
            const char c = s[pos];
            const int d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
            if (d < 0) break;
            v = v * 16 + static_cast<unsigned>(d);
            ++pos, ++digits;
        }
        if (digits == 0) return std::nullopt;
        m[i] = static_cast<std::uint8_t>(v);
        if (i < 5) {
            if (pos >= s.size() || s[pos] != ':') return std::nullopt;
            ++pos;
        }
    }
    if (pos != s.size()) return std::nullopt;
    return m;
}

/// The MAC of a local interface (/sys/class/net/IF/address).
[[nodiscard]] inline std::optional<mac_addr> interface_mac(const std::string& ifname, std::string& error) {
    std::ifstream f("/sys/class/net/" + ifname + "/address");
    std::string line;
    if (!f || !std::getline(f, line)) {
        error = ifname + ": no such interface";
        return std::nullopt;
    }
    auto m = parse_mac(line);
    if (!m) error = ifname + ": cannot read its MAC address ('" + line + "')";
    return m;
}

/// IP → MAC next hops on one interface: learned from frames and read from the kernel's neighbour table.
class neighbour_cache {
public:
    explicit neighbour_cache(std::string ifname) : m_if(std::move(ifname)) {}

    /// The next hop's MAC for `a`; refreshes from the neighbour table on a miss (at most once a second).
    [[nodiscard]] std::optional<mac_addr> lookup(const inet_addr& a, time_ns now) {
        if (auto m = find(a)) return m;
        if (m_refreshed && now - *m_refreshed < std::chrono::seconds(1)) return std::nullopt;
        m_refreshed = now;
        refresh();
        return find(a);
    }
    /// Remembers that frames from `a` came from `m` (a client's next hop is where its packets came from).
    void learn(const inet_addr& a, const mac_addr& m) {
        if (auto it = m_map.find(key(a)); it != m_map.end())
            it->second = m;
        else if (m_map.size() < max_entries)
            m_map.emplace(key(a), m);
    }
    [[nodiscard]] std::size_t size() const noexcept { return m_map.size(); }

    /// Reads `ip neigh show dev IF` (IPv4 and IPv6) into the cache; lines without lladdr are skipped.
    void refresh() {
        for (const char* fam : {"-4", "-6"}) {
            const std::string cmd = std::string("ip ") + fam + " neigh show dev " + m_if + " 2>/dev/null";
            FILE* p = popen(cmd.c_str(), "r");
            if (!p) return;
            char line[512];
            while (std::fgets(line, sizeof line, p)) parse_line(line);
            pclose(p);
        }
    }

private:
    static constexpr std::size_t max_entries = 1 << 16; // a flood of spoofed sources cannot grow it further
    using key_t = std::pair<std::uint8_t, std::array<std::uint8_t, 16>>;
    static key_t key(const inet_addr& a) noexcept { return {static_cast<std::uint8_t>(a.af), a.bytes}; }

    std::optional<mac_addr> find(const inet_addr& a) const {
        if (auto it = m_map.find(key(a)); it != m_map.end()) return it->second;
        return std::nullopt;
    }
    void parse_line(std::string_view l) {
        const auto sp = l.find(' ');
        if (sp == std::string_view::npos) return;
        const auto addr = parse_addr(l.substr(0, sp));
        const auto ll = l.find("lladdr ");
        if (!addr || ll == std::string_view::npos) return;
        auto rest = l.substr(ll + 7);
        rest = rest.substr(0, rest.find_first_of(" \n"));
        if (auto m = parse_mac(rest)) learn(*addr, *m);
    }

    std::string m_if;
    std::map<key_t, mac_addr> m_map;
    std::optional<time_ns> m_refreshed;
};

struct live_stats {
    std::uint64_t rx_client = 0, rx_server = 0, tx_client = 0, tx_server = 0;
    std::uint64_t forwarded_in = 0, forwarded_out = 0, own_replies = 0, not_ours = 0, reassembled = 0;
    std::uint64_t not_ip = 0, malformed_l2 = 0, other_mac = 0, no_neighbour = 0, inject_errors = 0;
    std::map<drop_reason, std::uint64_t> drops;
};

/// The director between two live ports. Call on_client_frame / on_server_frame for each captured frame.
class live_director {
public:
    struct side {
        live_port* port;
        mac_addr mac; ///< the interface's own MAC (the source of the frames we send there)
        neighbour_cache neigh;
    };

    live_director(director& d, const rule_set& rules, side client, side server)
        : m_d(d), m_rules(rules), m_client(std::move(client)), m_server(std::move(server)) {
        m_client.neigh.refresh();
        m_server.neigh.refresh();
    }

    /// A frame from the client side: director::in().
    void on_client_frame(std::span<const std::byte> frame, time_ns now) {
        ++m_stats.rx_client;
        const auto eth = l3(frame, m_client);
        if (!eth) return;
        const auto pr = parse(std::span<const std::byte>(m_buf));
        if (pr.status != parse_status::truncated_l3) m_client.neigh.learn(pr.info.ip.saddr, eth->src);
        const std::uint32_t mark =
            (pr.ok() || pr.status == parse_status::fragment)
                ? match_mark(m_rules.marks, pr.info.ip.daddr, pr.info.ip.protocol, pr.info.l4.dport)
                : 0;
        verdict v = m_d.in(m_buf, now, mark);
        if (m_trace && v.new_conn && pr.ok())
            std::fprintf(stderr, "new %s %s:%u -> %s:%u flags 0x%02x via %s\n",
                         pr.info.ip.protocol == ipproto::tcp ? "TCP" : "other",
                         format_addr(pr.info.ip.saddr).c_str(), pr.info.l4.sport,
                         format_addr(pr.info.ip.daddr).c_str(), pr.info.l4.dport, pr.info.l4.tcp_flags,
                         v.to ? format_endpoint(v.to->ep).c_str() : "-");
        if (v.act == action::reassemble) {
            auto r = m_reasm.add(std::span<const std::byte>(m_buf), pr.info.ip, now);
            if (r.status != reasm_status::complete) return;
            ++m_stats.reassembled;
            m_dgram.assign(r.datagram.begin(), r.datagram.end());
            const auto geom = r.geom;
            v = m_d.in(m_dgram, now, mark);
            if (v.act == action::forward) {
                ++m_stats.forwarded_in;
                const auto nh = next_hop(v, m_dgram, now);
                if (!nh) return;
                m_scratch.resize(m_dgram.size() + 64);
                (void)refragment(
                    std::span<const std::byte>(m_dgram), geom, m_scratch,
                    [&](std::span<const std::byte> f) { send(m_server, *nh, f, m_stats.tx_server); });
                return;
            }
        }
        if (v.act != action::forward) return settle(v, m_client, m_stats.tx_client, eth->src);
        if (const auto nh = next_hop(v, m_buf, now)) {
            ++m_stats.forwarded_in;
            send(m_server, *nh, m_buf, m_stats.tx_server);
        }
    }

    /// A frame from the real-server side: director::out().
    void on_server_frame(std::span<const std::byte> frame, time_ns now) {
        ++m_stats.rx_server;
        const auto eth = l3(frame, m_server);
        if (!eth) return;
        const verdict v = m_d.out(m_buf, now);
        if (v.act != action::forward) return settle(v, m_server, m_stats.tx_server, eth->src);
        const auto pr = parse(std::span<const std::byte>(m_buf));
        const auto nh = m_client.neigh.lookup(pr.info.ip.daddr, now);
        if (!nh) return void(++m_stats.no_neighbour);
        ++m_stats.forwarded_out;
        send(m_client, *nh, m_buf, m_stats.tx_client);
    }

    [[nodiscard]] const live_stats& stats() const noexcept { return m_stats; }
    /// Prints each new connection on stderr (--trace).
    void set_trace(bool on) noexcept { m_trace = on; }
    [[nodiscard]] const std::string& last_error() const noexcept { return m_error; }

private:
    /// Every verdict but forward: a generated reply goes back where the packet came from.
    void settle(const verdict& v, side& back, std::uint64_t& tx, const mac_addr& came_from) {
        if (v.act == action::reply) {
            ++m_stats.own_replies;
            ++m_stats.drops[v.reason];
            send(back, came_from, v.reply, tx);
        } else if (v.act == action::drop) {
            ++m_stats.drops[v.reason];
        } else {
            ++m_stats.not_ours;
        }
    }

    /// Parses L2 and copies the IP packet into m_buf (the director rewrites it in place). Frames sent
    /// to another MAC are not ours: the capture is promiscuous, and on a shared segment (a backup
    /// director beside its master) a switch may flood the master's frames to us too.
    std::optional<eth_info> l3(std::span<const std::byte> frame, const side& s) {
        const auto eth = parse_ethernet(frame);
        if (!eth) return ++m_stats.malformed_l2, std::nullopt;
        if (eth->dst != s.mac) return ++m_stats.other_mac, std::nullopt;
        if (eth->ethertype != ethertype::ipv4 && eth->ethertype != ethertype::ipv6)
            return ++m_stats.not_ip, std::nullopt;
        m_buf.assign(frame.begin() + static_cast<long>(eth->l3_offset), frame.end());
        return eth;
    }

    /// The MAC of the real server a forward verdict goes to (for TUN: the tunnel's far end, the same RS).
    std::optional<mac_addr> next_hop(const verdict& v, std::span<const std::byte> ip, time_ns now) {
        std::optional<mac_addr> nh;
        if (v.to) {
            nh = m_server.neigh.lookup(v.to->ep.addr, now);
        } else if (const auto pr = parse(ip); pr.status != parse_status::truncated_l3) {
            nh = m_server.neigh.lookup(pr.info.ip.daddr, now); // no dest (bypass): route by address
        }
        if (!nh) ++m_stats.no_neighbour;
        return nh;
    }

    void send(side& s, const mac_addr& dst, std::span<const std::byte> ip, std::uint64_t& counter) {
        if (ip.empty()) return;
        m_out.resize(eth_hdr::len + ip.size());
        set_macs(m_out, dst, s.mac);
        store_be16(m_out.data() + eth_hdr::type,
                   (std::to_integer<unsigned>(ip[0]) >> 4) == 6 ? ethertype::ipv6 : ethertype::ipv4);
        std::memcpy(m_out.data() + eth_hdr::len, ip.data(), ip.size());
        if (!s.port->inject(m_out)) {
            ++m_stats.inject_errors;
            m_error = s.port->error();
            return;
        }
        ++counter;
    }

    director& m_d;
    const rule_set& m_rules;
    side m_client, m_server;
    std::vector<std::byte> m_buf, m_dgram, m_scratch, m_out;
    ipv4_reassembler<> m_reasm;
    live_stats m_stats;
    std::string m_error;
    bool m_trace = false;
};

} // namespace ipvs::examples
