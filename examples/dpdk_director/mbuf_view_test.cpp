// SPDX-License-Identifier: MIT
// Tests of mbuf_view.hpp on mbufs from a real mempool (EAL with --no-huge --no-pci): bytes in place, chains,
// the L3 offset, offload flags ↔ csum_state, and the director's rewrite on mbufs.
//
// Independent truth: packets are built and checked with DPDK's own helpers (rte_ipv4_cksum,
// rte_ipv4/ipv6_udptcp_cksum and _verify, rte_ipv4/ipv6_phdr_cksum, rte_hash_crc for SCTP's CRC32c,
// rte_pktmbuf_read for chains), and the director's output on an mbuf is compared with its output on a
// plain byte vector (the path the library's own tests check against the kernel's vectors).

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_sctp.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <ipvs/director.hpp>
#include <ipvs/parse.hpp>

#include "../common/replay.hpp"
#include "../common/rules.hpp"
#include "mbuf_view.hpp"

namespace {

using ipvs::csum_state;
using ipvs::dpdk::mbuf_status;
using bytes = std::vector<std::byte>;

rte_mempool* g_pool = nullptr;
rte_mempool* g_small_pool = nullptr; // 128-byte data rooms, to make chains that cannot be linearized

// ---- packets built with DPDK's helpers -------------------------------------------------------------

struct spec {
    bool v6 = false;
    std::uint8_t proto = IPPROTO_TCP;
    std::size_t l2 = 14; ///< 18: one VLAN tag
    std::size_t payload = 32;
};

constexpr std::uint8_t client4[4] = {10, 1, 2, 3}, vip4[4] = {10, 0, 0, 100};
constexpr std::uint8_t client6[16] = {0xfd, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
constexpr std::uint8_t vip6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
constexpr std::uint16_t cport = 40000;

std::uint16_t vport_of(std::uint8_t proto) {
    return proto == IPPROTO_TCP ? 80 : proto == IPPROTO_UDP ? 53 : 3868;
}

std::size_t l4_len(const spec& s) {
    return (s.proto == IPPROTO_TCP   ? sizeof(rte_tcp_hdr)
            : s.proto == IPPROTO_UDP ? sizeof(rte_udp_hdr)
                                     : 12 + 20) +
           s.payload;
}

/// SCTP's CRC32c (RFC 4960 appendix B) with DPDK's CRC32c: the register starts at all ones, the result is
/// inverted and stored in its little-endian byte order.
void sctp_crc(std::uint8_t* l4, std::size_t len) {
    std::memset(l4 + 8, 0, 4);
    alignas(8) std::uint8_t aligned[2048]; // rte_hash_crc reads 8-byte words: give it aligned ones
    REQUIRE(len <= sizeof aligned);
    std::memcpy(aligned, l4, len);
    const std::uint32_t c = ~rte_hash_crc(aligned, static_cast<std::uint32_t>(len), 0xffffffffU);
    for (int i = 0; i < 4; ++i) l4[8 + i] = static_cast<std::uint8_t>(c >> (8 * i));
}
bool sctp_crc_ok(const std::uint8_t* l4, std::size_t len) {
    std::vector<std::uint8_t> copy(l4, l4 + len);
    sctp_crc(copy.data(), len);
    return std::memcmp(copy.data() + 8, l4 + 8, 4) == 0;
}

/// A client → VIP frame with every checksum right; TCP is a SYN, SCTP an INIT chunk.
bytes build(const spec& s) {
    const std::size_t l3 = s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr), n4 = l4_len(s);
    std::vector<std::uint8_t> f(s.l2 + l3 + n4, 0);
    for (int i = 0; i < 12; ++i) f[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(0x20 + i);
    const std::uint16_t et = s.v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4;
    if (s.l2 == 18) f[12] = 0x81, f[13] = 0x00, f[14] = 0x00, f[15] = 0x07; // VLAN 7
    f[s.l2 - 2] = static_cast<std::uint8_t>(et >> 8), f[s.l2 - 1] = static_cast<std::uint8_t>(et);
    std::uint8_t* ip = f.data() + s.l2;
    std::uint8_t* l4 = ip + l3;
    if (s.v6) {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(ip);
        h->vtc_flow = rte_cpu_to_be_32(6U << 28);
        h->payload_len = rte_cpu_to_be_16(static_cast<std::uint16_t>(n4));
        h->proto = s.proto;
        h->hop_limits = 64;
        std::memcpy(h->src_addr, client6, 16);
        std::memcpy(h->dst_addr, vip6, 16);
    } else {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(ip);
        h->version_ihl = 0x45;
        h->total_length = rte_cpu_to_be_16(static_cast<std::uint16_t>(l3 + n4));
        h->packet_id = rte_cpu_to_be_16(0x1234);
        h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        h->time_to_live = 64;
        h->next_proto_id = s.proto;
        std::memcpy(&h->src_addr, client4, 4);
        std::memcpy(&h->dst_addr, vip4, 4);
        h->hdr_checksum = rte_ipv4_cksum(h);
    }
    const std::uint16_t sp = rte_cpu_to_be_16(cport), dp = rte_cpu_to_be_16(vport_of(s.proto));
    std::memcpy(l4, &sp, 2);
    std::memcpy(l4 + 2, &dp, 2);
    for (std::size_t i = 0; i < s.payload; ++i) f[f.size() - 1 - i] = static_cast<std::uint8_t>(i * 7 + 1);
    if (s.proto == IPPROTO_SCTP) {
        l4[4] = 0;  // verification tag 0 with INIT (RFC 4960 §8.5.1)
        l4[12] = 1; // INIT
        l4[14] = 0,
        l4[15] = static_cast<std::uint8_t>(20 + s.payload); // type, flags, length, then 16 B of INIT fields
        l4[16] = 0xab;                                      // initiate tag, non-zero
        sctp_crc(l4, n4);
    } else if (s.proto == IPPROTO_TCP) {
        auto* t = reinterpret_cast<rte_tcp_hdr*>(l4);
        t->sent_seq = rte_cpu_to_be_32(1000);
        t->data_off = 0x50;
        t->tcp_flags = RTE_TCP_SYN_FLAG;
        t->rx_win = rte_cpu_to_be_16(65535);
    } else {
        reinterpret_cast<rte_udp_hdr*>(l4)->dgram_len = rte_cpu_to_be_16(static_cast<std::uint16_t>(n4));
    }
    if (s.proto != IPPROTO_SCTP) {
        std::uint16_t* check = reinterpret_cast<std::uint16_t*>(l4 + (s.proto == IPPROTO_TCP ? 16 : 6));
        *check = s.v6 ? rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(ip), l4)
                      : rte_ipv4_udptcp_cksum(reinterpret_cast<rte_ipv4_hdr*>(ip), l4);
    }
    bytes out(f.size());
    std::memcpy(out.data(), f.data(), f.size());
    return out;
}

/// DPDK's verdict on the L4 checksum of the packet at `l2` in `f`.
bool l4_checksum_ok(const std::uint8_t* f, const spec& s) {
    const std::uint8_t* ip = f + s.l2;
    const std::uint8_t* l4 = ip + (s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr));
    if (s.proto == IPPROTO_SCTP) return sctp_crc_ok(l4, l4_len(s));
    return s.v6 ? rte_ipv6_udptcp_cksum_verify(reinterpret_cast<const rte_ipv6_hdr*>(ip), l4) == 0
                : rte_ipv4_udptcp_cksum_verify(reinterpret_cast<const rte_ipv4_hdr*>(ip), l4) == 0;
}

/// An mbuf from the pool holding `f`, l2_len set.
rte_mbuf* to_mbuf(const bytes& f, std::size_t l2 = 14, rte_mempool* pool = g_pool) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    REQUIRE(m != nullptr);
    char* p = rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size()));
    REQUIRE(p != nullptr);
    std::memcpy(p, f.data(), f.size());
    m->l2_len = static_cast<std::uint16_t>(l2) & 0x7f;
    return m;
}

struct mbuf_guard {
    rte_mbuf* m;
    ~mbuf_guard() { rte_pktmbuf_free(m); }
};

std::uint16_t* l4_check_field(rte_mbuf* m, const spec& s) {
    auto* l4 = rte_pktmbuf_mtod_offset(m, std::uint8_t*,
                                       s.l2 + (s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr)));
    return reinterpret_cast<std::uint16_t*>(l4 + (s.proto == IPPROTO_TCP ? 16 : 6));
}

/// The pseudo-header sum DPDK's TX offload contract wants in the L4 checksum field.
std::uint16_t phdr_sum(rte_mbuf* m, const spec& s) {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const void*, s.l2);
    return s.v6 ? rte_ipv6_phdr_cksum(static_cast<const rte_ipv6_hdr*>(ip), 0)
                : rte_ipv4_phdr_cksum(static_cast<const rte_ipv4_hdr*>(ip), 0);
}

/// A director with one service per protocol and family, each with one dest (the rewrite's known
/// target), set up from ipvsadm-save rules as the examples are.
struct fixture {
    ipvs::director d;
    fixture() {
        const auto r = ipvs::examples::parse_rules(
            "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.2.11:8080 -m\n"
            "-A -u 10.0.0.100:53 -s rr\n-a -u 10.0.0.100:53 -r 10.0.2.11:8080 -m\n"
            "-A --sctp-service 10.0.0.100:3868 -s rr\n"
            "-a --sctp-service 10.0.0.100:3868 -r 10.0.2.11:8080 -m\n"
            "-A -t [fd00::100]:80 -s rr\n-a -t [fd00::100]:80 -r [fd00:2::b]:8080 -m\n"
            "-A -u [fd00::100]:53 -s rr\n-a -u [fd00::100]:53 -r [fd00:2::b]:8080 -m\n"
            "-A --sctp-service [fd00::100]:3868 -s rr\n"
            "-a --sctp-service [fd00::100]:3868 -r [fd00:2::b]:8080 -m\n");
        REQUIRE(r.ok());
        ipvs::examples::configure_director(d, r.rules);
    }
};

std::vector<spec> all_specs() {
    std::vector<spec> v;
    for (bool v6 : {false, true})
        for (std::uint8_t p :
             {std::uint8_t{IPPROTO_TCP}, std::uint8_t{IPPROTO_UDP}, std::uint8_t{IPPROTO_SCTP}})
            for (std::size_t l2 : {std::size_t{14}, std::size_t{18}}) v.push_back({v6, p, l2, 32});
    return v;
}
std::string name(const spec& s) {
    return std::string(s.v6 ? "IPv6 " : "IPv4 ") +
           (s.proto == IPPROTO_TCP   ? "TCP"
            : s.proto == IPPROTO_UDP ? "UDP"
                                     : "SCTP") +
           (s.l2 == 18 ? " VLAN" : "");
}

} // namespace

TEST_CASE("mbuf_view: a single-segment mbuf is the packet in place (zero-copy)") {
    const bytes f = build({});
    mbuf_guard g{to_mbuf(f)};
    const auto r = ipvs::dpdk::view_mbuf(g.m);
    REQUIRE(r.ok());
    auto v = r.view;
    const auto b = ipvs::packet_bytes(v);
    CHECK(static_cast<const void*>(b.data()) == rte_pktmbuf_mtod(g.m, void*));
    CHECK(b.size() == rte_pktmbuf_data_len(g.m));
    b[20] = std::byte{0x5a}; // writes go to the mbuf
    CHECK(*rte_pktmbuf_mtod_offset(g.m, std::uint8_t*, 20) == 0x5a);
    static_assert(ipvs::mutable_packet_view<ipvs::dpdk::mbuf_view>);
}

TEST_CASE("mbuf_view: a chained mbuf is refused; linearize copies it into one segment or says it cannot") {
    const bytes f = build({.payload = 100});
    SUBCASE("room in the first segment: linearized, the same bytes as the chain") {
        rte_mbuf* head = to_mbuf(bytes(f.begin(), f.begin() + 40));
        rte_mbuf* tail = to_mbuf(bytes(f.begin() + 40, f.end()));
        REQUIRE(rte_pktmbuf_chain(head, tail) == 0);
        mbuf_guard g{head};
        CHECK(ipvs::dpdk::view_mbuf(head).status == mbuf_status::multi_segment);
        std::vector<std::uint8_t> chain(rte_pktmbuf_pkt_len(head));
        const void* p = rte_pktmbuf_read(head, 0, static_cast<std::uint32_t>(chain.size()), chain.data());
        std::memcpy(chain.data(), p, chain.size());
        const auto r = ipvs::dpdk::linearize_mbuf(head);
        REQUIRE(r.ok());
        CHECK(head->nb_segs == 1);
        auto v = r.view;
        const auto b = ipvs::packet_bytes(v);
        REQUIRE(b.size() == chain.size());
        CHECK(std::memcmp(b.data(), chain.data(), chain.size()) == 0);
        CHECK(ipvs::parse(v).ok()); // and the library reads it whole
    }
    SUBCASE("no room: linearize_failed, the chain untouched") {
        rte_mbuf* head = to_mbuf(bytes(f.begin(), f.begin() + 100), 14, g_small_pool);
        rte_mbuf* tail = to_mbuf(bytes(f.begin() + 100, f.end()), 14, g_small_pool);
        REQUIRE(rte_pktmbuf_chain(head, tail) == 0);
        mbuf_guard g{head};
        CHECK(ipvs::dpdk::linearize_mbuf(head).status == mbuf_status::linearize_failed);
        CHECK(head->nb_segs == 2);
    }
    SUBCASE("no mbuf") {
        CHECK(ipvs::dpdk::view_mbuf(nullptr).status == mbuf_status::null_mbuf);
        CHECK(ipvs::dpdk::linearize_mbuf(nullptr).status == mbuf_status::null_mbuf);
    }
}

TEST_CASE("mbuf_view: the L3 offset is l2_len") {
    for (const spec& s : all_specs()) {
        CAPTURE(name(s));
        mbuf_guard g{to_mbuf(build(s), s.l2)};
        auto v = ipvs::dpdk::view_mbuf(g.m).view;
        CHECK(ipvs::l3_offset(v) == s.l2);
        const auto r = ipvs::parse(v);
        REQUIRE(r.ok());
        CHECK(r.info.ip.offset == s.l2);
        CHECK(r.info.ip.protocol == s.proto);
        CHECK(std::memcmp(r.info.ip.saddr.bytes.data(), s.v6 ? client6 : client4, s.v6 ? 16 : 4) == 0);
        CHECK(r.info.l4.sport == cport);
        CHECK(r.info.l4.dport == vport_of(s.proto));
    }
}

TEST_CASE("mbuf_view: RX checksum flags read as csum_state") {
    mbuf_guard g{to_mbuf(build({}))};
    auto v = ipvs::dpdk::view_mbuf(g.m).view;
    struct row {
        std::uint64_t flags;
        csum_state state;
        bool bad;
    };
    for (const row& r : {row{RTE_MBUF_F_RX_L4_CKSUM_GOOD, csum_state::unnecessary, false},
                         row{RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN, csum_state::none, false},
                         row{RTE_MBUF_F_RX_L4_CKSUM_BAD, csum_state::none, true},
                         row{RTE_MBUF_F_RX_L4_CKSUM_NONE, csum_state::partial, false}}) {
        CAPTURE(r.flags);
        g.m->ol_flags = r.flags;
        CHECK(ipvs::checksum_state(v) == r.state);
        CHECK(v.rx_l4_checksum_bad() == r.bad);
    }
    g.m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_BAD;
    CHECK(v.rx_ip_checksum_bad());
    g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4;
    CHECK(ipvs::checksum_state(v) == csum_state::partial); // prepared for TX: the NIC completes the sum
}

TEST_CASE("mbuf_view: set_checksum_state writes the flags back") {
    for (const spec& s : all_specs()) {
        CAPTURE(name(s));
        mbuf_guard g{to_mbuf(build(s), s.l2)};
        auto v = ipvs::dpdk::view_mbuf(g.m).view;
        SUBCASE("partial requests TX offload for the packet's protocol") {
            g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_NONE;
            ipvs::set_checksum_state(v, csum_state::partial);
            const std::uint64_t l4 = s.proto == IPPROTO_TCP   ? RTE_MBUF_F_TX_TCP_CKSUM
                                     : s.proto == IPPROTO_UDP ? RTE_MBUF_F_TX_UDP_CKSUM
                                                              : RTE_MBUF_F_TX_SCTP_CKSUM;
            CHECK((g.m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == l4);
            CHECK((g.m->ol_flags & (s.v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4)) != 0);
            CHECK(std::size_t{g.m->l3_len} == (s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr)));
            CHECK(ipvs::checksum_state(v) == csum_state::partial);
        }
        SUBCASE("a full-checksum state clears the TX request; unnecessary marks RX good") {
            g.m->ol_flags = RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4;
            ipvs::set_checksum_state(v, csum_state::unnecessary);
            CHECK((g.m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_L4_NO_CKSUM);
            CHECK((g.m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD);
            CHECK(ipvs::checksum_state(v) == csum_state::unnecessary);
        }
        SUBCASE("none forgets a stale good, keeps a bad; complete is recorded as none") {
            g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
            ipvs::set_checksum_state(v, csum_state::none);
            CHECK((g.m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN);
            g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD;
            ipvs::set_checksum_state(v, csum_state::none);
            CHECK(v.rx_l4_checksum_bad());
            g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
            ipvs::set_checksum_state(v, csum_state::complete);
            CHECK(ipvs::checksum_state(v) == csum_state::none);
        }
    }
}

TEST_CASE("director on mbufs: the same rewrite as on a byte vector, checksums right by DPDK's verdict") {
    for (const spec& s : all_specs()) {
        for (std::uint64_t rx :
             {std::uint64_t{RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN}, std::uint64_t{RTE_MBUF_F_RX_L4_CKSUM_GOOD}}) {
            CAPTURE(name(s));
            CAPTURE(rx);
            const bytes f = build(s);
            fixture on_mbuf, on_vector;
            mbuf_guard g{to_mbuf(f, s.l2)};
            g.m->ol_flags = rx;
            auto v = ipvs::dpdk::view_mbuf(g.m).view;
            bytes l3(f.begin() + static_cast<long>(s.l2), f.end());
            const auto a = on_mbuf.d.in(v, ipvs::time_ns{1});
            const auto b = on_vector.d.in(l3, ipvs::time_ns{1});
            REQUIRE(a.act == ipvs::action::forward);
            REQUIRE(b.act == ipvs::action::forward);
            const auto* m = rte_pktmbuf_mtod(g.m, const std::byte*);
            CHECK(std::memcmp(m, f.data(), s.l2) == 0); // L2 is the datapath's: untouched
            CHECK(std::memcmp(m + s.l2, l3.data(), l3.size()) == 0);
            CHECK(l4_checksum_ok(rte_pktmbuf_mtod(g.m, const std::uint8_t*), s));
            // The destination is the dest's, the RX verdict still holds after an RFC 1624 update.
            const auto info = ipvs::parse(v).info;
            CHECK(info.ip.daddr == *ipvs::parse_addr(s.v6 ? "fd00:2::b" : "10.0.2.11"));
            CHECK(info.l4.dport == 8080);
            CHECK(ipvs::checksum_state(v) ==
                  (rx == RTE_MBUF_F_RX_L4_CKSUM_GOOD ? csum_state::unnecessary : csum_state::none));
        }
    }
}

TEST_CASE("director on mbufs: an input with a bad L4 checksum is forwarded still wrong, the flag visible") {
    for (const spec& s : all_specs()) {
        if (s.proto == IPPROTO_SCTP)
            continue; // SCTP's CRC is recomputed when the port changes (kernel: same)
        CAPTURE(name(s));
        bytes f = build(s);
        f.back() ^= std::byte{0xff}; // payload changed after the checksum: wrong
        fixture x;
        mbuf_guard g{to_mbuf(f, s.l2)};
        g.m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD;
        auto v = ipvs::dpdk::view_mbuf(g.m).view;
        REQUIRE(x.d.in(v, ipvs::time_ns{1}).act == ipvs::action::forward);
        CHECK_FALSE(l4_checksum_ok(rte_pktmbuf_mtod(g.m, const std::uint8_t*), s));
        CHECK(v.rx_l4_checksum_bad());
        CHECK(ipvs::checksum_state(v) == csum_state::none);
    }
}

TEST_CASE("director on mbufs with TX offload: the rewrite leaves the pseudo-header sum the NIC completes") {
    for (const spec& s : all_specs()) {
        CAPTURE(name(s));
        fixture x;
        mbuf_guard g{to_mbuf(build(s), s.l2)};
        const std::uint64_t l4 = s.proto == IPPROTO_TCP   ? RTE_MBUF_F_TX_TCP_CKSUM
                                 : s.proto == IPPROTO_UDP ? RTE_MBUF_F_TX_UDP_CKSUM
                                                          : RTE_MBUF_F_TX_SCTP_CKSUM;
        g.m->ol_flags = l4 | (s.v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4);
        g.m->l3_len = s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr);
        if (s.proto != IPPROTO_SCTP) *l4_check_field(g.m, s) = phdr_sum(g.m, s); // DPDK's TX preparation
        auto v = ipvs::dpdk::view_mbuf(g.m).view;
        REQUIRE(x.d.in(v, ipvs::time_ns{1}).act == ipvs::action::forward);
        CHECK(ipvs::checksum_state(v) == csum_state::partial);
        CHECK((g.m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == l4);
        if (s.proto == IPPROTO_SCTP) { // the library writes the CRC itself (a NIC would overwrite it equally)
            CHECK(l4_checksum_ok(rte_pktmbuf_mtod(g.m, const std::uint8_t*), s));
            continue;
        }
        // Exactly what the NIC expects for the new addresses ...
        CHECK(*l4_check_field(g.m, s) == phdr_sum(g.m, s));
        // ... and what it then fills in verifies.
        auto* ip = rte_pktmbuf_mtod_offset(g.m, std::uint8_t*, s.l2);
        auto* l4p = ip + (s.v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr));
        *l4_check_field(g.m, s) = 0;
        *l4_check_field(g.m, s) = s.v6 ? rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(ip), l4p)
                                       : rte_ipv4_udptcp_cksum(reinterpret_cast<rte_ipv4_hdr*>(ip), l4p);
        CHECK(l4_checksum_ok(rte_pktmbuf_mtod(g.m, const std::uint8_t*), s));
        if (!s.v6) {
            // Summed with its checksum field, a valid header gives 0 (rte_ipv4_cksum sums the whole header).
            CHECK(rte_ipv4_cksum(reinterpret_cast<rte_ipv4_hdr*>(ip)) == 0);
        }
    }
}

int main(int argc, char** argv) {
    // EAL arguments come first (CTest passes --no-huge --no-pci -m 256 --file-prefix …); without any, these.
    std::string prefix = "ipvs_mbuf_view_" + std::to_string(getpid());
    std::vector<char*> eal;
    std::vector<std::string> defaults = {argv[0], "--no-huge",     "--no-pci", "-m",
                                         "256",   "--file-prefix", prefix,     "--log-level=error"};
    const bool given = argc > 1 && std::string(argv[1]).rfind("--no-huge", 0) == 0;
    if (given)
        for (int i = 0; i < argc; ++i) eal.push_back(argv[i]);
    else
        for (auto& d : defaults) eal.push_back(d.data());
    const int used = rte_eal_init(static_cast<int>(eal.size()), eal.data());
    if (used < 0) {
        std::fprintf(stderr, "mbuf_view_test: EAL could not start (%s)%s\n", rte_strerror(rte_errno),
                     geteuid() != 0 ? ": not root, skipped" : "");
        return geteuid() != 0 ? 77 : 1;
    }
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    g_pool = rte_pktmbuf_pool_create("test_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    g_small_pool = rte_pktmbuf_pool_create("test_small", 63, 0, 0, RTE_PKTMBUF_HEADROOM + 128, SOCKET_ID_ANY);
    if (!g_pool || !g_small_pool) {
        std::fprintf(stderr, "mbuf_view_test: mempool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    doctest::Context ctx;
    ctx.applyCommandLine(given ? argc - used + 1 : argc, given ? argv + used - 1 : argv);
    const int rc = ctx.run();
    rte_mempool_free(g_pool);
    rte_mempool_free(g_small_pool);
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec); // this run's own prefix: leave nothing behind
    return rc;
}
