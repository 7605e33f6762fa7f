// SPDX-License-Identifier: MIT
// ICMP / ICMPv6 errors a director sends itself: time exceeded, fragmentation needed / packet too big,
// unreachable.
#pragma once

// Design
// ------
// `build_icmp_error(out, offending, params)` writes a complete IP packet into `out`, quoting the
// offending IP packet, laid out the way Linux's icmp_send / icmp6_send make them (spec §6.4):
// - IPv4 (RFC 792, RFC 1812 §4.3.2.3): TOS 0xc0, TTL 64, DF clear, the caller's identification
//   (Linux draws it at random), the quote cut so the whole error is at most 576 bytes;
//   fragmentation needed carries 16 zero bits then the 16-bit next-hop MTU (RFC 1191).
// - IPv6 (RFC 4443 §2.4(c)): traffic class 0, the caller's flow label, hop limit 64, the quote cut so
//   the error fits the minimum MTU of 1280 bytes; packet too big carries the 32-bit MTU.
// The source is the address the offending packet was sent to (the VIP); the destination its source.
// Time exceeded quotes the packet as it arrived; frag-needed quotes it after the TTL decrement.

#include <cstddef>
#include <cstdint>
#include <span>

#include <ipvs/checksum.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/parse.hpp>

namespace ipvs {

struct icmp_error_params {
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint32_t mtu = 0;          ///< frag-needed / packet-too-big only
    std::uint16_t ipv4_id = 0;      ///< outer IPv4 identification
    std::uint32_t flow_label = 0;   ///< outer IPv6 flow label (20 bits)
    const inet_addr* src = nullptr; ///< error source; default: the offending packet's destination
};

/// Largest error packet per family (RFC 1812 §4.3.2.3: 576; RFC 4443 §2.4(c): the IPv6 minimum MTU).
inline constexpr std::size_t icmp_error_max_v4 = 576;
inline constexpr std::size_t icmp_error_max_v6 = 1280;

/// Writes the ICMP error for the IP packet `offending` (its header at offset 0, described by `ip`) into
/// `out`. Returns the error's length, or 0 when `out` is too small for the header and 8 quoted bytes.
[[nodiscard]] inline std::size_t build_icmp_error(std::span<std::byte> out,
                                                  std::span<const std::byte> offending, const ip_info& ip,
                                                  const icmp_error_params& p) noexcept {
    const bool v4 = ip.af == family::v4;
    const std::size_t hdr = v4 ? ipv4_hdr::min_len : ipv6_hdr::len;
    const std::size_t limit = v4 ? icmp_error_max_v4 : icmp_error_max_v6;
    std::size_t quote = offending.size() < ip.total_len ? offending.size() : ip.total_len;
    if (hdr + icmp_hdr::len + quote > limit) quote = limit - hdr - icmp_hdr::len;
    const std::size_t total = hdr + icmp_hdr::len + quote;
    if (out.size() < hdr + icmp_hdr::len + (quote < 8 ? quote : 8) || out.size() < total) return 0;

    const inet_addr src = p.src ? *p.src : ip.daddr;
    const inet_addr& dst = ip.saddr;
    std::byte* o = out.data();
    std::byte* m = o + hdr;
    store_u8(m + icmp_hdr::type, p.type);
    store_u8(m + icmp_hdr::code, p.code);
    store_be16(m + icmp_hdr::check, 0);
    store_be32(m + 4, v4 ? (p.mtu & 0xffff) : p.mtu); // unused, or the MTU
    for (std::size_t i = 0; i < quote; ++i) m[icmp_hdr::len + i] = offending[i];
    const std::size_t mlen = icmp_hdr::len + quote;
    const auto msg = std::span<const std::byte>(m, mlen);
    if (v4) {
        store_be16(m + icmp_hdr::check, internet_checksum(msg));
        store_u8(o + ipv4_hdr::ver_ihl, 0x45);
        store_u8(o + ipv4_hdr::tos, 0xc0); // internetwork control, as Linux's icmp_send
        store_be16(o + ipv4_hdr::total_len, static_cast<std::uint16_t>(total));
        store_be16(o + ipv4_hdr::id, p.ipv4_id);
        store_be16(o + ipv4_hdr::frag, 0);
        store_u8(o + ipv4_hdr::ttl, 64);
        store_u8(o + ipv4_hdr::protocol, ipproto::icmp);
        src.store(o + ipv4_hdr::saddr);
        dst.store(o + ipv4_hdr::daddr);
        store_be16(o + ipv4_hdr::check, 0);
        store_be16(o + ipv4_hdr::check, internet_checksum(std::span<const std::byte>(o, hdr)));
    } else {
        store_be16(m + icmp_hdr::check,
                   internet_checksum(
                       msg, pseudo_header(src, dst, ipproto::icmpv6, static_cast<std::uint32_t>(mlen))));
        store_be32(o, (6U << 28) | (p.flow_label & 0xfffff));
        store_be16(o + ipv6_hdr::payload_len, static_cast<std::uint16_t>(mlen));
        store_u8(o + ipv6_hdr::next_header, ipproto::icmpv6);
        store_u8(o + ipv6_hdr::hop_limit, 64);
        src.store(o + ipv6_hdr::saddr);
        dst.store(o + ipv6_hdr::daddr);
    }
    return total;
}

/// ICMP time exceeded in transit (v4 11/0, v6 3/0) for a packet whose TTL / hop limit ran out.
[[nodiscard]] inline std::size_t build_time_exceeded(std::span<std::byte> out,
                                                     std::span<const std::byte> offending, const ip_info& ip,
                                                     std::uint16_t ipv4_id = 0,
                                                     std::uint32_t flow_label = 0) noexcept {
    icmp_error_params p;
    p.type = ip.af == family::v4 ? icmp_type::time_exceeded : icmpv6_type::time_exceeded;
    p.ipv4_id = ipv4_id;
    p.flow_label = flow_label;
    return build_icmp_error(out, offending, ip, p);
}

/// Fragmentation needed (v4 3/4, RFC 1191) / packet too big (v6 2/0, RFC 8201) with the path MTU.
[[nodiscard]] inline std::size_t build_frag_needed(std::span<std::byte> out,
                                                   std::span<const std::byte> offending, const ip_info& ip,
                                                   std::uint32_t mtu, std::uint16_t ipv4_id = 0,
                                                   std::uint32_t flow_label = 0) noexcept {
    icmp_error_params p;
    p.type = ip.af == family::v4 ? icmp_type::dest_unreach : icmpv6_type::packet_too_big;
    p.code = ip.af == family::v4 ? icmp_type::code_frag_needed : 0;
    p.mtu = mtu;
    p.ipv4_id = ipv4_id;
    p.flow_label = flow_label;
    return build_icmp_error(out, offending, ip, p);
}

/// Port unreachable (v4 3/3, v6 1/4): what ip_vs_leave answers when a service has no usable dest.
[[nodiscard]] inline std::size_t build_port_unreachable(std::span<std::byte> out,
                                                        std::span<const std::byte> offending,
                                                        const ip_info& ip, std::uint16_t ipv4_id = 0,
                                                        std::uint32_t flow_label = 0) noexcept {
    icmp_error_params p;
    p.type = ip.af == family::v4 ? icmp_type::dest_unreach : icmpv6_type::dest_unreach;
    p.code = ip.af == family::v4 ? icmp_type::code_port_unreach : icmpv6_type::code_port_unreach;
    p.ipv4_id = ipv4_id;
    p.flow_label = flow_label;
    return build_icmp_error(out, offending, ip, p);
}

} // namespace ipvs
