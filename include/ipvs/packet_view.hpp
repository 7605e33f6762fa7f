// SPDX-License-Identifier: MIT
// Packet views: any buffer type becomes a packet through packet_traits<P>; byte ranges need no code.
#pragma once

// Design
// ------
// Every stage (parse, rewrite, director) is a template over a packet type P and reaches the bytes
// only through `packet_traits<P>`:
//
//   static std::span<std::byte>       bytes(P&)        // required (const std::byte for read-only views)
//   static csum_state checksum_state(const P&)         // optional, default csum_state::none
//   static void set_checksum_state(P&, csum_state)     // optional, default: not recorded
//   static std::size_t l3_offset(const P&)             // optional, default 0 (buffer starts at IP)
//
// The primary template already serves contiguous ranges of std::byte / unsigned char / char
// (std::span<std::byte>, std::vector<std::uint8_t>, std::array, …), and it picks up members named
// `checksum_state()`, `set_checksum_state()` and `l3_offset()` when a type has them. A buffer you do not
// own (rte_mbuf, an AF_XDP frame, a pcap record) gets a specialization of packet_traits instead.
// Functions taking a packet start with `static_assert(packet_view<P>, …)` so a wrong type produces one
// sentence saying what to provide, not a page of concept diagnostics.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <span>
#include <type_traits>

#include <ipvs/config.hpp>

namespace ipvs {

/// What is known about a packet's L4 checksum, Linux's `ip_summed` (CLARIFICATIONS: four states).
enum class csum_state : std::uint8_t {
    none,        ///< CHECKSUM_NONE: nothing known; the field holds a full checksum (maybe wrong)
    unnecessary, ///< CHECKSUM_UNNECESSARY: the receiver verified it
    complete,    ///< CHECKSUM_COMPLETE: the device supplied the sum of the packet
    partial,     ///< CHECKSUM_PARTIAL: the field holds the pseudo-header sum; hardware completes it at TX
};

namespace detail {
template <class T>
concept byte_like = std::same_as<std::remove_cv_t<T>, std::byte> || std::same_as < std::remove_cv_t<T>,
unsigned char > || std::same_as<std::remove_cv_t<T>, char> || std::same_as<std::remove_cv_t<T>, std::uint8_t>;

template <class P>
concept contiguous_byte_range = std::ranges::contiguous_range<P> && std::ranges::sized_range<P> &&
    byte_like<std::ranges::range_value_t<P>>;
} // namespace detail

/// Adapter from a packet type to its bytes and metadata. Specialize it for buffer types you do not own.
template <class P>
struct packet_traits {
    /// Contiguous byte ranges work as they are.
    template <class Q>
    requires detail::contiguous_byte_range<Q>
    static auto bytes(Q& p) noexcept {
        auto* d = std::ranges::data(p);
        const auto n = static_cast<std::size_t>(std::ranges::size(p));
        if constexpr (std::is_const_v<std::remove_pointer_t<decltype(d)>>) {
            return std::span<const std::byte>(reinterpret_cast<const std::byte*>(d), n);
        } else {
            return std::span<std::byte>(reinterpret_cast<std::byte*>(d), n);
        }
    }
    template <class Q>
    requires requires(const Q& q) {
        { q.checksum_state() } -> std::convertible_to<csum_state>;
    }
    static csum_state checksum_state(const Q& p) noexcept { return p.checksum_state(); }
    template <class Q>
    requires requires(Q& q, csum_state s) { q.set_checksum_state(s); }
    static void set_checksum_state(Q& p, csum_state s) noexcept { p.set_checksum_state(s); }
    template <class Q>
    requires requires(const Q& q) {
        { q.l3_offset() } -> std::convertible_to<std::size_t>;
    }
    static std::size_t l3_offset(const Q& p) noexcept { return p.l3_offset(); }
};

namespace detail {
template <class P>
using traits_of = packet_traits<std::remove_cvref_t<P>>;
}

/// A type whose bytes can be read: `packet_traits<P>::bytes(p)` yields a span of (const) std::byte.
template <class P>
concept packet_view = requires(P& p) {
    { detail::traits_of<P>::bytes(p) } -> std::convertible_to<std::span<const std::byte>>;
};

/// A packet view whose bytes can be written (what rewrites need).
template <class P>
concept mutable_packet_view = packet_view<P> && requires(P& p) {
    { detail::traits_of<P>::bytes(p) } -> std::same_as<std::span<std::byte>>;
};

/// The bytes of packet `p`.
template <class P>
[[nodiscard]] auto packet_bytes(P& p) noexcept {
    IPVS_REQUIRE_PACKET_VIEW(P);
    return detail::traits_of<P>::bytes(p);
}

/// The view's checksum state, or csum_state::none when the type does not record one.
template <class P>
[[nodiscard]] csum_state checksum_state(const P& p) noexcept {
    if constexpr (requires { detail::traits_of<P>::checksum_state(p); }) {
        return detail::traits_of<P>::checksum_state(p);
    } else {
        return csum_state::none;
    }
}

/// Records a new checksum state on the view when the type supports it (otherwise a no-op).
template <class P>
void set_checksum_state(P& p, csum_state s) noexcept {
    if constexpr (requires { detail::traits_of<P>::set_checksum_state(p, s); }) {
        detail::traits_of<P>::set_checksum_state(p, s);
    }
}

/// Offset of the IP header in the view's bytes, or 0 when the type does not say.
template <class P>
[[nodiscard]] std::size_t l3_offset(const P& p) noexcept {
    if constexpr (requires { detail::traits_of<P>::l3_offset(p); }) {
        return detail::traits_of<P>::l3_offset(p);
    } else {
        return 0;
    }
}

} // namespace ipvs
