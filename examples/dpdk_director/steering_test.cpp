// SPDX-License-Identifier: MIT
// Tests of steering.hpp: the dispatcher's symmetric flow hash (both directions, ICMP errors, fragments,
// spread), the header peek the prefetch uses (against the library's parse), and that the prefetch changes no
// answer.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <ipvs/director.hpp>

#include "../common/replay.hpp"
#include "../common/rules.hpp"
#include "steering.hpp"

namespace {

using bytes = std::vector<std::byte>;
using ipvs::inet_addr;

struct frag {
    std::uint16_t id = 0;
    std::uint16_t offset = 0; ///< bytes
    bool mf = false;
};

/// An Ethernet frame with an IPv4 / IPv6 header and an L4 header of `proto` (ports; TCP an ACK; SCTP a
/// DATA chunk), `payload` bytes after it. Checksums are left 0: steering does not read them.
bytes frame(std::uint8_t proto, const inet_addr& s, std::uint16_t sp, const inet_addr& d, std::uint16_t dp,
            std::size_t payload = 16, frag fr = {}) {
    const bool v6 = !s.is_v4();
    const std::size_t l3 = v6 ? 40 : 20;
    const std::size_t l4 = proto == ipvs::ipproto::tcp ? 20 : proto == ipvs::ipproto::sctp ? 16 : 8;
    const bool first = fr.offset == 0;
    bytes f(14 + l3 + (first ? l4 : 0) + payload);
    auto* p = f.data();
    ipvs::store_be16(p + 12, v6 ? ipvs::ethertype::ipv6 : ipvs::ethertype::ipv4);
    auto* ip = p + 14;
    const auto ip_len = static_cast<std::uint16_t>(f.size() - 14);
    if (v6) {
        ip[0] = std::byte{0x60};
        ipvs::store_be16(ip + 4, static_cast<std::uint16_t>(ip_len - 40));
        ip[6] = std::byte{proto};
        ip[7] = std::byte{64};
    } else {
        ip[0] = std::byte{0x45};
        ipvs::store_be16(ip + 2, ip_len);
        ipvs::store_be16(ip + 4, fr.id);
        ipvs::store_be16(ip + 6, static_cast<std::uint16_t>((fr.mf ? 0x2000 : 0) | (fr.offset / 8)));
        ip[8] = std::byte{64};
        ip[9] = std::byte{proto};
    }
    s.store(ip + (v6 ? 8 : 12));
    d.store(ip + (v6 ? 24 : 16));
    if (!first) return f;
    auto* t = ip + l3;
    ipvs::store_be16(t, sp);
    ipvs::store_be16(t + 2, dp);
    if (proto == ipvs::ipproto::tcp) {
        t[12] = std::byte{0x50};
        t[13] = std::byte{ipvs::tcp_flag::ack};
    } else if (proto == ipvs::ipproto::udp) {
        ipvs::store_be16(t + 4, static_cast<std::uint16_t>(8 + payload));
    } else if (proto == ipvs::ipproto::sctp) {
        t[12] = std::byte{0}; // DATA
        ipvs::store_be16(t + 14, static_cast<std::uint16_t>(4 + payload));
    }
    return f;
}

/// An ICMP(v6) error from `from` to the packet's source, quoting the IP packet of `quoted` (a frame).
bytes icmp_error(const bytes& quoted, const inet_addr& from) {
    const bool v6 = !from.is_v4();
    const auto ip = std::span<const std::byte>(quoted).subspan(14);
    const auto src = inet_addr::load(from.af, ip.data() + (v6 ? 8 : 12));
    const std::size_t q = std::min<std::size_t>(ip.size(), (v6 ? 40 : 20) + 8);
    bytes f = frame(v6 ? ipvs::ipproto::icmpv6 : ipvs::ipproto::icmp, from, 0, src, 0, 8 + q - 8);
    auto* icmp = f.data() + 14 + (v6 ? 40 : 20);
    icmp[0] = std::byte{v6 ? std::uint8_t{1} : std::uint8_t{3}}; // destination unreachable
    icmp[1] = std::byte{v6 ? std::uint8_t{4} : std::uint8_t{3}}; // port unreachable
    std::memcpy(icmp + 8, ip.data(), q);
    return f;
}

struct flow {
    std::uint8_t proto;
    inet_addr client, vip;
    std::uint16_t cport, vport;
};

std::vector<flow> random_flows(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<flow> v;
    const std::uint8_t protos[] = {ipvs::ipproto::tcp, ipvs::ipproto::udp, ipvs::ipproto::sctp};
    for (std::size_t i = 0; i < n; ++i) {
        flow f{};
        f.proto = protos[rng() % 3];
        if (i % 4 == 3) {
            f.client.af = f.vip.af = ipvs::family::v6;
            for (auto& b : f.client.bytes) b = static_cast<std::uint8_t>(rng());
            f.vip = *ipvs::parse_addr("fd00::100");
        } else {
            f.client = inet_addr::v4(0x0a010000U + (rng() & 0xffff));
            f.vip = inet_addr::v4(0x0a000064U + (rng() % 4));
        }
        f.cport = static_cast<std::uint16_t>(1024 + rng() % 60000);
        f.vport = static_cast<std::uint16_t>(rng() % 3 == 0 ? 80 : 443);
        v.push_back(f);
    }
    return v;
}

} // namespace

TEST_CASE("steering: both directions of a flow reach the same worker") {
    const auto flows = random_flows(3000, 1);
    for (std::uint32_t workers : {1U, 2U, 3U, 4U, 7U, 8U}) {
        CAPTURE(workers);
        ipvs::dpdk::flow_steering st(workers);
        std::vector<std::size_t> per(workers);
        for (const auto& f : flows) {
            const auto in = st.steer(frame(f.proto, f.client, f.cport, f.vip, f.vport));
            const auto out = st.steer(frame(f.proto, f.vip, f.vport, f.client, f.cport));
            REQUIRE(in.ip);
            CHECK(in.worker == out.worker);
            CHECK(in.worker < workers);
            CHECK(in.l3_offset == 14);
            ++per[in.worker];
        }
        for (auto n : per) CHECK(n > 0); // a constant answer would pass the symmetry check
    }
}

TEST_CASE("steering: flows spread evenly over the workers") {
    const auto flows = random_flows(40000, 2);
    ipvs::dpdk::flow_steering st(4);
    std::vector<double> per(4);
    for (const auto& f : flows) ++per[st.steer(frame(f.proto, f.client, f.cport, f.vip, f.vport)).worker];
    for (double n : per) CHECK(n / static_cast<double>(flows.size()) == doctest::Approx(0.25).epsilon(0.08));
}

TEST_CASE("steering: an ICMP error reaches the worker of the flow it quotes") {
    const auto flows = random_flows(1000, 3);
    ipvs::dpdk::flow_steering st(8);
    for (const auto& f : flows) {
        const bytes reply = frame(f.proto, f.vip, f.vport, f.client, f.cport);
        const inet_addr router = f.client.is_v4() ? inet_addr::v4(0x0a090909U) : *ipvs::parse_addr("fd09::9");
        const bytes err = icmp_error(reply, router); // about the reply, sent to the VIP
        const auto r = ipvs::parse(std::span<const std::byte>(err), 14);
        REQUIRE(r.ok());
        REQUIRE(r.info.inner.has_ports);
        CHECK(st.steer(err).worker == st.steer(frame(f.proto, f.client, f.cport, f.vip, f.vport)).worker);
    }
}

TEST_CASE("steering: the fragments of a datagram follow their first fragment") {
    ipvs::dpdk::flow_steering st(8);
    std::mt19937 rng(4);
    std::size_t cached = 0, fallback_differs = 0;
    for (std::uint16_t id = 1; id <= 400; ++id) {
        const inet_addr c = inet_addr::v4(0x0a010000U + (rng() & 0xffff)), v = inet_addr::v4(0x0a000064U);
        const auto cp = static_cast<std::uint16_t>(1024 + rng() % 60000);
        const std::uint32_t w = st.steer(frame(ipvs::ipproto::udp, c, cp, v, 53)).worker;
        const auto first = st.steer(frame(ipvs::ipproto::udp, c, cp, v, 53, 200, {id, 0, true}));
        const auto second = st.steer(frame(ipvs::ipproto::udp, c, 0, v, 0, 100, {id, 208, false}));
        CHECK(first.worker == w);
        CHECK(second.worker == w);
        cached += second.by_fragment_cache;
        // A later fragment seen before any first one goes by the addresses: a different worker at times.
        const auto orphan = st.steer(
            frame(ipvs::ipproto::udp, c, 0, v, 0, 100, {static_cast<std::uint16_t>(id + 1000), 208, false}));
        CHECK_FALSE(orphan.by_fragment_cache);
        fallback_differs += orphan.worker != w;
    }
    CHECK(cached == 400);
    CHECK(fallback_differs > 0); // so the cache, not luck, kept the datagrams together
}

TEST_CASE("steering: frames that are not IP, or too short, go to worker 0") {
    ipvs::dpdk::flow_steering st(4);
    bytes arp(60);
    ipvs::store_be16(arp.data() + 12, 0x0806);
    CHECK(st.steer(arp).worker == 0);
    CHECK_FALSE(st.steer(arp).ip);
    CHECK(st.steer(bytes(10)).worker == 0);
    bytes cut = frame(ipvs::ipproto::tcp, inet_addr::v4(1), 1, inet_addr::v4(2), 2);
    cut.resize(20); // Ethernet + 6 bytes of IP
    CHECK(st.steer(cut).worker == 0);
}

TEST_CASE("peek_flow: the header peek reads what parse reads") {
    for (const auto& f : random_flows(2000, 5)) {
        const bytes b = frame(f.proto, f.client, f.cport, f.vip, f.vport);
        const auto p = ipvs::dpdk::peek_flow(b, 14);
        const auto r = ipvs::parse(std::span<const std::byte>(b), 14);
        REQUIRE(r.ok());
        REQUIRE(p.ok);
        CHECK(p.protocol == r.info.ip.protocol);
        CHECK(p.saddr == r.info.ip.saddr);
        CHECK(p.daddr == r.info.ip.daddr);
        CHECK(p.sport == r.info.l4.sport);
        CHECK(p.dport == r.info.l4.dport);
    }
    const bytes later =
        frame(ipvs::ipproto::udp, inet_addr::v4(1), 0, inet_addr::v4(2), 0, 64, {7, 64, false});
    CHECK_FALSE(ipvs::dpdk::peek_flow(later, 14).ok);
    CHECK_FALSE(ipvs::dpdk::peek_flow(bytes(30), 14).ok);
}

TEST_CASE("prefetch_conns: the director answers the same with the batched prefetch as without") {
    // Ten VIP:port pairs × TCP, UDP, SCTP, three dests each, as ipvsadm-save rules.
    std::string text;
    const char* rs4[] = {"10.0.2.11", "10.0.2.12", "10.0.2.13"};
    const char* rs6[] = {"[fd00:2::b]", "[fd00:2::c]", "[fd00:2::d]"};
    for (const char* vip :
         {"10.0.0.100:80", "10.0.0.100:443", "10.0.0.101:80", "10.0.0.101:443", "10.0.0.102:80",
          "10.0.0.102:443", "10.0.0.103:80", "10.0.0.103:443", "[fd00::100]:80", "[fd00::100]:443"}) {
        const bool v6 = vip[0] == '[';
        for (const char* proto : {"-t", "-u", "--sctp-service"}) {
            text += std::string("-A ") + proto + " " + vip + " -s rr\n";
            for (int k = 0; k < 3; ++k)
                text +=
                    std::string("-a ") + proto + " " + vip + " -r " + (v6 ? rs6[k] : rs4[k]) + ":8080 -m\n";
        }
    }
    const auto rules = ipvs::examples::parse_rules(text);
    REQUIRE(rules.ok());
    auto setup = [&](ipvs::director& d) { ipvs::examples::configure_director(d, rules.rules); };
    ipvs::director plain, batched;
    setup(plain);
    setup(batched);
    const auto flows = random_flows(640, 6);
    std::vector<bytes> pkts;
    for (const auto& f : flows) { // each flow: a request (a TCP ACK opens no connection: make it a SYN) ...
        bytes b = frame(f.proto, f.client, f.cport, f.vip, f.vport);
        if (f.proto == ipvs::ipproto::tcp)
            b[14 + (f.client.is_v4() ? 20 : 40) + 13] = std::byte{ipvs::tcp_flag::syn};
        if (f.proto == ipvs::ipproto::sctp) b[14 + (f.client.is_v4() ? 20 : 40) + 12] = std::byte{1}; // INIT
        pkts.push_back(b);
    }
    for (const auto& f : flows)
        pkts.push_back(frame(f.proto, f.client, f.cport, f.vip, f.vport)); // ... then more
    std::size_t forwarded = 0, prefetched = 0;
    for (std::size_t at = 0; at < pkts.size(); at += 32) {
        const std::size_t n = std::min<std::size_t>(32, pkts.size() - at);
        std::vector<bytes> a(pkts.begin() + static_cast<long>(at), pkts.begin() + static_cast<long>(at + n)),
            b = a;
        prefetched += ipvs::dpdk::prefetch_conns(
            batched, n,
            [&](std::size_t i) {
                return std::pair{std::span<const std::byte>(b[i]), std::size_t{14}};
            },
            [](const ipvs::dpdk::flow_peek&) { return ipvs::dpdk::flow_side::client; });
        for (std::size_t i = 0; i < n; ++i) {
            std::span<std::byte> x = std::span(a[i]).subspan(14), y = std::span(b[i]).subspan(14);
            const auto va = plain.in(x, ipvs::time_ns{1}), vb = batched.in(y, ipvs::time_ns{1});
            CHECK(va.act == vb.act);
            CHECK(a[i] == b[i]);
            forwarded += va.act == ipvs::action::forward;
        }
    }
    CHECK(plain.connections() == batched.connections());
    CHECK(forwarded > pkts.size() / 2); // the comparison covered real forwarding
    // The prefetch looked up what in() then found: every packet after its flow's first has a connection.
    CHECK(prefetched >= flows.size() - 32);
    CHECK(prefetched <= flows.size());
}
