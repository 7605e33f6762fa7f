// SPDX-License-Identifier: MIT
// The symmetric flow hash: both directions of a NATed flow hash the client endpoint and meet on one shard.
#pragma once

// Design
// ------
// Which tuple each direction hashes (spec §3.2–§3.3: the kernel hashes a connection only by
// (protocol, caddr, cport) and finds replies through the same bucket):
//
//   client → VIP  (saddr=C, sport=c, daddr=V, dport=v)  hashes (proto, C, c) = (proto, saddr, sport)
//   RS → client   (saddr=D, sport=d, daddr=C, dport=c)  hashes (proto, C, c) = (proto, daddr, dport)
//
// NAT rewrites V:v ↔ D:d but never the client's side (the library has no FULLNAT in the table), so the
// client endpoint is the one part both directions carry unchanged. `hash_inbound` / `hash_outbound`
// take the packet's own fields and pick the right half; use them for shard steering (share-nothing:
// one conn_table per core, packets steered in software by `shard_of`) and the table uses the same
// function for its index, so a flow's two directions are one probe sequence apart from nothing.
//
// Bit budget of the 64-bit value (so the shard choice and the table's slot choice stay independent):
//   bits 63..32  conn_table group index (multiply-shift over the group count)
//   bits 31..0   shard index (multiply-shift over the shard count: mostly bits 31..24)
//   bits  7..0   conn_table tag byte (a tag match is a 1-in-255 coincidence for other keys)
//
// The mixing is two rounds of a 64×64→128-bit multiply folded to 64 bits (the "mum" step of wyhash),
// keyed by a 128-bit seed: every input bit reaches every output bit. Choose the seed at random per
// process (HashDoS); two directors that must agree on shards share it.
// Deviation from the kernel: the kernel uses jhash with a 32-bit random seed; `kernel_conn_hash`
// reproduces it (spec §3.2, with its worked examples as tests) for anyone who needs the kernel's
// bucket numbers, but the table uses the faster keyed multiply hash.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <ipvs/addr.hpp>

namespace ipvs {

namespace detail {
__extension__ using uint128_t = unsigned __int128;

/// 64×64→128 multiply, folded (wyhash's mum).
[[nodiscard]] constexpr std::uint64_t mum(std::uint64_t a, std::uint64_t b) noexcept {
    const uint128_t r = static_cast<uint128_t>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}
[[nodiscard]] inline std::uint64_t load_u64(const std::uint8_t* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
[[nodiscard]] inline std::uint32_t load_u32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
// Odd constants from wyhash's default secret.
inline constexpr std::uint64_t mix_k0 = 0xa0761d6478bd642fULL;
inline constexpr std::uint64_t mix_k1 = 0xe7037ed1a0b428dbULL;
inline constexpr std::uint64_t mix_k2 = 0x8ebc6af09c88c6e3ULL;
} // namespace detail

/// The seeded client-endpoint hash (the default `Hash` policy of conn_table).
struct flow_hasher {
    std::uint64_t seed0 = 0x243f6a8885a308d3ULL; ///< fixed default; pass a random seed in production
    std::uint64_t seed1 = 0x13198a2e03707344ULL;

    /// IPv4: the address as its 4 network-order bytes.
    [[nodiscard]] std::uint64_t operator()(std::uint8_t proto, const std::array<std::uint8_t, 4>& caddr,
                                           std::uint16_t cport) const noexcept {
        const std::uint64_t k = (std::uint64_t{detail::load_u32(caddr.data())} << 32) |
                                (std::uint64_t{cport} << 16) | (std::uint64_t{proto} << 8) | 4U;
        return detail::mum(detail::mum(k ^ seed0, detail::mix_k0 ^ seed1), detail::mix_k1);
    }
    /// IPv6: the 16 network-order bytes.
    [[nodiscard]] std::uint64_t operator()(std::uint8_t proto, const std::array<std::uint8_t, 16>& caddr,
                                           std::uint16_t cport) const noexcept {
        const std::uint64_t a = detail::load_u64(caddr.data());
        const std::uint64_t b = detail::load_u64(caddr.data() + 8);
        const std::uint64_t k = (std::uint64_t{cport} << 16) | (std::uint64_t{proto} << 8) | 6U;
        const std::uint64_t h = detail::mum(a ^ seed0, b ^ seed1);
        return detail::mum(detail::mum(h ^ k, detail::mix_k2 ^ seed0), detail::mix_k1);
    }
    /// Either family, from the library's address type.
    [[nodiscard]] std::uint64_t operator()(std::uint8_t proto, const inet_addr& caddr,
                                           std::uint16_t cport) const noexcept {
        if (caddr.is_v4()) {
            std::array<std::uint8_t, 4> a{caddr.bytes[0], caddr.bytes[1], caddr.bytes[2], caddr.bytes[3]};
            return (*this)(proto, a, cport);
        }
        return (*this)(proto, caddr.bytes, cport);
    }

    /// Client → VIP packet: the client is the source.
    template <class Addr>
    [[nodiscard]] std::uint64_t hash_inbound(std::uint8_t proto, const Addr& saddr, std::uint16_t sport,
                                             const Addr& /*daddr*/, std::uint16_t /*dport*/) const noexcept {
        return (*this)(proto, saddr, sport);
    }
    /// Real server → client packet: the client is the destination.
    template <class Addr>
    [[nodiscard]] std::uint64_t hash_outbound(std::uint8_t proto, const Addr& /*saddr*/,
                                              std::uint16_t /*sport*/, const Addr& daddr,
                                              std::uint16_t dport) const noexcept {
        return (*this)(proto, daddr, dport);
    }
};

/// Shard (core) for a flow hash among `n_shards` (multiply-shift on the low 32 bits; see the bit budget).
[[nodiscard]] constexpr std::uint32_t shard_of(std::uint64_t flow_hash, std::uint32_t n_shards) noexcept {
    return static_cast<std::uint32_t>((std::uint64_t{static_cast<std::uint32_t>(flow_hash)} * n_shards) >>
                                      32);
}

// ---------------------------------------------------------------------------------------------------
// The kernel's connection hash (spec §3.2), for bucket-exact comparisons. lookup3 (Bob Jenkins, public
// domain) as the kernel's jhash.h uses it.

// clang-format off
namespace detail {
[[nodiscard]] constexpr std::uint32_t rol32(std::uint32_t x, int k) noexcept {
    return (x << k) | (x >> (32 - k));
}
constexpr void jhash_mix(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c) noexcept {
    a -= c; a ^= rol32(c, 4);  c += b;
    b -= a; b ^= rol32(a, 6);  a += c;
    c -= b; c ^= rol32(b, 8);  b += a;
    a -= c; a ^= rol32(c, 16); c += b;
    b -= a; b ^= rol32(a, 19); a += c;
    c -= b; c ^= rol32(b, 4);  b += a;
}
constexpr void jhash_final(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c) noexcept {
    c ^= b; c -= rol32(b, 14);
    a ^= c; a -= rol32(c, 11);
    b ^= a; b -= rol32(a, 25);
    c ^= b; c -= rol32(b, 16);
    a ^= c; a -= rol32(c, 4);
    b ^= a; b -= rol32(a, 14);
    c ^= b; c -= rol32(b, 24);
}
inline constexpr std::uint32_t jhash_initval = 0xdeadbeefU;
} // namespace detail
// clang-format on

/// lookup3 hashlittle over bytes, words read little-endian (the kernel's jhash() on x86-64).
[[nodiscard]] constexpr std::uint32_t jhash(const std::uint8_t* k, std::size_t length,
                                            std::uint32_t initval) noexcept {
    std::uint32_t a, b, c;
    a = b = c = detail::jhash_initval + static_cast<std::uint32_t>(length) + initval;
    auto le32 = [](const std::uint8_t* p) {
        return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
               (std::uint32_t{p[3]} << 24);
    };
    while (length > 12) {
        a += le32(k);
        b += le32(k + 4);
        c += le32(k + 8);
        detail::jhash_mix(a, b, c);
        length -= 12;
        k += 12;
    }
    if (length == 0) return c;
    // The last 1..12 bytes, byte by byte into c, b, a (jhash.h's fall-through switch).
    for (std::size_t i = length; i-- > 0;) {
        const std::uint32_t v = std::uint32_t{k[i]} << (8 * (i % 4));
        if (i >= 8)
            c += v;
        else if (i >= 4)
            b += v;
        else
            a += v;
    }
    detail::jhash_final(a, b, c);
    return c;
}

/// jhash_3words(a, b, c, initval).
[[nodiscard]] constexpr std::uint32_t jhash_3words(std::uint32_t a, std::uint32_t b, std::uint32_t c,
                                                   std::uint32_t initval) noexcept {
    const std::uint32_t iv = initval + detail::jhash_initval + (3U << 2);
    a += iv;
    b += iv;
    c += iv;
    detail::jhash_final(a, b, c);
    return c;
}

/// The kernel's unmasked connection hash of (proto, caddr, cport) with seed `rnd` and the netns term 0
/// (spec §3.2): "raw" values are the network-order bytes read as a little-endian integer.
[[nodiscard]] inline std::uint32_t kernel_conn_hash(std::uint32_t rnd, std::uint8_t proto,
                                                    const inet_addr& caddr, std::uint16_t cport) noexcept {
    const std::uint32_t raw_port =
        static_cast<std::uint32_t>(cport >> 8) | (static_cast<std::uint32_t>(cport & 0xff) << 8);
    const auto le32 = [](const std::uint8_t* p) {
        return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
               (std::uint32_t{p[3]} << 24);
    };
    const std::uint32_t a = caddr.is_v4() ? le32(caddr.bytes.data()) : jhash(caddr.bytes.data(), 16, rnd);
    return jhash_3words(a, raw_port, proto, rnd);
}

} // namespace ipvs
