// SPDX-License-Identifier: MIT
// Tests for <ipvs/nat.hpp>: byte-exact replay of the kernel's NAT rewrites, all-or-nothing refusals, checksum
// states.
#include <doctest/doctest.h>

#include <random>

#include <ipvs/ethernet.hpp>
#include <ipvs/nat.hpp>
#include <ipvs/verify.hpp>

#include "support/build.hpp"
#include "support/oracle.hpp"
#include "support/views.hpp"

using namespace ipvs;
using test::bytes;

namespace {
struct conn_rec {
    inet_addr caddr, vaddr, daddr;
    std::uint16_t cport, vport, dport;
};

conn_rec conn_from(const test::json& c) {
    return {*parse_addr(c.at("caddr").get<std::string>()),
            *parse_addr(c.at("vaddr").get<std::string>()),
            *parse_addr(c.at("daddr").get<std::string>()),
            c.at("cport").get<std::uint16_t>(),
            c.at("vport").get<std::uint16_t>(),
            c.at("dport").get<std::uint16_t>()};
}

// The connection of the recorded flow this packet belongs to: matched on the client endpoint, taken from
// the packet (or from the packet its ICMP error quotes).
const test::json* find_conn(const test::json& line, const packet_info& info, bool from_client) {
    const bool icmp = info.inner.present;
    const inet_addr client = icmp ? (from_client ? info.inner.ip.daddr : info.inner.ip.saddr)
                                  : (from_client ? info.ip.saddr : info.ip.daddr);
    const std::uint16_t cport = icmp ? (from_client ? info.inner.dport : info.inner.sport)
                                     : (from_client ? info.l4.sport : info.l4.dport);
    for (const auto& c : line.at("conn_after"))
        if (*parse_addr(c.at("caddr").get<std::string>()) == client &&
            c.at("cport").get<std::uint16_t>() == cport)
            return &c;
    return nullptr;
}

template <class H>
void replay_nat(int& compared, int& skipped) {
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "nat.jsonl");
        if (!file) continue;
        for (const auto& line : test::read_jsonl(*file)) {
            const std::string name = line.at("case");
            const auto frame = test::from_hex(line.at("input_hex"));
            const auto eth = parse_ethernet(std::as_bytes(std::span(frame)));
            REQUIRE(eth);
            const auto& outs = line.at("outputs");
            const bool from_client = line.at("input_if") == "cx";
            // Frames the director's own stack makes (time exceeded) and reassembled fragments are the
            // director's business, replayed there; this test covers one-frame-in, one-rewrite-out.
            if (outs.size() != 1 || (outs[0].at("if") == "cx") == from_client) {
                ++skipped;
                continue;
            }
            H h(frame, eth->l3_offset);
            const auto r = parse(h.view());
            REQUIRE_MESSAGE(r.ok(), name);
            const auto* c = find_conn(line, r.info, from_client);
            REQUIRE_MESSAGE(c, name << ": no recorded connection for this flow");
            const conn_rec cr = conn_from(*c);
            REQUIRE(forward_ttl(h.view(), r.info.ip));
            const auto st = from_client ? nat_rewrite(h.view(), r.info, nat_dir::dnat, cr.daddr, cr.dport)
                                        : nat_rewrite(h.view(), r.info, nat_dir::snat, cr.vaddr, cr.vport);
            REQUIRE_MESSAGE(st == nat_status::ok, name << ": " << to_string(st));
            const auto want = test::from_hex(outs[0].at("hex"));
            const auto got = h.l3_bytes();
            const std::string want_hex =
                test::to_hex(want.data() + eth->l3_offset, want.size() - eth->l3_offset);
            const std::string got_hex = test::to_hex(got.data(), got.size());
            CHECK_MESSAGE(got_hex == want_hex, dir.filename().string()
                                                   << " " << name << " af " << line.at("af"));
            ++compared;
        }
    }
}
} // namespace

TEST_CASE_TEMPLATE("oracle: nat rewrite of nat.jsonl frames is byte-exact with Linux", H,
                   IPVS_TEST_VIEW_HOLDERS) {
    int compared = 0, skipped = 0;
    replay_nat<H>(compared, skipped);
    MESSAGE(std::string(H::name) << ": " << compared << " frames compared byte for byte, " << skipped
                                 << " left to the director replay (own-stack replies, fragments)");
    CHECK(compared > 0);
}

TEST_CASE_TEMPLATE("nat_rewrite: refused packets are left untouched", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto to = *parse_addr("10.0.2.11");
    SUBCASE("an IPv4 fragment") {
        const auto pkt = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100",
                                           test::udp_datagram(1, 53, bytes(16, 1)), {}, ipv4_hdr::flag_mf);
        H h(pkt, 0);
        CHECK(nat_rewrite(h.view(), nat_dir::dnat, to, 5353) == nat_status::fragment);
        CHECK(bytes(h.l3_bytes().begin(), h.l3_bytes().end()) == pkt);
    }
    SUBCASE("a malformed packet") {
        auto pkt = test::ipv4_packet(ipproto::tcp, "10.1.0.1", "10.0.0.100",
                                     test::tcp_segment(1, 80, tcp_flag::syn));
        pkt[32] = 0x30; // data offset 3
        H h(pkt, 0);
        CHECK(nat_rewrite(h.view(), nat_dir::dnat, to, 8080) == nat_status::not_parsed);
        CHECK(bytes(h.l3_bytes().begin(), h.l3_bytes().end()) == pkt);
    }
    SUBCASE("the other family") {
        const auto pkt = test::ipv4_packet(ipproto::tcp, "10.1.0.1", "10.0.0.100",
                                           test::tcp_segment(1, 80, tcp_flag::syn));
        H h(pkt, 0);
        CHECK(nat_rewrite(h.view(), nat_dir::dnat, *parse_addr("fd00:2::b"), 8080) ==
              nat_status::family_mismatch);
        CHECK(bytes(h.l3_bytes().begin(), h.l3_bytes().end()) == pkt);
    }
    SUBCASE("an ICMP echo") {
        const auto pkt =
            test::ipv4_packet(ipproto::icmp, "10.1.0.1", "10.0.0.100", test::icmp_message(8, 0, 0x10001));
        H h(pkt, 0);
        CHECK(nat_rewrite(h.view(), nat_dir::dnat, to, 0) == nat_status::unsupported_protocol);
        CHECK(bytes(h.l3_bytes().begin(), h.l3_bytes().end()) == pkt);
    }
}

TEST_CASE("nat_rewrite: DNAT then SNAT of the reply restores the client's view, checksums verify") {
    std::mt19937 rng(1624);
    int checked = 0;
    for (int i = 0; i < 3000; ++i) {
        const bool v6 = i % 2;
        const std::uint8_t proto =
            std::array<std::uint8_t, 3>{ipproto::tcp, ipproto::udp, ipproto::sctp}[i % 3];
        const std::uint16_t cport = static_cast<std::uint16_t>(1024 + rng() % 60000), vport = 80,
                            rport = static_cast<std::uint16_t>(rng() % 65536);
        bytes payload(rng() % 50, static_cast<std::uint8_t>(rng()));
        bytes l4 = proto == ipproto::tcp ? test::tcp_segment(cport, vport, tcp_flag::ack, {}, payload)
                   : proto == ipproto::udp
                       ? test::udp_datagram(cport, vport, payload)
                       : test::sctp_packet(cport, vport, 7, {test::sctp_chunk(0, payload)});
        const char* client = v6 ? "fd01::1234" : "10.1.2.3";
        const char* vip = v6 ? "fd00::100" : "10.0.0.100";
        const inet_addr rs = v6 ? *parse_addr("fd00:2::b") : *parse_addr("10.0.2.11");
        const inet_addr vipa = *parse_addr(vip);
        const auto req =
            v6 ? test::ipv6_packet(proto, client, vip, l4, proto) : test::ipv4_packet(proto, client, vip, l4);
        auto fwd = req;
        REQUIRE(nat_rewrite(fwd, nat_dir::dnat, rs, rport) == nat_status::ok);
        auto r = parse(fwd);
        REQUIRE(r.ok());
        CHECK(r.info.ip.daddr == rs);
        CHECK(r.info.l4.dport == rport);
        CHECK(verify_l4(std::as_bytes(std::span(fwd)), r.info) == verify_status::ok);
        CHECK(verify_ip_header(std::as_bytes(std::span(fwd)), r.info.ip) != verify_status::bad);
        // The real server answers by swapping addresses and ports (same payload, fresh checksums).
        bytes rl4 = l4;
        test::put16(rl4, 0, rport);
        test::put16(rl4, 2, cport);
        std::string rs_txt = v6 ? "fd00:2::b" : "10.0.2.11";
        auto reply = v6 ? test::ipv6_packet(proto, rs_txt.c_str(), client, rl4, proto)
                        : test::ipv4_packet(proto, rs_txt.c_str(), client, rl4);
        REQUIRE(nat_rewrite(reply, nat_dir::snat, vipa, vport) == nat_status::ok);
        // What the client receives is exactly what the VIP would have sent.
        bytes vl4 = l4;
        test::put16(vl4, 0, vport);
        test::put16(vl4, 2, cport);
        const auto expect = v6 ? test::ipv6_packet(proto, vip, client, vl4, proto)
                               : test::ipv4_packet(proto, vip, client, vl4);
        CHECK(reply == expect);
        ++checked;
    }
    MESSAGE(checked << " round trips");
    CHECK(checked == 3000);
}

TEST_CASE("nat_rewrite: a CHECKSUM_PARTIAL view gets only its pseudo-header sum updated") {
    const auto seg = test::tcp_segment(40000, 80, tcp_flag::ack, {}, bytes(10, 5));
    auto pkt = test::ipv4_packet(ipproto::tcp, "10.1.0.1", "10.0.0.100", seg);
    const auto c = *parse_addr("10.1.0.1"), v = *parse_addr("10.0.0.100"), rs = *parse_addr("10.0.2.11");
    // Put the partial (pseudo-header) sum in the field, as a stack with TX offload would.
    test::put16(pkt, 36, csum_fold(pseudo_header(c, v, ipproto::tcp, 30)));
    bytes frame(14, 0);
    frame.insert(frame.end(), pkt.begin(), pkt.end());
    test::foreign_holder h(frame, 14);
    h.f.cs = csum_state::partial;
    REQUIRE(nat_rewrite(h.view(), nat_dir::dnat, rs, 8080) == nat_status::ok);
    CHECK(h.f.cs == csum_state::partial);
    const auto out = h.l3_bytes();
    CHECK(((out[36] << 8) | out[37]) == csum_fold(pseudo_header(c, rs, ipproto::tcp, 30)));
    SUBCASE("a complete view is downgraded") {
        test::foreign_holder h2(frame, 14);
        h2.f.cs = csum_state::complete;
        REQUIRE(nat_rewrite(h2.view(), nat_dir::dnat, rs, 8080) == nat_status::ok);
        CHECK(h2.f.cs == csum_state::none);
    }
}

TEST_CASE("forward_ttl: decrements, keeps the header checksum, refuses TTL 1") {
    auto pkt = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100", test::udp_datagram(1, 2), {}, 0, 2);
    auto r = parse(pkt);
    REQUIRE(forward_ttl(pkt, r.info.ip));
    r = parse(pkt);
    CHECK(r.info.ip.ttl == 1);
    CHECK(verify_ip_header(std::as_bytes(std::span(pkt)), r.info.ip) == verify_status::ok);
    const auto before = pkt;
    CHECK_FALSE(forward_ttl(pkt, r.info.ip));
    CHECK(pkt == before);
}
