// SPDX-License-Identifier: MIT
// The Internet checksum: RFC 1071 sums, RFC 1624 incremental updates, IPv4/IPv6 pseudo-header sums.
#pragma once

// Design
// ------
// A running sum is a `csum` (32-bit, unfolded, in the big-endian word domain): add buffers and
// pseudo-headers to it, then `csum_fold()` to 16 bits and complement with `csum_finish()`.
//
// csum_partial() is the hot loop. Because the one's-complement sum is byte-order independent up to a
// final swap (RFC 1071 §2(B)) and may be computed in any grouping with deferred carries (§2(C)), it
// sums native-order words and swaps the folded 16-bit result once on little-endian hosts:
// - x86-64 with AVX2 (detected at run time; no -m flag needed): 32-byte blocks, each split into its
//   low and high 16-bit halves of 32-bit lanes and added into 32-bit accumulators, which are spilled
//   to 64 bits every 4096 blocks (each lane then holds at most 2·4096·0xffff < 2^32);
// - otherwise: 8-byte loads (memcpy: any alignment) into two 128-bit accumulators (add/adc).
//
// Incremental updates follow RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), which is also what the kernel's
// csum_replace*/inet_proto_csum_replace* compute, so a rewritten packet's checksum is bit-identical to
// Linux's (including the +0/-0 choice). Field changes of 16, 32 and 128 bits have their own helpers.

#include <cstddef>
#include <cstdint>
#include <span>

#include <ipvs/addr.hpp>
#include <ipvs/bytes.hpp>
#include <ipvs/config.hpp>

#if IPVS_ARCH_X86
#include <immintrin.h>
#endif

namespace ipvs {

namespace detail {
__extension__ typedef unsigned __int128 uint128; // GCC/Clang extension; silences -Wpedantic
}

/// An unfolded one's-complement running sum (big-endian 16-bit word domain).
using csum = std::uint32_t;

/// Folds a running sum to 16 bits with end-around carries (RFC 1071 §2(C)).
[[nodiscard]] constexpr std::uint16_t csum_fold(std::uint64_t s) noexcept {
    s = (s & 0xffffffffULL) + (s >> 32);
    s = (s & 0xffffffffULL) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}

/// One's-complement addition of two running sums.
[[nodiscard]] constexpr csum csum_add(csum a, csum b) noexcept {
    const std::uint64_t s = std::uint64_t{a} + b;
    return static_cast<csum>((s & 0xffffffffULL) + (s >> 32));
}

/// The checksum field value for a running sum: the complement of its fold.
[[nodiscard]] constexpr std::uint16_t csum_finish(csum s) noexcept {
    return static_cast<std::uint16_t>(~csum_fold(s));
}

namespace detail {
/// Native-order word sum of [p, p+n), folded to 16 bits (still native order). Portable.
[[nodiscard]] inline std::uint16_t native_sum_scalar(const std::byte* p, std::size_t n,
                                                     std::uint64_t carry_in) noexcept {
    uint128 acc0 = carry_in, acc1 = 0;
    while (n >= 32) {
        std::uint64_t w[4];
        std::memcpy(w, p, 32);
        acc0 += w[0];
        acc1 += w[1];
        acc0 += w[2];
        acc1 += w[3];
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        acc0 += w;
        p += 8;
        n -= 8;
    }
    // Tail of 0..7 bytes: the native-order word the bytes would have formed, zero padded.
    if (n != 0) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, n);
        acc1 += w;
    }
    const uint128 acc = acc0 + acc1; // no overflow: < 2^61 words of < 2^64 each per accumulator
    std::uint64_t s64 = static_cast<std::uint64_t>(acc);
    const auto hi = static_cast<std::uint64_t>(acc >> 64);
    s64 += hi;
    if (s64 < hi) ++s64; // end-around carry
    return csum_fold(s64);
}

#if IPVS_ARCH_X86
/// Sum of the 16-bit words of `blocks` 32-byte blocks at p, as a 64-bit integer (not folded).
__attribute__((target("avx2"))) inline std::uint64_t word_sum_avx2(const std::byte* p,
                                                                   std::size_t blocks) noexcept {
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    __m256i total = _mm256_setzero_si256(); // 4 × 64-bit lanes
    while (blocks != 0) {
        const std::size_t chunk = blocks < 4096 ? blocks : 4096;
        __m256i acc = _mm256_setzero_si256(); // 8 × 32-bit lanes
        for (std::size_t i = 0; i < chunk; ++i) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
            acc = _mm256_add_epi32(acc, _mm256_and_si256(v, low16));
            acc = _mm256_add_epi32(acc, _mm256_srli_epi32(v, 16));
            p += 32;
        }
        total = _mm256_add_epi64(total, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(acc)));
        total = _mm256_add_epi64(total, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(acc, 1)));
        blocks -= chunk;
    }
    alignas(32) std::uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

[[nodiscard]] inline bool cpu_has_avx2() noexcept {
    static const bool has = __builtin_cpu_supports("avx2");
    return has;
}
#endif
} // namespace detail

/// RFC 1071 sum of `data` added to `initial`. Any length and alignment; an odd final byte is the high
/// byte of a zero-padded word. Sums of consecutive pieces may be added only when each piece but the
/// last has even length.
[[nodiscard]] inline csum csum_partial(std::span<const std::byte> data, csum initial = 0) noexcept {
    const std::byte* p = data.data();
    std::size_t n = data.size();
    std::uint64_t bulk = 0;
#if IPVS_ARCH_X86
    if (n >= 256 && detail::cpu_has_avx2()) {
        const std::size_t blocks = n / 32;
        bulk = detail::word_sum_avx2(p, blocks);
        p += blocks * 32;
        n -= blocks * 32;
    }
#endif
    std::uint16_t folded = detail::native_sum_scalar(p, n, bulk);
    if constexpr (std::endian::native == std::endian::little) folded = detail::byteswap(folded);
    return csum_add(initial, folded);
}

/// Internet checksum of a buffer: ~fold(sum). Verifying a buffer that holds its checksum gives 0.
[[nodiscard]] inline std::uint16_t internet_checksum(std::span<const std::byte> data,
                                                     csum initial = 0) noexcept {
    return csum_finish(csum_partial(data, initial));
}

/// Sum of an address's 16-bit words (4 or 16 bytes), for pseudo-headers and RFC 1624 updates.
[[nodiscard]] constexpr csum csum_addr(const inet_addr& a) noexcept {
    csum s = 0;
    for (std::size_t i = 0; i < a.size(); i += 2) s += static_cast<csum>((a.bytes[i] << 8) | a.bytes[i + 1]);
    return s;
}

/// IPv4 pseudo-header sum (RFC 793 §3.1 / RFC 768): src, dst, zero, protocol, L4 length.
[[nodiscard]] constexpr csum pseudo_header_v4(const inet_addr& src, const inet_addr& dst,
                                              std::uint8_t protocol, std::uint16_t l4_len) noexcept {
    return csum_addr(src) + csum_addr(dst) + protocol + l4_len;
}

/// IPv6 pseudo-header sum (RFC 8200 §8.1): src, dst, 32-bit upper-layer length, next header.
[[nodiscard]] constexpr csum pseudo_header_v6(const inet_addr& src, const inet_addr& dst,
                                              std::uint8_t next_header, std::uint32_t l4_len) noexcept {
    return csum_addr(src) + csum_addr(dst) + (l4_len >> 16) + (l4_len & 0xffff) + next_header;
}

/// Pseudo-header for either family.
[[nodiscard]] constexpr csum pseudo_header(const inet_addr& src, const inet_addr& dst, std::uint8_t protocol,
                                           std::uint32_t l4_len) noexcept {
    return src.is_v4() ? pseudo_header_v4(src, dst, protocol, static_cast<std::uint16_t>(l4_len))
                       : pseudo_header_v6(src, dst, protocol, l4_len);
}

/// RFC 1624 eqn. 3 for a 16-bit field: new checksum after `old_v` became `new_v`.
[[nodiscard]] constexpr std::uint16_t csum_update16(std::uint16_t check, std::uint16_t old_v,
                                                    std::uint16_t new_v) noexcept {
    const csum s = csum{static_cast<std::uint16_t>(~check)} + static_cast<std::uint16_t>(~old_v) + new_v;
    return static_cast<std::uint16_t>(~csum_fold(s));
}

/// RFC 1624 eqn. 3 for a 32-bit field (e.g. an IPv4 address).
[[nodiscard]] constexpr std::uint16_t csum_update32(std::uint16_t check, std::uint32_t old_v,
                                                    std::uint32_t new_v) noexcept {
    const std::uint64_t s = std::uint64_t{static_cast<std::uint16_t>(~check)} + (~old_v >> 16) +
                            (~old_v & 0xffff) + (new_v >> 16) + (new_v & 0xffff);
    return static_cast<std::uint16_t>(~csum_fold(s));
}

/// RFC 1624 eqn. 3 for an address change (32 bits for IPv4, 128 bits for IPv6).
[[nodiscard]] constexpr std::uint16_t csum_update_addr(std::uint16_t check, const inet_addr& old_a,
                                                       const inet_addr& new_a) noexcept {
    std::uint64_t s = static_cast<std::uint16_t>(~check);
    for (std::size_t i = 0; i < old_a.size(); i += 2) {
        s += static_cast<std::uint16_t>(~((old_a.bytes[i] << 8) | old_a.bytes[i + 1]));
        s += static_cast<std::uint16_t>((new_a.bytes[i] << 8) | new_a.bytes[i + 1]);
    }
    return static_cast<std::uint16_t>(~csum_fold(s));
}

/// The same update applied to a *partial* checksum (the uncomplemented pseudo-header sum a NIC will
/// complete, Linux CHECKSUM_PARTIAL): the stored value is a sum, not its complement.
[[nodiscard]] constexpr std::uint16_t csum_update_addr_partial(std::uint16_t partial, const inet_addr& old_a,
                                                               const inet_addr& new_a) noexcept {
    return static_cast<std::uint16_t>(~csum_update_addr(static_cast<std::uint16_t>(~partial), old_a, new_a));
}

// RFC 1624 §4: HC 0xDD2F, m 0x5555 → 0x3285 gives 0x0000 by eqn. 3 (eqn. 2 would give -0, 0xFFFF).
static_assert(csum_update16(0xdd2f, 0x5555, 0x3285) == 0x0000);

} // namespace ipvs
