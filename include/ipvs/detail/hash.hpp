// SPDX-License-Identifier: MIT
// The kernel's scheduler hashes: hash_32 (sh, dh, lblc, lblcr) and hsiphash of one u32 (mh).
#pragma once

// Design
// ------
// * `hash_32(v, bits)` is the kernel's multiplicative hash (include/linux/hash.h, spec §2.9/§11):
//   multiply by GOLDEN_RATIO_32 modulo 2^32 and keep the top `bits` bits.
// * `siphash<C, D>(key, bytes)` is SipHash-C-D (Aumasson & Bernstein) over a byte string with a
//   128-bit key given as two 64-bit words. The round counts are template parameters so the same code
//   that mh uses as SipHash-1-3 is validated against the published SipHash-2-4 vectors (spec §11).
// * `hsiphash_u32(key, v)` is what the kernel's `hsiphash()` computes for a 4-byte message on a 64-bit
//   little-endian kernel (spec §2.13): SipHash-1-3 of the four bytes of `v` in CPU order, read as
//   little-endian, truncated to the low 32 bits. It is the same function as
//   `siphash<1, 3>` over `v`'s little-endian bytes, with the single final block written out directly.
// Deviation: 32-bit kernels use HalfSipHash-1-3 and big-endian kernels read `v` byte-swapped; neither
// is provided (the recorded kernels are x86-64).
// Everything is constexpr, noexcept and allocation-free.

#include <cstddef>
#include <cstdint>
#include <span>

namespace ipvs::detail {

/// GOLDEN_RATIO_32 of include/linux/hash.h.
inline constexpr std::uint32_t golden_ratio_32 = 0x61C88647U;

/// The kernel's hash_32(): (v · 0x61C88647 mod 2^32) >> (32 − bits), for bits in 1..32 (0 gives 0).
[[nodiscard]] constexpr std::uint32_t hash_32(std::uint32_t v, unsigned bits) noexcept {
    if (bits == 0) return 0; // a shift by 32 would be undefined
    return static_cast<std::uint32_t>(v * golden_ratio_32) >> (32U - bits);
}

/// A SipHash key as the kernel's siphash_key_t / 64-bit hsiphash_key_t holds it: two 64-bit words.
struct siphash_key {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
};

/// The four-word SipHash state, with the two kinds of rounds counted by the caller.
struct sip_state {
    std::uint64_t v0, v1, v2, v3;

    // Initialisation constants "somepseudorandomlygeneratedbytes" (the SipHash paper, §2).
    constexpr explicit sip_state(siphash_key key) noexcept
        : v0(0x736f6d6570736575ULL ^ key.k0), v1(0x646f72616e646f6dULL ^ key.k1),
          v2(0x6c7967656e657261ULL ^ key.k0), v3(0x7465646279746573ULL ^ key.k1) {}

    static constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept {
        return (x << b) | (x >> (64 - b));
    }

    constexpr void round() noexcept {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
    template <int Rounds>
    constexpr void compress(std::uint64_t m) noexcept {
        v3 ^= m;
        for (int i = 0; i < Rounds; ++i) round();
        v0 ^= m;
    }
    template <int Rounds>
    [[nodiscard]] constexpr std::uint64_t finalize() noexcept {
        v2 ^= 0xff;
        for (int i = 0; i < Rounds; ++i) round();
        return v0 ^ v1 ^ v2 ^ v3;
    }
};

/// SipHash-C-D of `msg` under `key` (the 64-bit output variant).
template <int CRounds, int DRounds>
[[nodiscard]] constexpr std::uint64_t siphash(siphash_key key, std::span<const std::uint8_t> msg) noexcept {
    static_assert(CRounds >= 1 && DRounds >= 1, "SipHash needs at least one round of each kind");
    sip_state s(key);
    const std::size_t full = msg.size() & ~std::size_t{7};
    for (std::size_t i = 0; i < full; i += 8) {
        std::uint64_t m = 0;
        for (std::size_t k = 0; k < 8; ++k) m |= std::uint64_t{msg[i + k]} << (8 * k); // little-endian
        s.compress<CRounds>(m);
    }
    // Final block: the remaining 0..7 bytes, with the message length (mod 256) in the top byte.
    std::uint64_t b = static_cast<std::uint64_t>(msg.size() & 0xff) << 56;
    for (std::size_t k = 0; full + k < msg.size(); ++k) b |= std::uint64_t{msg[full + k]} << (8 * k);
    s.compress<CRounds>(b);
    return s.finalize<DRounds>();
}

/// The kernel's 64-bit hsiphash() of the 4-byte u32 `v` (spec §2.13): SipHash-1-3, low 32 bits.
[[nodiscard]] constexpr std::uint32_t hsiphash_u32(siphash_key key, std::uint32_t v) noexcept {
    sip_state s(key);
    s.compress<1>((std::uint64_t{4} << 56) | v); // the only block: length 4, then v's bytes
    return static_cast<std::uint32_t>(s.finalize<3>());
}

// spec §11 / §2.13 vectors, checked at compile time as well as in tests/sched/hash_test.cpp.
static_assert(hash_32(0xc0a80101U, 8) == 136 && hash_32(0xc0a80101U, 10) == 547);
static_assert(hsiphash_u32({2654435761U, 2654435761U}, 0) == 0x1d5a77c2U);

} // namespace ipvs::detail
