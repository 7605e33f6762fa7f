// SPDX-License-Identifier: MIT
// One parse of a packet: IPv4/IPv6 (with extension headers), TCP/UDP/SCTP/ICMP, offsets and facts, or a
// specific error.
#pragma once

// Design
// ------
// `parse(p)` reads the packet once, from the view's L3 offset, and returns a `parse_result`: a status
// and the `packet_info` later stages use (offsets of every header, addresses, ports, flags, the
// checksum field's position, fragment facts, and for ICMP errors the quoted inner header). It never
// writes, never allocates, and reads only inside the buffer: every length is checked against what is
// really there before it is used.
//
// Boundaries. The IP header's own length (IPv4 total length, IPv6 40 + payload length) bounds
// everything above it, so Ethernet trailer padding is excluded; a length that claims more than the
// buffer holds is an error. For ICMP errors the quote is bounded by the ICMP payload instead, and is
// allowed to be cut short (RFC 792 quotes the header + 64 bits; RFC 4443 "as much as fits") — only the
// inner header and its ports must be present, as in the kernel's ip_vs_in_icmp.
//
// Statuses: `ok`, two that are not errors but stop at L3 (`fragment`: a non-first fragment has no L4
// header; `unknown_protocol`), and one per malformed class. `info` is filled as far as parsing got,
// so a caller can still log addresses of a packet it drops.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include <ipvs/addr.hpp>
#include <ipvs/bytes.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/packet_view.hpp>

namespace ipvs {

enum class parse_status : std::uint8_t {
    ok,
    fragment,         ///< a non-first fragment: L3 facts only (the datapath reassembles)
    unknown_protocol, ///< L3 fine, upper layer not one IPVS parses (ESP, GRE, no-next-header, …)
    // L3
    truncated_l3,              ///< fewer bytes than the fixed IP header (or L3 offset past the end)
    bad_ip_version,            ///< version nibble neither 4 nor 6
    bad_ihl,                   ///< IPv4 IHL < 5
    ihl_past_end,              ///< IPv4 header (with options) longer than the packet or its total length
    total_length_past_end,     ///< IPv4 total length / IPv6 payload length beyond the buffer
    total_length_below_header, ///< IPv4 total length smaller than the header
    bad_fragment,              ///< fragment offset + length beyond 65535
    ext_header_truncated,      ///< an IPv6 extension header runs past the packet
    ext_header_limit,          ///< more extension headers than the bounded walk allows
    ext_header_order,          ///< hop-by-hop options not directly after the IPv6 header (RFC 8200 §4.1)
    // L4
    truncated_l4,          ///< fewer bytes than the minimal L4 header
    bad_tcp_doff,          ///< TCP data offset < 5
    tcp_doff_past_end,     ///< TCP header (with options) longer than the segment
    bad_udp_length,        ///< UDP length < 8 or beyond the IP payload
    sctp_no_chunk,         ///< SCTP packet without any chunk
    sctp_bad_chunk_length, ///< a chunk length < 4 or past the end
    icmp_bad_quote,        ///< ICMP error whose quoted header (or its ports) is malformed or cut short
};

/// A short English name for a status (for logs and drop counters).
[[nodiscard]] constexpr const char* to_string(parse_status s) noexcept {
    constexpr const char* names[] = {"ok",
                                     "fragment",
                                     "unknown protocol",
                                     "truncated IP header",
                                     "bad IP version",
                                     "IPv4 IHL < 5",
                                     "IPv4 header past end",
                                     "IP length past end",
                                     "IPv4 total length below header",
                                     "bad fragment offset",
                                     "IPv6 extension header truncated",
                                     "too many IPv6 extension headers",
                                     "IPv6 hop-by-hop not first",
                                     "truncated L4 header",
                                     "TCP data offset < 5",
                                     "TCP header past end",
                                     "bad UDP length",
                                     "SCTP without chunks",
                                     "bad SCTP chunk length",
                                     "bad ICMP quote"};
    const auto i = static_cast<std::size_t>(s);
    return i < std::size(names) ? names[i] : "?";
}

/// IP-layer facts. Offsets are from the start of the view's bytes.
struct ip_info {
    family af = family::v4;
    std::uint8_t protocol = 0;    ///< upper-layer protocol (after IPv6 extension headers)
    std::uint8_t ttl = 0;         ///< TTL / hop limit
    std::uint8_t tos = 0;         ///< IPv4 TOS / IPv6 traffic class
    std::uint32_t flow_label = 0; ///< IPv6 only
    std::uint32_t offset = 0;     ///< start of the IP header
    std::uint32_t header_len = 0; ///< IPv4 IHL×4; IPv6 40 + extension headers up to the upper layer
    std::uint32_t total_len = 0;  ///< IP packet length as its header says (bytes after it are padding)
    inet_addr saddr{};
    inet_addr daddr{};
    bool df = false;                   ///< IPv4 don't-fragment
    bool mf = false;                   ///< more fragments (IPv4 flag or IPv6 fragment header M)
    std::uint16_t frag_offset = 0;     ///< fragment offset in bytes
    std::uint32_t frag_id = 0;         ///< IPv4 identification / IPv6 fragment identification
    std::uint32_t frag_hdr_offset = 0; ///< IPv6 fragment header position, 0 if none

    [[nodiscard]] constexpr bool is_fragment() const noexcept { return mf || frag_offset != 0; }
    [[nodiscard]] constexpr std::uint32_t l4_offset() const noexcept { return offset + header_len; }
    [[nodiscard]] constexpr std::uint32_t end() const noexcept { return offset + total_len; }
};

/// Upper-layer facts (valid when the status is ok).
struct l4_info {
    std::uint32_t offset = 0;           ///< start of the L4 header
    std::uint32_t header_len = 0;       ///< TCP data offset×4, UDP 8, SCTP 12, ICMP 8
    std::uint32_t length = 0;           ///< L4 header + payload up to the IP end
    std::uint32_t check_offset = 0;     ///< position of the checksum field (TCP, UDP, SCTP CRC, ICMP)
    std::uint16_t sport = 0, dport = 0; ///< host order; ICMP echo: id in both
    // TCP
    std::uint8_t tcp_flags = 0;
    std::uint32_t seq = 0, ack_seq = 0;
    // SCTP
    std::uint32_t vtag = 0;
    std::uint8_t chunk_count = 0;              ///< saturates at 255
    std::array<std::uint8_t, 4> chunk_types{}; ///< the first (up to) four chunk types, in order
    std::uint32_t chunk_mask = 0; ///< bit t set for each chunk type t < 31 seen; bit 31: any other
    // ICMP / ICMPv6
    std::uint8_t icmp_type = 0, icmp_code = 0;
};

/// The header an ICMP error quotes, with its ports (host order, as the quoted packet carried them).
struct icmp_quote {
    bool present = false;   ///< this is an ICMP error with a parsed quote
    bool has_ports = false; ///< the quoted protocol has ports and they are inside the quote
    ip_info ip{};           ///< total_len as the quoted header claims; the quote may hold less
    std::uint32_t l4_offset = 0;
    std::uint32_t l4_available = 0; ///< bytes of the quoted L4 header present
    std::uint16_t sport = 0, dport = 0;
};

struct packet_info {
    ip_info ip{};
    l4_info l4{};
    icmp_quote inner{};
};

struct parse_result {
    parse_status status = parse_status::truncated_l3;
    packet_info info{};
    [[nodiscard]] constexpr bool ok() const noexcept { return status == parse_status::ok; }
};

/// Is this an ICMP / ICMPv6 type whose body quotes the offending packet?
[[nodiscard]] constexpr bool is_icmp_error(family af, std::uint8_t type) noexcept {
    if (af == family::v4)
        return type == icmp_type::dest_unreach || type == icmp_type::source_quench ||
               type == icmp_type::redirect || type == icmp_type::time_exceeded ||
               type == icmp_type::param_problem;
    return type >= 1 && type <= 4; // RFC 4443 §2.1: error messages 1..127; IPVS handles 1..4
}

namespace detail {

/// Upper bound on IPv6 extension headers walked (RFC 8200 §4.1 lists at most ~6 in a sane packet).
inline constexpr int max_ext_headers = 8;

/// Parses the IP header at `off`. `end_limit` bounds the packet (buffer size, or the ICMP payload end
/// for a quote). With `quoted`, a total length larger than what is present is accepted.
inline parse_status parse_ip(std::span<const std::byte> b, std::size_t off, std::size_t end_limit,
                             bool quoted, ip_info& ip) noexcept {
    if (off >= end_limit) return parse_status::truncated_l3;
    const std::byte* p = b.data() + off;
    const std::size_t avail = end_limit - off;
    const unsigned version = std::to_integer<unsigned>(p[0]) >> 4;
    ip.offset = static_cast<std::uint32_t>(off);
    if (version == 4) {
        ip.af = family::v4;
        if (avail < ipv4_hdr::min_len) return parse_status::truncated_l3;
        const std::size_t ihl = (std::to_integer<std::size_t>(p[0]) & 0xf) * 4;
        const std::size_t tot = load_be16(p + ipv4_hdr::total_len);
        const std::uint16_t frag = load_be16(p + ipv4_hdr::frag);
        ip.tos = load_u8(p + ipv4_hdr::tos);
        ip.ttl = load_u8(p + ipv4_hdr::ttl);
        ip.protocol = load_u8(p + ipv4_hdr::protocol);
        ip.frag_id = load_be16(p + ipv4_hdr::id);
        ip.df = (frag & ipv4_hdr::flag_df) != 0;
        ip.mf = (frag & ipv4_hdr::flag_mf) != 0;
        ip.frag_offset = static_cast<std::uint16_t>((frag & ipv4_hdr::offset_mask) * 8);
        ip.saddr = inet_addr::load(family::v4, p + ipv4_hdr::saddr);
        ip.daddr = inet_addr::load(family::v4, p + ipv4_hdr::daddr);
        if (ihl < ipv4_hdr::min_len) return parse_status::bad_ihl;
        ip.header_len = static_cast<std::uint32_t>(ihl);
        ip.total_len = static_cast<std::uint32_t>(tot);
        if (ihl > avail) return quoted ? parse_status::icmp_bad_quote : parse_status::ihl_past_end;
        if (tot < ihl) return quoted ? parse_status::icmp_bad_quote : parse_status::total_length_below_header;
        if (!quoted && tot > avail) return parse_status::total_length_past_end;
        if (ip.frag_offset + (tot - ihl) > 65535) return parse_status::bad_fragment;
        return parse_status::ok;
    }
    if (version != 6) return parse_status::bad_ip_version;
    ip.af = family::v6;
    if (avail < ipv6_hdr::len) return parse_status::truncated_l3;
    const std::uint32_t vtf = load_be32(p);
    ip.tos = static_cast<std::uint8_t>(vtf >> 20);
    ip.flow_label = vtf & 0xfffff;
    ip.ttl = load_u8(p + ipv6_hdr::hop_limit);
    ip.saddr = inet_addr::load(family::v6, p + ipv6_hdr::saddr);
    ip.daddr = inet_addr::load(family::v6, p + ipv6_hdr::daddr);
    const std::size_t tot = ipv6_hdr::len + load_be16(p + ipv6_hdr::payload_len);
    ip.total_len = static_cast<std::uint32_t>(tot);
    if (!quoted && tot > avail) return parse_status::total_length_past_end;
    // What the walk may read: the packet as its header bounds it, or (a quote) what is present.
    const std::size_t limit = tot < avail ? tot : avail;
    std::uint8_t nh = load_u8(p + ipv6_hdr::next_header);
    std::size_t pos = ipv6_hdr::len;
    for (int n = 0;; ++n) {
        const bool ext = nh == ipproto::hopopts || nh == ipproto::routing || nh == ipproto::fragment ||
                         nh == ipproto::dstopts || nh == ipproto::ah;
        if (!ext) break;
        if (n >= max_ext_headers)
            return quoted ? parse_status::icmp_bad_quote : parse_status::ext_header_limit;
        if (nh == ipproto::hopopts && n != 0)
            return quoted ? parse_status::icmp_bad_quote : parse_status::ext_header_order;
        if (limit - pos < 8)
            return quoted ? parse_status::icmp_bad_quote : parse_status::ext_header_truncated;
        const std::byte* e = p + pos;
        std::size_t elen;
        if (nh == ipproto::fragment) {
            elen = ipv6_hdr::frag_len;
            const std::uint16_t fo = load_be16(e + 2);
            ip.frag_offset = static_cast<std::uint16_t>(fo & 0xfff8);
            ip.mf = (fo & 1) != 0;
            ip.frag_id = load_be32(e + 4);
            ip.frag_hdr_offset = static_cast<std::uint32_t>(off + pos);
        } else if (nh == ipproto::ah) {
            elen = (std::to_integer<std::size_t>(e[1]) + 2) * 4; // RFC 4302 §2.2
        } else {
            elen = (std::to_integer<std::size_t>(e[1]) + 1) * 8; // RFC 8200 §4.3–4.6
        }
        if (elen > limit - pos)
            return quoted ? parse_status::icmp_bad_quote : parse_status::ext_header_truncated;
        nh = std::to_integer<std::uint8_t>(e[0]);
        pos += elen;
    }
    ip.protocol = nh;
    ip.header_len = static_cast<std::uint32_t>(pos);
    if (ip.frag_hdr_offset != 0 && ip.frag_offset + (tot - pos) > 65535) return parse_status::bad_fragment;
    return parse_status::ok;
}

/// Walks the SCTP chunks of [off, end): RFC 4960 §3.2 chunk lengths include the header, padded to 4.
inline parse_status parse_sctp_chunks(const std::byte* base, std::size_t off, std::size_t end,
                                      l4_info& l4) noexcept {
    std::size_t pos = off;
    while (pos < end) {
        if (end - pos < sctp_hdr::chunk_hdr_len) return parse_status::sctp_bad_chunk_length;
        const std::uint8_t type = load_u8(base + pos);
        const std::size_t clen = load_be16(base + pos + 2);
        if (clen < sctp_hdr::chunk_hdr_len || clen > end - pos) return parse_status::sctp_bad_chunk_length;
        if (l4.chunk_count < l4.chunk_types.size()) l4.chunk_types[l4.chunk_count] = type;
        if (l4.chunk_count < 255) ++l4.chunk_count;
        l4.chunk_mask |= type < 31 ? (1U << type) : (1U << 31);
        const std::size_t padded = (clen + 3) & ~std::size_t{3};
        if (padded >= end - pos) break; // the last chunk (its padding may be absent)
        pos += padded;
    }
    return l4.chunk_count == 0 ? parse_status::sctp_no_chunk : parse_status::ok;
}

/// Parses the quote of an ICMP error at [off, end).
inline parse_status parse_quote(std::span<const std::byte> b, std::size_t off, std::size_t end,
                                icmp_quote& q) noexcept {
    if (parse_ip(b, off, end, true, q.ip) != parse_status::ok) return parse_status::icmp_bad_quote;
    q.l4_offset = q.ip.l4_offset();
    q.l4_available = q.l4_offset <= end ? static_cast<std::uint32_t>(end - q.l4_offset) : 0;
    q.present = true;
    const std::uint8_t pr = q.ip.protocol;
    const bool ported = pr == ipproto::tcp || pr == ipproto::udp || pr == ipproto::sctp;
    if (ported && q.ip.frag_offset == 0) {
        if (q.l4_available < 4) return parse_status::icmp_bad_quote; // the kernel needs both ports
        q.sport = load_be16(b.data() + q.l4_offset);
        q.dport = load_be16(b.data() + q.l4_offset + 2);
        q.has_ports = true;
    }
    return parse_status::ok;
}

} // namespace detail

/// Parses the packet in `b` whose IP header starts at `l3_off`.
[[nodiscard]] inline parse_result parse(std::span<const std::byte> b, std::size_t l3_off = 0) noexcept {
    parse_result r;
    ip_info& ip = r.info.ip;
    l4_info& l4 = r.info.l4;
    r.status = detail::parse_ip(b, l3_off, b.size(), false, ip);
    if (r.status != parse_status::ok) return r;
    if (ip.frag_offset != 0) return r.status = parse_status::fragment, r;

    const std::byte* base = b.data();
    const std::size_t off = ip.l4_offset();
    const std::size_t end = ip.end();
    const std::size_t avail = end - off;
    l4.offset = static_cast<std::uint32_t>(off);
    l4.length = static_cast<std::uint32_t>(avail);
    switch (ip.protocol) {
    case ipproto::tcp: {
        if (avail < tcp_hdr::min_len) return r.status = parse_status::truncated_l4, r;
        const std::size_t doff = (std::to_integer<std::size_t>(base[off + tcp_hdr::doff]) >> 4) * 4;
        l4.sport = load_be16(base + off + tcp_hdr::sport);
        l4.dport = load_be16(base + off + tcp_hdr::dport);
        l4.seq = load_be32(base + off + tcp_hdr::seq);
        l4.ack_seq = load_be32(base + off + tcp_hdr::ack);
        l4.tcp_flags = load_u8(base + off + tcp_hdr::flags);
        l4.check_offset = static_cast<std::uint32_t>(off + tcp_hdr::check);
        if (doff < tcp_hdr::min_len) return r.status = parse_status::bad_tcp_doff, r;
        if (doff > avail) return r.status = parse_status::tcp_doff_past_end, r;
        l4.header_len = static_cast<std::uint32_t>(doff);
        break;
    }
    case ipproto::udp: {
        if (avail < udp_hdr::len) return r.status = parse_status::truncated_l4, r;
        l4.sport = load_be16(base + off + udp_hdr::sport);
        l4.dport = load_be16(base + off + udp_hdr::dport);
        l4.check_offset = static_cast<std::uint32_t>(off + udp_hdr::check);
        l4.header_len = udp_hdr::len;
        const std::size_t ulen = load_be16(base + off + udp_hdr::length);
        // A first fragment carries the whole datagram's length; only unfragmented datagrams must agree.
        if (ulen < udp_hdr::len || (!ip.mf && ulen > avail))
            return r.status = parse_status::bad_udp_length, r;
        break;
    }
    case ipproto::sctp: {
        if (avail < sctp_hdr::len) return r.status = parse_status::truncated_l4, r;
        l4.sport = load_be16(base + off + sctp_hdr::sport);
        l4.dport = load_be16(base + off + sctp_hdr::dport);
        l4.vtag = load_be32(base + off + sctp_hdr::vtag);
        l4.check_offset = static_cast<std::uint32_t>(off + sctp_hdr::check);
        l4.header_len = sctp_hdr::len;
        if (ip.mf) break; // first fragment: chunks continue in later fragments
        r.status = detail::parse_sctp_chunks(base, off + sctp_hdr::len, end, l4);
        if (r.status != parse_status::ok) return r;
        break;
    }
    case ipproto::icmp:
    case ipproto::icmpv6: {
        if ((ip.protocol == ipproto::icmp) != (ip.af == family::v4))
            return r.status = parse_status::unknown_protocol, r;
        if (avail < icmp_hdr::len) return r.status = parse_status::truncated_l4, r;
        l4.icmp_type = load_u8(base + off + icmp_hdr::type);
        l4.icmp_code = load_u8(base + off + icmp_hdr::code);
        l4.check_offset = static_cast<std::uint32_t>(off + icmp_hdr::check);
        l4.header_len = icmp_hdr::len;
        if (is_icmp_error(ip.af, l4.icmp_type)) {
            if (ip.mf) break; // a fragmented ICMP error: the datapath reassembles before looking inside
            r.status = detail::parse_quote(b, off + icmp_hdr::len, end, r.info.inner);
            if (r.status != parse_status::ok) return r;
        } else {
            l4.sport = l4.dport = load_be16(base + off + icmp_hdr::id);
        }
        break;
    }
    default:
        r.status = parse_status::unknown_protocol;
        return r;
    }
    return r;
}

/// Parses packet view `p` from its L3 offset (packet_traits<P>::l3_offset, default 0).
template <class P>
[[nodiscard]] parse_result parse(const P& p) noexcept {
    IPVS_REQUIRE_PACKET_VIEW(const P);
    return parse(std::span<const std::byte>(packet_bytes(p)), l3_offset(p));
}

} // namespace ipvs
