// SPDX-License-Identifier: MIT
// rte_mbuf as an ipvs packet view: zero-copy bytes, the L3 offset from l2_len, offload flags ↔ csum_state.
#pragma once

// Design
// ------
// The library reaches packet bytes only through `ipvs::packet_traits<P>` (packet_view.hpp); this file
// specialises it for `mbuf_view`, a pointer-sized handle on one rte_mbuf, with no change to the library.
//
//   bytes(v)        [rte_pktmbuf_mtod(m), + data_len): the frame in place, zero-copy
//   l3_offset(v)    m->l2_len: the datapath (our dispatcher) parses L2 once and records it there
//   checksum_state  from ol_flags, both directions, after Linux's ip_summed (CLARIFICATIONS "Checksum
//                   state of a view"):
//
//     ol_flags                                   csum_state    why
//     TX L4 offload requested (TCP/UDP/SCTP)     partial       the field holds the pseudo-header sum and
//                                                              the NIC completes it (DPDK's TX contract)
//     RX_L4_CKSUM_GOOD                           unnecessary   the NIC verified it
//     RX_L4_CKSUM_UNKNOWN                        none          nothing known; the field is a full sum
//     RX_L4_CKSUM_BAD                            none          + rx_l4_checksum_bad() stays true, so the
//                                                              caller sees it (Linux forwards it still bad)
//     RX_L4_CKSUM_NONE                           partial       DPDK: "not correct in the packet, data
//                                                              valid" — virtio's NEEDS_CSUM, which Linux
//                                                              maps to CHECKSUM_PARTIAL as well
//
//   set_checksum_state writes the state back: partial requests TX L4 offload for the packet's protocol
//   (RTE_MBUF_F_TX_{TCP,UDP,SCTP}_CKSUM, TX_IPV4/IPV6, l3_len) so the rewrite leaves exactly what a NIC
//   fills in; any full-checksum state clears the TX L4 request; unnecessary marks RX good; none drops a
//   stale "good" (a BAD mark is kept: it describes the input). DPDK has no CHECKSUM_COMPLETE, so
//   `complete` is recorded as none (nat_rewrite downgrades complete to none anyway).
//
// Segments. The library needs contiguous bytes. `view_mbuf` refuses a chained mbuf with
// `mbuf_status::multi_segment` (never a view of the first segment only, which would parse as a
// truncated packet); `linearize_mbuf` copies the chain into the first segment (rte_pktmbuf_linearize)
// and reports `linearize_failed` when it has no room. Both are O(1) for the single-segment case.
//
// DPDK headers do not compile under -Wpedantic: the build includes them as SYSTEM headers.

#include <cstddef>
#include <cstdint>
#include <span>

#include <rte_mbuf.h>

#include <ipvs/headers.hpp>
#include <ipvs/packet_view.hpp>
#include <ipvs/parse.hpp>

namespace ipvs::dpdk {

struct mbuf_result;
[[nodiscard]] inline mbuf_result view_mbuf(rte_mbuf* m) noexcept;
[[nodiscard]] inline mbuf_result linearize_mbuf(rte_mbuf* m) noexcept;

enum class mbuf_status : std::uint8_t {
    ok,
    null_mbuf,        ///< no mbuf given
    multi_segment,    ///< a chained mbuf: linearize it first (linearize_mbuf) or drop it
    linearize_failed, ///< the first segment has no room for the whole chain
};

[[nodiscard]] constexpr const char* to_string(mbuf_status s) noexcept {
    constexpr const char* names[] = {"ok", "no mbuf", "multi-segment mbuf", "cannot linearize the mbuf"};
    return names[static_cast<std::size_t>(s)];
}

/// A single-segment rte_mbuf seen as a packet (a handle: copying it does not copy the packet).
class mbuf_view {
public:
    mbuf_view() = default;
    [[nodiscard]] rte_mbuf* mbuf() const noexcept { return m_m; }

    [[nodiscard]] std::span<std::byte> bytes() const noexcept {
        return {rte_pktmbuf_mtod(m_m, std::byte*), m_m->data_len};
    }
    [[nodiscard]] std::size_t l3_offset() const noexcept { return m_m->l2_len; }

    [[nodiscard]] csum_state checksum_state() const noexcept {
        const std::uint64_t f = m_m->ol_flags;
        if ((f & RTE_MBUF_F_TX_L4_MASK) != RTE_MBUF_F_TX_L4_NO_CKSUM) return csum_state::partial;
        switch (f & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
        case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
            return csum_state::unnecessary;
        case RTE_MBUF_F_RX_L4_CKSUM_NONE:
            return csum_state::partial;
        default:
            return csum_state::none; // UNKNOWN, or BAD (see rx_l4_checksum_bad)
        }
    }

    void set_checksum_state(csum_state s) noexcept {
        std::uint64_t& f = m_m->ol_flags;
        if (s == csum_state::partial) {
            if ((f & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_L4_NO_CKSUM) request_tx_l4_offload();
            return;
        }
        f &= ~RTE_MBUF_F_TX_L4_MASK;
        const std::uint64_t rx = f & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        f &= ~RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if (s == csum_state::unnecessary)
            f |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
        else if (rx == RTE_MBUF_F_RX_L4_CKSUM_BAD)
            f |= RTE_MBUF_F_RX_L4_CKSUM_BAD; // still describes the input: keep it visible
    }

    /// The NIC found the L4 checksum wrong at receive.
    [[nodiscard]] bool rx_l4_checksum_bad() const noexcept {
        return (m_m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD;
    }
    /// The NIC found the IPv4 header checksum wrong at receive (Linux drops such packets in ip_rcv).
    [[nodiscard]] bool rx_ip_checksum_bad() const noexcept {
        return (m_m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD;
    }

private:
    // Only the checked factories make views: a view of a chained mbuf would show its first segment.
    friend mbuf_result view_mbuf(rte_mbuf* m) noexcept;
    friend mbuf_result linearize_mbuf(rte_mbuf* m) noexcept;
    explicit mbuf_view(rte_mbuf* m) noexcept : m_m(m) {}

    /// Partial from a state that had no TX request (RX_L4_CKSUM_NONE): ask the NIC for the packet's L4
    /// protocol. Needs the headers, so it parses — once, off the common path (a TX-prepared packet keeps
    /// its flags, and nat_rewrite keeps a state it did not change).
    void request_tx_l4_offload() noexcept {
        const auto r = parse(std::span<const std::byte>(bytes()), l3_offset());
        if (r.status != parse_status::ok) return;
        std::uint64_t l4 = 0;
        switch (r.info.ip.protocol) {
        case ipproto::tcp:
            l4 = RTE_MBUF_F_TX_TCP_CKSUM;
            break;
        case ipproto::udp:
            l4 = RTE_MBUF_F_TX_UDP_CKSUM;
            break;
        case ipproto::sctp:
            l4 = RTE_MBUF_F_TX_SCTP_CKSUM;
            break;
        default:
            return;
        }
        m_m->ol_flags |= l4 | (r.info.ip.af == family::v4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6);
        m_m->l3_len = r.info.ip.header_len & 0x1ff; // a 9-bit field
    }

    rte_mbuf* m_m = nullptr;
};

/// What view_mbuf / linearize_mbuf give: a usable view when `status == ok`.
struct mbuf_result {
    mbuf_status status = mbuf_status::null_mbuf;
    mbuf_view view{};
    [[nodiscard]] bool ok() const noexcept { return status == mbuf_status::ok; }
};

/// A zero-copy view of a single-segment mbuf; a chained one is refused (multi_segment).
[[nodiscard]] inline mbuf_result view_mbuf(rte_mbuf* m) noexcept {
    if (!m) return {mbuf_status::null_mbuf, {}};
    if (m->nb_segs != 1 || m->next != nullptr) return {mbuf_status::multi_segment, {}};
    return {mbuf_status::ok, mbuf_view(m)};
}

/// A view of any mbuf: a chain is first copied into its first segment (rte_pktmbuf_linearize).
[[nodiscard]] inline mbuf_result linearize_mbuf(rte_mbuf* m) noexcept {
    if (!m) return {mbuf_status::null_mbuf, {}};
    if (m->nb_segs != 1 && rte_pktmbuf_linearize(m) != 0) return {mbuf_status::linearize_failed, {}};
    return {mbuf_status::ok, mbuf_view(m)};
}

} // namespace ipvs::dpdk

/// The adapter: the library's stages (parse, nat_rewrite, director) take an mbuf_view like any packet.
template <>
struct ipvs::packet_traits<ipvs::dpdk::mbuf_view> {
    using view = ipvs::dpdk::mbuf_view;
    static std::span<std::byte> bytes(const view& v) noexcept { return v.bytes(); }
    static std::size_t l3_offset(const view& v) noexcept { return v.l3_offset(); }
    static ipvs::csum_state checksum_state(const view& v) noexcept { return v.checksum_state(); }
    static void set_checksum_state(view& v, ipvs::csum_state s) noexcept { v.set_checksum_state(s); }
};
