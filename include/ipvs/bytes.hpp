// SPDX-License-Identifier: MIT
// Big-endian field load/store helpers over raw bytes: no casts to packed structs, no alignment assumptions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ipvs {

/// Byte-swap helpers. Network order is big-endian; every multi-byte header field is read and written
/// through these, via memcpy, so a buffer may start at any address (STYLE: Seastar/DPDK lib/net).
namespace detail {
template <class T>
[[nodiscard]] constexpr T byteswap(T v) noexcept {
    static_assert(std::is_unsigned_v<T>, "byteswap takes an unsigned integer");
    if constexpr (sizeof(T) == 1) {
        return v;
    } else if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(v));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(v));
    } else {
        return static_cast<T>(__builtin_bswap64(v));
    }
}
template <class T>
[[nodiscard]] constexpr T to_be(T v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        return byteswap(v);
    } else {
        return v;
    }
}
} // namespace detail

/// Reads a big-endian unsigned integer of type T from `p` (any alignment).
template <class T>
[[nodiscard]] inline T load_be(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return detail::to_be(v);
}
/// Writes `v` big-endian at `p` (any alignment).
template <class T>
inline void store_be(std::byte* p, T v) noexcept {
    v = detail::to_be(v);
    std::memcpy(p, &v, sizeof v);
}
/// Reads a little-endian unsigned integer (CRC32c and SipHash inputs).
template <class T>
[[nodiscard]] inline T load_le(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) {
        v = detail::byteswap(v);
    }
    return v;
}

[[nodiscard]] inline std::uint8_t load_u8(const std::byte* p) noexcept {
    return std::to_integer<std::uint8_t>(*p);
}
[[nodiscard]] inline std::uint16_t load_be16(const std::byte* p) noexcept {
    return load_be<std::uint16_t>(p);
}
[[nodiscard]] inline std::uint32_t load_be32(const std::byte* p) noexcept {
    return load_be<std::uint32_t>(p);
}
inline void store_u8(std::byte* p, std::uint8_t v) noexcept { *p = std::byte{v}; }
inline void store_be16(std::byte* p, std::uint16_t v) noexcept { store_be<std::uint16_t>(p, v); }
inline void store_be32(std::byte* p, std::uint32_t v) noexcept { store_be<std::uint32_t>(p, v); }

} // namespace ipvs
