// SPDX-License-Identifier: MIT
// Test support: build IPv4/IPv6 packets with TCP/UDP/SCTP/ICMP payloads, byte by byte, for parser and rewrite
// tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/checksum.hpp>
#include <ipvs/crc32c.hpp>
#include <ipvs/headers.hpp>

namespace ipvs::test {

using bytes = std::vector<std::uint8_t>;

inline void put16(bytes& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v >> 8);
    b[at + 1] = static_cast<std::uint8_t>(v);
}
inline void put32(bytes& b, std::size_t at, std::uint32_t v) {
    put16(b, at, static_cast<std::uint16_t>(v >> 16));
    put16(b, at + 2, static_cast<std::uint16_t>(v));
}
inline void append(bytes& b, std::span<const std::uint8_t> more) {
    b.insert(b.end(), more.begin(), more.end());
}
inline std::span<const std::byte> as_bytes(const bytes& b) { return std::as_bytes(std::span(b)); }

/// TCP header (20 bytes + options, which must be a multiple of 4) + payload; checksum left 0.
inline bytes tcp_segment(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                         const bytes& options = {}, const bytes& payload = {}) {
    bytes t(20, 0);
    put16(t, 0, sport);
    put16(t, 2, dport);
    put32(t, 4, 1000);
    put32(t, 8, (flags & tcp_flag::ack) ? 2000 : 0);
    t[12] = static_cast<std::uint8_t>(((20 + options.size()) / 4) << 4);
    t[13] = flags;
    put16(t, 14, 64240);
    append(t, options);
    append(t, payload);
    return t;
}

inline bytes udp_datagram(std::uint16_t sport, std::uint16_t dport, const bytes& payload = {}) {
    bytes u(8, 0);
    put16(u, 0, sport);
    put16(u, 2, dport);
    put16(u, 4, static_cast<std::uint16_t>(8 + payload.size()));
    append(u, payload);
    return u;
}

/// One SCTP chunk: type, flags, value (padded to 4 bytes; the length field excludes the padding).
inline bytes sctp_chunk(std::uint8_t type, const bytes& value = {}, std::uint8_t flags = 0) {
    bytes c(4, 0);
    c[0] = type;
    c[1] = flags;
    put16(c, 2, static_cast<std::uint16_t>(4 + value.size()));
    append(c, value);
    while (c.size() % 4) c.push_back(0);
    return c;
}

inline bytes sctp_packet(std::uint16_t sport, std::uint16_t dport, std::uint32_t vtag,
                         std::initializer_list<bytes> chunks) {
    bytes s(12, 0);
    put16(s, 0, sport);
    put16(s, 2, dport);
    put32(s, 4, vtag);
    for (const auto& c : chunks) append(s, c);
    return s;
}

inline bytes icmp_message(std::uint8_t type, std::uint8_t code, std::uint32_t rest, const bytes& body = {}) {
    bytes m(8, 0);
    m[0] = type;
    m[1] = code;
    put32(m, 4, rest);
    append(m, body);
    return m;
}

/// Fills in the L4 checksum of `pkt` (IP header at 0) the way a sender would.
inline void fill_l4_checksum(bytes& pkt, family af, std::uint8_t proto, std::size_t l4_off) {
    const std::size_t len = pkt.size() - l4_off;
    const auto saddr = inet_addr::load(af, as_bytes(pkt).data() + (af == family::v4 ? 12 : 8));
    const auto daddr = inet_addr::load(af, as_bytes(pkt).data() + (af == family::v4 ? 16 : 24));
    auto l4 = as_bytes(pkt).subspan(l4_off);
    if (proto == ipproto::tcp || proto == ipproto::udp || proto == ipproto::icmpv6) {
        const std::size_t co = proto == ipproto::tcp ? 16 : (proto == ipproto::udp ? 6 : 2);
        put16(pkt, l4_off + co, 0);
        std::uint16_t c =
            internet_checksum(l4, pseudo_header(saddr, daddr, proto, static_cast<std::uint32_t>(len)));
        if (proto == ipproto::udp && c == 0) c = 0xffff;
        put16(pkt, l4_off + co, c);
    } else if (proto == ipproto::icmp) {
        put16(pkt, l4_off + 2, 0);
        put16(pkt, l4_off + 2, internet_checksum(l4));
    } else if (proto == ipproto::sctp) {
        put32(pkt, l4_off + 8, 0);
        const std::uint32_t crc = crc32c(l4);
        for (int i = 0; i < 4; ++i) pkt[l4_off + 8 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    }
}

/// IPv4 packet (options must be a multiple of 4) around an L4 payload, checksums filled in.
inline bytes ipv4_packet(std::uint8_t proto, const char* src, const char* dst, const bytes& l4,
                         const bytes& options = {}, std::uint16_t frag = ipv4_hdr::flag_df,
                         std::uint8_t ttl = 64) {
    bytes p(20, 0);
    p[0] = static_cast<std::uint8_t>(0x40 | ((20 + options.size()) / 4));
    put16(p, 2, static_cast<std::uint16_t>(20 + options.size() + l4.size()));
    put16(p, 4, 0x1234);
    put16(p, 6, frag);
    p[8] = ttl;
    p[9] = proto;
    parse_addr(src)->store(reinterpret_cast<std::byte*>(p.data() + 12));
    parse_addr(dst)->store(reinterpret_cast<std::byte*>(p.data() + 16));
    append(p, options);
    put16(p, 10, internet_checksum(as_bytes(p)));
    const std::size_t l4_off = p.size();
    append(p, l4);
    if ((frag & (ipv4_hdr::flag_mf | ipv4_hdr::offset_mask)) == 0)
        fill_l4_checksum(p, family::v4, proto, l4_off);
    return p;
}

/// IPv6 packet; `ext` is a ready-made extension-header chain whose first next-header is `first_nh`
/// (pass first_nh = proto and ext = {} for none).
inline bytes ipv6_packet(std::uint8_t proto, const char* src, const char* dst, const bytes& l4,
                         std::uint8_t first_nh, const bytes& ext = {}, std::uint8_t hlim = 64) {
    bytes p(40, 0);
    p[0] = 0x60;
    put16(p, 4, static_cast<std::uint16_t>(ext.size() + l4.size()));
    p[6] = first_nh;
    p[7] = hlim;
    parse_addr(src)->store(reinterpret_cast<std::byte*>(p.data() + 8));
    parse_addr(dst)->store(reinterpret_cast<std::byte*>(p.data() + 24));
    append(p, ext);
    const std::size_t l4_off = p.size();
    append(p, l4);
    fill_l4_checksum(p, family::v6, proto, l4_off);
    return p;
}

/// An IPv6 extension header of type-agnostic layout: next header, length in 8-octet units − 1, padding.
inline bytes ext_header(std::uint8_t next, std::size_t total_len = 8) {
    bytes e(total_len, 0);
    e[0] = next;
    e[1] = static_cast<std::uint8_t>(total_len / 8 - 1);
    return e;
}

} // namespace ipvs::test
