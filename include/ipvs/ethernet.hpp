// SPDX-License-Identifier: MIT
// Ethernet II framing: where the IP header starts (up to two VLAN tags) and the MAC addresses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <ipvs/bytes.hpp>
#include <ipvs/headers.hpp>

namespace ipvs {

using mac_addr = std::array<std::uint8_t, 6>;

struct eth_info {
    std::uint16_t ethertype = 0; ///< the inner EtherType after VLAN tags
    std::size_t l3_offset = 0;   ///< where the L3 header starts
    mac_addr dst{}, src{};
};

/// Reads an Ethernet II header with 0–2 802.1Q / 802.1ad tags; nullopt when the frame is too short.
[[nodiscard]] inline std::optional<eth_info> parse_ethernet(std::span<const std::byte> f) noexcept {
    if (f.size() < eth_hdr::len) return std::nullopt;
    eth_info e;
    for (std::size_t i = 0; i < 6; ++i) {
        e.dst[i] = std::to_integer<std::uint8_t>(f[eth_hdr::dst + i]);
        e.src[i] = std::to_integer<std::uint8_t>(f[eth_hdr::src + i]);
    }
    std::size_t pos = eth_hdr::type;
    std::uint16_t type = load_be16(f.data() + pos);
    for (int tags = 0; (type == ethertype::vlan || type == ethertype::qinq) && tags < 2; ++tags) {
        if (f.size() < pos + 6) return std::nullopt;
        pos += 4;
        type = load_be16(f.data() + pos);
    }
    e.ethertype = type;
    e.l3_offset = pos + 2;
    return e;
}

/// Writes destination and source MAC addresses (a router's L2 rewrite).
inline void set_macs(std::span<std::byte> f, const mac_addr& dst, const mac_addr& src) noexcept {
    if (f.size() < eth_hdr::len) return;
    for (std::size_t i = 0; i < 6; ++i) {
        f[eth_hdr::dst + i] = std::byte{dst[i]};
        f[eth_hdr::src + i] = std::byte{src[i]};
    }
}

} // namespace ipvs
