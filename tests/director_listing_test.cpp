// SPDX-License-Identifier: MIT
// Tests for io.hpp's ipvsadm-style listings of a director: `ipvsadm -Lnc` (list_conns) and
// `ipvsadm -Ln --stats` (list_stats), against flows pushed through the director.
#include <doctest/doctest.h>

#include <cstdio>
#include <sstream>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>

#include "support/director_config.hpp"

using namespace ipvs;
using namespace std::chrono_literals;

namespace {

const endpoint vip = *parse_endpoint("10.0.0.100:80");
const endpoint vip_udp = *parse_endpoint("10.0.0.100:53");
const endpoint rs = *parse_endpoint("10.0.2.11:8080");
const endpoint rs_udp = *parse_endpoint("10.0.2.11:5353");

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// ipvsadm's columns, written out by hand: "%-3s %-6s %-11s %-18s %-18s %s" (protocol, mm:ss, state,
// client, virtual, real server).
std::string row(const char* pro, const char* expire, const char* state, const char* src, const char* virt,
                const char* dst) {
    char b[256];
    std::snprintf(b, sizeof b, "%-3s %-6s %-11s %-18s %-18s %s", pro, expire, state, src, virt, dst);
    return b;
}

struct setup {
    director d;
    director::svc_entry *tcp = nullptr, *udp = nullptr;
    setup() {
        service_config c;
        c.vip = vip;
        c.scheduler = "rr";
        tcp = &d.add_service(c);
        d.add_dest(*tcp, dest_config{rs, 1});
        c.vip = vip_udp;
        c.protocol = ipproto::udp;
        udp = &d.add_service(c);
        d.add_dest(*udp, dest_config{rs_udp, 1});
    }
    verdict in(std::uint8_t proto, const char* token, const endpoint& from, const endpoint& to, time_ns now,
               std::size_t* len = nullptr) {
        auto p = test::token_packet(proto, token, from, to);
        if (len) *len += p.size();
        return d.in(p, now);
    }
    verdict out(std::uint8_t proto, const char* token, const endpoint& from, const endpoint& to, time_ns now,
                std::size_t* len = nullptr) {
        auto p = test::token_packet(proto, token, from, to);
        if (len) *len += p.size();
        return d.out(p, now);
    }
};

} // namespace

TEST_CASE("list_conns: ipvsadm -Lnc rows for TCP states, UDP and a template, expiry in mm:ss") {
    setup s;
    const endpoint c1 = *parse_endpoint("10.1.0.1:40000"), c2 = *parse_endpoint("10.1.0.2:40001");
    const endpoint c3 = *parse_endpoint("10.1.0.3:5000");
    const time_ns t0 = 10s;
    // c1: a whole handshake → ESTABLISHED (900 s, spec §4.1); c2: a SYN only → SYN_RECV (60 s);
    // c3: one datagram → UDP (300 s, §5.4).
    REQUIRE(s.in(ipproto::tcp, "cS", c1, vip, t0).act == action::forward);
    REQUIRE(s.out(ipproto::tcp, "sSA", rs, c1, t0).act == action::forward);
    REQUIRE(s.in(ipproto::tcp, "cA", c1, vip, t0).act == action::forward);
    REQUIRE(s.in(ipproto::tcp, "cS", c2, vip, t0).act == action::forward);
    REQUIRE(s.in(ipproto::udp, "c:U", c3, vip_udp, t0).act == action::forward);

    // 1.5 s later: whole seconds left, rounded down as /proc/net/ip_vs_conn does.
    const auto text = list_conns(s.d, t0 + 1500ms, true);
    const auto ls = lines_of(text);
    REQUIRE(ls.size() == 5);
    CHECK(ls[0] == "IPVS connection entries");
    CHECK(ls[1] == "pro expire state       source             virtual            destination");
    std::set<std::string> rows(ls.begin() + 2, ls.end());
    CHECK(
        rows.count(row("TCP", "14:58", "ESTABLISHED", "10.1.0.1:40000", "10.0.0.100:80", "10.0.2.11:8080")));
    CHECK(rows.count(row("TCP", "00:58", "SYN_RECV", "10.1.0.2:40001", "10.0.0.100:80", "10.0.2.11:8080")));
    CHECK(rows.count(row("UDP", "04:58", "UDP", "10.1.0.3:5000", "10.0.0.100:53", "10.0.2.11:5353")));

    // A client FIN moves c1 to CLOSE_WAIT (60 s) and the server's FIN to TIME_WAIT (120 s): §4.3.
    REQUIRE(s.in(ipproto::tcp, "cFA", c1, vip, t0 + 2s).act == action::forward);
    REQUIRE(s.out(ipproto::tcp, "sFA", rs, c1, t0 + 2s).act == action::forward);
    CHECK(lines_of(list_conns(s.d, t0 + 2s))[0] == ls[1]); // no title by default
    CHECK(list_conns(s.d, t0 + 2s)
              .find(row("TCP", "02:00", "TIME_WAIT", "10.1.0.1:40000", "10.0.0.100:80", "10.0.2.11:8080")) !=
          std::string::npos);
    // After 62 s c2's SYN_RECV is overdue (not yet polled): it lists at 00:00, then poll() removes it.
    CHECK(list_conns(s.d, t0 + 62s)
              .find(row("TCP", "00:00", "SYN_RECV", "10.1.0.2:40001", "10.0.0.100:80", "10.0.2.11:8080")) !=
          std::string::npos);
    s.d.poll(t0 + 62s);
    CHECK(list_conns(s.d, t0 + 62s).find("10.1.0.2:40001") == std::string::npos);
}

TEST_CASE("list_conns: a persistence template and IPv6 endpoints") {
    director d;
    service_config c;
    c.vip = vip;
    c.scheduler = "rr";
    c.persistent = true;
    c.persist_timeout = 300s;
    c.netmask_prefix = 24;
    auto& svc = d.add_service(c);
    d.add_dest(svc, dest_config{rs, 1});
    auto p = test::token_packet(ipproto::tcp, "cS", *parse_endpoint("10.1.7.9:1234"), vip);
    REQUIRE(d.in(p, 1s).act == action::forward);
    const auto text = list_conns(d, 1s);
    // The template: client network with port 0, state NONE until a connection it controls is established.
    CHECK(text.find(row("TCP", "05:00", "NONE", "10.1.7.0:0", "10.0.0.100:80", "10.0.2.11:8080")) !=
          std::string::npos);
    CHECK(text.find(row("TCP", "01:00", "SYN_RECV", "10.1.7.9:1234", "10.0.0.100:80", "10.0.2.11:8080")) !=
          std::string::npos);

    service_config c6;
    c6.vip = *parse_endpoint("[fd00::100]:80");
    c6.af = family::v6;
    c6.scheduler = "rr";
    auto& s6 = d.add_service(c6);
    d.add_dest(s6, dest_config{*parse_endpoint("[fd00:2::b]:8080"), 1});
    auto q = test::token_packet(ipproto::tcp, "cS", *parse_endpoint("[fd01::1]:40000"), c6.vip);
    REQUIRE(d.in(q, 1s).act == action::forward);
    CHECK(list_conns(d, 1s).find(row("TCP", "01:00", "SYN_RECV", "[fd01::1]:40000", "[fd00::100]:80",
                                     "[fd00:2::b]:8080")) != std::string::npos);
}

TEST_CASE("list_stats: ipvsadm -Ln --stats counts the connections, packets and bytes pushed through") {
    setup s;
    std::size_t in_bytes = 0, out_bytes = 0;
    int in_pkts = 0, out_pkts = 0;
    const time_ns t = 1s;
    for (unsigned i = 0; i < 5; ++i) { // five TCP flows: SYN, SYN-ACK, ACK, data both ways
        const endpoint c{*parse_addr("10.1.0." + std::to_string(i + 1)),
                         static_cast<std::uint16_t>(40000 + i)};
        REQUIRE(s.in(ipproto::tcp, "cS", c, vip, t, &in_bytes).act == action::forward);
        REQUIRE(s.out(ipproto::tcp, "sSA", rs, c, t, &out_bytes).act == action::forward);
        REQUIRE(s.in(ipproto::tcp, "cA", c, vip, t, &in_bytes).act == action::forward);
        REQUIRE(s.in(ipproto::tcp, "cPA", c, vip, t, &in_bytes).act == action::forward);
        REQUIRE(s.out(ipproto::tcp, "sPA", rs, c, t, &out_bytes).act == action::forward);
        in_pkts += 3;
        out_pkts += 2;
    }
    // A packet IPVS does not take is not counted (an ACK without a connection: the host stack's).
    std::size_t ignored = 0;
    CHECK(s.in(ipproto::tcp, "cA", *parse_endpoint("10.1.9.9:9"), vip, t, &ignored).act == action::accept);

    char want_svc[256], want_dest[256], want_udp[256];
    std::snprintf(want_svc, sizeof want_svc, "%-33s%9d%9d%9d%9zu%9zu", "TCP  10.0.0.100:80", 5, in_pkts,
                  out_pkts, in_bytes, out_bytes);
    std::snprintf(want_dest, sizeof want_dest, "  -> %-28s%9d%9d%9d%9zu%9zu", "10.0.2.11:8080", 5, in_pkts,
                  out_pkts, in_bytes, out_bytes);
    std::snprintf(want_udp, sizeof want_udp, "%-33s%9d%9d%9d%9d%9d", "UDP  10.0.0.100:53", 0, 0, 0, 0, 0);
    const auto ls = lines_of(list_stats(s.d));
    REQUIRE(ls.size() == 6);
    CHECK(ls[0] == "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
    CHECK(ls[1] == "  -> RemoteAddress:Port");
    CHECK(ls[2] == want_svc);
    CHECK(ls[3] == want_dest);
    CHECK(ls[4] == want_udp);
}

TEST_CASE("large_number: ipvsadm's scaled counters") {
    CHECK(large_number(0) == "        0");
    CHECK(large_number(99999999) == " 99999999");
    CHECK(large_number(100000000) == "  100000K");
    CHECK(large_number(999999999) == "  999999K");
    CHECK(large_number(1000000000) == "    1000M");
    CHECK(large_number(123456789012ULL) == "     123G");
    CHECK(large_number(123456789012345ULL) == "     123T");
}
