// SPDX-License-Identifier: MIT
// Test support: the same packet bytes behind several packet view types (STYLE: every packet test runs over
// them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <ipvs/packet_view.hpp>

namespace ipvs::test {

/// A buffer type the library knows nothing about, adapted only through packet_traits below: a raw
/// pointer + length with its own L3 offset and checksum state, like an rte_mbuf or an AF_XDP descriptor.
struct foreign_frame {
    unsigned char* buf = nullptr;
    std::uint32_t len = 0;
    std::uint16_t l3 = 0;
    csum_state cs = csum_state::none;
};

} // namespace ipvs::test

template <>
struct ipvs::packet_traits<ipvs::test::foreign_frame> {
    static std::span<std::byte> bytes(ipvs::test::foreign_frame& f) noexcept {
        return {reinterpret_cast<std::byte*>(f.buf), f.len};
    }
    static std::span<const std::byte> bytes(const ipvs::test::foreign_frame& f) noexcept {
        return {reinterpret_cast<const std::byte*>(f.buf), f.len};
    }
    static std::size_t l3_offset(const ipvs::test::foreign_frame& f) noexcept { return f.l3; }
    static ipvs::csum_state checksum_state(const ipvs::test::foreign_frame& f) noexcept { return f.cs; }
    static void set_checksum_state(ipvs::test::foreign_frame& f, ipvs::csum_state s) noexcept { f.cs = s; }
};

namespace ipvs::test {

/// Holders: each owns storage for a frame (`l3` = where its IP header starts) and exposes `view()`.
/// Types that cannot carry an L3 offset hold the bytes from the IP header on; `l3_bytes()` gives back
/// exactly the IP packet to compare against.
struct vector_holder {
    std::vector<std::uint8_t> v;
    vector_holder(std::span<const std::uint8_t> frame, std::size_t l3) : v(frame.begin() + l3, frame.end()) {}
    std::vector<std::uint8_t>& view() { return v; }
    std::span<const std::uint8_t> l3_bytes() const { return v; }
    static constexpr const char* name = "std::vector<uint8_t>";
};

struct span_holder {
    std::vector<std::byte> store;
    std::span<std::byte> s;
    span_holder(std::span<const std::uint8_t> frame, std::size_t l3)
        : store(reinterpret_cast<const std::byte*>(frame.data()) + l3,
                reinterpret_cast<const std::byte*>(frame.data()) + frame.size()),
          s(store) {}
    std::span<std::byte>& view() { return s; }
    std::span<const std::uint8_t> l3_bytes() const {
        return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
    }
    static constexpr const char* name = "std::span<std::byte>";
};

/// The IP header at an odd address: every multi-byte load is misaligned.
struct odd_aligned_holder {
    std::unique_ptr<std::byte[]> store;
    std::span<std::byte> s;
    odd_aligned_holder(std::span<const std::uint8_t> frame, std::size_t l3)
        : store(new std::byte[frame.size() - l3 + 8]), s(store.get() + 1, frame.size() - l3) {
        std::memcpy(s.data(), frame.data() + l3, s.size());
    }
    std::span<std::byte>& view() { return s; }
    std::span<const std::uint8_t> l3_bytes() const {
        return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
    }
    static constexpr const char* name = "odd-aligned span";
};

/// The whole frame, L2 included, behind the foreign type with its L3 offset.
struct foreign_holder {
    std::vector<unsigned char> store;
    foreign_frame f;
    foreign_holder(std::span<const std::uint8_t> frame, std::size_t l3) : store(frame.begin(), frame.end()) {
        f.buf = store.data();
        f.len = static_cast<std::uint32_t>(store.size());
        f.l3 = static_cast<std::uint16_t>(l3);
    }
    foreign_frame& view() { return f; }
    std::span<const std::uint8_t> l3_bytes() const { return {store.data() + f.l3, store.size() - f.l3}; }
    static constexpr const char* name = "foreign type via packet_traits";
};

#define IPVS_TEST_VIEW_HOLDERS                                                                               \
    ipvs::test::vector_holder, ipvs::test::span_holder, ipvs::test::odd_aligned_holder,                      \
        ipvs::test::foreign_holder

} // namespace ipvs::test
