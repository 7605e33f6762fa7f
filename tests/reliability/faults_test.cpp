// SPDX-License-Identifier: MIT
// Faults mid-flow: a dest removed or quiesced, a service deleted, a scheduler changed, the clock jumping —
// each with the kernel's documented outcome (spec §1.7, §1.8, §1.9, §3.6, §3.7) and no leaked entry.
//
// Every case ends the same way: time runs out for every connection, and then the table must be empty
// and every dest must count zero connections; a deleted dest must have left the trash (the trash
// timer frees it only once nothing is bound to it, so a leaked entry or a counter off by one keeps
// it there, and re-adding it then hands back the old object with its counters).
#include <doctest/doctest.h>

#include <string>

#include "reliability/reliability.hpp"

using namespace ipvs;
using namespace std::chrono_literals;

namespace {

const endpoint vip = test::ep4("10.0.0.100:80");
const endpoint rs_a = test::ep4("10.0.2.11:8080"), rs_b = test::ep4("10.0.2.12:8080");

struct fixture {
    director d{director_config{.capacity_v4 = 4096, .capacity_v6 = 256}};
    test::packet_maker m;
    time_ns now = 10s;
    service_config cfg;
    director::svc_entry* svc = nullptr;
    dest* a = nullptr;
    dest* b = nullptr;

    explicit fixture(std::string_view sched = "rr", bool expire_nodest = false) {
        d.sysctl().expire_nodest_conn = expire_nodest;
        cfg.vip = vip;
        cfg.scheduler = sched;
        svc = &d.add_service(cfg);
        b = &d.add_dest(*svc, dest_config{rs_b, 1});
        a = &d.add_dest(*svc, dest_config{rs_a, 1});
    }
    /// Opens TCP flows from distinct clients until `want` of them are bound to `to`.
    std::vector<test::nat_flow> flows_to(const dest* to, std::size_t want, std::size_t first_client = 0) {
        std::vector<test::nat_flow> out;
        for (std::size_t i = first_client; out.size() < want && i < first_client + 64 * want; ++i) {
            auto f = test::open_flow(d, m, now, ipproto::tcp, test::client(i), vip);
            REQUIRE(f.to != nullptr);
            if (f.to == to) out.push_back(f);
        }
        REQUIRE(out.size() == want);
        return out;
    }
    /// Lets every connection time out (TCP ESTABLISHED is 900 s; templates and deferrals 60 s more).
    void expire_all() {
        for (int i = 0; i < 4; ++i) {
            now += 1000s;
            while (d.poll(now, 1 << 20) != 0) {
            }
        }
    }
};

/// Re-adds `ep` to the service after expire_all(). A trashed dest with no connections is freed 120 s
/// after the trash timer finds it idle (§1.8), so this is a new dest — unless a connection leaked and
/// kept it in the trash, when it comes back with that connection in its counters.
void check_revived_empty(fixture& fx, const endpoint& ep) {
    dest& r = fx.d.add_dest(*fx.svc, dest_config{ep, 1});
    CHECK(r.stats.conns == 0); // not the old object: that one carried its connections' count
    CHECK(r.active_conns == 0);
    CHECK(r.inactive_conns == 0);
    CHECK(r.persist_conns == 0);
}

void check_clean(fixture& fx) {
    fx.expire_all();
    CHECK(fx.d.connections() == 0);
    CHECK(test::bookkeeping_errors(fx.d) == "");
    for (const auto& s : fx.d.services())
        for (const dest* x : s->svc.dests())
            CHECK(x->active_conns + x->inactive_conns + x->persist_conns == 0);
}

} // namespace

TEST_CASE("fault: a dest removed mid-flow, expire_nodest_conn = 0 — client packets dropped, replies NATed") {
    fixture fx;
    const auto flows = fx.flows_to(fx.a, 5);
    const auto others = fx.flows_to(fx.b, 5, 1000);
    fx.d.del_dest(*fx.svc, rs_a);
    for (const auto& f : flows) {
        const auto* e = fx.d.table_v4().find_in(
            make_in_tuple<4>(ipproto::tcp, f.client.addr, f.client.port, vip.addr, vip.port));
        REQUIRE(e != nullptr);
        const time_ns deadline = fx.d.deadline(*e);
        fx.now += 5s;
        // §1.8: the client's packet is dropped and does not re-arm the timer ...
        auto& p = fx.m.tcp(f.client, vip, tcp_flag::ack, 16);
        const auto v = fx.d.in(p, fx.now);
        CHECK(v.act == action::drop);
        CHECK(v.reason == drop_reason::dest_unavailable);
        CHECK(fx.d.deadline(*e) == deadline);
        // ... the real server's reply is still NATed, forwarded, and re-arms it.
        CHECK(f.send_out(fx.d, fx.m, fx.now));
        CHECK(fx.d.deadline(*e) > deadline);
    }
    for (const auto& f : others) CHECK(f.send_in(fx.d, fx.m, fx.now));
    // New connections go to the remaining dest only.
    for (std::size_t i = 0; i < 20; ++i) {
        const auto f = test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::client(2000 + i), vip);
        CHECK(f.to == fx.b);
    }
    CHECK(test::bookkeeping_errors(fx.d) == ""); // includes the trashed dest, which still counts its own
    CHECK(fx.a->active_conns >= 5);
    check_clean(fx);
    check_revived_empty(fx, rs_a);
}

TEST_CASE(
    "fault: a dest removed mid-flow, expire_nodest_conn = 1 — its connections expire, a SYN reschedules") {
    fixture fx("rr", true);
    const auto flows = fx.flows_to(fx.a, 6);
    fx.d.del_dest(*fx.svc, rs_a);
    // Right after the delete the connections are still listed (the kernel's work item runs a jiffy later).
    CHECK(fx.d.connections() >= 6);
    SUBCASE("the next poll expires them") {
        (void)fx.d.poll(fx.now);
        for (const auto& f : flows)
            CHECK(fx.d.table_v4().find_in(make_in_tuple<4>(ipproto::tcp, f.client.addr, f.client.port,
                                                           vip.addr, vip.port)) == nullptr);
        CHECK(fx.a->active_conns + fx.a->inactive_conns == 0);
    }
    SUBCASE("before the poll, a client packet expires its connection and is scheduled afresh (§7.1 step 9)") {
        // A mid-stream ACK may not create a connection (§4.4): the host stack gets it.
        auto& ack = fx.m.tcp(flows[0].client, vip, tcp_flag::ack);
        CHECK(fx.d.in(ack, fx.now).act == action::accept);
        // A SYN on the tuple goes to the remaining dest.
        auto& syn = fx.m.tcp(flows[1].client, vip, tcp_flag::syn);
        const auto v = fx.d.in(syn, fx.now);
        CHECK(v.act == action::forward);
        CHECK(v.to == fx.b);
    }
    CHECK(test::bookkeeping_errors(fx.d) == "");
    check_clean(fx);
    check_revived_empty(fx, rs_a);
}

TEST_CASE("fault: a dest set to weight 0 mid-flow — existing flows go on, new ones go elsewhere") {
    for (const bool expire_nodest : {false, true}) {
        CAPTURE(expire_nodest);
        fixture fx("wlc", expire_nodest);
        const auto flows = fx.flows_to(fx.a, 4);
        fx.d.edit_dest(*fx.svc, dest_config{rs_a, 0});
        for (const auto& f : flows) {
            CHECK(f.send_in(fx.d, fx.m, fx.now));
            CHECK(f.send_out(fx.d, fx.m, fx.now));
        }
        for (std::size_t i = 0; i < 30; ++i)
            CHECK(test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::client(3000 + i), vip).to == fx.b);
        // A new SYN on an old tuple (§1.7, §3.7): with expire_nodest_conn the old connection is expired
        // and the SYN rescheduled (to b); without, the ESTABLISHED connection takes it (still a).
        auto& syn = fx.m.tcp(flows[0].client, vip, tcp_flag::syn);
        const auto v = fx.d.in(syn, fx.now);
        CHECK(v.act == action::forward);
        CHECK(v.to == (expire_nodest ? fx.b : fx.a));
        CHECK(test::bookkeeping_errors(fx.d) == "");
        check_clean(fx);
    }
}

TEST_CASE("fault: a service deleted with live connections — they live on until they expire") {
    for (const bool expire_nodest : {false, true}) {
        CAPTURE(expire_nodest);
        fixture fx("rr", expire_nodest);
        auto flows = fx.flows_to(fx.a, 3);
        const auto more = fx.flows_to(fx.b, 3, 500);
        flows.insert(flows.end(), more.begin(), more.end());
        const std::size_t n = fx.d.connections();
        fx.d.del_service(fx.cfg);
        fx.svc = nullptr;
        CHECK(fx.d.services().empty());
        if (!expire_nodest) {
            CHECK(fx.d.connections() == n); // §1.8: connections keep their (trashed) dests
            for (const auto& f : flows) {
                auto& p = fx.m.tcp(f.client, vip, tcp_flag::ack, 16);
                const auto v = fx.d.in(p, fx.now);
                CHECK(v.act == action::drop);
                CHECK(v.reason == drop_reason::dest_unavailable);
            }
        } else {
            (void)fx.d.poll(fx.now);
            CHECK(fx.d.connections() == 0);
        }
        // A new SYN for the deleted service is not IPVS's any more.
        CHECK(fx.d.in(fx.m.tcp(test::client(9000), vip, tcp_flag::syn), fx.now).act == action::accept);
        CHECK(test::bookkeeping_errors(fx.d) == "");
        check_clean(fx);
    }
}

TEST_CASE("fault: a service deleted and added again revives its dests from the trash (§1.8)") {
    // The trash once matched on the svc_entry's address rather than the service's identity: the
    // re-created service got fresh dests while the old connections counted on the trashed ones.
    fixture fx("wlc");
    (void)fx.flows_to(fx.a, 3);
    const int a_active = fx.a->active_conns;
    fx.d.del_service(fx.cfg);
    std::vector<std::unique_ptr<int>> churn; // make an address reuse unlikely
    for (int i = 0; i < 64; ++i) churn.push_back(std::make_unique<int>(i));
    fx.svc = &fx.d.add_service(fx.cfg);
    dest& r = fx.d.add_dest(*fx.svc, dest_config{rs_a, 1});
    CHECK(&r == fx.a);
    CHECK(r.active_conns == a_active);
    CHECK(test::bookkeeping_errors(fx.d) == "");
}

TEST_CASE(
    "fault: the scheduler changed at run time (edit_service) — old flows stay, new ones follow it" *
    doctest::description("rr → wrr with weights 3:1: each wrr cycle gives a 3 picks and b 1 (spec §2.2)")) {
    fixture fx("rr");
    fx.d.edit_dest(*fx.svc, dest_config{rs_a, 3});
    std::vector<test::nat_flow> flows;
    for (std::size_t i = 0; i < 8; ++i)
        flows.push_back(test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::client(i), vip));
    std::size_t to_a = 0;
    for (const auto& f : flows) to_a += f.to == fx.a;
    CHECK(to_a == 4); // rr ignores weights
    service_config c = fx.cfg;
    c.scheduler = "wrr";
    fx.d.edit_service(c);
    CHECK(fx.svc->svc.scheduler().name() == std::string_view("wrr"));
    for (const auto& f : flows) {
        CHECK(f.send_in(fx.d, fx.m, fx.now));
        CHECK(f.send_out(fx.d, fx.m, fx.now));
    }
    std::size_t new_a = 0;
    for (std::size_t i = 0; i < 40; ++i) {
        const auto f = test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::client(100 + i), vip);
        REQUIRE(f.to != nullptr);
        new_a += f.to == fx.a;
    }
    CHECK(new_a == 30);
    CHECK(test::bookkeeping_errors(fx.d) == "");
    check_clean(fx);
}

TEST_CASE("fault: the clock jumps forward a day — mass expiry, bounded per poll, nothing leaked") {
    fixture fx("wlc");
    // A persistent UDP service too, so templates (deferred while they control connections) take part.
    service_config u;
    u.vip = test::ep4("10.0.0.100:53");
    u.protocol = ipproto::udp;
    u.scheduler = "rr";
    u.persistent = true;
    auto& su = fx.d.add_service(u);
    fx.d.add_dest(su, dest_config{test::ep4("10.0.2.11:5353"), 1});
    fx.d.add_dest(su, dest_config{test::ep4("10.0.2.12:5353"), 1});
    for (std::size_t i = 0; i < 2000; ++i) {
        const bool tcp = i % 2 == 0;
        REQUIRE(test::open_flow(fx.d, fx.m, fx.now, tcp ? ipproto::tcp : ipproto::udp, test::client(i),
                                tcp ? vip : u.vip)
                    .to != nullptr);
    }
    const std::size_t total = fx.d.connections();
    MESSAGE(total << " connections and templates");
    fx.now += 24h;
    constexpr std::size_t budget = 256;
    std::size_t polls = 0, expired = 0, worst = 0;
    for (std::size_t n; (n = fx.d.poll(fx.now, budget)) != 0; ++polls) {
        worst = std::max(worst, n);
        expired += n;
        CHECK(test::bookkeeping_errors(fx.d).empty()); // consistent between any two polls
    }
    MESSAGE(polls << " polls, worst " << worst);
    CHECK(worst <= budget);
    CHECK(expired == total - fx.d.connections()); // what is left: templates deferred 60 s (§3.6)
    CHECK(polls >= expired / budget);
    check_clean(fx);
}

TEST_CASE("fault: the clock jumps backward an hour — nothing expires early, flows keep forwarding") {
    fixture fx("rr");
    fx.now = 4000s;
    const auto flows = fx.flows_to(fx.a, 3);
    const std::size_t n = fx.d.connections(); // flows_to opened some to b as well
    const time_ns high = fx.now;              // the latest time the director has seen
    fx.now -= 1h;
    CHECK(fx.d.poll(fx.now) == 0);
    for (const auto& f : flows) {
        CHECK(f.send_in(fx.d, fx.m, fx.now));
        CHECK(f.send_out(fx.d, fx.m, fx.now));
    }
    // A UDP connection made while the clock reads an hour back.
    service_config u;
    u.vip = test::ep4("10.0.0.100:53");
    u.protocol = ipproto::udp;
    auto& su = fx.d.add_service(u);
    fx.d.add_dest(su, dest_config{test::ep4("10.0.2.11:5353"), 1});
    const auto uf = test::open_flow(fx.d, fx.m, fx.now, ipproto::udp, test::client(77), u.vip);
    REQUIRE(uf.to != nullptr);
    // Timers run from the latest time seen (timer_wheel.hpp: time never goes backwards), so by the
    // stepped-back clock everything lives longer, and by the real one nothing dies early: UDP (300 s)
    // and ESTABLISHED (900 s) counted from `high`.
    fx.now = high + 299s;
    (void)fx.d.poll(fx.now);
    CHECK(fx.d.connections() == n + 1);
    fx.now = high + 301s;
    (void)fx.d.poll(fx.now);
    CHECK(fx.d.connections() == n); // the UDP one is gone
    fx.now = high + 899s;
    (void)fx.d.poll(fx.now);
    CHECK(fx.d.connections() == n);
    for (const auto& f : flows) CHECK(f.send_in(fx.d, fx.m, fx.now));
    CHECK(test::bookkeeping_errors(fx.d) == "");
    check_clean(fx);
}

// Two use-after-free bugs these tests found in director.hpp (fixed: a deleted service stays owned while
// trashed dests point at it; a refused re-add leaves the dest in the trash). Under ASan they would abort.

TEST_CASE("bug A: a real server's reply for a connection of a deleted service") {
    // del_service frees the svc_entry; out() then counts the reply in owner_of(dest)'s stats — the
    // freed entry (count_out). The kernel keeps the service alive while its dests are referenced.
    fixture fx("rr");
    const auto flows = fx.flows_to(fx.a, 1);
    fx.d.del_service(fx.cfg);
    CHECK(flows[0].send_out(fx.d, fx.m, fx.now)); // §1.8: replies are still NATed and forwarded
    check_clean(fx);
}

TEST_CASE("bug B: a refused ipvsadm -a of a trashed dest must not free it") {
    // add_dest takes the dest out of the trash before service::add_dest validates the configuration;
    // when that throws, the unique_ptr dies with the stack frame while connections still point at it.
    fixture fx("rr");
    const auto flows = fx.flows_to(fx.a, 1);
    fx.d.del_dest(*fx.svc, rs_a);
    dest_config bad{rs_a, 1};
    bad.u_threshold = 1;
    bad.l_threshold = 2; // lower above upper: refused (ERANGE)
    CHECK_THROWS_AS(fx.d.add_dest(*fx.svc, bad), std::invalid_argument);
    CHECK(flows[0].send_out(fx.d, fx.m, fx.now)); // the connection's dest must still be alive
    check_clean(fx);
}
