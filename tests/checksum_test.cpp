// SPDX-License-Identifier: MIT
// Tests for <ipvs/checksum.hpp>: RFC 1071 sums, RFC 1624 incremental updates, pseudo-headers.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include <ipvs/checksum.hpp>

#include "support/build.hpp"

using namespace ipvs;
using ipvs::test::bytes;

namespace {
// A bit-at-a-time reference: 16-bit big-endian words added with end-around carry, exactly RFC 1071 §1.
std::uint16_t slow_sum(const std::uint8_t* p, std::size_t n) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) s += (p[i] << 8) | p[i + 1];
    if (n & 1) s += p[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}
} // namespace

TEST_CASE("csum_partial: the RFC 1071 §3 numerical example") {
    // Bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (RFC 1071 §3), checksum 0x220d.
    const bytes b{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    CHECK(csum_fold(csum_partial(test::as_bytes(b))) == 0xddf2);
    CHECK(internet_checksum(test::as_bytes(b)) == 0x220d);
}

TEST_CASE("csum_partial: equals the word-by-word sum for every length and alignment") {
    std::mt19937 rng(1071);
    std::vector<std::uint8_t> buf(9100);
    for (auto& x : buf) x = static_cast<std::uint8_t>(rng());
    int checked = 0;
    for (std::size_t align = 0; align < 8; ++align) {
        for (std::size_t len : {0, 1, 2, 3, 7, 8, 9, 15, 31, 32, 33, 63, 64, 65, 1499, 1500, 9000}) {
            const auto* p = buf.data() + align;
            auto got = csum_fold(csum_partial(std::as_bytes(std::span(p, len))));
            CHECK_MESSAGE(got == slow_sum(p, len), "len " << len << " align " << align);
            ++checked;
        }
    }
    SUBCASE("initial value is added in one's complement") {
        const auto* p = buf.data();
        CHECK(csum_fold(csum_partial(std::as_bytes(std::span(p, 100)), 0xffff)) ==
              csum_fold(csum_add(csum_partial(std::as_bytes(std::span(p, 100))), 0xffff)));
    }
    CHECK(checked == 8 * 17);
}

TEST_CASE("csum_update16: RFC 1624 §4 example and -0 avoidance") {
    // HC = 0xDD2F, m = 0x5555 → m' = 0x3285: eqn. 3 gives 0x0000 where eqn. 2 gives 0xFFFF.
    CHECK(csum_update16(0xdd2f, 0x5555, 0x3285) == 0x0000);
    // RFC 1624 errata 5864: HC 0x0000, 0x5555 → 0x5556 gives 0xFFFE.
    CHECK(csum_update16(0x0000, 0x5555, 0x5556) == 0xfffe);
}

TEST_CASE("incremental updates equal a full recompute (16, 32 and 128-bit fields)") {
    std::mt19937 rng(1624);
    int checked = 0;
    for (int iter = 0; iter < 2000; ++iter) {
        bytes b(40 + rng() % 60);
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        b[0] = b[1] = 0; // checksum field at offset 0
        const std::uint16_t before = internet_checksum(test::as_bytes(b));
        test::put16(b, 0, before);
        REQUIRE(internet_checksum(test::as_bytes(b)) == 0);

        const std::size_t at = 2 + 2 * (rng() % 8);
        const auto old_a = inet_addr::load(family::v6, test::as_bytes(b).data() + at);
        auto new_a = old_a;
        for (auto& x : new_a.bytes) x = static_cast<std::uint8_t>(rng());
        const auto old4 = inet_addr::load(family::v4, test::as_bytes(b).data() + at);
        const std::uint16_t old16 = static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
        const int which = iter % 3;
        std::uint16_t check = static_cast<std::uint16_t>((b[0] << 8) | b[1]);
        if (which == 0) {
            const auto v = static_cast<std::uint16_t>(rng());
            test::put16(b, at, v);
            check = csum_update16(check, old16, v);
        } else if (which == 1) {
            const auto new4 = inet_addr::v4(static_cast<std::uint32_t>(rng()));
            new4.store(reinterpret_cast<std::byte*>(b.data() + at));
            check = csum_update32(check, old4.v4_host(), new4.v4_host());
        } else {
            new_a.store(reinterpret_cast<std::byte*>(b.data() + at));
            check = csum_update_addr(check, old_a, new_a);
        }
        test::put16(b, 0, check);
        // The updated field verifies; full recompute may differ only in the +0/-0 representation.
        CHECK(csum_fold(csum_partial(test::as_bytes(b))) == 0xffff);
        ++checked;
    }
    CHECK(checked == 2000);
}

TEST_CASE("csum_update_addr and csum_update32 agree for IPv4 addresses") {
    const auto a = *parse_addr("10.0.0.100"), b = *parse_addr("10.0.2.11");
    for (std::uint16_t check : {0x0000, 0x1234, 0xffff, 0xbeef})
        CHECK(csum_update_addr(check, a, b) == csum_update32(check, a.v4_host(), b.v4_host()));
}

TEST_CASE("pseudo-header sums: IPv4 and IPv6 make a real TCP segment verify") {
    const auto seg = test::tcp_segment(40000, 80, tcp_flag::syn);
    SUBCASE("IPv4") {
        auto p = test::ipv4_packet(ipproto::tcp, "10.1.0.5", "10.0.0.100", seg);
        const auto l4 = test::as_bytes(p).subspan(20);
        CHECK(internet_checksum(l4, pseudo_header(*parse_addr("10.1.0.5"), *parse_addr("10.0.0.100"),
                                                  ipproto::tcp, static_cast<std::uint32_t>(l4.size()))) == 0);
        // A wrong pseudo-header (another destination) does not verify.
        CHECK(internet_checksum(l4, pseudo_header(*parse_addr("10.1.0.5"), *parse_addr("10.0.0.101"),
                                                  ipproto::tcp, static_cast<std::uint32_t>(l4.size()))) != 0);
    }
    SUBCASE("IPv6") {
        auto p = test::ipv6_packet(ipproto::tcp, "fd01::5", "fd00::100", seg, ipproto::tcp);
        const auto l4 = test::as_bytes(p).subspan(40);
        CHECK(internet_checksum(l4, pseudo_header(*parse_addr("fd01::5"), *parse_addr("fd00::100"),
                                                  ipproto::tcp, static_cast<std::uint32_t>(l4.size()))) == 0);
    }
}

TEST_CASE("csum_update_addr_partial keeps a CHECKSUM_PARTIAL pseudo-header sum current") {
    const auto s = *parse_addr("10.1.0.5"), d = *parse_addr("10.0.0.100"), d2 = *parse_addr("10.0.2.11");
    const std::uint16_t partial = csum_fold(pseudo_header(s, d, ipproto::tcp, 40));
    const std::uint16_t want = csum_fold(pseudo_header(s, d2, ipproto::tcp, 40));
    CHECK(csum_update_addr_partial(partial, d, d2) == want);
}
