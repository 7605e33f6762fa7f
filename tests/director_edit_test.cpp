// SPDX-License-Identifier: MIT
// Tests for director::edit_service (ipvsadm -E): scheduler, persistence and flags changed at run time, with
// the kernel's effects on live connections (spec §1.9, §3.5).
#include <doctest/doctest.h>

#include <map>

#include <ipvs/director.hpp>

#include "support/director_config.hpp"

using namespace ipvs;

namespace {

const endpoint vip = *parse_endpoint("10.0.0.100:80");
const endpoint rs_a = *parse_endpoint("10.0.2.11:8080");
const endpoint rs_b = *parse_endpoint("10.0.2.12:8080");

endpoint client(unsigned host, std::uint16_t port) {
    return endpoint{*parse_addr("10.1." + std::to_string(host / 256) + "." + std::to_string(host % 256)),
                    port};
}

/// Sends `token` from the client side; returns the dest it was forwarded to (or nullptr).
const dest* send_in(director& d, const endpoint& from, const char* token, std::uint8_t proto = ipproto::tcp,
                    time_ns now = std::chrono::seconds(1)) {
    auto p = test::token_packet(proto, token, from, vip);
    const verdict v = d.in(p, now);
    return v.act == action::forward ? v.to : nullptr;
}

struct two_dests {
    director d;
    director::svc_entry* s = nullptr;
    explicit two_dests(const char* sched, int wa = 1, int wb = 1, std::uint8_t proto = ipproto::tcp) {
        service_config c;
        c.vip = vip;
        c.protocol = proto;
        c.scheduler = sched;
        s = &d.add_service(c);
        d.add_dest(*s, dest_config{rs_a, wa}); // the list is then b, a (a new dest goes to the head)
        d.add_dest(*s, dest_config{rs_b, wb});
    }
    service_config cfg() const { return s->cfg; }
};

int templates(const director& d) {
    int n = 0;
    d.for_each_conn([&](const auto& e) { n += e.is_template() ? 1 : 0; });
    return n;
}

} // namespace

TEST_CASE("edit_service: rr → wrr is a fresh wrr over the same dests; live connections keep their dest") {
    two_dests t("rr", 1, 3);
    std::map<int, const dest*> was;
    for (int i = 0; i < 4; ++i) was[i] = send_in(t.d, client(1, static_cast<std::uint16_t>(1000 + i)), "cS");
    // rr from the head: b, a, b, a.
    CHECK(was[0]->ep == rs_b);
    CHECK(was[1]->ep == rs_a);

    auto c = t.cfg();
    c.scheduler = "wrr";
    t.d.edit_service(c);
    CHECK(t.s->svc.scheduler().name() == "wrr");
    CHECK(t.s->cfg.scheduler == "wrr");

    // The old connections still go where they went (an ACK of each flow).
    for (int i = 0; i < 4; ++i)
        CHECK(send_in(t.d, client(1, static_cast<std::uint16_t>(1000 + i)), "cA") == was[i]);

    // wrr (spec §2.2) from init (cw = mw = 3): weight 3 gets 3 of every 4 new connections, and the cycle
    // starts with the heaviest dest.
    std::map<endpoint, int> got;
    const dest* first = nullptr;
    for (int i = 0; i < 16; ++i) {
        const dest* x = send_in(t.d, client(2, static_cast<std::uint16_t>(2000 + i)), "cS");
        REQUIRE(x);
        if (!first) first = x;
        ++got[x->ep];
    }
    CHECK(first->ep == rs_b);
    CHECK(got[rs_b] == 12);
    CHECK(got[rs_a] == 4);
}

TEST_CASE(
    "edit_service: persistence on, a returning client follows its template; off, the scheduler decides") {
    two_dests t("rr");
    auto c = t.cfg();
    c.persistent = true;
    c.persist_timeout = std::chrono::seconds(300);
    c.netmask_prefix = 24; // -M 255.255.255.0
    t.d.edit_service(c);
    CHECK(t.s->svc.params().persistent);

    const dest* first = send_in(t.d, client(7, 1000), "cS");
    REQUIRE(first);
    // Same client, other ports, and another host of the same /24: all follow the template (spec §3.5).
    for (std::uint16_t p = 1001; p < 1006; ++p) CHECK(send_in(t.d, client(7, p), "cS") == first);
    CHECK(send_in(t.d, client(8, 1000), "cS") == first);
    CHECK(templates(t.d) == 1);

    c.persistent = false;
    t.d.edit_service(c);
    // The scheduler is asked again (rr's next pick is the other dest); the template lives on until it
    // expires.
    const dest* after = send_in(t.d, client(7, 3000), "cS");
    REQUIRE(after);
    CHECK(after != first);
    CHECK(templates(t.d) == 1);
    // Connections made under persistence still go to their dest.
    CHECK(send_in(t.d, client(7, 1001), "cA") == first);
}

TEST_CASE("edit_service: one-packet scheduling switched on for UDP stops hashing new datagrams") {
    two_dests t("rr", 1, 1, ipproto::udp);
    REQUIRE(send_in(t.d, client(1, 5000), "c:U", ipproto::udp));
    CHECK(t.d.connections() == 1);
    auto c = t.cfg();
    c.one_packet = true;
    t.d.edit_service(c);
    // -o (spec §3.4): each datagram is scheduled afresh and never hashed: rr alternates.
    const dest* x = send_in(t.d, client(1, 5001), "c:U", ipproto::udp);
    const dest* y = send_in(t.d, client(1, 5001), "c:U", ipproto::udp);
    REQUIRE(x);
    REQUIRE(y);
    CHECK(x != y);
    CHECK(t.d.connections() == 1);
    // The connection made before the edit is still used.
    CHECK(send_in(t.d, client(1, 5000), "c:U", ipproto::udp) != nullptr);
}

TEST_CASE("edit_service: sh gains sh-port; an unchanged scheduler keeps its state") {
    two_dests t("rr");
    // rr's cursor survives an edit that does not change the scheduler.
    CHECK(send_in(t.d, client(1, 1000), "cS")->ep == rs_b);
    auto c = t.cfg();
    c.persist_timeout = std::chrono::seconds(60);
    t.d.edit_service(c);
    CHECK(send_in(t.d, client(1, 1001), "cS")->ep == rs_a);

    // sh without sh-port sends every port of one client to one dest; with it, ports spread (spec §2.9).
    c.scheduler = "sh";
    t.d.edit_service(c);
    std::map<endpoint, int> plain;
    for (std::uint16_t p = 0; p < 64; ++p)
        ++plain[send_in(t.d, client(3, static_cast<std::uint16_t>(4000 + p)), "cS")->ep];
    CHECK(plain.size() == 1);
    c.sched_flags.port = true;
    t.d.edit_service(c);
    CHECK(t.s->svc.params().sched.port);
    std::map<endpoint, int> ported;
    for (std::uint16_t p = 0; p < 64; ++p)
        ++ported[send_in(t.d, client(3, static_cast<std::uint16_t>(5000 + p)), "cS")->ep];
    CHECK(ported.size() == 2);
}

TEST_CASE("edit_service: an unknown service or scheduler throws and changes nothing") {
    two_dests t("rr");
    auto c = t.cfg();
    c.vip.port = 81;
    CHECK_THROWS_AS(t.d.edit_service(c), std::invalid_argument);
    c = t.cfg();
    c.scheduler = "nope";
    c.persistent = true;
    CHECK_THROWS_AS(t.d.edit_service(c), std::invalid_argument);
    CHECK(t.s->svc.scheduler().name() == "rr");
    CHECK_FALSE(t.s->cfg.persistent);
    CHECK(send_in(t.d, client(1, 1000), "cS")->ep == rs_b);
}
