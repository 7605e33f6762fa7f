// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/lblcr.hpp>: set_min, replication, set_max after lblcr_expiration, bounded
// pools (spec §2.12). The fast-vs-reference differential shared with lblc is in lblc_test.cpp.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include <ipvs/sched/lblcr.hpp>
#include <ipvs/service.hpp>

using namespace ipvs;
using namespace std::chrono_literals;
using sched::lblcr;
using sched::lblcr_options;

namespace {

endpoint ep(const char* s) { return *parse_endpoint(s); }

sched::sched_input to(inet_addr daddr, time_ns now = 0s) {
    sched::sched_input in;
    in.saddr = inet_addr::v4(0x0a010203);
    in.daddr = daddr;
    in.sport = 40000;
    in.dport = 80;
    in.now = now;
    return in;
}

const inet_addr X = inet_addr::v4(0x0a000364);
const inet_addr Y = inet_addr::v4(0x0a000365);

/// A then B then C added (list C, B, A), weights 10; lblcr_expiration 10 min by default here.
struct three_dests {
    service<lblcr> s;
    dest& a;
    dest& b;
    dest& c;
    explicit three_dests(lblcr_options o = with_expiry(10min))
        : s(lblcr{o}), a(s.add_dest({ep("10.0.2.11:80"), 10})), b(s.add_dest({ep("10.0.2.12:80"), 10})),
          c(s.add_dest({ep("10.0.2.13:80"), 10})) {}

    static lblcr_options with_expiry(time_ns e) {
        lblcr_options o;
        o.expiration = e;
        o.started = 0s;
        return o;
    }
    void active(dest& d, int n) {
        for (int i = 0; i < n; ++i) {
            s.bind(d, conn_counter::inactive);
            s.move_to_active(d);
        }
    }
    void drop_active(dest& d, int n) {
        for (int i = 0; i < n; ++i) s.unbind(d, conn_counter::active);
    }
    std::vector<dest*> members(inet_addr a_) { return s.scheduler().members(a_); }

    /// Builds X's set {B, C} (B at the head): X first goes to C, then C turns busy and wlc adds B.
    void make_set_bc(time_ns now = 0s) {
        REQUIRE(s.schedule(to(X, now)) == &c);
        active(c, 11); // 11 > 10, and A has room
        active(a, 1);  // so that wlc takes B (idle), not A
        REQUIRE(s.schedule(to(X, now)) == &b);
        REQUIRE(members(X) == std::vector<dest*>{&b, &c});
        drop_active(c, 11);
        drop_active(a, 1);
    }
};

} // namespace

TEST_CASE("lblcr: a new address gets a set holding wlc's choice") {
    three_dests t;
    CHECK(t.s.schedule(to(X)) == &t.c);
    CHECK(t.members(X) == std::vector<dest*>{&t.c});
    CHECK(t.members(Y).empty());
    CHECK(t.s.scheduler().entries() == 1);
}

TEST_CASE("lblcr: a hit returns set_min — the least loaded usable member, not wlc's choice") {
    three_dests t;
    t.make_set_bc();
    // A is idle (wlc would take it), but it is not in X's set: the set's least loaded wins.
    t.active(t.b, 3);
    t.active(t.c, 2);
    CHECK(t.s.schedule(to(X)) == &t.c);
    t.active(t.c, 2);
    CHECK(t.s.schedule(to(X)) == &t.b);
    SUBCASE("ties keep the member nearer the set head") {
        t.active(t.c, 0);
        t.drop_active(t.c, 1); // B 3, C 3
        CHECK(t.s.schedule(to(X)) == &t.b);
    }
    SUBCASE("unlike lblc's cache, the set skips OVERLOAD members") {
        t.s.edit_dest({t.b.ep, 10, 3});
        REQUIRE(t.b.overloaded());
        CHECK(t.s.schedule(to(X)) == &t.c);
    }
    SUBCASE("and weight-0 members") {
        t.s.edit_dest({t.b.ep, 0});
        CHECK(t.s.schedule(to(X)) == &t.c);
    }
    SUBCASE("weights scale the load: overhead·weight compared crosswise") {
        t.s.edit_dest({t.c.ep, 30}); // C: 4 active / 30 beats B: 3 / 10
        CHECK(t.s.schedule(to(X)) == &t.c);
    }
}

TEST_CASE("lblcr: a busy or unusable set_min makes wlc choose, and its choice joins the set head") {
    three_dests t;
    t.make_set_bc();
    t.active(t.b, 11);
    t.active(t.c, 12); // both members busy while A has room
    CHECK(t.s.schedule(to(X)) == &t.a);
    CHECK(t.members(X) == std::vector<dest*>{&t.a, &t.b, &t.c});
    SUBCASE("wlc's choice already in the set is not added twice") {
        t.active(t.a, 13); // A 13, B 11, C 12: every member over its weight
        auto& d = t.s.add_dest({ep("10.0.2.14:80"), 10, 1});
        t.s.bind(d, conn_counter::inactive); // D: OVERLOAD (wlc skips it) but room (0 active)
        REQUIRE(d.overloaded());
        CHECK(t.s.schedule(to(X)) == &t.b); // set_min B is busy; wlc picks B again
        CHECK(t.members(X).size() == 3);
    }
    SUBCASE("no usable dest anywhere: NULL, the set stays") {
        for (dest* d : {&t.a, &t.b, &t.c}) t.s.edit_dest({d->ep, 0});
        CHECK(t.s.schedule(to(X)) == nullptr);
        CHECK(t.members(X).size() == 3);
    }
}

TEST_CASE("lblcr: wlc's choice for a busy set reflects every change made since the previous pick") {
    three_dests t;
    REQUIRE(t.s.schedule(to(X)) == &t.c); // all idle: the list head
    // No pick between these: the service's counts_changed calls pile up.
    t.active(t.c, 11); // C busy: 11 > 10 while A and B have room
    t.active(t.b, 2);
    t.active(t.a, 1);
    t.drop_active(t.b, 1);
    t.s.bind(t.b, conn_counter::inactive); // B 1 active + 1 inactive = 257, A 256: A wins by one
    CHECK(t.s.schedule(to(X)) == &t.a);
    CHECK(t.members(X) == std::vector<dest*>{&t.a, &t.c});
    t.active(t.a, 2);            // A 768 / 10
    t.s.edit_dest({t.b.ep, 30}); // B 257 / 30: the weight edit counts as well
    CHECK(t.s.schedule(to(Y)) == &t.b);
}

TEST_CASE("lblcr: a set unchanged for lblcr_expiration loses its most loaded member on the next hit") {
    three_dests t;
    t.make_set_bc(0s); // lastmod = 0 s (B joined)
    t.active(t.b, 4);
    t.active(t.c, 2);
    CHECK(t.s.schedule(to(X, 10min)) == &t.c); // not *after* lastmod + 10 min yet
    CHECK(t.members(X).size() == 2);
    SUBCASE("the most loaded member leaves; the answer is set_min's") {
        CHECK(t.s.schedule(to(X, 10min + 1ns)) == &t.c);
        CHECK(t.members(X) == std::vector<dest*>{&t.c});
    }
    SUBCASE("set_min's answer was computed first, so it may be the member just removed") {
        t.active(t.c, 2); // B 4, C 4: both folds keep the head on ties, B
        CHECK(t.s.schedule(to(X, 10min + 1ns)) == &t.b);
        CHECK(t.members(X) == std::vector<dest*>{&t.c});
    }
    SUBCASE("set_max passes over weight-0 members") {
        t.s.edit_dest({t.b.ep, 0}); // B is the most loaded but weight 0
        CHECK(t.s.schedule(to(X, 10min + 1ns)) == &t.c);
        CHECK(t.members(X) == std::vector<dest*>{&t.b});
    }
    SUBCASE("a removal stamps lastmod: the next one waits another expiration") {
        t.active(t.b, 7); // B 11, C 22: set_min B is busy while A has room
        t.active(t.c, 20);
        CHECK(t.s.schedule(to(X, 10min)) == &t.a); // joins: {A, B, C}, lastmod = 10 min
        CHECK(t.members(X) == std::vector<dest*>{&t.a, &t.b, &t.c});
        CHECK(t.s.schedule(to(X, 20min + 1ns)) == &t.a);
        CHECK(t.members(X) == std::vector<dest*>{&t.a, &t.b}); // C, the most loaded, left
        CHECK(t.s.schedule(to(X, 20min + 2ns)) == &t.a);
        CHECK(t.members(X).size() == 2);
    }
    SUBCASE("a single member is never removed") {
        auto gone = t.s.del_dest(t.b.ep);
        CHECK(t.members(X) == std::vector<dest*>{&t.c}); // del_dest took B out of every set
        CHECK(t.s.schedule(to(X, 20min)) == &t.c);
        CHECK(t.members(X) == std::vector<dest*>{&t.c});
    }
}

TEST_CASE("lblcr: entries expire as lblc's; expired sets give their members back to the pool") {
    lblcr_options o = three_dests::with_expiry(10min);
    o.member_capacity = 2;
    three_dests t(o);
    REQUIRE(t.s.schedule(to(X)) == &t.c);
    REQUIRE(t.s.schedule(to(Y)) == &t.c);
    t.active(t.c, 11);
    SUBCASE("a full member pool: the pick stands, the set stays as it was") {
        CHECK(t.s.schedule(to(X)) == &t.b);
        CHECK(t.members(X) == std::vector<dest*>{&t.c});
    }
    SUBCASE("after the full pass at 30 min the members are free again") {
        t.s.scheduler().expire(30min);
        CHECK(t.s.scheduler().entries() == 0);
        CHECK(t.s.schedule(to(X, 30min)) == &t.b);
        CHECK(t.s.schedule(to(Y, 30min)) == &t.b);
        CHECK(t.members(X) == std::vector<dest*>{&t.b});
        CHECK(t.members(Y) == std::vector<dest*>{&t.b});
    }
    CHECK_THROWS_AS(lblcr(lblcr_options{{}, 0}), std::invalid_argument);
}

TEST_CASE("lblcr: assume_picked puts the dest in the address's set") {
    three_dests t;
    t.s.assume_picked(t.a, to(X));
    CHECK(t.members(X) == std::vector<dest*>{&t.a});
    t.s.assume_picked(t.b, to(X));
    t.s.assume_picked(t.b, to(X));
    CHECK(t.members(X) == std::vector<dest*>{&t.b, &t.a});
}
