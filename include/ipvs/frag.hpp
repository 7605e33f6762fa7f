// SPDX-License-Identifier: MIT
// IPv4 fragments around the director: a bounded reassembler and re-fragmentation with the input's geometry.
#pragma once

// Design
// ------
// Linux reassembles IPv4 fragments before IPVS sees them (nf_defrag / ip_defrag), rewrites the whole
// datagram once, and the forwarding path sends it out again cut at the input's fragment boundaries
// (recorded `udp_fragment_*`: 1020/1020/76 bytes in and out, same identification). A userspace datapath
// does the same around the director with these two helpers:
//
//   fragments ──► ipv4_reassembler::add() ──► whole datagram + geometry ──► director / nat_rewrite
//                                                                               │
//   wire ◄────────────── refragment(datagram, geometry, emit) ◄─────────────────┘
//
// The reassembler owns a fixed pool of `Slots` datagram buffers of 64 KiB allocated at construction;
// `add()` never allocates. A queue is keyed by (saddr, daddr, protocol, identification) as RFC 791
// says; fragments may arrive in any order; an overlap or a datagram beyond 65535 bytes drops the whole
// queue (as Linux does since the FragmentSmack fixes); queues older than `timeout` (Linux ipfrag_time,
// 30 s) are dropped lazily, and when every slot is busy the oldest queue is evicted.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <ipvs/checksum.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/parse.hpp>

namespace ipvs {

/// Where the input fragments were cut: payload offset and length of each, in offset order.
template <std::size_t MaxFrags = 64>
struct frag_geometry {
    struct piece {
        std::uint16_t offset = 0;
        std::uint16_t length = 0;
    };
    std::array<piece, MaxFrags> pieces{};
    std::size_t count = 0;
};

enum class reasm_status : std::uint8_t {
    incomplete,     ///< stored; more fragments needed
    complete,       ///< `datagram` holds the whole datagram
    not_fragment,   ///< the packet is not a fragment: use it as it is
    overlap,        ///< overlapping fragments: the queue was dropped
    too_big,        ///< beyond 65535 bytes: the queue was dropped
    too_many_frags, ///< more fragments than the geometry can record: the queue was dropped
    bad_packet,     ///< not an IPv4 fragment that parsed
};

template <std::size_t Slots = 16, std::size_t MaxFrags = 64>
class ipv4_reassembler {
public:
    using geometry = frag_geometry<MaxFrags>;
    struct result {
        reasm_status status = reasm_status::bad_packet;
        std::span<const std::byte> datagram{}; ///< valid until the next add()
        geometry geom{};
    };

    explicit ipv4_reassembler(time_ns timeout = std::chrono::seconds(30))
        : m_buffers(std::make_unique<std::byte[]>(Slots * buffer_size)), m_timeout(timeout) {}

    /// Offers one IPv4 packet (`pkt` starts at its IP header, described by `ip` from parse()).
    [[nodiscard]] result add(std::span<const std::byte> pkt, const ip_info& ip, time_ns now) noexcept {
        result r;
        if (ip.af != family::v4 || ip.offset != 0 || ip.total_len > pkt.size()) return r;
        if (!ip.is_fragment()) return r.status = reasm_status::not_fragment, r;
        const std::size_t hl = ip.header_len, len = ip.total_len - hl, off = ip.frag_offset;
        if (off + len > 65535 - hl) return drop(find(ip), r, reasm_status::too_big);
        if (ip.mf && len % 8 != 0) return r; // only the last fragment may end off an 8-byte boundary
        queue* q = find(ip);
        if (q == nullptr) q = claim(ip, now);
        // Overlap check against what the queue holds (RFC 5722 spirit; Linux drops the queue).
        for (std::size_t i = 0; i < q->geom.count; ++i) {
            const auto& p = q->geom.pieces[i];
            if (off < std::size_t{p.offset} + p.length && std::size_t{p.offset} < off + len)
                return drop(q, r, reasm_status::overlap);
        }
        if (q->geom.count == MaxFrags) return drop(q, r, reasm_status::too_many_frags);
        if (!ip.mf) {
            if (q->total != 0 && q->total != off + len) return drop(q, r, reasm_status::overlap);
            q->total = off + len;
        }
        std::byte* buf = m_buffers.get() + static_cast<std::size_t>(q - m_queues.data()) * buffer_size;
        if (off == 0) { // the first fragment brings the header (with its options)
            std::copy_n(pkt.data(), hl, buf);
            q->header_len = hl;
        }
        std::copy_n(pkt.data() + hl, len, buf + header_room + off);
        insert_sorted(q->geom, static_cast<std::uint16_t>(off), static_cast<std::uint16_t>(len));
        q->have += len;
        if (q->total == 0 || q->header_len == 0 || q->have != q->total)
            return r.status = reasm_status::incomplete, r;

        // Complete: header in front of the payload, length and flags fixed, header checksum recomputed.
        std::byte* dg = buf + header_room - q->header_len;
        std::copy_n(buf, q->header_len, dg);
        store_be16(dg + ipv4_hdr::total_len, static_cast<std::uint16_t>(q->header_len + q->total));
        store_be16(dg + ipv4_hdr::frag,
                   static_cast<std::uint16_t>(load_be16(dg + ipv4_hdr::frag) & ipv4_hdr::flag_df));
        store_be16(dg + ipv4_hdr::check, 0);
        store_be16(dg + ipv4_hdr::check, internet_checksum(std::span<const std::byte>(dg, q->header_len)));
        r.status = reasm_status::complete;
        r.datagram = std::span<const std::byte>(dg, q->header_len + q->total);
        r.geom = q->geom;
        q->used = false;
        return r;
    }

    /// Queues currently waiting for fragments.
    [[nodiscard]] std::size_t pending() const noexcept {
        return static_cast<std::size_t>(
            std::count_if(m_queues.begin(), m_queues.end(), [](const queue& q) { return q.used; }));
    }

private:
    static constexpr std::size_t header_room = 64;                  // max IPv4 header is 60 bytes
    static constexpr std::size_t buffer_size = header_room + 65536; // header + max payload
    struct queue {
        bool used = false;
        inet_addr saddr{}, daddr{};
        std::uint16_t id = 0;
        std::uint8_t protocol = 0;
        time_ns born{0};
        std::size_t header_len = 0, total = 0, have = 0;
        geometry geom{};
    };

    queue* find(const ip_info& ip) noexcept {
        for (auto& q : m_queues)
            if (q.used && q.id == ip.frag_id && q.protocol == ip.protocol && q.saddr == ip.saddr &&
                q.daddr == ip.daddr)
                return &q;
        return nullptr;
    }
    queue* claim(const ip_info& ip, time_ns now) noexcept {
        for (auto& q : m_queues)
            if (q.used && now - q.born >= m_timeout) q.used = false; // expired (lazily)
        queue* victim = &m_queues[0];
        for (auto& q : m_queues) {
            if (!q.used) {
                victim = &q;
                break;
            }
            if (q.born < victim->born) victim = &q; // all busy: evict the oldest
        }
        *victim = queue{};
        victim->used = true;
        victim->saddr = ip.saddr;
        victim->daddr = ip.daddr;
        victim->id = static_cast<std::uint16_t>(ip.frag_id);
        victim->protocol = ip.protocol;
        victim->born = now;
        return victim;
    }
    static result& drop(queue* q, result& r, reasm_status s) noexcept {
        if (q) q->used = false;
        r.status = s;
        return r;
    }
    static void insert_sorted(geometry& g, std::uint16_t off, std::uint16_t len) noexcept {
        std::size_t i = g.count;
        while (i > 0 && g.pieces[i - 1].offset > off) {
            g.pieces[i] = g.pieces[i - 1];
            --i;
        }
        g.pieces[i] = {off, len};
        ++g.count;
    }

    std::array<queue, Slots> m_queues{};
    std::unique_ptr<std::byte[]> m_buffers;
    time_ns m_timeout;
};

/// Cuts the IPv4 datagram `dg` (header at 0, no fragment flags) at the boundaries of `geom` and calls
/// `emit(std::span<const std::byte>)` for each fragment, built in `scratch` (at least header + the largest
/// piece). Each fragment keeps the datagram's header (identification, TTL, addresses) with its own
/// length, offset, MF flag and header checksum (RFC 791 §3.2 fragmentation). Returns false, emitting
/// nothing, when the geometry does not describe the datagram or `scratch` is too small.
template <std::size_t MaxFrags, class Emit>
[[nodiscard]] bool refragment(std::span<const std::byte> dg, const frag_geometry<MaxFrags>& geom,
                              std::span<std::byte> scratch, Emit&& emit) noexcept {
    if (dg.size() < ipv4_hdr::min_len) return false;
    const std::size_t hl = (std::to_integer<std::size_t>(dg[0]) & 0xf) * 4;
    if (hl < ipv4_hdr::min_len || hl > dg.size() || geom.count == 0) return false;
    std::size_t expect = 0, largest = 0;
    for (std::size_t i = 0; i < geom.count; ++i) {
        if (geom.pieces[i].offset != expect) return false;
        expect += geom.pieces[i].length;
        largest = std::max<std::size_t>(largest, geom.pieces[i].length);
    }
    if (expect != dg.size() - hl || scratch.size() < hl + largest) return false;
    const std::uint16_t df = load_be16(dg.data() + ipv4_hdr::frag) & ipv4_hdr::flag_df;
    for (std::size_t i = 0; i < geom.count; ++i) {
        const auto& p = geom.pieces[i];
        std::byte* f = scratch.data();
        std::copy_n(dg.data(), hl, f);
        std::copy_n(dg.data() + hl + p.offset, p.length, f + hl);
        const bool more = i + 1 < geom.count;
        store_be16(f + ipv4_hdr::total_len, static_cast<std::uint16_t>(hl + p.length));
        store_be16(f + ipv4_hdr::frag,
                   static_cast<std::uint16_t>(df | (more ? ipv4_hdr::flag_mf : 0) | (p.offset / 8)));
        store_be16(f + ipv4_hdr::check, 0);
        store_be16(f + ipv4_hdr::check, internet_checksum(std::span<const std::byte>(f, hl)));
        emit(std::span<const std::byte>(f, hl + p.length));
    }
    return true;
}

} // namespace ipvs
