// SPDX-License-Identifier: MIT
// Kernel oracle: every frame Linux received and emitted in nat.jsonl parses, and the checksums the kernel
// wrote verify.
#include <doctest/doctest.h>

#include <ipvs/ethernet.hpp>
#include <ipvs/parse.hpp>
#include <ipvs/verify.hpp>

#include "support/oracle.hpp"

using namespace ipvs;

namespace {
struct tally {
    int frames = 0, l4_verified = 0, l4_bad_as_expected = 0, ip_verified = 0;
};

// `expect_bad_l4`: the frame is marked as carrying a bad checksum (CLARIFICATIONS: *_bad_csum* in and out,
// *bad_crc* only in).
void check_frame(const std::string& where, const std::string& hex, bool expect_bad_l4, tally& t) {
    const auto frame = test::from_hex(hex);
    const auto b = std::as_bytes(std::span(frame));
    const auto eth = parse_ethernet(b);
    REQUIRE_MESSAGE(eth, where);
    const auto r = parse(b, eth->l3_offset);
    INFO(where << " status=" << to_string(r.status));
    REQUIRE((r.status == parse_status::ok || r.status == parse_status::fragment));
    CHECK((eth->ethertype == ethertype::ipv4) == (r.info.ip.af == family::v4));
    if (r.info.ip.af == family::v4) {
        CHECK(verify_ip_header(b, r.info.ip) == verify_status::ok);
        ++t.ip_verified;
    }
    ++t.frames;
    if (r.status != parse_status::ok || r.info.ip.is_fragment()) return; // cannot verify a fragment
    const auto v = verify_l4(b, r.info);
    if (expect_bad_l4) {
        CHECK(v == verify_status::bad);
        ++t.l4_bad_as_expected;
    } else {
        CHECK((v == verify_status::ok || v == verify_status::none));
        if (v == verify_status::ok) ++t.l4_verified;
    }
}
} // namespace

TEST_CASE("oracle: nat.jsonl frames parse and the kernel's checksums verify") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto file = test::oracle_file(dir, "nat.jsonl");
        if (!file) continue;
        tally t;
        for (const auto& line : test::read_jsonl(*file)) {
            const std::string name = line.at("case");
            const bool bad_csum = name.find("_bad_csum") != std::string::npos;
            const bool bad_crc = name.find("bad_crc") != std::string::npos;
            check_frame(dir.filename().string() + " " + name + " input", line.at("input_hex"),
                        bad_csum || bad_crc, t);
            int k = 0;
            for (const auto& out : line.at("outputs"))
                check_frame(dir.filename().string() + " " + name + " output " + std::to_string(k++),
                            out.at("hex"), bad_csum, t);
        }
        MESSAGE(dir.filename().string()
                << ": " << t.frames << " frames parsed, " << t.ip_verified << " IPv4 header checksums, "
                << t.l4_verified << " L4 checksums verified, " << t.l4_bad_as_expected
                << " marked bad failed as expected");
        CHECK(t.frames > 0);
        CHECK(t.l4_verified > 0);
        CHECK(t.l4_bad_as_expected > 0);
        ++sets;
    }
    CHECK_MESSAGE(sets > 0, "no vector set held nat.jsonl");
}
