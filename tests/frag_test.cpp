// SPDX-License-Identifier: MIT
// Tests for <ipvs/frag.hpp>: the kernel's reassemble → NAT → re-fragment path, reassembly edge cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include <ipvs/ethernet.hpp>
#include <ipvs/frag.hpp>
#include <ipvs/nat.hpp>
#include <ipvs/verify.hpp>

#include "support/build.hpp"
#include "support/oracle.hpp"

using namespace ipvs;
using test::bytes;

namespace {
std::vector<bytes> cut(const bytes& dg, std::size_t piece) { // RFC 791 fragmentation of a test datagram
    std::vector<bytes> out;
    const std::size_t hl = 20, payload = dg.size() - hl;
    for (std::size_t off = 0; off < payload; off += piece) {
        const std::size_t n = std::min(piece, payload - off);
        bytes f(dg.begin(), dg.begin() + hl);
        f.insert(f.end(), dg.begin() + static_cast<long>(hl + off),
                 dg.begin() + static_cast<long>(hl + off + n));
        test::put16(f, 2, static_cast<std::uint16_t>(hl + n));
        test::put16(f, 6, static_cast<std::uint16_t>((off + n < payload ? ipv4_hdr::flag_mf : 0) | off / 8));
        test::put16(f, 10, 0);
        test::put16(f, 10, internet_checksum(test::as_bytes(f).first(hl)));
        out.push_back(f);
    }
    return out;
}
} // namespace

TEST_CASE("oracle: fragmented UDP through NAT leaves re-fragmented with the input's geometry (nat.jsonl)") {
    int compared = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "nat.jsonl");
        if (!file) continue;
        ipv4_reassembler<> reasm;
        for (const auto& line : test::read_jsonl(*file)) {
            const std::string name = line.at("case");
            if (name.find("fragment") == std::string::npos) continue;
            const auto in = test::from_hex(line.at("input_hex"));
            const auto ip = std::as_bytes(std::span(in)).subspan(eth_hdr::len);
            const auto pr = parse(ip);
            REQUIRE(pr.info.ip.is_fragment());
            auto r = reasm.add(ip, pr.info.ip, time_ns{0});
            if (line.at("outputs").empty()) {
                CHECK(r.status == reasm_status::incomplete);
                continue;
            }
            REQUIRE(r.status == reasm_status::complete);
            bytes dg(r.datagram.size());
            std::memcpy(dg.data(), r.datagram.data(), dg.size());
            const auto whole = parse(dg);
            REQUIRE(whole.ok());
            CHECK(verify_l4(test::as_bytes(dg), whole.info) == verify_status::ok);
            const auto& c = line.at("conn_after").at(0);
            REQUIRE(forward_ttl(dg, whole.info.ip));
            REQUIRE(nat_rewrite(dg, whole.info, nat_dir::dnat, *parse_addr(c.at("daddr").get<std::string>()),
                                c.at("dport").get<std::uint16_t>()) == nat_status::ok);
            std::vector<std::byte> scratch(1600);
            std::vector<std::string> got;
            REQUIRE(refragment(test::as_bytes(dg), r.geom, scratch, [&](std::span<const std::byte> f) {
                got.push_back(test::to_hex(reinterpret_cast<const std::uint8_t*>(f.data()), f.size()));
            }));
            const auto& outs = line.at("outputs");
            REQUIRE(got.size() == outs.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                const auto want = test::from_hex(outs[i].at("hex"));
                CHECK(got[i] == test::to_hex(want.data() + eth_hdr::len, want.size() - eth_hdr::len));
                ++compared;
            }
        }
    }
    MESSAGE(compared << " re-fragmented frames compared byte for byte");
    CHECK(compared > 0);
}

TEST_CASE("ipv4_reassembler: any arrival order gives the datagram back") {
    const auto dg = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100",
                                      test::udp_datagram(1, 53, bytes(3000, 7)), {}, 0);
    auto frags = cut(dg, 1000);
    REQUIRE(frags.size() == 4);
    std::mt19937 rng(791);
    for (int round = 0; round < 24; ++round) {
        std::shuffle(frags.begin(), frags.end(), rng);
        ipv4_reassembler<4> reasm;
        ipv4_reassembler<4>::result r;
        for (std::size_t i = 0; i < frags.size(); ++i) {
            r = reasm.add(test::as_bytes(frags[i]), parse(frags[i]).info.ip, time_ns{0});
            CHECK((r.status == reasm_status::complete) == (i + 1 == frags.size()));
        }
        REQUIRE(r.status == reasm_status::complete);
        CHECK(bytes(reinterpret_cast<const std::uint8_t*>(r.datagram.data()),
                    reinterpret_cast<const std::uint8_t*>(r.datagram.data()) + r.datagram.size()) == dg);
        CHECK(r.geom.count == 4);
        CHECK(reasm.pending() == 0);
    }
}

TEST_CASE("ipv4_reassembler: overlaps, duplicates, non-fragments, expiry and eviction") {
    const auto dg = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100",
                                      test::udp_datagram(1, 53, bytes(2000, 7)), {}, 0);
    const auto frags = cut(dg, 1000);
    SUBCASE("a duplicate fragment drops the queue") {
        ipv4_reassembler<4> reasm;
        CHECK(reasm.add(test::as_bytes(frags[0]), parse(frags[0]).info.ip, time_ns{0}).status ==
              reasm_status::incomplete);
        CHECK(reasm.add(test::as_bytes(frags[0]), parse(frags[0]).info.ip, time_ns{0}).status ==
              reasm_status::overlap);
        CHECK(reasm.pending() == 0);
    }
    SUBCASE("an unfragmented packet passes") {
        ipv4_reassembler<4> reasm;
        CHECK(reasm.add(test::as_bytes(dg), parse(dg).info.ip, time_ns{0}).status ==
              reasm_status::not_fragment);
    }
    SUBCASE("queues expire and the oldest is evicted when all slots are busy") {
        ipv4_reassembler<2> reasm(std::chrono::seconds(30));
        auto other = frags[0];
        for (std::uint16_t id = 1; id <= 3; ++id) {
            test::put16(other, 4, id);
            CHECK(reasm.add(test::as_bytes(other), parse(other).info.ip, std::chrono::seconds(id)).status ==
                  reasm_status::incomplete);
        }
        CHECK(reasm.pending() == 2); // id 1 was evicted for id 3
        test::put16(other, 4, 9);
        CHECK(reasm.add(test::as_bytes(other), parse(other).info.ip, std::chrono::seconds(100)).status ==
              reasm_status::incomplete);
        CHECK(reasm.pending() == 1); // ids 2 and 3 had expired
    }
}

TEST_CASE("refragment: refuses a geometry that does not describe the datagram") {
    const auto dg = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100",
                                      test::udp_datagram(1, 53, bytes(100, 7)), {}, 0);
    frag_geometry<4> g;
    g.pieces[0] = {0, 50};
    g.count = 1;
    std::vector<std::byte> scratch(200);
    int emitted = 0;
    CHECK_FALSE(refragment(test::as_bytes(dg), g, scratch, [&](auto) { ++emitted; }));
    g.pieces[0] = {0, 108};
    CHECK(refragment(test::as_bytes(dg), g, scratch, [&](auto) { ++emitted; }));
    CHECK(emitted == 1);
}
