// SPDX-License-Identifier: MIT
// NAT rewrite (DNAT in, SNAT out) for IPv4/IPv6 × TCP/UDP/SCTP and ICMP errors quoting them, with the
// kernel's checksum rules.
#pragma once

// Design
// ------
// `nat_rewrite(pkt, info, dir, to_addr, to_port)` rewrites one side of a packet's address pair and
// the matching port, then repairs every checksum that covers them, as Linux IPVS does (spec §6.1–§6.4):
//
//   dir      plain packet (TCP/UDP/SCTP)      ICMP error quoting a flow of the connection
//   dnat     daddr, dport   (client → RS)     outer daddr; quoted saddr + quoted sport
//   snat     saddr, sport   (RS → client)     outer saddr; quoted daddr + quoted dport
//
// Checksums, chosen per packet from the view's `csum_state` as the kernel chooses from ip_summed:
// - TCP/UDP with a full checksum (none / unnecessary / complete): RFC 1624 eqn. 3 over the address and
//   port change (bit-identical to Linux's tcp/udp_fast_csum_update, so a wrong checksum stays exactly
//   as wrong); UDP writes a 0 result as 0xFFFF; a UDP checksum of 0 ("none") is recomputed in full,
//   so the datagram gains one (the kernel's NAT does; DR/TUN do not).
// - partial (CHECKSUM_PARTIAL): the field holds the uncomplemented pseudo-header sum; only the address
//   change is applied (ports are not in the pseudo-header) and the state stays partial.
// - SCTP: CRC32c recomputed over the whole packet when the port changes or the state is partial.
// - ICMP errors: the quoted IPv4 header checksum and the ICMP/ICMPv6 checksum are recomputed in
//   full; the quoted L4 checksum is left alone (so it no longer verifies — as in Linux).
// - IPv4 header checksum: recomputed in full (ip_send_check).
// A `complete` view is downgraded to `none` after the rewrite: the device's sum no longer matches.
//
// All-or-nothing: every precondition is checked before the first byte is written, so a refused
// packet is left byte-for-byte untouched. Non-first IPv6 fragments get the L3 rewrite only (the kernel
// skips L4 for them); IPv4 fragments are refused with `fragment` — the datapath reassembles first.

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include <ipvs/checksum.hpp>
#include <ipvs/crc32c.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/packet_view.hpp>
#include <ipvs/parse.hpp>

namespace ipvs {

enum class nat_dir : std::uint8_t {
    dnat, ///< client → real server: the destination becomes the dest
    snat, ///< real server → client: the source becomes the virtual service
};

enum class nat_status : std::uint8_t {
    ok,
    not_parsed,           ///< the packet did not parse (see parse_status)
    fragment,             ///< an IPv4 fragment: reassemble first
    unsupported_protocol, ///< not TCP/UDP/SCTP, nor an ICMP error quoting one
    family_mismatch,      ///< the new address is of the other family
};

[[nodiscard]] constexpr const char* to_string(nat_status s) noexcept {
    constexpr const char* names[] = {"ok", "not parsed", "IPv4 fragment", "unsupported protocol",
                                     "address family mismatch"};
    return names[static_cast<std::size_t>(s)];
}

namespace detail {

inline std::size_t addr_field(family af, bool source) noexcept {
    if (af == family::v4) return source ? ipv4_hdr::saddr : ipv4_hdr::daddr;
    return source ? ipv6_hdr::saddr : ipv6_hdr::daddr;
}

/// Recomputes an IPv4 header checksum in place (RFC 791 §3.1), as the kernel's ip_send_check does — in
/// full, so a header that arrived with a wrong checksum leaves with a right one. The header is 20–60
/// bytes in 32-bit words: summing big-endian words straight into 64 bits and folding (RFC 1071 §2(B),
/// byte-order independence) costs a few adds, where the general internet_checksum pays its dispatch.
IPVS_ALWAYS_INLINE void ipv4_header_checksum(std::byte* ip, std::size_t header_len) noexcept {
    // Five scalar loads for the usual 20 bytes: the compiler vectorizes the general loop, and a wide
    // load over the address just stored in four bytes misses store forwarding (8.5 -> 16 ns measured).
    std::uint64_t s = std::uint64_t{load_be32(ip)} + load_be32(ip + 4) + load_be32(ip + 8) +
                      load_be32(ip + 12) + load_be32(ip + 16);
    for (std::size_t i = ipv4_hdr::min_len; i + 4 <= header_len; i += 4) s += load_be32(ip + i);
    s -= load_be16(ip + ipv4_hdr::check); // the field counts as zero (it is the low half of word 2)
    store_be16(ip + ipv4_hdr::check, static_cast<std::uint16_t>(~csum_fold(s)));
}

/// SCTP CRC32c over [l4, l4 + len) with the checksum field zeroed, stored little-endian (RFC 4960 §6.8).
inline void sctp_fill_crc(std::byte* l4, std::size_t len) noexcept {
    store_be32(l4 + sctp_hdr::check, 0);
    const std::uint32_t crc = crc32c(std::span<const std::byte>(l4, len));
    for (int i = 0; i < 4; ++i)
        l4[sctp_hdr::check + i] = std::byte{static_cast<std::uint8_t>(crc >> (8 * i))};
}

/// Full TCP/UDP/ICMPv6 checksum over the L4 bytes with the given pseudo-header addresses.
inline std::uint16_t l4_full_checksum(std::span<const std::byte> l4, std::size_t check_at,
                                      const inet_addr& src, const inet_addr& dst,
                                      std::uint8_t proto) noexcept {
    const csum ph = pseudo_header(src, dst, proto, static_cast<std::uint32_t>(l4.size()));
    // Sum around the checksum field instead of zeroing it first (the field is 16-bit aligned in L4).
    csum s = csum_partial(l4.first(check_at), ph);
    s = csum_partial(l4.subspan(check_at + 2), s);
    return csum_finish(s);
}

IPVS_ALWAYS_INLINE nat_status nat_rewrite_bytes(std::span<std::byte> b, const packet_info& info, nat_dir dir,
                                                const inet_addr& to, std::uint16_t to_port,
                                                csum_state& state) noexcept {
    const ip_info& ip = info.ip;
    const bool snat = dir == nat_dir::snat;
    if (to.af != ip.af) return nat_status::family_mismatch;
    if (ip.end() > b.size()) return nat_status::not_parsed;
    std::byte* iph = b.data() + ip.offset;

    const bool is_icmp = ip.protocol == ipproto::icmp || ip.protocol == ipproto::icmpv6;
    if (is_icmp) {
        const icmp_quote& q = info.inner;
        if (!q.present || !q.has_ports) return nat_status::unsupported_protocol;
        if (q.ip.af != to.af) return nat_status::family_mismatch;
        // Outer address, quoted address on the other side, quoted port on the other side.
        to.store(iph + addr_field(ip.af, snat));
        std::byte* qip = b.data() + q.ip.offset;
        to.store(qip + addr_field(q.ip.af, !snat));
        store_be16(b.data() + q.l4_offset + (snat ? 2 : 0), to_port);
        if (q.ip.af == family::v4) ipv4_header_checksum(qip, q.ip.header_len);
        const auto icmp = b.subspan(info.l4.offset, info.l4.length);
        const inet_addr src = snat ? to : ip.saddr, dst = snat ? ip.daddr : to;
        const std::uint16_t c =
            ip.af == family::v4 ? csum_finish(csum_partial(icmp.first(icmp_hdr::check),
                                                           csum_partial(icmp.subspan(icmp_hdr::check + 2))))
                                : l4_full_checksum(icmp, icmp_hdr::check, src, dst, ipproto::icmpv6);
        store_be16(icmp.data() + icmp_hdr::check, c);
    } else {
        const bool l4_present = !(ip.frag_offset != 0); // IPv6 non-first fragment: L3 only
        const std::uint8_t pr = ip.protocol;
        if (pr != ipproto::tcp && pr != ipproto::udp && pr != ipproto::sctp)
            return nat_status::unsupported_protocol;
        const inet_addr old_a = snat ? ip.saddr : ip.daddr;
        if (l4_present) {
            std::byte* l4 = b.data() + info.l4.offset;
            std::byte* check = b.data() + info.l4.check_offset;
            const std::uint16_t old_p = snat ? info.l4.sport : info.l4.dport;
            const bool whole = !ip.is_fragment();
            if (pr == ipproto::sctp) {
                store_be16(l4 + (snat ? sctp_hdr::sport : sctp_hdr::dport), to_port);
                if ((old_p != to_port || state == csum_state::partial) && whole)
                    sctp_fill_crc(l4, info.l4.length);
            } else {
                const std::uint16_t c = load_be16(check);
                const bool udp = pr == ipproto::udp;
                store_be16(l4 + (snat ? 0 : 2), to_port);
                if (state == csum_state::partial) {
                    store_be16(check, csum_update_addr_partial(c, old_a, to));
                } else if (udp && c == 0) {
                    if (whole) { // gains a full checksum; addresses written below go into it
                        const inet_addr src = snat ? to : ip.saddr, dst = snat ? ip.daddr : to;
                        std::uint16_t f = l4_full_checksum(std::span<const std::byte>(l4, info.l4.length),
                                                           udp_hdr::check, src, dst, pr);
                        store_be16(check, f == 0 ? 0xffff : f);
                    }
                } else {
                    std::uint16_t n = csum_update16(csum_update_addr(c, old_a, to), old_p, to_port);
                    if (udp && n == 0) n = 0xffff; // CSUM_MANGLED_0
                    store_be16(check, n);
                }
            }
        }
        to.store(iph + addr_field(ip.af, snat));
    }
    if (ip.af == family::v4) ipv4_header_checksum(iph, ip.header_len);
    if (state == csum_state::complete) state = csum_state::none;
    return nat_status::ok;
}

} // namespace detail

/// Rewrites packet `pkt`, already parsed into `info` (which must describe these very bytes).
template <class P>
[[nodiscard]] nat_status nat_rewrite(P& pkt, const packet_info& info, nat_dir dir, const inet_addr& to,
                                     std::uint16_t to_port) noexcept {
    IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
    if (info.ip.af == family::v4 && info.ip.is_fragment() && info.ip.protocol != ipproto::icmp)
        return nat_status::fragment;
    csum_state st = checksum_state(pkt);
    const nat_status s = detail::nat_rewrite_bytes(packet_bytes(pkt), info, dir, to, to_port, st);
    if (s == nat_status::ok) set_checksum_state(pkt, st);
    return s;
}

/// Parses, then rewrites. A packet that does not parse (or parses as a non-first IPv4 fragment) is untouched.
template <class P>
[[nodiscard]] nat_status nat_rewrite(P& pkt, nat_dir dir, const inet_addr& to,
                                     std::uint16_t to_port) noexcept {
    IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
    const parse_result r = parse(std::as_const(pkt));
    if (r.status == parse_status::fragment) {
        if (r.info.ip.af == family::v4) return nat_status::fragment;
    } else if (r.status != parse_status::ok) {
        return nat_status::not_parsed;
    }
    return nat_rewrite(pkt, r.info, dir, to, to_port);
}

namespace detail {
/// forward_nat_v4's rewrite once every check has passed: `iph` an IPv4 header without options, `l4` its
/// TCP or UDP header, `check` the L4 checksum field (non-zero for UDP), `old_port` the port being
/// replaced (host order). The director's established lane calls it straight from its own checks.
IPVS_ALWAYS_INLINE void forward_nat_v4_bytes(std::byte* iph, std::byte* l4, std::byte* check, bool udp,
                                             nat_dir dir, std::uint32_t new_a, std::uint16_t old_port,
                                             std::uint16_t to_port) noexcept {
    const bool snat = dir == nat_dir::snat;
    // The header's five words, read before any store (a wide load of bytes just stored narrowly
    // stalls store forwarding); the new header sum comes from the new words in registers.
    std::uint32_t w[5];
    for (int i = 0; i < 5; ++i) w[i] = load_be32(iph + 4 * i);
    const std::uint32_t old_a = w[snat ? 3 : 4];
    w[snat ? 3 : 4] = new_a;
    w[2] = (w[2] - 0x01000000U) & 0xffff0000U; // TTL − 1, checksum field zero
    const std::uint64_t hs = std::uint64_t{w[0]} + w[1] + w[2] + w[3] + w[4];
    std::uint16_t n = csum_update16(csum_update32(load_be16(check), old_a, new_a), old_port, to_port);
    if (udp && n == 0) n = 0xffff; // CSUM_MANGLED_0
    store_be16(check, n);
    store_be16(l4 + (snat ? 0 : 2), to_port);
    store_be32(iph + ipv4_hdr::ttl, w[2] | static_cast<std::uint16_t>(~csum_fold(hs))); // TTL, proto, check
    store_be32(iph + (snat ? ipv4_hdr::saddr : ipv4_hdr::daddr), new_a);
}
/// The same for IPv6 without extension headers: hop limit − 1, the address and port, the L4 checksum by
/// nat_rewrite's RFC 1624 updates (so the bytes are the general path's: forward_ttl + nat_rewrite).
IPVS_ALWAYS_INLINE void forward_nat_v6_bytes(std::byte* iph, std::byte* l4, std::byte* check, bool udp,
                                             nat_dir dir, const inet_addr& to, std::uint16_t old_port,
                                             std::uint16_t to_port) noexcept {
    const bool snat = dir == nat_dir::snat;
    std::byte* field = iph + addr_field(family::v6, snat);
    const inet_addr old_a = inet_addr::load(family::v6, field);
    std::uint16_t n = csum_update16(csum_update_addr(load_be16(check), old_a, to), old_port, to_port);
    if (udp && n == 0) n = 0xffff; // CSUM_MANGLED_0
    store_be16(check, n);
    store_be16(l4 + (snat ? 0 : 2), to_port);
    to.store(field);
    store_u8(iph + ipv6_hdr::hop_limit, static_cast<std::uint8_t>(load_u8(iph + ipv6_hdr::hop_limit) - 1));
}
} // namespace detail

/// forward_ttl and nat_rewrite in one pass for the packet a director sees most — IPv4 without options,
/// unfragmented TCP, or UDP with a checksum, the view's checksum state none or unnecessary — producing
/// exactly the bytes of the two calls: TTL − 1, the address and port, the L4 checksum by the same RFC
/// 1624 updates, the IPv4 header checksum recomputed. Returns false, the packet untouched, for anything
/// else (the caller then takes the general path) and for TTL ≤ 1.
template <class P>
[[nodiscard]] bool forward_nat_v4(P& pkt, const packet_info& info, nat_dir dir, const inet_addr& to,
                                  std::uint16_t to_port) noexcept {
    IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
    const ip_info& ip = info.ip;
    const std::uint8_t pr = ip.protocol;
    if (ip.af != family::v4 || to.af != family::v4 || ip.header_len != ipv4_hdr::min_len || ip.ttl <= 1 ||
        ip.is_fragment() || (pr != ipproto::tcp && pr != ipproto::udp))
        return false;
    const csum_state st = checksum_state(pkt);
    if (st != csum_state::none && st != csum_state::unnecessary) return false;
    auto b = packet_bytes(pkt);
    if (ip.end() > b.size()) return false;
    std::byte* iph = b.data() + ip.offset;
    std::byte* check = b.data() + info.l4.check_offset;
    const std::uint16_t c = load_be16(check);
    if (pr == ipproto::udp && c == 0) return false; // gains a full checksum: the general path
    const std::uint16_t old_p = dir == nat_dir::snat ? info.l4.sport : info.l4.dport;
    detail::forward_nat_v4_bytes(iph, b.data() + info.l4.offset, check, pr == ipproto::udp, dir, to.v4_host(),
                                 old_p, to_port);
    return true;
}

/// The forwarding step of a router (RFC 1812 §5.3.1): decrements the TTL / hop limit and keeps the
/// IPv4 header checksum valid (RFC 1624). Returns false — the packet untouched — when it would expire
/// (TTL ≤ 1): the caller answers ICMP time exceeded instead of forwarding.
template <class P>
[[nodiscard]] bool forward_ttl(P& pkt, const ip_info& ip) noexcept {
    IPVS_REQUIRE_MUTABLE_PACKET_VIEW(P);
    auto b = packet_bytes(pkt);
    if (ip.ttl <= 1 || ip.offset + (ip.af == family::v4 ? ipv4_hdr::min_len : ipv6_hdr::len) > b.size())
        return false;
    std::byte* iph = b.data() + ip.offset;
    if (ip.af == family::v4) {
        const std::uint16_t old_w = load_be16(iph + ipv4_hdr::ttl); // TTL and protocol share a word
        const auto new_w = static_cast<std::uint16_t>(old_w - 0x100);
        store_be16(iph + ipv4_hdr::ttl, new_w);
        store_be16(iph + ipv4_hdr::check, csum_update16(load_be16(iph + ipv4_hdr::check), old_w, new_w));
    } else {
        store_u8(iph + ipv6_hdr::hop_limit, static_cast<std::uint8_t>(ip.ttl - 1));
    }
    return true;
}

} // namespace ipvs
