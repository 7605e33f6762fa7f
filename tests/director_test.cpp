// SPDX-License-Identifier: MIT
// Tests for <ipvs/director.hpp>: the recorded kernel's frames fed through the whole director, compared byte
// for byte.
#include <doctest/doctest.h>

#include <map>

#include <ipvs/director.hpp>
#include <ipvs/ethernet.hpp>
#include <ipvs/frag.hpp>
#include <ipvs/tun.hpp>

#include "support/director_config.hpp"
#include "support/oracle.hpp"

using namespace ipvs;

namespace {
std::string hex_of(std::span<const std::byte> b) {
    return test::to_hex(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
}
std::string ip_hex(const std::vector<std::uint8_t>& frame) {
    return test::to_hex(frame.data() + eth_hdr::len, frame.size() - eth_hdr::len);
}
// A frame the director's own stack made: mask what Linux draws at random (FORMAT.md "Random fields"):
// the IPv4 identification and header checksum (checked for validity instead), the IPv6 flow label.
std::string masked_hex(std::vector<std::uint8_t> ip) {
    if (!ip.empty() && (ip[0] >> 4) == 4) {
        const auto pr = parse(std::as_bytes(std::span(ip)));
        CHECK(verify_ip_header(std::as_bytes(std::span(ip)), pr.info.ip) == verify_status::ok);
        ip[4] = ip[5] = ip[10] = ip[11] = 0;
    } else if (ip.size() > 4) {
        ip[1] &= 0xf0;
        ip[2] = ip[3] = 0;
    }
    return test::to_hex(ip.data(), ip.size());
}

struct replay_counts {
    int forwarded = 0, replies = 0, refragmented = 0, states = 0;
};

void check_conns(director& d, const test::json& conns, time_ns now, const std::string& where,
                 replay_counts& c) {
    for (const auto& want : conns) {
        const auto caddr = *parse_addr(want.at("caddr").get<std::string>());
        const auto cport = want.at("cport").get<std::uint16_t>();
        const auto vport = want.at("vport").get<std::uint16_t>();
        bool found = false;
        d.for_each_conn([&](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            if (e.is_template() || to_inet<E::addr_len>(e.caddr) != caddr || e.cport != cport ||
                e.vport != vport)
                return;
            found = true;
            CHECK_MESSAGE(test::state_name(e) == want.at("state").get<std::string>(), where);
            const auto left = std::chrono::duration_cast<std::chrono::seconds>(d.deadline(e) - now).count();
            const auto rec = want.at("expires").get<long>();
            CHECK_MESSAGE((left >= rec && left <= rec + 1), where << ": expires " << left << " vs " << rec);
            ++c.states;
        });
        CHECK_MESSAGE(found, where << ": no connection for " << want.dump());
    }
}
} // namespace

TEST_CASE("oracle: director nat.jsonl — every recorded frame through in()/out(), byte for byte") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "nat.jsonl");
        if (!file) continue;
        replay_counts c;
        std::map<int, std::unique_ptr<director>> by_af; // the recorded director ran each family on its own
        ipv4_reassembler<> reasm;
        time_ns now{std::chrono::seconds(1)};
        for (const auto& line : test::read_jsonl(*file)) {
            const int af = line.at("af");
            auto& d = by_af[af];
            if (!d) {
                d = std::make_unique<director>();
                test::configure(*d, line.at("services"));
            }
            now += std::chrono::milliseconds(10);
            const std::string where = dir.filename().string() + " " + line.at("case").get<std::string>() +
                                      " af " + std::to_string(af);
            INFO(where);
            auto frame = test::from_hex(line.at("input_hex"));
            std::vector<std::uint8_t> ip(frame.begin() + eth_hdr::len, frame.end());
            const bool from_client = line.at("input_if") == "cx";
            verdict v = from_client ? d->in(ip, now) : d->out(ip, now);
            const auto& outs = line.at("outputs");
            if (v.act == action::reassemble) {
                const auto pr = parse(std::as_bytes(std::span(ip)));
                auto r = reasm.add(std::as_bytes(std::span(ip)), pr.info.ip, now);
                if (r.status == reasm_status::incomplete) {
                    CHECK(outs.empty());
                    continue;
                }
                REQUIRE(r.status == reasm_status::complete);
                std::vector<std::uint8_t> dg(r.datagram.size());
                std::memcpy(dg.data(), r.datagram.data(), dg.size());
                v = from_client ? d->in(dg, now) : d->out(dg, now);
                REQUIRE(v.act == action::forward);
                std::vector<std::byte> scratch(2000);
                std::size_t k = 0;
                REQUIRE(refragment(std::as_bytes(std::span(dg)), r.geom, scratch,
                                   [&](std::span<const std::byte> f) {
                                       REQUIRE(k < outs.size());
                                       CHECK(hex_of(f) == ip_hex(test::from_hex(outs[k++].at("hex"))));
                                       ++c.refragmented;
                                   }));
                CHECK(k == outs.size());
                continue;
            }
            REQUIRE(outs.size() == 1);
            const auto want = test::from_hex(outs[0].at("hex"));
            const bool to_client_side = outs[0].at("if") == "cx";
            if (to_client_side == from_client) {
                // The director answered from its own stack (time exceeded).
                REQUIRE(v.act == action::reply);
                std::vector<std::uint8_t> got(v.reply.size());
                std::memcpy(got.data(), v.reply.data(), got.size());
                CHECK(masked_hex(got) ==
                      masked_hex(std::vector<std::uint8_t>(want.begin() + eth_hdr::len, want.end())));
                ++c.replies;
            } else {
                REQUIRE_MESSAGE(v.act == action::forward,
                                "verdict " << int(v.act) << " " << to_string(v.reason));
                CHECK(test::to_hex(ip.data(), ip.size()) == ip_hex(want));
                ++c.forwarded;
            }
            check_conns(*d, line.at("conn_after"), now, where, c);
        }
        MESSAGE(dir.filename().string()
                << ": " << c.forwarded << " forwarded, " << c.replies << " own replies and " << c.refragmented
                << " re-fragmented frames compared byte for byte; " << c.states
                << " connection states/timeouts checked");
        CHECK(c.forwarded > 0);
        CHECK(c.replies > 0);
        CHECK(c.states > 0);
        ++sets;
    }
    CHECK(sets > 0);
}

TEST_CASE("oracle: director fwd.jsonl — DR and TUN verdicts, tunnelled and too-big frames byte for byte") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "fwd.jsonl");
        if (!file) continue;
        int dr = 0, tun = 0, too_big = 0;
        std::map<std::string, std::unique_ptr<director>> by_config;
        time_ns now{std::chrono::seconds(1)};
        for (const auto& line : test::read_jsonl(*file)) {
            if (!line.contains("input_hex")) continue;
            const std::string cfg = line.at("services").dump();
            auto& d = by_config[cfg];
            if (!d) {
                d = std::make_unique<director>();
                test::configure(*d, line.at("services"));
            }
            now += std::chrono::milliseconds(10);
            INFO(dir.filename().string()
                 << " " << line.at("case").get<std::string>() << " af " << line.at("af"));
            const auto in = test::from_hex(line.at("input_hex"));
            constexpr std::size_t headroom = 96;
            std::vector<std::uint8_t> buf(headroom, 0);
            buf.insert(buf.end(), in.begin() + eth_hdr::len, in.end());
            std::span<std::uint8_t> ip(buf.data() + headroom, buf.size() - headroom);
            const verdict v = d->in(ip, now);
            const auto out = test::from_hex(line.at("outputs").at(0).at("hex"));
            const std::vector<std::uint8_t> out_ip(out.begin() + eth_hdr::len, out.end());
            if (line.at("outputs")[0].at("if") == "cx") { // too big for the tunnel: the director answers
                REQUIRE(v.act == action::reply);
                CHECK(v.reason == drop_reason::too_big);
                std::vector<std::uint8_t> got(v.reply.size());
                std::memcpy(got.data(), v.reply.data(), got.size());
                CHECK(masked_hex(got) == masked_hex(out_ip));
                ++too_big;
                continue;
            }
            REQUIRE(v.act == action::forward);
            REQUIRE(v.to);
            if (v.method == fwd_method::droute) {
                CHECK(test::to_hex(ip.data(), ip.size()) == test::to_hex(out_ip.data(), out_ip.size()));
                ++dr;
                continue;
            }
            REQUIRE(v.method == fwd_method::tunnel);
            const auto op = parse(std::as_bytes(std::span(out_ip)));
            tun_params tp;
            tp.tun = v.to->tun;
            tp.dst = v.to->ep.addr;
            tp.src = op.info.ip.saddr;
            if (tp.dst.is_v4()) tp.ipv4_id = static_cast<std::uint16_t>((out_ip[4] << 8) | out_ip[5]);
            if (tp.tun.type == tun_type::gue) {
                const std::size_t u = op.info.ip.header_len;
                tp.gue_sport = static_cast<std::uint16_t>((out_ip[u] << 8) | out_ip[u + 1]);
            }
            const auto r = encapsulate(buf, headroom, tp);
            REQUIRE(r.status == tun_status::ok);
            CHECK(test::to_hex(buf.data() + r.outer_offset, buf.size() - r.outer_offset) ==
                  test::to_hex(out_ip.data(), out_ip.size()));
            ++tun;
        }
        MESSAGE(dir.filename().string() << ": " << dr << " DR, " << tun << " TUN and " << too_big
                                        << " too-big frames compared through the director");
        CHECK(dr > 0);
        CHECK(tun > 0);
        CHECK(too_big > 0);
        ++sets;
    }
    if (sets == 0) MESSAGE("no vector set holds fwd.jsonl");
}
