// SPDX-License-Identifier: MIT
// Checksum verification of a parsed packet: IPv4 header, TCP/UDP/ICMP/ICMPv6 sums and the SCTP CRC32c.
#pragma once

#include <cstdint>
#include <span>

#include <ipvs/checksum.hpp>
#include <ipvs/crc32c.hpp>
#include <ipvs/parse.hpp>

namespace ipvs {

enum class verify_status : std::uint8_t {
    ok,
    bad,
    none,           ///< nothing to verify: an IPv4 UDP checksum of 0 means "no checksum" (RFC 768)
    not_verifiable, ///< a fragment (the sum covers the whole datagram) or a packet that did not parse
};

/// Verifies the IPv4 header checksum (RFC 791 §3.1); IPv6 has none (→ none).
[[nodiscard]] inline verify_status verify_ip_header(std::span<const std::byte> b,
                                                    const ip_info& ip) noexcept {
    if (ip.af != family::v4) return verify_status::none;
    if (ip.header_len < ipv4_hdr::min_len || ip.offset + ip.header_len > b.size())
        return verify_status::not_verifiable;
    return internet_checksum(b.subspan(ip.offset, ip.header_len)) == 0 ? verify_status::ok
                                                                       : verify_status::bad;
}

/// Verifies the L4 checksum of a packet that parsed `ok` (RFC 9293 §3.1, RFC 768, RFC 792, RFC 4443 §2.3,
/// RFC 4960 §6.8). Only whole datagrams can be verified.
[[nodiscard]] inline verify_status verify_l4(std::span<const std::byte> b, const packet_info& info) noexcept {
    const ip_info& ip = info.ip;
    const l4_info& l4 = info.l4;
    if (ip.is_fragment() || l4.length == 0 || l4.offset + l4.length > b.size())
        return verify_status::not_verifiable;
    const auto seg = b.subspan(l4.offset, l4.length);
    switch (ip.protocol) {
    case ipproto::udp:
        if (ip.af == family::v4 && load_be16(b.data() + l4.check_offset) == 0) return verify_status::none;
        [[fallthrough]];
    case ipproto::tcp:
    case ipproto::icmpv6:
        return internet_checksum(seg, pseudo_header(ip.saddr, ip.daddr, ip.protocol, l4.length)) == 0
                   ? verify_status::ok
                   : verify_status::bad;
    case ipproto::icmp:
        return internet_checksum(seg) == 0 ? verify_status::ok : verify_status::bad;
    case ipproto::sctp: {
        // CRC32c over the packet with the checksum field taken as zero; stored little-endian.
        const std::uint32_t stored = load_le<std::uint32_t>(b.data() + l4.check_offset);
        constexpr std::byte zeros[4] = {};
        std::uint32_t crc = crc32c(seg.first(sctp_hdr::check));
        crc = crc32c(std::span<const std::byte>(zeros, 4), crc);
        crc = crc32c(seg.subspan(sctp_hdr::check + 4), crc);
        return crc == stored ? verify_status::ok : verify_status::bad;
    }
    default:
        return verify_status::not_verifiable;
    }
}

} // namespace ipvs
