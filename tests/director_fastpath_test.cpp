// SPDX-License-Identifier: MIT
// The director's fast paths against the general code they shortcut: parse_v4_simple vs parse(),
// forward_nat_v4 vs forward_ttl + nat_rewrite, in_burst vs in() one packet at a time.
#include <doctest/doctest.h>

#include <optional>
#include <random>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>
#include <ipvs/nat.hpp>

#include "support/build.hpp"
#include "support/director_config.hpp"

using namespace ipvs;
using test::bytes;

namespace {

/// A random IPv4 TCP/UDP packet towards the VIPs; `hosts` bounds the client hosts (few: flows recur).
bytes random_packet(std::mt19937& rng, unsigned hosts = 1000) {
    const std::uint8_t proto = rng() % 4 == 0 ? ipproto::udp : ipproto::tcp;
    const unsigned h = rng() % hosts;
    const std::string src = "10.1." + std::to_string(h / 250) + "." + std::to_string(h % 250 + 1);
    const bool served = hosts < 1000 && rng() % 8 != 0; // mostly the configured services' VIP:port
    const std::string dst = served ? "10.0.0.100" : "10.0.0." + std::to_string(100 + rng() % 2);
    bytes payload(rng() % 24);
    for (auto& x : payload) x = static_cast<std::uint8_t>(rng());
    const auto sport = static_cast<std::uint16_t>(rng() % 4 + 1000),
               dport =
                   static_cast<std::uint16_t>(served ? (proto == ipproto::tcp ? 80 : 81) : 80 + rng() % 2);
    bytes l4 = proto == ipproto::tcp
                   ? test::tcp_segment(sport, dport, static_cast<std::uint8_t>(rng() & 0x3f),
                                       rng() % 3 == 0 ? bytes{2, 4, 5, 0xb4} : bytes{}, payload)
                   : test::udp_datagram(sport, dport, payload);
    const bytes options = rng() % 8 == 0 ? bytes{1, 1, 1, 0} : bytes{};
    const std::uint16_t frag = rng() % 10 == 0 ? ipv4_hdr::flag_mf : ipv4_hdr::flag_df;
    auto p = test::ipv4_packet(proto, src.c_str(), dst.c_str(), l4, options, frag,
                               static_cast<std::uint8_t>(rng() % 6 == 0 ? 1 : 64));
    // Now and then a damaged field the general parser has a status for, or a wrong checksum.
    switch (rng() % 12) {
    case 0:
        p[3] = static_cast<std::uint8_t>(p[3] + 1);
        break; // total length past the end
    case 1:
        p[2] = 0, p[3] = 19;
        break; // below the header
    case 2:
        if (proto == ipproto::tcp && p.size() > 32) p[32] = 0x40;
        break; // data offset 16 < 20
    case 3:
        if (proto == ipproto::udp) p[24] = 0xff;
        break; // UDP length past the end
    case 4:
        p[p.size() - 1] ^= 0x5a;
        break; // a wrong L4 checksum
    case 5:
        p[10] ^= 0x11;
        break; // a wrong IPv4 header checksum
    case 6:
        if (proto == ipproto::udp) p[26] = p[27] = 0;
        break; // UDP checksum "none"
    default:
        break;
    }
    if (rng() % 16 == 0) p.resize(p.size() - rng() % 8);         // truncated buffer
    p.resize(p.size() + (rng() % 4 == 0 ? rng() % 6 : 0), 0xee); // trailing padding
    return p;
}

void check_same(const packet_info& a, const packet_info& b) {
    CHECK(a.ip.af == b.ip.af);
    CHECK(a.ip.protocol == b.ip.protocol);
    CHECK(a.ip.ttl == b.ip.ttl);
    CHECK(a.ip.tos == b.ip.tos);
    CHECK(a.ip.flow_label == b.ip.flow_label);
    CHECK(a.ip.offset == b.ip.offset);
    CHECK(a.ip.header_len == b.ip.header_len);
    CHECK(a.ip.total_len == b.ip.total_len);
    CHECK(a.ip.saddr == b.ip.saddr);
    CHECK(a.ip.daddr == b.ip.daddr);
    CHECK(a.ip.df == b.ip.df);
    CHECK(a.ip.mf == b.ip.mf);
    CHECK(a.ip.frag_offset == b.ip.frag_offset);
    CHECK(a.ip.frag_id == b.ip.frag_id);
    CHECK(a.ip.frag_hdr_offset == b.ip.frag_hdr_offset);
    CHECK(a.l4.offset == b.l4.offset);
    CHECK(a.l4.header_len == b.l4.header_len);
    CHECK(a.l4.length == b.l4.length);
    CHECK(a.l4.check_offset == b.l4.check_offset);
    CHECK(a.l4.sport == b.l4.sport);
    CHECK(a.l4.dport == b.l4.dport);
    CHECK(a.l4.tcp_flags == b.l4.tcp_flags);
    CHECK(a.l4.seq == b.l4.seq);
    CHECK(a.l4.ack_seq == b.l4.ack_seq);
    CHECK(a.l4.vtag == b.l4.vtag);
    CHECK(a.l4.chunk_count == b.l4.chunk_count);
    CHECK(a.l4.chunk_mask == b.l4.chunk_mask);
    CHECK(a.l4.icmp_type == b.l4.icmp_type);
    CHECK(a.inner.present == b.inner.present);
}

} // namespace

TEST_CASE("parse_v4_simple: where it accepts a packet, every field is parse()'s; it declines the rest") {
    std::mt19937 rng(20261202);
    int accepted = 0, declined = 0;
    for (int i = 0; i < 20000; ++i) {
        const auto p = random_packet(rng);
        const auto b = std::as_bytes(std::span(p));
        const std::size_t off = 0;
        packet_info fast{};
        const bool ok = detail::parse_v4_simple(b, off, fast);
        const parse_result r = parse(b, off);
        if (!ok) {
            ++declined;
            continue;
        }
        ++accepted;
        REQUIRE_MESSAGE(r.ok(), "accepted what parse() refuses: status " << static_cast<int>(r.status));
        check_same(fast, r.info);
    }
    MESSAGE(accepted << " accepted and compared field by field, " << declined << " left to parse()");
    CHECK(accepted > 5000);
    CHECK(declined > 2000);
}

TEST_CASE("forward_nat_v4: the same bytes as forward_ttl + nat_rewrite, or the packet untouched") {
    std::mt19937 rng(1624);
    int same = 0, declined = 0;
    for (int i = 0; i < 20000; ++i) {
        const auto p = random_packet(rng);
        const parse_result r = parse(std::as_bytes(std::span(p)));
        if (!r.ok()) continue;
        const auto dir = rng() % 2 ? nat_dir::dnat : nat_dir::snat;
        const auto to = inet_addr::v4(0x0a000200U + rng() % 64);
        const auto port = static_cast<std::uint16_t>(rng());
        bytes fast = p, slow = p;
        if (!forward_nat_v4(fast, r.info, dir, to, port)) {
            CHECK(fast == p);
            ++declined;
            continue;
        }
        REQUIRE(forward_ttl(slow, r.info.ip));
        REQUIRE(nat_rewrite(slow, r.info, dir, to, port) == nat_status::ok);
        CHECK_MESSAGE(fast == slow, "packet " << i);
        ++same;
    }
    MESSAGE(same << " rewrites byte-identical, " << declined << " declined");
    CHECK(same > 5000);
    CHECK(declined > 500);
}

namespace {

/// A director (with or without its fast paths): wrr on :80 (TCP), a UDP service on :81, a persistent TCP
/// service on :82.
std::unique_ptr<director> make_burst_director(bool fast) {
    auto d = std::make_unique<director>(director_config{.fast_paths = fast});
    service_config c;
    c.vip = *parse_endpoint("10.0.0.100:80");
    c.scheduler = "wrr";
    auto& s = d->add_service(c);
    for (int k = 0; k < 3; ++k)
        d->add_dest(s, dest_config{endpoint{inet_addr::v4(0x0a00020bU + k), 8080}, k + 1});
    c.vip = *parse_endpoint("10.0.0.100:81");
    c.protocol = ipproto::udp;
    auto& u = d->add_service(c);
    d->add_dest(u, dest_config{endpoint{inet_addr::v4(0x0a00020bU), 5353}, 1});
    c.vip = *parse_endpoint("10.0.0.100:82");
    c.protocol = ipproto::tcp;
    c.persistent = true;
    auto& p = d->add_service(c);
    for (int k = 0; k < 2; ++k)
        d->add_dest(p, dest_config{endpoint{inet_addr::v4(0x0a00020bU + k), 8082}, 1});
    // IPv6: wlc on [fd00::100]:80 (TCP) and rr on [fd00::100]:81 (UDP).
    service_config c6;
    c6.af = family::v6;
    c6.vip = *parse_endpoint("[fd00::100]:80");
    c6.scheduler = "wlc";
    auto& t6 = d->add_service(c6);
    for (const char* rs : {"fd00:2::b", "fd00:2::c"})
        d->add_dest(t6, dest_config{endpoint{*parse_addr(rs), 8080}, 1});
    c6.vip = *parse_endpoint("[fd00::100]:81");
    c6.protocol = ipproto::udp;
    c6.scheduler = "rr";
    auto& u6 = d->add_service(c6);
    d->add_dest(u6, dest_config{endpoint{*parse_addr("fd00:2::b"), 5353}, 1});
    return d;
}

/// A packet of a well-behaved TCP flow from client `h` port `sport` to VIP port `vport`: what most of
/// a director's traffic is (handshake, many ACKs and data segments, a FIN now and then).
bytes flow_packet(std::mt19937& rng, unsigned h, std::uint16_t sport, std::uint16_t vport, std::uint8_t flags,
                  bool v6 = false, bool udp = false) {
    bytes payload(rng() % 3 == 0 ? rng() % 200 : 0);
    for (auto& x : payload) x = static_cast<std::uint8_t>(rng());
    const std::uint8_t proto = udp ? ipproto::udp : ipproto::tcp;
    const bytes l4 =
        udp ? test::udp_datagram(sport, vport, payload) : test::tcp_segment(sport, vport, flags, {}, payload);
    if (v6) {
        const std::string src = "fd01::" + std::to_string(h + 1);
        return test::ipv6_packet(proto, src.c_str(), "fd00::100", l4, proto, {},
                                 static_cast<std::uint8_t>(rng() % 25 == 0 ? 1 : 64));
    }
    const std::string src = "10.2.0." + std::to_string(h + 1);
    return test::ipv4_packet(proto, src.c_str(), "10.0.0.100", l4, {}, ipv4_hdr::flag_df, 64);
}

/// The real server's answer to a forwarded IPv4 TCP/UDP packet (addresses and ports swapped), or nothing.
std::optional<bytes> reply_to(std::mt19937& rng, const bytes& fwd) {
    const auto r = parse(fwd);
    if (!r.ok() || r.info.ip.is_fragment()) return std::nullopt;
    const auto& ip = r.info.ip;
    const auto& l = r.info.l4;
    bytes payload(rng() % 2 == 0 ? rng() % 100 : 0);
    for (auto& x : payload) x = static_cast<std::uint8_t>(rng());
    bytes l4;
    if (ip.protocol == ipproto::tcp) {
        const unsigned f = rng() % 30;
        const std::uint8_t flags = f == 0   ? (tcp_flag::syn | tcp_flag::ack)
                                   : f == 1 ? (tcp_flag::fin | tcp_flag::ack)
                                   : f == 2 ? tcp_flag::rst
                                            : tcp_flag::ack;
        l4 = test::tcp_segment(l.dport, l.sport, flags, {}, payload);
    } else if (ip.protocol == ipproto::udp) {
        l4 = test::udp_datagram(l.dport, l.sport, payload);
    } else {
        return std::nullopt;
    }
    const auto hops = static_cast<std::uint8_t>(rng() % 20 == 0 ? 1 : 64);
    if (ip.af == family::v6)
        return test::ipv6_packet(ip.protocol, to_string(ip.daddr).c_str(), to_string(ip.saddr).c_str(), l4,
                                 ip.protocol, {}, hops);
    return test::ipv4_packet(ip.protocol, to_string(ip.daddr).c_str(), to_string(ip.saddr).c_str(), l4, {},
                             ipv4_hdr::flag_df, hops);
}

} // namespace

TEST_CASE(
    "in_burst / out_burst with the lanes: verdicts, bytes, connections and counters as the general path's") {
    // `one`: the general path, a packet at a time; `many`: the lanes and batched bursts.
    auto one = make_burst_director(false), many = make_burst_director(true);
    std::mt19937 rng(32);
    int packets = 0, forwarded = 0, replies = 0;
    for (int round = 0; round < 300; ++round) {
        std::vector<bytes> a;
        const std::size_t n = 1 + rng() % 45; // bursts shorter and longer than 32
        for (std::size_t i = 0; i < n; ++i) {
            const unsigned kind = rng() % 10;
            if (kind == 0) { // an IPv6 packet in the mix
                auto l4 = test::tcp_segment(1000, 80, tcp_flag::syn);
                a.push_back(test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", l4, ipproto::tcp));
            } else if (kind < 4) { // random packets, damaged ones among them
                a.push_back(random_packet(rng, 12));
            } else { // flows with sane flags: SYN, then mostly ACKs; FIN and RST now and then
                const unsigned f = rng() % 40;
                const std::uint8_t flags = f == 0   ? tcp_flag::syn
                                           : f == 1 ? (tcp_flag::fin | tcp_flag::ack)
                                           : f == 2 ? tcp_flag::rst
                                           : f < 5  ? (tcp_flag::psh | tcp_flag::ack)
                                                    : tcp_flag::ack;
                const unsigned shape = rng() % 6; // IPv4 TCP (two services), IPv6 TCP, IPv6 UDP
                const bool v6 = shape >= 4, udp = shape == 5;
                a.push_back(flow_packet(rng, rng() % 8, static_cast<std::uint16_t>(2000 + rng() % 4),
                                        udp                   ? 81
                                        : (!v6 && shape == 0) ? 82
                                                              : 80,
                                        flags, v6, udp));
            }
        }
        std::vector<bytes> b = a;
        const time_ns now = std::chrono::milliseconds(1000 + 50 * round);
        std::vector<verdict> va(n), vb(n);
        for (std::size_t i = 0; i < n; ++i) va[i] = one->in(a[i], now);
        many->in_burst(std::span(b), std::span(vb), now);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(static_cast<int>(va[i].act) == static_cast<int>(vb[i].act));
            CHECK(static_cast<int>(va[i].reason) == static_cast<int>(vb[i].reason));
            CHECK(static_cast<int>(va[i].method) == static_cast<int>(vb[i].method));
            CHECK(va[i].new_conn == vb[i].new_conn);
            CHECK(((va[i].to == nullptr) == (vb[i].to == nullptr)));
            if (va[i].to && vb[i].to) CHECK(va[i].to->ep == vb[i].to->ep);
            CHECK(a[i] == b[i]);
            forwarded += va[i].act == action::forward;
            ++packets;
        }
        // The real servers answer what was forwarded to them: out() one at a time vs out_burst().
        std::vector<bytes> ra;
        for (std::size_t i = 0; i < n; ++i)
            if (va[i].act == action::forward)
                if (auto r = reply_to(rng, a[i])) ra.push_back(std::move(*r));
        std::vector<bytes> rb = ra;
        std::vector<verdict> wa(ra.size()), wb(ra.size());
        for (std::size_t i = 0; i < ra.size(); ++i) wa[i] = one->out(ra[i], now);
        many->out_burst(std::span(rb), std::span(wb), now);
        for (std::size_t i = 0; i < ra.size(); ++i) {
            CHECK(static_cast<int>(wa[i].act) == static_cast<int>(wb[i].act));
            CHECK(static_cast<int>(wa[i].reason) == static_cast<int>(wb[i].reason));
            CHECK(((wa[i].to == nullptr) == (wb[i].to == nullptr)));
            CHECK(ra[i] == rb[i]);
            replies += wa[i].act == action::forward;
        }
        // Every connection's state and time left, every dest's counters and stats.
        CHECK(list_conns(*one, now) == list_conns(*many, now));
        CHECK(list_services(*one) == list_services(*many));
        CHECK(list_stats(*one) == list_stats(*many));
        if (round % 50 == 49) {
            (void)one->poll(now + std::chrono::seconds(70));
            (void)many->poll(now + std::chrono::seconds(70));
        }
    }
    MESSAGE(packets << " packets compared, " << forwarded << " forwarded, " << replies
                    << " replies forwarded");
    CHECK(forwarded > 2000);
    CHECK(replies > 1500);
}
