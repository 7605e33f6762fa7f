// SPDX-License-Identifier: MIT
// CRC32c (Castagnoli) for SCTP (RFC 4960 §6.8, Appendix B): SSE4.2 instruction when present, portable
// fallback.
#pragma once

// Design
// ------
// The polynomial is 0x1EDC6F41, used bit-reflected (0x82F63B78) as RFC 4960 Appendix B and the SSE4.2
// CRC32 instruction both do. `crc32c_sw` is slicing-by-8 over constexpr tables; `crc32c_hw` uses
// _mm_crc32_u64 through a function-level target attribute, so the header needs no -msse4.2 and runs on
// any x86-64; `crc32c` picks one at run time (cached CPUID). Both give identical results (tested).
//
// Values are "finished": crc32c(data) = ~update(~0, data). The SCTP checksum field carries that value
// in little-endian byte order (the reflected CRC's natural order; Linux stores cpu_to_le32(crc)).

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include <ipvs/bytes.hpp>

#include <ipvs/config.hpp>

#if IPVS_ARCH_X86
#include <immintrin.h>
#endif

namespace ipvs {

namespace detail {
inline constexpr std::uint32_t crc32c_poly = 0x82F63B78U; // reflected 0x1EDC6F41

constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() noexcept {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1U) ? (c >> 1) ^ crc32c_poly : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s)
        for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    return t;
}
inline constexpr auto crc32c_tables = make_crc32c_tables();

/// Raw CRC register update (no pre/post inversion), portable slicing-by-8.
[[nodiscard]] inline std::uint32_t crc32c_update_sw(std::uint32_t crc, const std::byte* p,
                                                    std::size_t n) noexcept {
    const auto& t = crc32c_tables;
    while (n >= 8) {
        const std::uint64_t w = load_le<std::uint64_t>(p) ^ crc;
        crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
              t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- != 0) crc = (crc >> 8) ^ t[0][(crc ^ std::to_integer<std::uint32_t>(*p++)) & 0xff];
    return crc;
}

#if IPVS_ARCH_X86
/// Raw CRC register update with the SSE4.2 CRC32 instruction. Call only when the CPU has SSE4.2.
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_update_hw(std::uint32_t crc, const std::byte* p,
                                                                        std::size_t n) noexcept {
    std::uint64_t c = crc;
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n-- != 0) c32 = _mm_crc32_u8(c32, std::to_integer<std::uint8_t>(*p++));
    return c32;
}
#endif
} // namespace detail

/// True when the hardware path is used on this CPU.
[[nodiscard]] inline bool crc32c_has_hw() noexcept {
#if IPVS_ARCH_X86
    static const bool has = __builtin_cpu_supports("sse4.2");
    return has;
#else
    return false;
#endif
}

/// CRC32c with the portable tables.
[[nodiscard]] inline std::uint32_t crc32c_sw(std::span<const std::byte> data,
                                             std::uint32_t crc = 0) noexcept {
    return ~detail::crc32c_update_sw(~crc, data.data(), data.size());
}

/// CRC32c with the SSE4.2 instruction; falls back to the tables on a CPU without it.
[[nodiscard]] inline std::uint32_t crc32c_hw(std::span<const std::byte> data,
                                             std::uint32_t crc = 0) noexcept {
#if IPVS_ARCH_X86
    if (crc32c_has_hw()) return ~detail::crc32c_update_hw(~crc, data.data(), data.size());
#endif
    return crc32c_sw(data, crc);
}

/// CRC32c of `data`, continuing from a previous finished value `crc` (0 to start).
[[nodiscard]] inline std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0) noexcept {
    return crc32c_hw(data, crc);
}

} // namespace ipvs
