// SPDX-License-Identifier: MIT
// Tests for <ipvs/detail/hash.hpp>: hash_32 (spec §11), SipHash-2-4 reference vectors, hsiphash (§2.13).
#include <doctest/doctest.h>

#include <array>
#include <random>

#include <ipvs/addr.hpp>
#include <ipvs/detail/hash.hpp>

using namespace ipvs;
using ipvs::detail::hash_32;
using ipvs::detail::hsiphash_u32;
using ipvs::detail::siphash;
using ipvs::detail::siphash_key;

TEST_CASE("hash_32: the spec's worked values at 8 and 10 bits") {
    struct row {
        const char* addr;
        std::uint32_t b8, b10;
    };
    // spec §11
    for (const row& r : {row{"192.168.1.1", 136, 547}, row{"10.0.0.1", 39, 159}, row{"10.0.0.2", 137, 550},
                         row{"172.16.5.9", 115, 460}, row{"2001:db8::1", 63, 252}, row{"::1", 97, 391}}) {
        CAPTURE(r.addr);
        const std::uint32_t f = parse_addr(r.addr)->fold();
        CHECK(hash_32(f, 8) == r.b8);
        CHECK(hash_32(f, 10) == r.b10);
    }
    static_assert(hash_32(0x20010db9U, 8) == 63);
    CHECK(hash_32(0xffffffffU, 32) == 0xffffffffU * 0x61C88647U);
    CHECK(hash_32(12345, 0) == 0);
}

TEST_CASE("siphash: SipHash-2-4 matches the published vectors (key 00..0f)") {
    // The reference vectors of the SipHash paper / reference code, as quoted in spec §11.
    constexpr siphash_key key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    std::array<std::uint8_t, 15> msg{};
    for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<std::uint8_t>(i);
    CHECK(siphash<2, 4>(key, {}) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash<2, 4>(key, msg) == 0xa129ca6149be45e5ULL); // one full block and a 7-byte tail
    static_assert(siphash<2, 4>(siphash_key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL}, {}) ==
                  0x726fdb47dd0e0e31ULL);
}

TEST_CASE("hsiphash: the kernel's 64-bit hsiphash of one u32 (mh's keys)") {
    constexpr siphash_key hash1{2654435761U, 2654435761U};
    constexpr siphash_key hash2{2654446892U, 2654446892U};
    // spec §2.13 test vectors (x86-64)
    CHECK(hsiphash_u32(hash1, 0) == 0x1d5a77c2U);
    CHECK(hsiphash_u32(hash1, 0xC0A80101U) == 0xd3f1b4d3U);
    CHECK(hsiphash_u32(hash2, 0xC0A80101U) == 0xf99fc1d7U);
}

TEST_CASE("hsiphash: the one-block form equals SipHash-1-3 over the value's little-endian bytes") {
    std::mt19937_64 rng(3);
    for (int i = 0; i < 2000; ++i) {
        const siphash_key key{rng(), rng()};
        const auto v = static_cast<std::uint32_t>(rng());
        const std::array<std::uint8_t, 4> le = {
            static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
            static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
        REQUIRE(hsiphash_u32(key, v) == static_cast<std::uint32_t>(siphash<1, 3>(key, le)));
    }
}
