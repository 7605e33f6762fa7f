// SPDX-License-Identifier: MIT
// The director's once-a-second defense (spec §3.8: drop_packet, drop_entry, secure_tcp driven by free
// table slots against amemthresh) and its trash timer (spec §1.8: a dest unused for 120 s is freed).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "reliability/reliability.hpp"

using namespace ipvs;
using namespace std::chrono_literals;

namespace {

const endpoint vip = test::ep4("10.0.0.100:80");
const endpoint rs_a = test::ep4("10.0.2.11:8080"), rs_b = test::ep4("10.0.2.12:8080");

/// A director whose IPv4 table holds `capacity` connections, one rr service with two dests.
struct fixture {
    director d;
    test::packet_maker m;
    time_ns now = 10s;
    director::svc_entry* svc = nullptr;
    explicit fixture(std::size_t capacity)
        : d(director_config{.capacity_v4 = capacity, .capacity_v6 = 4096}) {
        service_config c;
        c.vip = vip;
        c.scheduler = "rr";
        svc = &d.add_service(c);
        d.add_dest(*svc, dest_config{rs_b, 1});
        d.add_dest(*svc, dest_config{rs_a, 1});
    }
    /// A SYN from client i: the verdict.
    verdict syn(std::size_t i) { return d.in(m.tcp(test::client(i), vip, tcp_flag::syn), now); }
    /// Established flows from clients [first, first + n).
    std::vector<test::nat_flow> established(std::size_t first, std::size_t n) {
        std::vector<test::nat_flow> out;
        for (std::size_t i = first; i < first + n; ++i) {
            out.push_back(test::open_flow(d, m, now, ipproto::tcp, test::client(i), vip));
            REQUIRE(out.back().to != nullptr);
        }
        return out;
    }
};

} // namespace

TEST_CASE("defense: drop_packet 1 engages below amemthresh at the kernel's rate and disengages after") {
    fixture f(2000);
    f.d.sysctl().drop_packet = 1;
    f.d.sysctl().amemthresh = 1000;
    (void)f.established(0, 1500); // (SYNs alone stop at the embryonic limit, capacity / 2)
    const long avail = static_cast<long>(f.d.table_v4().available());
    REQUIRE(avail < 1000);
    (void)f.d.poll(f.now);
    CHECK(f.d.sysctl().drop_packet == 2); // automatic and active (spec §3.8)
    // rate = amemthresh / (amemthresh − availmem); todrop() drops the rate-th attempt, then every rate-th.
    const long rate = 1000 / (1000 - avail);
    REQUIRE(rate >= 2);
    int dropped = 0;
    for (std::size_t i = 0; i < 40; ++i) {
        const verdict v = f.syn(5000 + i);
        const bool expect_drop = (i + 1) % static_cast<std::size_t>(rate) == 0;
        CHECK(((v.act == action::drop && v.reason == drop_reason::defense) == expect_drop));
        dropped += v.reason == drop_reason::defense;
    }
    CHECK(dropped == 40 / rate);
    // Time passes: the connections go, memory is back, the mode returns to 1.
    f.now += 1000s;
    while (f.d.poll(f.now, 1 << 20) != 0) {
    }
    f.now += 1s;
    (void)f.d.poll(f.now);
    CHECK(f.d.sysctl().drop_packet == 1);
    for (std::size_t i = 0; i < 20; ++i) CHECK(f.syn(9000 + i).act == action::forward);
}

TEST_CASE("defense: drop_packet 3 drops one new connection in am_droprate; 0 never") {
    fixture f(4096);
    f.d.sysctl().drop_packet = 3;
    f.d.sysctl().am_droprate = 4;
    (void)f.d.poll(f.now);
    int dropped = 0;
    for (std::size_t i = 0; i < 40; ++i) dropped += f.syn(i).reason == drop_reason::defense;
    CHECK(dropped == 10);
    f.d.sysctl().drop_packet = 0;
    f.now += 1s;
    (void)f.d.poll(f.now);
    for (std::size_t i = 100; i < 140; ++i) CHECK(f.syn(i).act == action::forward);
}

TEST_CASE("defense: drop_entry 1 removes half-open entries under low memory, keeps busy established ones") {
    fixture f(3000);
    f.d.sysctl().drop_entry = 1;
    f.d.sysctl().amemthresh = 1500;
    auto flows = f.established(0, 200);
    for (std::size_t i = 1000; i < 2500; ++i) REQUIRE(f.syn(i).act == action::forward); // the embryonic limit
    const std::size_t before = f.d.connections();
    REQUIRE(before == 1700);
    REQUIRE(f.d.table_v4().available() < 1500);
    // 30 defense ticks, one a second, established flows active all along: SYN_RECV entries are victims
    // (spec §3.8), established ones idle < 60 s are not.
    int engaged = 0;
    for (int t = 0; t < 30; ++t) {
        f.now += 1s;
        for (auto& fl : flows) REQUIRE(fl.send_in(f.d, f.m, f.now));
        (void)f.d.poll(f.now, 1 << 20);
        engaged += f.d.sysctl().drop_entry == 2;
    }
    const std::size_t after = f.d.connections();
    MESSAGE("drop_entry: " << before << " -> " << after << " connections, engaged for " << engaged
                           << " ticks");
    // It works while memory is low, and lets go (back to mode 1) once the free slots reach amemthresh.
    CHECK(engaged >= 1);
    CHECK(f.d.table_v4().available() >= 1500);
    CHECK(f.d.sysctl().drop_entry == 1);
    std::size_t est = 0;
    f.d.for_each_conn(
        [&](const auto& e) { est += e.state == static_cast<std::uint8_t>(tcp_state::established); });
    CHECK(est == 200);
    CHECK(test::bookkeeping_errors(f.d) == "");
    // Nothing more is dropped once it has let go.
    const std::size_t settled = f.d.connections();
    for (int t = 0; t < 5; ++t) {
        f.now += 1s;
        (void)f.d.poll(f.now, 1 << 20);
    }
    CHECK(f.d.connections() == settled);
}

TEST_CASE("defense: secure_tcp 1 switches to the DoS state table while memory is low") {
    // A transition the two tables disagree on for a client-side segment, from a state a SYN reaches.
    const auto normal =
        tcp_next_state(tcp_state::syn_recv, conn_dir::input, tcp_flags{tcp_flag::ack}, tcp_table::normal);
    const auto secure =
        tcp_next_state(tcp_state::syn_recv, conn_dir::input, tcp_flags{tcp_flag::ack}, tcp_table::secure);
    fixture f(2000);
    f.d.sysctl().secure_tcp = 1;
    f.d.sysctl().amemthresh = 1000;
    (void)f.d.poll(f.now);
    CHECK(f.d.sysctl().secure_tcp == 1); // plenty of room: off
    auto state_after_ack = [&](std::size_t i) {
        REQUIRE(f.syn(i).act == action::forward);
        (void)f.d.in(f.m.tcp(test::client(i), vip, tcp_flag::ack), f.now);
        std::uint8_t st = 0xff;
        const auto want = test::client(i);
        f.d.for_each_conn([&](const auto& e) {
            if constexpr (std::remove_cvref_t<decltype(e)>::addr_len == 4)
                if (to_inet<4>(e.caddr) == want.addr && e.cport == want.port) st = e.state;
        });
        return static_cast<tcp_state>(st);
    };
    CHECK(state_after_ack(0) == normal);
    for (std::size_t i = 1; i < 1500; ++i) REQUIRE(f.syn(i).act == action::forward);
    f.now += 1s;
    (void)f.d.poll(f.now);
    CHECK(f.d.sysctl().secure_tcp == 2);
    CHECK(state_after_ack(1600) == secure);
    MESSAGE("SYN_RECV + ACK: normal table -> " << name(normal) << ", secure -> " << name(secure));
}

TEST_CASE("trash: a deleted dest is revived within 120 s of its last connection, freed after") {
    fixture f(4096);
    const dest* a = nullptr;
    for (const dest* x : f.svc->svc.dests())
        if (x->ep == rs_a) a = x;
    REQUIRE(a != nullptr);
    auto flows = f.established(0, 4); // rr: two of them on rs_a
    f.d.del_dest(*f.svc, rs_a);
    // Revived at once with its counters (spec §1.8): the same object.
    dest& back = f.d.add_dest(*f.svc, dest_config{rs_a, 1});
    CHECK(&back == a);
    CHECK(back.active_conns == 2);
    // Deleted again, with expire_nodest_conn: its connections go at the next poll. The trash timer
    // (every 60 s from the first deletion) stamps it idle and frees it on its first run ≥ 120 s after.
    const time_ns deleted = f.now;
    f.d.sysctl().expire_nodest_conn = true;
    f.d.del_dest(*f.svc, rs_a);
    while (f.d.poll(f.now, 1 << 20) != 0) {
    }
    CHECK(a->active_conns + a->inactive_conns == 0);
    const std::uint64_t old_conns = a->stats.conns;
    CHECK(old_conns == 2);
    // Runs at +60 s (stamp), +120 s (60 s idle: kept), +180 s (120 s: freed).
    for (time_ns t = f.now; t <= deleted + 179s; t += 1s) (void)f.d.poll(t);
    {
        dest& r = f.d.add_dest(*f.svc, dest_config{rs_a, 1});
        CHECK(&r == a); // still in the trash at 179 s, counters and stats kept
        CHECK(r.stats.conns == old_conns);
        f.d.del_dest(*f.svc, rs_a); // back in: a new stamp at the next run (+240 s), freed at +360 s
    }
    for (time_ns t = deleted + 180s; t <= deleted + 361s; t += 1s) (void)f.d.poll(t);
    dest& fresh = f.d.add_dest(*f.svc, dest_config{rs_a, 1});
    CHECK(fresh.stats.conns == 0); // a new dest with no history
    CHECK(fresh.active_conns == 0);
}
