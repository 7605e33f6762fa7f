// SPDX-License-Identifier: MIT
// Tests for examples/common/rules.hpp: the ipvsadm-save reader, the demo's --mark rules, to_text().
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "../../examples/common/rules.hpp"
#include "support/oracle.hpp"

using namespace ipvs;
using namespace ipvs::examples;

namespace {

/// Real `ipvsadm-save -n` output (ipvsadm 1.31, Linux 6.1), recorded with the kernel vectors
/// (tests/data/kernel-6.1/sync.jsonl, the backup_setup line), pasted verbatim.
constexpr std::string_view recorded_save = "-A -t 10.0.0.100:180 -s rr\n"
                                           "-a -t 10.0.0.100:180 -r 10.0.2.18:7180 -m -w 1\n"
                                           "-A -t 10.0.0.100:183 -s rr -p 60\n"
                                           "-a -t 10.0.0.100:183 -r 10.0.2.18:7183 -m -w 1\n"
                                           "-A -u 10.0.0.100:181 -s rr\n"
                                           "-a -u 10.0.0.100:181 -r 10.0.2.18:7181 -m -w 1\n"
                                           "-A --sctp-service 10.0.0.100:182 -s rr\n"
                                           "-a --sctp-service 10.0.0.100:182 -r 10.0.2.18:7182 -m -w 1\n"
                                           "-A -t [fd00::100]:180 -s rr\n"
                                           "-a -t [fd00::100]:180 -r [fd00:2::12]:7180 -m -w 1\n";

endpoint ep(std::string_view s) { return *parse_endpoint(s); }
ipvs::inet_addr ad(std::string_view s) { return *parse_addr(s); }

rule_set parse_ok(std::string_view text) {
    auto r = parse_rules(text);
    REQUIRE_MESSAGE(r.ok(), r.error->what());
    return r.rules;
}

const service_rule& only_service(const rule_set& rs) {
    REQUIRE(rs.services.size() == 1);
    return rs.services[0];
}

/// Field-by-field equality, line numbers aside.
bool same(const dest_rule& a, const dest_rule& b) {
    return a.ep == b.ep && a.fwd == b.fwd && a.weight == b.weight && a.u_threshold == b.u_threshold &&
           a.l_threshold == b.l_threshold && a.tun.type == b.tun.type && a.tun.port == b.tun.port &&
           a.tun.csum == b.tun.csum && a.tun.remcsum == b.tun.remcsum;
}
bool same(const service_rule& a, const service_rule& b) {
    if (!(a.af == b.af && a.protocol == b.protocol && a.vip == b.vip && a.fwmark == b.fwmark &&
          a.scheduler == b.scheduler && a.flags.fallback == b.flags.fallback &&
          a.flags.port == b.flags.port && a.persistent == b.persistent &&
          a.persist_timeout == b.persist_timeout && a.netmask_prefix == b.netmask_prefix &&
          a.one_packet == b.one_packet && a.dests.size() == b.dests.size()))
        return false;
    for (std::size_t i = 0; i < a.dests.size(); ++i)
        if (!same(a.dests[i], b.dests[i])) return false;
    return true;
}
bool same(const rule_set& a, const rule_set& b) {
    if (a.services.size() != b.services.size() || a.marks.size() != b.marks.size()) return false;
    for (std::size_t i = 0; i < a.services.size(); ++i)
        if (!same(a.services[i], b.services[i])) return false;
    for (std::size_t i = 0; i < a.marks.size(); ++i) {
        const auto &x = a.marks[i], &y = b.marks[i];
        if (!(x.prefix == y.prefix && x.prefix_len == y.prefix_len && x.protocol == y.protocol &&
              x.port == y.port && x.mark == y.mark))
            return false;
    }
    return true;
}

/// The text must be refused at `line`, quoting something containing `text_part`, saying something
/// containing `message_part`; what() must name the line.
void expect_error(std::string_view rules, std::size_t line, std::string_view text_part,
                  std::string_view message_part) {
    const auto r = parse_rules(rules);
    REQUIRE_MESSAGE(!r.ok(), "accepted: " << rules);
    INFO(r.error->what());
    CHECK(r.error->line == line);
    CHECK(r.error->text.find(text_part) != std::string::npos);
    CHECK(r.error->message.find(message_part) != std::string::npos);
    CHECK(r.error->what().find("line " + std::to_string(line) + ":") == 0);
    CHECK(r.rules.services.empty());
}

class rng {
public:
    explicit rng(std::uint64_t s) : m_s(s) {}
    std::uint64_t next() {
        std::uint64_t z = (m_s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t n) { return next() % n; }

private:
    std::uint64_t m_s;
};

ipvs::inet_addr random_addr(rng& g, family f, bool sparse) {
    std::array<std::uint8_t, 16> b{};
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(g.next());
    if (f == family::v4) return ipvs::inet_addr::v4(static_cast<std::uint32_t>(g.next()));
    if (sparse) // zero some 16-bit groups so that runs of zeros of every length occur
        for (std::size_t w = 0; w < 8; ++w)
            if (g.below(3) != 0) b[2 * w] = b[2 * w + 1] = 0;
    return ipvs::inet_addr::v6(b);
}

} // namespace

TEST_CASE("rules: the ipvsadm-save -n output recorded from Linux 6.1 reads, and to_text() prints it back "
          "unchanged") {
    const auto rs = parse_ok(recorded_save);
    REQUIRE(rs.services.size() == 5);
    const auto& tcp = rs.services[0];
    CHECK(tcp.protocol == proto_tcp);
    CHECK(tcp.vip == ep("10.0.0.100:180"));
    CHECK(tcp.scheduler == "rr");
    CHECK(!tcp.persistent);
    REQUIRE(tcp.dests.size() == 1);
    CHECK(tcp.dests[0].ep == ep("10.0.2.18:7180"));
    CHECK(tcp.dests[0].fwd == fwd_method::masq);
    CHECK(tcp.dests[0].weight == 1);
    CHECK(rs.services[1].persistent);
    CHECK(rs.services[1].persist_timeout == 60);
    CHECK(rs.services[1].netmask_prefix == 32);
    CHECK(rs.services[2].protocol == proto_udp);
    CHECK(rs.services[3].protocol == proto_sctp);
    CHECK(rs.services[4].af == family::v6);
    CHECK(rs.services[4].netmask_prefix == 128);
    CHECK(rs.services[4].dests[0].ep == ep("[fd00:2::12]:7180"));
    CHECK(to_text(rs) == recorded_save);
}

TEST_CASE("rules: every recorded ipvsadm-save listing of the vector sets reads and prints back unchanged") {
    std::size_t checked = 0;
    for (const auto& dir : test::oracle_dirs()) {
        const auto file = test::oracle_file(dir, "sync.jsonl");
        if (!file) continue;
        const std::size_t before = checked;
        for (const auto& j : test::read_jsonl(*file)) {
            if (!j.contains("ipvsadm_save")) continue;
            const std::string text = j["ipvsadm_save"].get<std::string>();
            const auto r = parse_rules(text);
            REQUIRE_MESSAGE(r.ok(), r.error->what());
            CHECK(to_text(r.rules) == text);
            ++checked;
        }
        CHECK_MESSAGE(checked > before, file->string() << " holds no ipvsadm_save listing");
    }
    MESSAGE("recorded listings checked: " << checked);
}

TEST_CASE("rules: virtual service options, short and long forms") {
    SUBCASE("protocols and addresses") {
        const auto rs = parse_ok("-A -t 10.0.0.1:80\n"
                                 "--add-service --udp-service 10.0.0.1:53\n"
                                 "-A --sctp-service [fd00::1]:3868\n"
                                 "-A --tcp-service=[2001:db8::7]:443\n"
                                 "-A -f 7\n"
                                 "-A --fwmark-service 7 --ipv6\n"
                                 "-A -6 -f 8\n");
        REQUIRE(rs.services.size() == 7);
        CHECK(rs.services[0].protocol == proto_tcp);
        CHECK(rs.services[1].protocol == proto_udp);
        CHECK(rs.services[1].vip == ep("10.0.0.1:53"));
        CHECK(rs.services[2].protocol == proto_sctp);
        CHECK(rs.services[2].af == family::v6);
        CHECK(rs.services[3].vip == ep("[2001:db8::7]:443"));
        CHECK(rs.services[4].fwmark == 7);
        CHECK(rs.services[4].af == family::v4);
        CHECK(rs.services[4].protocol == proto_tcp); // as the kernel stores fwmark services
        CHECK(rs.services[5].fwmark == 7);           // same mark, other family: another service
        CHECK(rs.services[5].af == family::v6);
        CHECK(rs.services[6].af == family::v6);
    }
    SUBCASE("schedulers: every name, wlc by default") {
        for (auto name : scheduler_names) {
            const auto s = only_service(parse_ok("-A -t 10.0.0.1:80 --scheduler " + std::string(name)));
            CHECK(s.scheduler == name);
            CHECK(only_service(parse_ok("-A -t 10.0.0.1:80 -s" + std::string(name))).scheduler == name);
        }
        CHECK(only_service(parse_ok("-A -t 10.0.0.1:80")).scheduler == "wlc");
    }
    SUBCASE("persistence: -p with and without a timeout, --persistent, netmasks") {
        auto s = only_service(parse_ok("-A -t 10.0.0.1:80 -p"));
        CHECK(s.persistent);
        CHECK(s.persist_timeout == 300);
        s = only_service(parse_ok("-A -t 10.0.0.1:80 -p -s rr"));
        CHECK(s.persist_timeout == 300);
        CHECK(s.scheduler == "rr");
        s = only_service(parse_ok("-A -t 10.0.0.1:80 --persistent 1"));
        CHECK(s.persist_timeout == 1);
        s = only_service(parse_ok("-A -t 10.0.0.1:80 --persistent=2678400 -M 255.255.255.0"));
        CHECK(s.persist_timeout == 2678400);
        CHECK(s.netmask_prefix == 24);
        CHECK(only_service(parse_ok("-A -t 10.0.0.1:0 -p 60 --netmask 0.0.0.0")).netmask_prefix == 0);
        CHECK(only_service(parse_ok("-A -t 10.0.0.1:0 -p 60 --netmask 255.255.255.255")).netmask_prefix ==
              32);
        CHECK(only_service(parse_ok("-A -t [fd00::1]:80 -p 60 -M 64")).netmask_prefix == 64);
        CHECK(only_service(parse_ok("-A -M 48 -f 3 -6 -p")).netmask_prefix == 48); // -M before -6: order-free
        CHECK(only_service(parse_ok("-A -t 10.0.0.1:0 -p 60")).vip.port == 0);     // port 0 with -p
    }
    SUBCASE("scheduler flags and one-packet scheduling") {
        auto s = only_service(parse_ok("-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port"));
        CHECK(s.flags.fallback);
        CHECK(s.flags.port);
        s = only_service(parse_ok("-A -t 10.0.0.1:80 --sched-flags=mh-port --scheduler mh"));
        CHECK(!s.flags.fallback);
        CHECK(s.flags.port);
        s = only_service(parse_ok("-A -t 10.0.0.1:80 -s sh -b sh-fallback"));
        CHECK(s.flags.fallback);
        CHECK(!s.flags.port);
        CHECK(only_service(parse_ok("-A -u 10.0.0.1:53 -o")).one_packet);
        CHECK(only_service(parse_ok("-A -f 5 --ops")).one_packet);
    }
    SUBCASE("the line may start with `ipvsadm`; comments, blank lines, tabs and CRLF") {
        const auto rs = parse_ok("# a comment\n\n   \n\tipvsadm -A\t-t 10.0.0.1:80  -s rr # trailing\r\n"
                                 "ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.1:80 -m\r\n#-A -t 10.0.0.2:80\n");
        const auto& s = only_service(rs);
        CHECK(s.scheduler == "rr");
        CHECK(s.line == 4);
        REQUIRE(s.dests.size() == 1);
        CHECK(s.dests[0].line == 5);
    }
}

TEST_CASE("rules: real server options, short and long forms") {
    SUBCASE("forwarding methods, weights, thresholds") {
        const auto rs =
            parse_ok("-A -t 10.0.0.1:80 -s wrr\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.1:8080 -m -w 3\n"
                     "--add-server --tcp-service 10.0.0.1:80 --real-server 10.0.2.2:8080 --masquerading "
                     "--weight 0 --u-threshold 100 --l-threshold 50\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.3 --gatewaying -x 7 -y 7\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.4:9999 -g\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.5 -w2147483647\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.6:81 -m -x 2147483647\n");
        const auto& d = only_service(rs).dests;
        REQUIRE(d.size() == 6);
        CHECK(d[0].ep == ep("10.0.2.1:8080"));
        CHECK(d[0].fwd == fwd_method::masq);
        CHECK(d[0].weight == 3);
        CHECK(d[1].weight == 0);
        CHECK(d[1].u_threshold == 100);
        CHECK(d[1].l_threshold == 50);
        CHECK(d[2].fwd == fwd_method::droute);
        CHECK(d[2].ep == ep("10.0.2.3:80")); // no port: the service's
        CHECK(d[2].weight == 1);             // ipvsadm's default
        CHECK(d[2].u_threshold == 7);
        CHECK(d[3].ep == ep("10.0.2.4:80"));   // -g keeps the service's port, as ipvsadm forces it
        CHECK(d[4].fwd == fwd_method::droute); // ipvsadm's default forwarding method
        CHECK(d[4].weight == 2147483647);
        CHECK(d[5].u_threshold == 2147483647);
        CHECK(d[5].ep.port == 81);
    }
    SUBCASE("tunnels: ipip, gue with port and checksum modes, gre; another family only by tunnel") {
        const auto rs =
            parse_ok("-A -t 10.0.0.1:80\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.60 -i\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.61 --ipip --tun-type ipip\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.62 -i --tun-type gue --tun-port 6080\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.63 -i --tun-type=gue --tun-port=6081 --tun-csum\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.64 -i --tun-type gue --tun-port 6082 --tun-remcsum\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.65 -i --tun-type gue --tun-port 6083 --tun-nocsum\n"
                     "-a -t 10.0.0.1:80 -r 10.0.2.66 -i --tun-type gre --tun-csum\n"
                     "-a -t 10.0.0.1:80 -r [fd00:2::60] -i\n");
        const auto& d = only_service(rs).dests;
        REQUIRE(d.size() == 8);
        for (const auto& x : d) CHECK(x.fwd == fwd_method::tunnel);
        CHECK(d[0].tun.type == tun_type::ipip);
        CHECK(d[1].tun.type == tun_type::ipip);
        CHECK(d[2].tun.type == tun_type::gue);
        CHECK(d[2].tun.port == 6080);
        CHECK(!d[2].tun.csum);
        CHECK(d[3].tun.csum);
        CHECK(d[4].tun.remcsum);
        CHECK(!d[5].tun.csum);
        CHECK(!d[5].tun.remcsum);
        CHECK(d[6].tun.type == tun_type::gre);
        CHECK(d[6].tun.csum);
        CHECK(d[7].ep == ep("[fd00:2::60]:80"));
    }
    SUBCASE("fwmark services: dests without a port keep the packet's port; IPv6 address forms") {
        const auto rs = parse_ok("-A -f 16 -s rr\n"
                                 "-a -f 16 -r 10.0.2.11:0 -m\n"
                                 "-a -f 16 -r 10.0.2.12 -m\n"
                                 "-a -f 16 -r 10.0.2.13:8080 -g\n"
                                 "-A -f 22 -6\n"
                                 "-a -f 22 -6 -r [fd00:2::b]:0 -m\n"
                                 "-a -f 22 -6 -r [fd00:2::c] -m\n"
                                 "-a -f 22 -6 -r fd00:2::d -m\n");
        REQUIRE(rs.services.size() == 2);
        CHECK(rs.services[0].dests[0].ep.port == 0);
        CHECK(rs.services[0].dests[1].ep.port == 0);
        CHECK(rs.services[0].dests[2].ep.port == 8080); // fwmark: ipvsadm does not force DR ports
        REQUIRE(rs.services[1].dests.size() == 3);
        CHECK(rs.services[1].dests[1].ep == ep("[fd00:2::c]:0"));
        CHECK(rs.services[1].dests[2].ep == ep("[fd00:2::d]:0"));
    }
}

TEST_CASE("rules: --mark rules and match_mark()") {
    const auto rs = parse_ok("-A -f 16\n-A -f 17\n-A -f 22 -6\n-A -f 23 -6\n"
                             "--mark 10.0.3.0/24=16\n"
                             "--mark tcp 10.0.3.0/24:80=17\n"
                             "--mark 10.0.4.7=16\n"
                             "--mark fd00:3::/64=22\n"
                             "--mark udp [fd00:3::/64]:53=23\n"
                             "--mark sctp [fd00:4::1]:3868=22\n"
                             "--mark 0.0.0.0/0=16\n");
    REQUIRE(rs.marks.size() == 7);
    CHECK(rs.marks[0].prefix == ad("10.0.3.0"));
    CHECK(rs.marks[0].prefix_len == 24);
    CHECK(rs.marks[0].protocol == 0);
    CHECK(rs.marks[1].protocol == proto_tcp);
    CHECK(rs.marks[1].port == 80);
    CHECK(rs.marks[2].prefix_len == 32);
    CHECK(rs.marks[4].prefix == ad("fd00:3::"));
    CHECK(rs.marks[4].port == 53);
    CHECK(rs.marks[5].prefix_len == 128);
    CHECK(rs.marks[5].line == 10);

    // Without the catch-all last rule, the rules in order; the last match wins.
    const std::span<const mark_rule> m(rs.marks.data(), 6);
    CHECK(match_mark(m, ad("10.0.3.9"), proto_udp, 80) == 16);
    CHECK(match_mark(m, ad("10.0.3.9"), proto_tcp, 80) == 17);
    CHECK(match_mark(m, ad("10.0.3.9"), proto_tcp, 81) == 16);
    CHECK(match_mark(m, ad("10.0.4.7"), proto_tcp, 1) == 16);
    CHECK(match_mark(m, ad("10.0.4.8"), proto_tcp, 1) == 0);
    CHECK(match_mark(m, ad("fd00:3::99"), proto_tcp, 53) == 22);
    CHECK(match_mark(m, ad("fd00:3::99"), proto_udp, 53) == 23);
    CHECK(match_mark(m, ad("fd00:4::1"), proto_sctp, 3868) == 22);
    CHECK(match_mark(m, ad("fd00:4::1"), proto_sctp, 3869) == 0);
    CHECK(match_mark(m, ad("::ffff:10.0.3.9"), proto_udp, 80) == 0);    // families never mix
    CHECK(match_mark(rs.marks, ad("10.0.3.9"), proto_tcp, 80) == 16);   // the catch-all comes last
    CHECK(match_mark(rs.marks, ad("fd00:3::99"), proto_udp, 53) == 23); // IPv4 catch-all: not for IPv6
}

TEST_CASE("rules: format_addr() prints what inet_ntop prints") {
    rng g(42);
    std::size_t checked = 0;
    for (int i = 0; i < 4000; ++i) {
        const auto a = random_addr(g, i % 4 == 0 ? family::v4 : family::v6, i % 2 == 1);
        char buf[INET6_ADDRSTRLEN] = {};
        REQUIRE(inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf) != nullptr);
        CHECK_MESSAGE(format_addr(a) == buf, buf);
        ++checked;
    }
    for (auto s : {"::", "::1", "::ffff:1.2.3.4", "::1.2.3.4", "1::", "1:0:0:1:0:0:0:1", "fd00::100"}) {
        const auto a = ad(s);
        char buf[INET6_ADDRSTRLEN] = {};
        REQUIRE(inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf) != nullptr);
        CHECK(format_addr(a) == buf);
        ++checked;
    }
    CHECK(format_endpoint(ep("[fd00::100]:80")) == "[fd00::100]:80");
    CHECK(format_endpoint(ep("10.0.0.1:0")) == "10.0.0.1:0");
    MESSAGE("addresses checked against inet_ntop: " << checked);
}

TEST_CASE("rules: to_text() round trip of every option") {
    const std::string_view all =
        "-A -t 10.0.0.100:80 -s wrr\n"
        "-a -t 10.0.0.100:80 -r 10.0.2.11:8080 -m -w 3\n"
        "-a -t 10.0.0.100:80 -r 10.0.2.12:8080 -m -w 0 -x 100 -y 50\n"
        "-a -t 10.0.0.100:80 -r 10.0.2.13:80 -g -w 1 -x 9\n"
        "-A -t 10.0.0.100:0 -s sh -p 30 -M 255.255.254.0 -b sh-fallback,sh-port\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.60:0 -i -w 1 --tun-type ipip\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.61:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.62:0 -i -w 1 --tun-type gue --tun-port 6081 --tun-csum\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.63:0 -i -w 1 --tun-type gue --tun-port 6082 --tun-remcsum\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.64:0 -i -w 1 --tun-type gre --tun-csum\n"
        "-a -t 10.0.0.100:0 -r 10.0.2.65:0 -i -w 1 --tun-type gre --tun-nocsum\n"
        "-a -t 10.0.0.100:0 -r [fd00:2::60]:0 -i -w 1 --tun-type ipip\n"
        "-A -u [fd00::100]:53 -s mh -p 300 -M 64 -o -b mh-fallback\n"
        "-a -u [fd00::100]:53 -r [fd00:2::b]:5353 -m -w 2\n"
        "-A --sctp-service 10.0.0.100:3868 -s lblcr\n"
        "-a --sctp-service 10.0.0.100:3868 -r 10.0.2.11:3869 -m -w 1\n"
        "-A -f 16 -s rr -p 300\n"
        "-a -f 16 -r 10.0.2.11:0 -m -w 1\n"
        "-A -f 22 -6 -s twos -o\n"
        "-a -f 22 -6 -r [fd00:2::b]:0 -m -w 1\n"
        "--mark 10.0.3.0/24=16\n"
        "--mark tcp 10.0.3.0/24:80=16\n"
        "--mark sctp [fd00:3::/64]:3868=22\n"
        "--mark fd00:4::/48=22\n";
    const auto rs = parse_ok(all);
    CHECK(to_text(rs) == all); // the canonical form prints back byte for byte
    const auto again = parse_ok(to_text(rs));
    CHECK(same(rs, again));
    // A non-canonical spelling of the same rules prints in the canonical form.
    const auto loose = parse_ok("ipvsadm --add-service --fwmark-service 16 --scheduler rr --persistent\n"
                                "-A -f 22 --ipv6 -s twos --ops\n"
                                "--add-server -f 16 --real-server 10.0.2.11 --masquerading\n"
                                "-a -f 22 -6 -r fd00:2::b -m\n");
    CHECK(to_text(loose) == "-A -f 16 -s rr -p 300\n-a -f 16 -r 10.0.2.11:0 -m -w 1\n"
                            "-A -f 22 -6 -s twos -o\n-a -f 22 -6 -r [fd00:2::b]:0 -m -w 1\n");
}

TEST_CASE("rules: to_text() round trip of random rule sets (property)") {
    rng g(7);
    std::size_t services = 0, dests = 0, marks = 0;
    for (int iter = 0; iter < 200; ++iter) {
        rule_set rs;
        const auto nsvc = 1 + g.below(6);
        for (std::uint64_t k = 0; k < nsvc; ++k) {
            service_rule s;
            const bool fw = g.below(4) == 0;
            s.af = g.below(2) == 0 ? family::v4 : family::v6;
            if (fw) {
                s.fwmark = static_cast<std::uint32_t>(1 + k); // distinct
            } else {
                const std::uint8_t protos[] = {proto_tcp, proto_udp, proto_sctp};
                s.protocol = protos[g.below(3)];
                s.vip = endpoint{random_addr(g, s.af, true), static_cast<std::uint16_t>(g.below(65536))};
            }
            s.scheduler = std::string(scheduler_names[g.below(scheduler_names.size())]);
            if (s.scheduler == "sh" || s.scheduler == "mh") s.flags = {g.below(2) == 0, g.below(2) == 0};
            s.persistent = g.below(2) == 0 || (!fw && s.vip.port == 0);
            s.persist_timeout =
                s.persistent ? static_cast<std::uint32_t>(1 + g.below(max_persist_timeout)) : 0;
            const unsigned full = s.af == family::v4 ? 32 : 128;
            s.netmask_prefix = full;
            if (s.persistent && g.below(2) == 0)
                s.netmask_prefix = static_cast<unsigned>(s.af == family::v4 ? g.below(33) : 1 + g.below(128));
            s.one_packet = (fw || s.protocol == proto_udp) && g.below(2) == 0;
            const auto nd = g.below(5);
            for (std::uint64_t j = 0; j < nd; ++j) {
                dest_rule d;
                const fwd_method methods[] = {fwd_method::masq, fwd_method::droute, fwd_method::tunnel};
                d.fwd = methods[g.below(3)];
                const family daf = d.fwd == fwd_method::tunnel && g.below(4) == 0
                                       ? (s.af == family::v4 ? family::v6 : family::v4)
                                       : s.af;
                d.ep = endpoint{random_addr(g, daf, true), static_cast<std::uint16_t>(g.below(65536))};
                if (!fw && d.fwd != fwd_method::masq) d.ep.port = s.vip.port;
                d.weight = static_cast<std::uint32_t>(g.below(std::uint64_t{max_weight} + 1));
                d.u_threshold =
                    g.below(2) == 0 ? 0 : static_cast<std::uint32_t>(g.below(std::uint64_t{max_weight} + 1));
                d.l_threshold = d.u_threshold == 0
                                    ? 0
                                    : static_cast<std::uint32_t>(g.below(std::uint64_t{d.u_threshold} + 1));
                if (d.fwd == fwd_method::tunnel) {
                    d.tun.type = static_cast<tun_type>(g.below(3));
                    if (d.tun.type == tun_type::gue)
                        d.tun.port = static_cast<std::uint16_t>(1 + g.below(65535));
                    if (d.tun.type != tun_type::ipip) {
                        const auto mode = g.below(d.tun.type == tun_type::gue ? 3 : 2);
                        d.tun.csum = mode == 1;
                        d.tun.remcsum = mode == 2;
                    }
                }
                bool dup = false;
                for (const auto& o : s.dests) dup |= o.ep == d.ep;
                if (!dup) s.dests.push_back(d);
            }
            bool dup = false;
            for (const auto& o : rs.services)
                dup |= (o.fwmark != 0 || s.fwmark != 0) ? (o.fwmark == s.fwmark && o.af == s.af)
                                                        : (o.protocol == s.protocol && o.vip == s.vip);
            if (dup) continue;
            if (fw) {
                mark_rule m;
                m.prefix_len = static_cast<unsigned>(g.below(s.af == family::v4 ? 33 : 129));
                m.prefix = random_addr(g, s.af, false).masked(m.prefix_len);
                const std::uint8_t protos[] = {0, proto_tcp, proto_udp, proto_sctp};
                m.protocol = protos[g.below(4)];
                m.port =
                    m.protocol != 0 && g.below(2) == 0 ? static_cast<std::uint16_t>(1 + g.below(65535)) : 0;
                m.mark = s.fwmark;
                rs.marks.push_back(m);
            }
            rs.services.push_back(std::move(s));
        }
        const std::string text = to_text(rs);
        const auto back = parse_rules(text);
        REQUIRE_MESSAGE(back.ok(), back.error->what() << "\n" << text);
        CHECK_MESSAGE(same(rs, back.rules), text);
        CHECK(to_text(back.rules) == text);
        services += rs.services.size();
        marks += rs.marks.size();
        for (const auto& s : rs.services) dests += s.dests.size();
    }
    MESSAGE("round-tripped " << services << " services, " << dests << " dests, " << marks << " mark rules");
    CHECK(services > 400);
    CHECK(dests > 600);
}

TEST_CASE("rules: each error names the line, the offending text and what is wrong") {
    SUBCASE("unknown scheduler") {
        expect_error("\n-A -t 10.0.0.1:80 -s wrong\n", 2, "-s wrong", "unknown scheduler");
    }
    SUBCASE("a dest for a service not defined before it") {
        expect_error("-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m\n-A -t 10.0.0.1:80\n", 1, "-t 10.0.0.1:80",
                     "no such service");
        expect_error("-A -t 10.0.0.1:80\n-a -u 10.0.0.1:80 -r 10.0.2.1:80 -m\n", 2, "-u 10.0.0.1:80",
                     "no such service");
        expect_error("-A -f 5\n-a -f 5 -6 -r [fd00::1]:80 -m\n", 2, "-f 5", "no such service");
    }
    SUBCASE("duplicate service") {
        expect_error("-A -t 10.0.0.1:80\n# x\n-A --tcp-service 10.0.0.1:80 -s rr\n", 3, "10.0.0.1:80",
                     "line 1");
        expect_error("-A -f 5 -6\n-A -6 -f 5\n", 2, "-f 5", "already defined");
    }
    SUBCASE("duplicate dest") {
        expect_error(
            "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m\n-a -t 10.0.0.1:80 -r 10.0.2.1 -g\n", 3,
            "-r 10.0.2.1", "already in this service (line 2)");
    }
    SUBCASE("bad addresses") {
        expect_error("-A -t 10.0.0.256:80\n", 1, "-t 10.0.0.256:80", "not a numeric");
        expect_error("-A -t www.example.com:80\n", 1, "www.example.com", "names are not resolved");
        expect_error("-A -t [fd00::1:80\n", 1, "[fd00::1:80", "]");
        expect_error("-A -t [10.0.0.1]:80\n", 1, "[10.0.0.1]:80", "IPv6");
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2:80\n", 2, "-r 10.0.2:80",
                     "not a numeric");
    }
    SUBCASE("bad ports") {
        expect_error("-A -t 10.0.0.1:65536\n", 1, "10.0.0.1:65536", "port");
        expect_error("-A -t 10.0.0.1:http\n", 1, "10.0.0.1:http", "port");
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [fd00::2]:-1 -i\n", 2, "[fd00::2]:-1", "port");
    }
    SUBCASE("bad weights and thresholds") {
        const std::string svc = "-A -t 10.0.0.1:80\n";
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -w -1\n", 2, "-w -1",
                     "weight must be a number 0..2147483647");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -w 2147483648\n", 2, "-w 2147483648", "weight");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 --weight=3x\n", 2, "--weight=3x", "weight");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -x 1e3\n", 2, "-x 1e3", "upper threshold");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -y +4\n", 2, "-y +4", "lower threshold");
    }
    SUBCASE("lower threshold above the upper one") {
        const std::string svc = "-A -t 10.0.0.1:80\n";
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -x 10 -y 11\n", 2, "-y 11",
                     "above the upper threshold");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -y 5\n", 2, "-y 5", "(-x 0)"); // the kernel: ERANGE
    }
    SUBCASE("mixing families") {
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [fd00::1]:80 -m\n", 2, "-r [fd00::1]:80",
                     "an IPv6 real server in an IPv4 service");
        expect_error("-A -f 3 -6\n-a -f 3 -6 -r 10.0.0.1 -g\n", 2, "-r 10.0.0.1",
                     "IPv4 real server in an IPv6");
        expect_error("-A -f 3\n--mark fd00::/64=3\n", 2, "fd00::/64=3", "no `-f 3 -6` service");
    }
    SUBCASE("unknown options, missing values, stray arguments") {
        expect_error("-A -t 10.0.0.1:80 --bogus\n", 1, "--bogus", "unknown option");
        expect_error("-A -t 10.0.0.1:80 -Q\n", 1, "-Q", "unknown option");
        expect_error("-A -t 10.0.0.1:80 -s\n", 1, "-s", "missing value");
        expect_error("-A -t 10.0.0.1:80 rr\n", 1, "rr", "unexpected argument");
        expect_error("-A -t 10.0.0.1:80 -o5\n", 1, "-o5", "takes no value");
    }
    SUBCASE("options of the other command, and options given twice") {
        expect_error("-A -t 10.0.0.1:80 -w 3\n", 1, "-w 3", "not an option of -A");
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -s rr\n", 2, "-s rr",
                     "not an option of -a");
        expect_error("-A -t 10.0.0.1:80 -s rr --scheduler wrr\n", 1, "--scheduler wrr",
                     "conflicts with `-s rr`");
        expect_error("-A -t 10.0.0.1:80 -u 10.0.0.1:53\n", 1, "-u 10.0.0.1:53", "conflicts");
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -m -g\n", 2, "-g",
                     "conflicts with `-m`");
        expect_error(
            "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type gue --tun-port 1 --tun-csum "
            "--tun-remcsum\n",
            2, "--tun-remcsum", "conflicts with `--tun-csum`");
    }
    SUBCASE("missing pieces, unsupported commands") {
        expect_error("-A -s rr\n", 1, "-A -s rr", "missing the virtual service");
        expect_error("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -m\n", 2, "-a -t 10.0.0.1:80 -m",
                     "missing the real server");
        expect_error("-E -t 10.0.0.1:80 -s rr\n", 1, "-E", "unsupported command");
        expect_error("-C\n", 1, "-C", "unsupported command");
        expect_error("-t 10.0.0.1:80 -A\n", 1, "-t", "unsupported command");
    }
    SUBCASE("ipvsadm's service rules: port 0, -o, -b, -6, fwmark, --pe") {
        expect_error("-A -t 10.0.0.1 -s rr\n", 1, "-t 10.0.0.1",
                     "port 0 (any port) needs a persistent service");
        expect_error("-A -t 10.0.0.1:80 -o\n", 1, "-o", "only for UDP and fwmark services");
        expect_error("-A --sctp-service 10.0.0.1:80 --ops\n", 1, "--ops", "only for UDP");
        expect_error("-A -t 10.0.0.1:80 -s rr -b sh-port\n", 1, "-b sh-port", "does not go with -s rr");
        expect_error("-A -t 10.0.0.1:80 -s sh -b mh-port\n", 1, "-b mh-port", "does not go with -s sh");
        expect_error("-A -t 10.0.0.1:80 -s sh -b sh-port,\n", 1, "-b sh-port,", "unknown scheduler flag ``");
        expect_error("-A -t 10.0.0.1:80 -s sh -b flag-1\n", 1, "-b flag-1",
                     "unknown scheduler flag `flag-1`");
        expect_error("-A -t 10.0.0.1:80 -6\n", 1, "-6", "only for -f");
        expect_error("-A -f 0\n", 1, "-f 0", "fwmark must be a number 1..4294967295");
        expect_error("-A -f 4294967296\n", 1, "-f 4294967296", "fwmark");
        expect_error("-A -t 10.0.0.1:5060 -p --pe sip\n", 1, "--pe sip", "not supported");
    }
    SUBCASE("persistence timeout and netmask") {
        expect_error("-A -t 10.0.0.1:80 -p 0\n", 1, "-p 0", "1..2678400");
        expect_error("-A -t 10.0.0.1:80 -p 2678401\n", 1, "-p 2678401", "1..2678400");
        expect_error("-A -t 10.0.0.1:80 -p 10m\n", 1, "-p 10m", "timeout");
        expect_error("-A -t 10.0.0.1:80 -p -M 255.0.255.0\n", 1, "-M 255.0.255.0", "not contiguous");
        expect_error("-A -t 10.0.0.1:80 -p -M 24\n", 1, "-M 24", "dotted mask");
        expect_error("-A -t [fd00::1]:80 -p -M 129\n", 1, "-M 129", "1..128");
        expect_error("-A -t [fd00::1]:80 -p -M 0\n", 1, "-M 0", "1..128");
        expect_error("-A -t [fd00::1]:80 -p -M 255.255.255.0\n", 1, "-M 255.255.255.0", "prefix length");
    }
    SUBCASE("tunnel options") {
        const std::string svc = "-A -t 10.0.0.1:80\n";
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type gue\n", 2, "--tun-type gue",
                     "needs --tun-port");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-port 6080\n", 2, "--tun-port 6080",
                     "only for --tun-type gue");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type gre --tun-remcsum\n", 2,
                     "--tun-remcsum", "only for --tun-type gue");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-csum\n", 2, "--tun-csum",
                     "only for gue and gre");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -m --tun-type gre\n", 2, "--tun-type gre",
                     "need -i");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type vxlan\n", 2, "--tun-type vxlan",
                     "ipip, gue or gre");
        expect_error(svc + "-a -t 10.0.0.1:80 -r 10.0.2.1 -i --tun-type gue --tun-port 0\n", 2,
                     "--tun-port 0", "1..65535");
    }
    SUBCASE("mark rules") {
        const std::string svc = "-A -f 16\n";
        expect_error(svc + "--mark\n", 2, "--mark", "expected `--mark");
        expect_error(svc + "--mark 10.0.3.0/24\n", 2, "10.0.3.0/24", "PREFIX[:PORT]=MARK");
        expect_error(svc + "--mark icmp 10.0.3.0/24=16\n", 2, "icmp", "tcp, udp or sctp");
        expect_error(svc + "--mark 10.0.3.0/24:80=16\n", 2, "10.0.3.0/24:80=16", "a port needs a protocol");
        expect_error(svc + "--mark 10.0.3.1/24=16\n", 2, "10.0.3.1/24=16", "did you mean 10.0.3.0/24");
        expect_error(svc + "--mark 10.0.3.0/33=16\n", 2, "/33", "0..32");
        expect_error(svc + "--mark fd00::/129=16\n", 2, "/129", "0..128");
        expect_error(svc + "--mark 10.0.3.0/24=0\n", 2, "=0", "mark must be a number");
        expect_error(svc + "--mark tcp 10.0.3.0/24:0=16\n", 2, ":0=16", "port must be a number 1..65535");
        expect_error(svc + "--mark [10.0.3.0/24]=16\n", 2, "[10.0.3.0/24]=16", "brackets are for IPv6");
        expect_error(svc + "--mark tcp 10.0.3.0/24:80=16 extra\n", 2, "--mark", "expected `--mark");
        expect_error(svc + "--mark 10.0.3.0/24=16\n--mark 10.0.3.0/24=16\n", 3, "10.0.3.0/24=16", "line 2");
        expect_error(svc + "# the mark names no service\n--mark 10.0.3.0/24=17\n", 3, "=17",
                     "no `-f 17` service");
    }
    SUBCASE("an unreadable file") {
        const auto r = read_rules_file("/nonexistent/dir/rules.txt");
        REQUIRE(!r.ok());
        CHECK(r.error->line == 0);
        CHECK(r.error->text == "/nonexistent/dir/rules.txt");
        CHECK(r.error->what().find("cannot open") != std::string::npos);
    }
}

TEST_CASE("rules: the bundled sample.rules holds what the demo's sample needs") {
    const auto path =
        std::filesystem::path(IPVS_TEST_DATA_DIR) / ".." / ".." / "examples" / "data" / "sample.rules";
    if (!std::filesystem::exists(path)) {
        MESSAGE("skipping: " << path.string() << " is absent");
        return;
    }
    const auto r = read_rules_file(path);
    REQUIRE_MESSAGE(r.ok(), r.error->what());
    bool rr = false, wrr = false, wlc = false, persistent = false, fwmark = false, v6 = false, udp = false,
         sctp = false;
    for (const auto& s : r.rules.services) {
        rr |= s.scheduler == "rr";
        wlc |= s.scheduler == "wlc";
        persistent |= s.persistent;
        fwmark |= s.fwmark != 0;
        v6 |= s.af == family::v6;
        udp |= s.protocol == proto_udp;
        sctp |= s.protocol == proto_sctp;
        if (s.scheduler == "wrr") {
            wrr = true;
            bool unequal = false;
            for (const auto& d : s.dests) unequal |= d.weight != s.dests.front().weight;
            CHECK_MESSAGE(unequal, "the wrr service should have unequal weights");
        }
        for (const auto& d : s.dests) CHECK(d.fwd == fwd_method::masq); // the demo is a NAT director
    }
    CHECK(rr);
    CHECK(wrr);
    CHECK(wlc);
    CHECK(persistent);
    CHECK(fwmark);
    CHECK(v6);
    CHECK(udp);
    CHECK(sctp);
    CHECK(!r.rules.marks.empty());
}
