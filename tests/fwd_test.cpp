// SPDX-License-Identifier: MIT
// Kernel oracle for DR and TUN forwarding (fwd.jsonl): byte-exact IPIP / IPv6-in-IPv6 / GUE / GRE and DF
// errors.
#include <doctest/doctest.h>

#include <ipvs/ethernet.hpp>
#include <ipvs/icmp.hpp>
#include <ipvs/nat.hpp>
#include <ipvs/tun.hpp>
#include <ipvs/verify.hpp>

#include "support/director_config.hpp"
#include "support/oracle.hpp"
#include "support/views.hpp"

using namespace ipvs;

namespace {
// The service and dest of this record whose VIP:port the packet is addressed to.
const test::json* dest_for(const test::json& line, const packet_info& info) {
    const std::string proto = info.ip.protocol == ipproto::tcp ? "tcp" : "udp";
    for (const auto& s : line.at("services")) {
        const auto vip = parse_endpoint(s.at("vip").get<std::string>());
        if (s.at("proto") == proto && vip && vip->addr == info.ip.daddr && vip->port == info.l4.dport)
            return &s.at("dests").at(0);
    }
    return nullptr;
}

constexpr std::size_t headroom = 96; // more than any encapsulation here needs
constexpr std::uint32_t route_mtu = 1500;
} // namespace

TEST_CASE("oracle: DR and TUN forwarding of fwd.jsonl is byte-exact with Linux") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "fwd.jsonl");
        if (!file) continue;
        int dr = 0, tun = 0, too_big = 0;
        for (const auto& line : test::read_jsonl(*file)) {
            if (!line.contains("input_hex")) continue; // the ipvsadm -Ln listings
            const std::string name = line.at("case");
            INFO(dir.filename().string() << " " << name << " af " << line.at("af"));
            const auto in = test::from_hex(line.at("input_hex"));
            const auto eth = parse_ethernet(std::as_bytes(std::span(in)));
            REQUIRE(eth);
            REQUIRE(line.at("outputs").size() == 1);
            const auto out = test::from_hex(line.at("outputs")[0].at("hex"));
            const auto out_ip = std::span(out).subspan(eth_hdr::len);

            // The datapath's buffer: headroom, then the IP packet.
            std::vector<std::uint8_t> buf(headroom, 0);
            buf.insert(buf.end(), in.begin() + static_cast<long>(eth->l3_offset), in.end());
            const auto pr = parse(std::as_bytes(std::span(buf)), headroom);
            REQUIRE(pr.ok());
            const auto* d = dest_for(line, pr.info);
            REQUIRE(d);
            const auto rs = parse_endpoint(d->at("dest").get<std::string>());
            REQUIRE(rs);
            REQUIRE(forward_ttl(buf, pr.info.ip));
            std::span<const std::uint8_t> got;
            if (d->at("fwd") == "dr") {
                got = std::span(buf).subspan(headroom); // DR changes only the TTL (and the MACs)
                ++dr;
            } else {
                tun_params tp;
                tp.tun = test::tun_from_json(d->at("tun"));
                tp.dst = rs->addr;
                const auto out_parsed = parse(std::as_bytes(out_ip));
                const bool answered = line.at("outputs")[0].at("if") == "cx";
                if (answered) {
                    // Too big for the tunnel with DF (or IPv6): the director answers with the path MTU.
                    const std::uint32_t mtu = static_cast<std::uint32_t>(
                        route_mtu - tun_overhead({tp.tun, rs->addr, rs->addr, 0, 0, true}));
                    const auto inner = std::as_bytes(std::span(buf)).subspan(headroom);
                    auto ip = pr.info.ip;
                    ip.offset = 0;
                    std::vector<std::byte> err(1500);
                    const std::uint16_t id = static_cast<std::uint16_t>((out_ip[4] << 8) | out_ip[5]);
                    const std::uint32_t fl = ((out_ip[1] & 0xf) << 16) | (out_ip[2] << 8) | out_ip[3];
                    const auto n = build_frag_needed(err, inner, ip, mtu, id, fl);
                    REQUIRE(n > 0);
                    CHECK(test::to_hex(reinterpret_cast<const std::uint8_t*>(err.data()), n) ==
                          test::to_hex(out_ip.data(), out_ip.size()));
                    ++too_big;
                    continue;
                }
                REQUIRE(out_parsed.status != parse_status::truncated_l3);
                tp.src = out_parsed.info.ip.saddr; // the director's own address towards the real servers
                // The two random fields, copied from the recording (FORMAT.md "Random fields").
                if (tp.dst.is_v4()) tp.ipv4_id = static_cast<std::uint16_t>((out_ip[4] << 8) | out_ip[5]);
                if (tp.tun.type == tun_type::gue) {
                    const std::size_t u = out_parsed.info.ip.header_len;
                    tp.gue_sport = static_cast<std::uint16_t>((out_ip[u] << 8) | out_ip[u + 1]);
                    CHECK(tp.gue_sport >= 32768);
                    CHECK(tp.gue_sport <= 60999);
                }
                const auto r = encapsulate(buf, headroom, tp);
                REQUIRE(r.status == tun_status::ok);
                got = std::span(buf).subspan(r.outer_offset);
                ++tun;
            }
            CHECK(test::to_hex(got.data(), got.size()) == test::to_hex(out_ip.data(), out_ip.size()));
        }
        MESSAGE(dir.filename().string() << ": " << dr << " DR frames, " << tun << " tunnelled frames and "
                                        << too_big << " too-big answers compared byte for byte");
        CHECK(dr > 0);
        CHECK(tun > 0);
        CHECK(too_big > 0);
        ++sets;
    }
    if (sets == 0) MESSAGE("no vector set holds fwd.jsonl");
}

TEST_CASE("oracle: the director's ICMP time exceeded for TTL 1 / hop limit 1 (nat.jsonl)") {
    int compared = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "nat.jsonl");
        if (!file) continue;
        for (const auto& line : test::read_jsonl(*file)) {
            const std::string name = line.at("case");
            if (name != "tcp_ttl1_in" && name != "tcp_hlim1_in") continue;
            const auto in = test::from_hex(line.at("input_hex"));
            const auto out = test::from_hex(line.at("outputs")[0].at("hex"));
            const auto ip_in = std::as_bytes(std::span(in)).subspan(eth_hdr::len);
            const auto out_ip = std::span(out).subspan(eth_hdr::len);
            const auto pr = parse(ip_in);
            REQUIRE(pr.ok());
            std::vector<std::uint8_t> copy(ip_in.size());
            std::memcpy(copy.data(), ip_in.data(), copy.size());
            CHECK_FALSE(forward_ttl(copy, pr.info.ip)); // TTL 1 cannot be forwarded
            std::vector<std::byte> err(1500);
            const std::uint16_t id = static_cast<std::uint16_t>((out_ip[4] << 8) | out_ip[5]);
            const std::uint32_t fl = ((out_ip[1] & 0xf) << 16) | (out_ip[2] << 8) | out_ip[3];
            const auto n = build_time_exceeded(err, ip_in, pr.info.ip, id, fl);
            REQUIRE(n > 0);
            CHECK_MESSAGE(test::to_hex(reinterpret_cast<const std::uint8_t*>(err.data()), n) ==
                              test::to_hex(out_ip.data(), out_ip.size()),
                          name << " af " << line.at("af"));
            ++compared;
        }
    }
    MESSAGE(compared << " time-exceeded errors compared byte for byte");
    CHECK(compared > 0);
}

TEST_CASE("encapsulate: refuses without headroom and leaves the packet alone") {
    std::vector<std::uint8_t> buf(10, 0);
    const std::uint8_t ip[20] = {0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 0, 0, 100};
    buf.insert(buf.end(), std::begin(ip), std::end(ip));
    const auto before = buf;
    tun_params tp;
    tp.src = *parse_addr("10.0.2.1");
    tp.dst = *parse_addr("10.0.2.61");
    CHECK(encapsulate(buf, 10, tp).status == tun_status::no_headroom);
    tp.dst = *parse_addr("fd00::1");
    CHECK(encapsulate(buf, 10, tp).status == tun_status::family_mismatch);
    CHECK(encapsulate(buf, 3, tp).status != tun_status::ok);
    CHECK(buf == before);
}
