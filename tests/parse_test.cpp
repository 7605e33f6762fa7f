// SPDX-License-Identifier: MIT
// Tests for <ipvs/parse.hpp>: facts of well-formed packets and one status per malformed class, over four view
// types.
#include <doctest/doctest.h>

#include <ipvs/parse.hpp>

#include "support/build.hpp"
#include "support/views.hpp"

using namespace ipvs;
using test::bytes;

namespace {
// Parses `pkt` (IP header at 0) behind holder H; foreign_holder gets a 14-byte fake L2 in front.
template <class H>
parse_result parse_as(const bytes& pkt) {
    bytes frame(14, 0xee);
    frame.insert(frame.end(), pkt.begin(), pkt.end());
    H h(frame, 14);
    return parse(h.view());
}
template <class H>
parse_status status_of(const bytes& pkt) {
    return parse_as<H>(pkt).status;
}
const bytes tcp_opts{0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02}; // MSS 1460, NOP NOP SACK-permitted
} // namespace

TEST_CASE_TEMPLATE("parse: IPv4 TCP with options", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto pkt = test::ipv4_packet(ipproto::tcp, "10.1.2.3", "10.0.0.100",
                                       test::tcp_segment(41000, 80, tcp_flag::syn, tcp_opts, {1, 2, 3}),
                                       {0x01, 0x01, 0x01, 0x00}); // IP options: NOP NOP NOP EOL
    const auto r = parse_as<H>(pkt);
    REQUIRE(r.status == parse_status::ok);
    const std::uint32_t base = std::is_same_v<H, test::foreign_holder> ? 14 : 0;
    CHECK(r.info.ip.af == family::v4);
    CHECK(r.info.ip.offset == base);
    CHECK(r.info.ip.header_len == 24);
    CHECK(r.info.ip.total_len == pkt.size());
    CHECK(r.info.ip.df);
    CHECK_FALSE(r.info.ip.is_fragment());
    CHECK(r.info.ip.ttl == 64);
    CHECK(r.info.ip.saddr == *parse_addr("10.1.2.3"));
    CHECK(r.info.ip.daddr == *parse_addr("10.0.0.100"));
    CHECK(r.info.l4.offset == base + 24);
    CHECK(r.info.l4.header_len == 28);
    CHECK(r.info.l4.length == 28 + 3);
    CHECK(r.info.l4.sport == 41000);
    CHECK(r.info.l4.dport == 80);
    CHECK(r.info.l4.tcp_flags == tcp_flag::syn);
    CHECK(r.info.l4.check_offset == base + 24 + 16);
}

TEST_CASE_TEMPLATE("parse: IPv6 UDP behind hop-by-hop, routing and destination options", H,
                   IPVS_TEST_VIEW_HOLDERS) {
    bytes ext = test::ext_header(ipproto::routing);
    const auto rt = test::ext_header(ipproto::dstopts, 24);
    const auto dst = test::ext_header(ipproto::udp, 16);
    ext.insert(ext.end(), rt.begin(), rt.end());
    ext.insert(ext.end(), dst.begin(), dst.end());
    const auto pkt = test::ipv6_packet(ipproto::udp, "fd01::7", "fd00::100",
                                       test::udp_datagram(5000, 53, {9, 9}), ipproto::hopopts, ext);
    const auto r = parse_as<H>(pkt);
    REQUIRE(r.status == parse_status::ok);
    CHECK(r.info.ip.af == family::v6);
    CHECK(r.info.ip.protocol == ipproto::udp);
    CHECK(r.info.ip.header_len == 40 + 8 + 24 + 16);
    CHECK(r.info.l4.sport == 5000);
    CHECK(r.info.l4.dport == 53);
    CHECK(r.info.l4.length == 10);
}

TEST_CASE_TEMPLATE("parse: SCTP chunk walk", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto pkt =
        test::ipv4_packet(ipproto::sctp, "10.1.0.1", "10.0.0.100",
                          test::sctp_packet(5000, 3868, 0xb1b2b3b4,
                                            {test::sctp_chunk(sctp_chunk::cookie_echo, {1, 2, 3, 4, 5}),
                                             test::sctp_chunk(sctp_chunk::data, bytes(13, 7))}));
    const auto r = parse_as<H>(pkt);
    REQUIRE(r.status == parse_status::ok);
    CHECK(r.info.l4.vtag == 0xb1b2b3b4);
    CHECK(r.info.l4.chunk_count == 2);
    CHECK(r.info.l4.chunk_types[0] == sctp_chunk::cookie_echo);
    CHECK(r.info.l4.chunk_types[1] == sctp_chunk::data);
    CHECK(r.info.l4.chunk_mask == ((1U << sctp_chunk::cookie_echo) | (1U << sctp_chunk::data)));
}

TEST_CASE_TEMPLATE("parse: ICMP error quoting a TCP segment", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto inner = test::ipv4_packet(ipproto::tcp, "10.0.2.11", "10.1.0.9",
                                         test::tcp_segment(8080, 40001, tcp_flag::ack));
    bytes quote(inner.begin(), inner.begin() + 28); // IP header + 64 bits, RFC 792
    const auto pkt = test::ipv4_packet(
        ipproto::icmp, "10.0.2.1", "10.0.2.11",
        test::icmp_message(icmp_type::dest_unreach, icmp_type::code_frag_needed, 1400, quote));
    const auto r = parse_as<H>(pkt);
    REQUIRE(r.status == parse_status::ok);
    CHECK(r.info.l4.icmp_type == icmp_type::dest_unreach);
    REQUIRE(r.info.inner.present);
    CHECK(r.info.inner.has_ports);
    CHECK(r.info.inner.ip.saddr == *parse_addr("10.0.2.11"));
    CHECK(r.info.inner.ip.protocol == ipproto::tcp);
    CHECK(r.info.inner.sport == 8080);
    CHECK(r.info.inner.dport == 40001);
    CHECK(r.info.inner.l4_available == 8);

    SUBCASE("a quote cut inside the ports is refused") {
        bytes short_quote(inner.begin(), inner.begin() + 22);
        const auto bad = test::ipv4_packet(ipproto::icmp, "10.0.2.1", "10.0.2.11",
                                           test::icmp_message(icmp_type::dest_unreach, 3, 0, short_quote));
        CHECK(status_of<H>(bad) == parse_status::icmp_bad_quote);
    }
    SUBCASE("a quote that is not IP is refused") {
        const auto bad =
            test::ipv4_packet(ipproto::icmp, "10.0.2.1", "10.0.2.11",
                              test::icmp_message(icmp_type::time_exceeded, 0, 0, bytes(28, 0x11)));
        CHECK(status_of<H>(bad) == parse_status::icmp_bad_quote);
    }
}

TEST_CASE_TEMPLATE("parse: ICMPv6 packet too big quoting a UDP datagram", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto inner = test::ipv6_packet(ipproto::udp, "fd00:2::b", "fd01::9",
                                         test::udp_datagram(5353, 40002, bytes(30, 1)), ipproto::udp);
    const auto pkt =
        test::ipv6_packet(ipproto::icmpv6, "fd00:2::1", "fd00:2::b",
                          test::icmp_message(icmpv6_type::packet_too_big, 0, 1280, inner), ipproto::icmpv6);
    const auto r = parse_as<H>(pkt);
    REQUIRE(r.status == parse_status::ok);
    REQUIRE(r.info.inner.present);
    CHECK(r.info.inner.ip.af == family::v6);
    CHECK(r.info.inner.sport == 5353);
    CHECK(r.info.inner.dport == 40002);
}

TEST_CASE_TEMPLATE("parse: fragments", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto seg = test::udp_datagram(5000, 53, bytes(40, 3));
    SUBCASE("IPv4 first fragment: L4 parsed, marked as a fragment") {
        const auto pkt =
            test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100", seg, {}, ipv4_hdr::flag_mf);
        const auto r = parse_as<H>(pkt);
        CHECK(r.status == parse_status::ok);
        CHECK(r.info.ip.is_fragment());
        CHECK(r.info.l4.dport == 53);
    }
    SUBCASE("IPv4 later fragment: no L4") {
        const auto pkt = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100", seg, {}, 3);
        const auto r = parse_as<H>(pkt);
        CHECK(r.status == parse_status::fragment);
        CHECK(r.info.ip.frag_offset == 24);
    }
    SUBCASE("IPv6 fragment header") {
        bytes fh{ipproto::udp, 0, 0, 0x19, 0xde, 0xad, 0xbe, 0xef}; // offset 3×8, M = 1
        const auto pkt = test::ipv6_packet(ipproto::udp, "fd01::1", "fd00::100", seg, ipproto::fragment, fh);
        const auto r = parse_as<H>(pkt);
        CHECK(r.status == parse_status::fragment);
        CHECK(r.info.ip.frag_offset == 24);
        CHECK(r.info.ip.mf);
        CHECK(r.info.ip.frag_id == 0xdeadbeef);
    }
    SUBCASE("fragment offset beyond 65535") {
        auto pkt = test::ipv4_packet(ipproto::udp, "10.1.0.1", "10.0.0.100", seg, {}, 0x1fff);
        CHECK(status_of<H>(pkt) == parse_status::bad_fragment);
    }
}

TEST_CASE_TEMPLATE("parse: malformed IPv4 headers", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto good =
        test::ipv4_packet(ipproto::tcp, "10.1.0.1", "10.0.0.100", test::tcp_segment(1, 2, tcp_flag::syn));
    REQUIRE(status_of<H>(good) == parse_status::ok);
    SUBCASE("truncated below the fixed header") {
        for (std::size_t n = 0; n < 20; ++n)
            CHECK(status_of<H>(bytes(good.begin(), good.begin() + n)) == parse_status::truncated_l3);
    }
    SUBCASE("bad version") {
        auto p = good;
        p[0] = 0x55;
        CHECK(status_of<H>(p) == parse_status::bad_ip_version);
    }
    SUBCASE("IHL < 5") {
        for (std::uint8_t ihl = 0; ihl < 5; ++ihl) {
            auto p = good;
            p[0] = static_cast<std::uint8_t>(0x40 | ihl);
            CHECK(status_of<H>(p) == parse_status::bad_ihl);
        }
    }
    SUBCASE("IHL past the end of the packet") {
        auto p = good;
        p[0] = 0x4f; // 60 bytes of header, 40 in the packet
        CHECK(status_of<H>(p) == parse_status::ihl_past_end);
    }
    SUBCASE("total length beyond the buffer") {
        auto p = good;
        test::put16(p, 2, static_cast<std::uint16_t>(p.size() + 1));
        CHECK(status_of<H>(p) == parse_status::total_length_past_end);
        // Truncating a valid packet anywhere past the fixed header is caught the same way.
        for (std::size_t n = 20; n < good.size(); ++n)
            CHECK(status_of<H>(bytes(good.begin(), good.begin() + n)) == parse_status::total_length_past_end);
    }
    SUBCASE("total length below the header") {
        auto p = good;
        test::put16(p, 2, 19);
        CHECK(status_of<H>(p) == parse_status::total_length_below_header);
    }
    SUBCASE("trailing link-layer padding is not part of the packet") {
        auto p = good;
        p.insert(p.end(), 6, 0);
        const auto r = parse_as<H>(p);
        CHECK(r.status == parse_status::ok);
        CHECK(r.info.l4.length == 20);
    }
    SUBCASE("unknown protocol") {
        const auto p = test::ipv4_packet(ipproto::gre, "10.1.0.1", "10.0.0.100", bytes(8, 0));
        CHECK(status_of<H>(p) == parse_status::unknown_protocol);
    }
}

TEST_CASE_TEMPLATE("parse: malformed IPv6 headers and extension chains", H, IPVS_TEST_VIEW_HOLDERS) {
    const auto seg = test::tcp_segment(1, 2, tcp_flag::syn);
    const auto good = test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", seg, ipproto::tcp);
    REQUIRE(status_of<H>(good) == parse_status::ok);
    SUBCASE("truncated below the fixed header") {
        for (std::size_t n = 1; n < 40; ++n)
            CHECK(status_of<H>(bytes(good.begin(), good.begin() + n)) == parse_status::truncated_l3);
    }
    SUBCASE("payload length beyond the buffer") {
        auto p = good;
        test::put16(p, 4, static_cast<std::uint16_t>(seg.size() + 1));
        CHECK(status_of<H>(p) == parse_status::total_length_past_end);
    }
    SUBCASE("extension header overrun") {
        auto ext = test::ext_header(ipproto::tcp, 8);
        ext[1] = 10; // claims 88 bytes
        const auto p = test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", seg, ipproto::dstopts, ext);
        CHECK(status_of<H>(p) == parse_status::ext_header_truncated);
        // Not even the 8-byte minimum present.
        const auto q =
            test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", bytes{}, ipproto::dstopts, bytes(4, 0));
        CHECK(status_of<H>(q) == parse_status::ext_header_truncated);
    }
    SUBCASE("an endless chain of destination options is cut off") {
        bytes ext;
        for (int i = 0; i < 12; ++i) {
            auto e = test::ext_header(ipproto::dstopts);
            ext.insert(ext.end(), e.begin(), e.end());
        }
        const auto p = test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", seg, ipproto::dstopts, ext);
        CHECK(status_of<H>(p) == parse_status::ext_header_limit);
    }
    SUBCASE("hop-by-hop after another extension header") {
        bytes ext = test::ext_header(ipproto::hopopts);
        const auto h = test::ext_header(ipproto::tcp);
        ext.insert(ext.end(), h.begin(), h.end());
        const auto p = test::ipv6_packet(ipproto::tcp, "fd01::1", "fd00::100", seg, ipproto::dstopts, ext);
        CHECK(status_of<H>(p) == parse_status::ext_header_order);
    }
    SUBCASE("no next header / ESP are not parsed further") {
        CHECK(status_of<H>(test::ipv6_packet(ipproto::none, "fd01::1", "fd00::100", {}, ipproto::none)) ==
              parse_status::unknown_protocol);
        CHECK(status_of<H>(test::ipv6_packet(ipproto::esp, "fd01::1", "fd00::100", bytes(16, 1),
                                             ipproto::esp)) == parse_status::unknown_protocol);
    }
}

TEST_CASE_TEMPLATE("parse: malformed TCP, UDP, SCTP and ICMP headers", H, IPVS_TEST_VIEW_HOLDERS) {
    auto v4 = [](std::uint8_t proto, const bytes& l4) {
        return test::ipv4_packet(proto, "10.1.0.1", "10.0.0.100", l4);
    };
    SUBCASE("truncated L4 header (IP length consistent, header cut)") {
        CHECK(status_of<H>(v4(ipproto::tcp, bytes(19, 0))) == parse_status::truncated_l4);
        CHECK(status_of<H>(v4(ipproto::udp, bytes(7, 0))) == parse_status::truncated_l4);
        CHECK(status_of<H>(v4(ipproto::sctp, bytes(11, 0))) == parse_status::truncated_l4);
        CHECK(status_of<H>(v4(ipproto::icmp, bytes(7, 0))) == parse_status::truncated_l4);
    }
    SUBCASE("TCP data offset < 5") {
        for (std::uint8_t d = 0; d < 5; ++d) {
            auto seg = test::tcp_segment(1, 2, tcp_flag::ack);
            seg[12] = static_cast<std::uint8_t>(d << 4);
            CHECK(status_of<H>(v4(ipproto::tcp, seg)) == parse_status::bad_tcp_doff);
        }
    }
    SUBCASE("TCP data offset past the end") {
        auto seg = test::tcp_segment(1, 2, tcp_flag::ack, tcp_opts);
        seg[12] = 0xf0;
        CHECK(status_of<H>(v4(ipproto::tcp, seg)) == parse_status::tcp_doff_past_end);
    }
    SUBCASE("UDP length out of range") {
        auto u = test::udp_datagram(1, 2, bytes(4, 0));
        test::put16(u, 4, 7);
        CHECK(status_of<H>(v4(ipproto::udp, u)) == parse_status::bad_udp_length);
        test::put16(u, 4, 13);
        CHECK(status_of<H>(v4(ipproto::udp, u)) == parse_status::bad_udp_length);
    }
    SUBCASE("SCTP chunk lengths") {
        auto s = test::sctp_packet(1, 2, 0, {test::sctp_chunk(sctp_chunk::init, bytes(16, 0))});
        CHECK(status_of<H>(v4(ipproto::sctp, s)) == parse_status::ok);
        for (std::uint16_t bad : {0, 1, 3, 100}) {
            auto t = s;
            test::put16(t, 14, bad);
            CHECK_MESSAGE(status_of<H>(v4(ipproto::sctp, t)) == parse_status::sctp_bad_chunk_length, bad);
        }
        CHECK(status_of<H>(v4(ipproto::sctp, test::sctp_packet(1, 2, 0, {}))) == parse_status::sctp_no_chunk);
        // A stray partial chunk header after a good chunk.
        auto u = s;
        u.insert(u.end(), {0, 0});
        CHECK(status_of<H>(v4(ipproto::sctp, u)) == parse_status::sctp_bad_chunk_length);
    }
    SUBCASE("ICMP in an IPv6 packet is not ICMPv6") {
        CHECK(status_of<H>(test::ipv6_packet(ipproto::icmp, "fd01::1", "fd00::100", bytes(8, 0),
                                             ipproto::icmp)) == parse_status::unknown_protocol);
    }
}

TEST_CASE("parse: every prefix and every single-byte corruption of a packet is handled") {
    // Run under ASan/UBSan in CI: any out-of-bounds read fails the test run.
    const auto inner = test::ipv6_packet(
        ipproto::sctp, "fd00:2::b", "fd01::9",
        test::sctp_packet(1, 2, 3, {test::sctp_chunk(sctp_chunk::data, bytes(9, 1))}), ipproto::sctp);
    const auto pkt =
        test::ipv6_packet(ipproto::icmpv6, "fd00:2::1", "fd00:2::b",
                          test::icmp_message(icmpv6_type::dest_unreach, 4, 0, inner), ipproto::icmpv6);
    int runs = 0;
    for (std::size_t n = 0; n <= pkt.size(); ++n) {
        const bytes p(pkt.begin(), pkt.begin() + n);
        const auto r = parse(test::as_bytes(p));
        CHECK((n == pkt.size()) == r.ok());
        ++runs;
    }
    for (std::size_t i = 0; i < pkt.size(); ++i) {
        for (int v : {0x00, 0xff, 0x01, 0x80}) {
            auto p = pkt;
            p[i] = static_cast<std::uint8_t>(v);
            const auto r = parse(test::as_bytes(p));
            (void)r;
            ++runs;
        }
    }
    CHECK(runs > 500);
}

TEST_CASE("parse: status names are distinct") {
    CHECK(std::string_view(to_string(parse_status::ok)) == "ok");
    CHECK(std::string_view(to_string(parse_status::icmp_bad_quote)) == "bad ICMP quote");
}
