// SPDX-License-Identifier: MIT
// Tunnel forwarding (LVS-TUN): IPIP, IPv6-in-IPv6, GUE and GRE encapsulation written into the caller's
// headroom.
#pragma once

// Design
// ------
// The datapath keeps the packet's bytes in a buffer with headroom in front of the IP header (DPDK
// mbufs have 128 bytes, AF_XDP frames are configurable). `encapsulate(pkt, inner_off, params)` writes
// the outer headers so they end exactly at `inner_off` and returns where the outer IP header begins;
// the datapath then puts its L2 header in front of that. Nothing moves, nothing allocates.
//
//   [ headroom ........ | outer IP | UDP | GUE |  inner IP packet (TTL already decremented) ]
//                       ^ returned offset       ^ inner_off
//
// Outer headers, as Linux's ip_vs_tunnel_xmit builds them (spec §6.5):
// - IPv4: IHL 5, TOS = inner DS field with ECN encapsulated (RFC 6040 normal mode: CE becomes ECT(0)),
//   DF copied from an inner IPv4 header when `pmtu_disc` (never for inner IPv6), TTL = inner TTL /
//   hop limit, protocol 4 / 41 / 17 (GUE) / 47 (GRE); the identification is the caller's (Linux draws
//   it at random per boot), so a replay can reproduce a recording exactly.
// - IPv6: traffic class as above, flow label 0, hop limit = inner TTL, next header as above.
// - GUE (draft-ietf-intarea-gue): UDP to `port` from the caller's `gue_sport` (Linux: a flow-hash port
//   in 32768–60999), then the 4-byte GUE header `0, proto, 0, 0`; the UDP checksum is filled only with
//   `csum` or `remcsum` (a forwarded packet never carries the REMCSUM option, so both are identical).
// - GRE (RFC 2784): flags C with `csum` (then checksum + reserved), protocol 0x0800 / 0x86DD.

#include <cstddef>
#include <cstdint>

#include <ipvs/checksum.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/packet_view.hpp>
#include <ipvs/parse.hpp>

namespace ipvs {

struct tun_params {
    tun_info tun{};              ///< type, GUE port, csum / remcsum (as the dest is configured)
    inet_addr src{};             ///< outer source: the director's address towards the real server
    inet_addr dst{};             ///< outer destination: the real server
    std::uint16_t ipv4_id = 0;   ///< outer IPv4 identification
    std::uint16_t gue_sport = 0; ///< GUE outer UDP source port
    bool pmtu_disc = true;       ///< sysctl pmtu_disc: copy DF from an inner IPv4 header
};

enum class tun_status : std::uint8_t {
    ok,
    no_headroom,     ///< fewer than tun_overhead() bytes in front of the inner packet
    bad_inner,       ///< the inner packet at inner_off is not a parseable IP header
    family_mismatch, ///< outer src and dst of different families
};

/// Bytes the encapsulation adds in front of the inner packet (outer IP + UDP/GUE or GRE).
[[nodiscard]] constexpr std::size_t tun_overhead(const tun_params& p) noexcept {
    std::size_t n = p.dst.is_v4() ? ipv4_hdr::min_len : ipv6_hdr::len;
    if (p.tun.type == tun_type::gue) n += udp_hdr::len + 4;
    if (p.tun.type == tun_type::gre) n += p.tun.csum ? 8 : 4;
    return n;
}

namespace detail {
/// RFC 6040 §4.1 normal mode: outer DSCP = inner DSCP; ECN copied, except CE which becomes ECT(0).
constexpr std::uint8_t ecn_encapsulate(std::uint8_t inner_ds) noexcept {
    const std::uint8_t ecn = inner_ds & 3;
    return static_cast<std::uint8_t>((inner_ds & ~3) | (ecn == 3 ? 2 : ecn));
}
} // namespace detail

/// The result of encapsulate(): where the outer IP header begins.
struct tun_result {
    tun_status status = tun_status::bad_inner;
    std::size_t outer_offset = 0;
};

/// Writes the outer headers for the inner IP packet at `inner_off` of `pkt` (the bytes before it are
/// headroom). The inner packet must already be forwarded (TTL decremented) and must be the last thing
/// in the buffer (its length is the buffer's remainder, as the inner IP header says).
template <class P>
[[nodiscard]] tun_result encapsulate(P& pkt, std::size_t inner_off, const tun_params& p) noexcept {
    IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
    auto b = packet_bytes(pkt);
    tun_result res;
    if (p.src.af != p.dst.af) return res.status = tun_status::family_mismatch, res;
    ip_info inner;
    if (detail::parse_ip(b, inner_off, b.size(), false, inner) != parse_status::ok)
        return res.status = tun_status::bad_inner, res;
    const std::size_t over = tun_overhead(p);
    if (inner_off < over) return res.status = tun_status::no_headroom, res;

    const std::size_t inner_len = inner.total_len;
    const std::uint8_t inner_proto = inner.af == family::v4 ? ipproto::ipip : ipproto::ipv6;
    const std::size_t outer_ip_len = p.dst.is_v4() ? ipv4_hdr::min_len : ipv6_hdr::len;
    const std::size_t o = inner_off - over;
    std::byte* out = b.data() + o;
    std::byte* enc = out + outer_ip_len;
    const std::size_t enc_len = over - outer_ip_len;
    std::uint8_t next = inner_proto;

    if (p.tun.type == tun_type::gue) {
        next = ipproto::udp;
        const auto ulen = static_cast<std::uint16_t>(udp_hdr::len + 4 + inner_len);
        store_be16(enc + udp_hdr::sport, p.gue_sport);
        store_be16(enc + udp_hdr::dport, p.tun.port);
        store_be16(enc + udp_hdr::length, ulen);
        store_be16(enc + udp_hdr::check, 0);
        store_be32(enc + udp_hdr::len, std::uint32_t{inner_proto} << 16); // GUE: ver 0, C 0, hlen 0, proto
        if (p.tun.csum || p.tun.remcsum) {
            std::uint16_t c = internet_checksum(std::span<const std::byte>(enc, ulen),
                                                pseudo_header(p.src, p.dst, ipproto::udp, ulen));
            store_be16(enc + udp_hdr::check, c == 0 ? 0xffff : c);
        }
    } else if (p.tun.type == tun_type::gre) {
        next = ipproto::gre;
        store_be16(enc, p.tun.csum ? 0x8000 : 0); // C bit, version 0
        store_be16(enc + 2, inner.af == family::v4 ? ethertype::ipv4 : ethertype::ipv6);
        if (p.tun.csum) {
            store_be32(enc + 4, 0);
            store_be16(enc + 4, internet_checksum(std::span<const std::byte>(enc, enc_len + inner_len)));
        }
    }

    const std::uint8_t tos = detail::ecn_encapsulate(inner.tos);
    if (p.dst.is_v4()) {
        store_u8(out + ipv4_hdr::ver_ihl, 0x45);
        store_u8(out + ipv4_hdr::tos, tos);
        store_be16(out + ipv4_hdr::total_len, static_cast<std::uint16_t>(over + inner_len));
        store_be16(out + ipv4_hdr::id, p.ipv4_id);
        const bool df = p.pmtu_disc && inner.af == family::v4 && inner.df;
        store_be16(out + ipv4_hdr::frag, df ? ipv4_hdr::flag_df : 0);
        store_u8(out + ipv4_hdr::ttl, inner.ttl);
        store_u8(out + ipv4_hdr::protocol, next);
        p.src.store(out + ipv4_hdr::saddr);
        p.dst.store(out + ipv4_hdr::daddr);
        store_be16(out + ipv4_hdr::check, 0);
        store_be16(out + ipv4_hdr::check,
                   internet_checksum(std::span<const std::byte>(out, ipv4_hdr::min_len)));
    } else {
        store_be32(out, (6U << 28) | (std::uint32_t{tos} << 20)); // flow label 0
        store_be16(out + ipv6_hdr::payload_len, static_cast<std::uint16_t>(enc_len + inner_len));
        store_u8(out + ipv6_hdr::next_header, next);
        store_u8(out + ipv6_hdr::hop_limit, inner.ttl);
        p.src.store(out + ipv6_hdr::saddr);
        p.dst.store(out + ipv6_hdr::daddr);
    }
    res.status = tun_status::ok;
    res.outer_offset = o;
    return res;
}

} // namespace ipvs
