// SPDX-License-Identifier: MIT
// Tests for <ipvs/packet_view.hpp>: which types are views, defaults, foreign types through packet_traits.
#include <doctest/doctest.h>

#include <array>
#include <span>
#include <string>
#include <vector>

#include <ipvs/packet_view.hpp>

#include "support/views.hpp"

using namespace ipvs;

namespace {
struct with_members {
    std::vector<std::uint8_t> v;
    csum_state cs = csum_state::partial;
    std::size_t off = 14;
    auto data() { return v.data(); }
    auto data() const { return v.data(); }
    auto size() const { return v.size(); }
    auto begin() { return v.begin(); }
    auto end() { return v.end(); }
    auto begin() const { return v.begin(); }
    auto end() const { return v.end(); }
    csum_state checksum_state() const { return cs; }
    void set_checksum_state(csum_state s) { cs = s; }
    std::size_t l3_offset() const { return off; }
};
} // namespace

TEST_CASE("packet_view: contiguous byte ranges need no code") {
    static_assert(packet_view<std::span<std::byte>>);
    static_assert(mutable_packet_view<std::span<std::byte>>);
    static_assert(packet_view<std::span<const std::byte>>);
    static_assert(!mutable_packet_view<std::span<const std::byte>>);
    static_assert(mutable_packet_view<std::vector<std::uint8_t>>);
    static_assert(packet_view<const std::vector<std::uint8_t>>);
    static_assert(!mutable_packet_view<const std::vector<std::uint8_t>>);
    static_assert(mutable_packet_view<std::array<unsigned char, 64>>);
    static_assert(mutable_packet_view<std::string>);
    std::vector<std::uint8_t> v{1, 2, 3};
    auto b = packet_bytes(v);
    CHECK(b.size() == 3);
    CHECK(std::to_integer<int>(b[2]) == 3);
    b[0] = std::byte{9};
    CHECK(v[0] == 9);
}

TEST_CASE("packet_view: what is not a view") {
    static_assert(!packet_view<int>);
    static_assert(!packet_view<std::vector<int>>); // elements are not bytes
    static_assert(!packet_view<std::vector<std::uint16_t>>);
}

TEST_CASE("packet_view: checksum state and L3 offset default safely") {
    std::vector<std::uint8_t> v(20);
    CHECK(checksum_state(v) == csum_state::none);
    CHECK(l3_offset(v) == 0);
    set_checksum_state(v, csum_state::partial); // no place to record it: a no-op
    CHECK(checksum_state(v) == csum_state::none);
}

TEST_CASE("packet_view: members named checksum_state / l3_offset are detected") {
    with_members m;
    m.v.resize(60);
    static_assert(mutable_packet_view<with_members>);
    CHECK(checksum_state(m) == csum_state::partial);
    CHECK(l3_offset(m) == 14);
    set_checksum_state(m, csum_state::unnecessary);
    CHECK(m.cs == csum_state::unnecessary);
}

TEST_CASE("packet_view: a foreign type adapted only through packet_traits") {
    unsigned char raw[64] = {};
    test::foreign_frame f{raw, 64, 14, csum_state::complete};
    static_assert(mutable_packet_view<test::foreign_frame>);
    static_assert(packet_view<const test::foreign_frame>);
    CHECK(packet_bytes(f).size() == 64);
    CHECK(l3_offset(f) == 14);
    CHECK(checksum_state(f) == csum_state::complete);
    set_checksum_state(f, csum_state::none);
    CHECK(f.cs == csum_state::none);
    const auto& cf = f;
    static_assert(std::is_same_v<decltype(packet_bytes(cf)), std::span<const std::byte>>);
}
