// SPDX-License-Identifier: MIT
// Protocol numbers, header sizes, field offsets and flag bits of the headers IPVS reads and rewrites.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ipvs {

/// IP protocol / IPv6 next-header numbers (IANA).
namespace ipproto {
inline constexpr std::uint8_t hopopts = 0;
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t ipip = 4;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t ipv6 = 41;
inline constexpr std::uint8_t routing = 43;
inline constexpr std::uint8_t fragment = 44;
inline constexpr std::uint8_t gre = 47;
inline constexpr std::uint8_t esp = 50;
inline constexpr std::uint8_t ah = 51;
inline constexpr std::uint8_t icmpv6 = 58;
inline constexpr std::uint8_t none = 59;
inline constexpr std::uint8_t dstopts = 60;
inline constexpr std::uint8_t sctp = 132;
} // namespace ipproto

/// EtherType values.
namespace ethertype {
inline constexpr std::uint16_t ipv4 = 0x0800;
inline constexpr std::uint16_t ipv6 = 0x86dd;
inline constexpr std::uint16_t vlan = 0x8100;
inline constexpr std::uint16_t qinq = 0x88a8;
} // namespace ethertype

/// IPv4 header (RFC 791 §3.1) field offsets.
namespace ipv4_hdr {
inline constexpr std::size_t min_len = 20;
inline constexpr std::size_t ver_ihl = 0, tos = 1, total_len = 2, id = 4, frag = 6, ttl = 8, protocol = 9,
                             check = 10, saddr = 12, daddr = 16;
inline constexpr std::uint16_t flag_df = 0x4000, flag_mf = 0x2000, offset_mask = 0x1fff;
} // namespace ipv4_hdr

/// IPv6 header (RFC 8200 §3) field offsets.
namespace ipv6_hdr {
inline constexpr std::size_t len = 40;
inline constexpr std::size_t ver_tc_flow = 0, payload_len = 4, next_header = 6, hop_limit = 7, saddr = 8,
                             daddr = 24;
inline constexpr std::size_t frag_len = 8; ///< fragment extension header (RFC 8200 §4.5)
} // namespace ipv6_hdr

/// TCP header (RFC 9293 §3.1).
namespace tcp_hdr {
inline constexpr std::size_t min_len = 20;
inline constexpr std::size_t sport = 0, dport = 2, seq = 4, ack = 8, doff = 12, flags = 13, window = 14,
                             check = 16;
} // namespace tcp_hdr

/// TCP flag bits (byte 13).
namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10, urg = 0x20;
}

/// UDP header (RFC 768).
namespace udp_hdr {
inline constexpr std::size_t len = 8;
inline constexpr std::size_t sport = 0, dport = 2, length = 4, check = 6;
} // namespace udp_hdr

/// SCTP common header (RFC 4960 §3.1) and chunk header (§3.2).
namespace sctp_hdr {
inline constexpr std::size_t len = 12;
inline constexpr std::size_t sport = 0, dport = 2, vtag = 4, check = 8;
inline constexpr std::size_t chunk_hdr_len = 4;
} // namespace sctp_hdr

/// SCTP chunk types (RFC 4960 §3.2).
namespace sctp_chunk {
inline constexpr std::uint8_t data = 0, init = 1, init_ack = 2, sack = 3, heartbeat = 4, heartbeat_ack = 5,
                              abort = 6, shutdown = 7, shutdown_ack = 8, error = 9, cookie_echo = 10,
                              cookie_ack = 11, ecne = 12, cwr = 13, shutdown_complete = 14;
}

/// ICMP (RFC 792) and ICMPv6 (RFC 4443) header and the types IPVS looks at.
namespace icmp_hdr {
inline constexpr std::size_t len = 8;
inline constexpr std::size_t type = 0, code = 1, check = 2, id = 4, seq = 6, mtu = 6;
} // namespace icmp_hdr
namespace icmp_type {
inline constexpr std::uint8_t echo_reply = 0, dest_unreach = 3, source_quench = 4, redirect = 5, echo = 8,
                              time_exceeded = 11, param_problem = 12;
inline constexpr std::uint8_t code_port_unreach = 3, code_frag_needed = 4;
} // namespace icmp_type
namespace icmpv6_type {
inline constexpr std::uint8_t dest_unreach = 1, packet_too_big = 2, time_exceeded = 3, param_problem = 4,
                              echo_request = 128, echo_reply = 129;
inline constexpr std::uint8_t code_port_unreach = 4;
} // namespace icmpv6_type

/// Ethernet II header.
namespace eth_hdr {
inline constexpr std::size_t len = 14;
inline constexpr std::size_t dst = 0, src = 6, type = 12;
} // namespace eth_hdr

} // namespace ipvs
