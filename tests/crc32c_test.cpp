// SPDX-License-Identifier: MIT
// Tests for <ipvs/crc32c.hpp>: the check value, hardware = fallback on random buffers.
#include <doctest/doctest.h>

#include <random>
#include <string_view>
#include <vector>

#include <ipvs/crc32c.hpp>

using namespace ipvs;

TEST_CASE("crc32c: the check value of \"123456789\" is 0xE3069283") {
    constexpr std::string_view s = "123456789";
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    CHECK(crc32c_sw(b) == 0xE3069283U);
    CHECK(crc32c_hw(b) == 0xE3069283U);
    CHECK(crc32c(b) == 0xE3069283U);
    MESSAGE("SSE4.2 CRC32 instruction in use: " << (crc32c_has_hw() ? "yes" : "no"));
}

TEST_CASE("crc32c: RFC 3720 B.4 vectors (32 bytes of zeros, of ones, incrementing)") {
    std::vector<std::uint8_t> z(32, 0), o(32, 0xff), inc(32);
    for (int i = 0; i < 32; ++i) inc[i] = static_cast<std::uint8_t>(i);
    CHECK(crc32c_sw(std::as_bytes(std::span(z))) == 0x8A9136AAU);
    CHECK(crc32c_sw(std::as_bytes(std::span(o))) == 0x62A8AB43U);
    CHECK(crc32c_sw(std::as_bytes(std::span(inc))) == 0x46DD794EU);
}

TEST_CASE("crc32c: hardware and portable paths agree for any length, alignment and continuation") {
    std::mt19937 rng(4960);
    std::vector<std::uint8_t> buf(4200);
    for (auto& x : buf) x = static_cast<std::uint8_t>(rng());
    int checked = 0;
    for (int i = 0; i < 3000; ++i) {
        const std::size_t off = rng() % 16, len = rng() % 4000;
        const auto b = std::as_bytes(std::span(buf.data() + off, len));
        const auto sw = crc32c_sw(b);
        REQUIRE(crc32c_hw(b) == sw);
        // Continuation: crc(a ‖ b) = crc(b, crc(a)).
        const std::size_t cut = len ? rng() % len : 0;
        CHECK(crc32c_hw(b.subspan(cut), crc32c_hw(b.first(cut))) == sw);
        ++checked;
    }
    CHECK(checked == 3000);
}
