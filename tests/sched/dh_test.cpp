// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/dh.hpp>: spec §2.10's table and lookups, no upd hook, stability, fast vs reference.
#include <doctest/doctest.h>

#include <ipvs/sched/dh.hpp>

#include "sched_churn.hpp"

using namespace ipvs;
using ipvs::test::dest_list_model;
using ipvs::test::table_names;

namespace {

sched::sched_input to(const char* daddr) {
    sched::sched_input in;
    in.saddr = *parse_addr("10.1.2.3");
    in.daddr = *parse_addr(daddr);
    in.sport = 40000;
    return in;
}

} // namespace

TEST_CASE_TEMPLATE("dh: bucket i holds list position i mod n and lookups hash the destination", S, sched::dh,
                   sched::reference_dh) {
    dest_list_model m;
    S s;
    dest& a = m.named('A', 1);
    dest& b = m.named('B', 3);
    dest& c = m.named('C', 1);
    for (dest* d : {&a, &b, &c}) m.add(*d, s); // list C, B, A
    const std::string t = table_names(s.table());
    CHECK(t.substr(0, 7) == "CBACBAC");                   // weights ignored
    CHECK(t.substr(253) == "BAC");                        // 253 mod 3 = 1
    CHECK(s.schedule(m.view(), to("192.168.1.1")) == &b); // bucket 136
    CHECK(s.schedule(m.view(), to("10.0.0.1")) == &c);    // bucket 39
    SUBCASE("the source address does not matter") {
        sched::sched_input in = to("10.0.0.1");
        in.saddr = *parse_addr("fd01::99");
        CHECK(s.schedule(m.view(), in) == &c);
    }
    SUBCASE("quiescent, overloaded or unavailable dests are refused, with no fallback") {
        m.edit(b, 0, 0, 0, s);
        CHECK(s.schedule(m.view(), to("192.168.1.1")) == nullptr);
        m.edit(b, 2, 0, 0, s);
        b.flags |= dest_flag::overload;
        s.counts_changed(m.view(), b);
        CHECK(s.schedule(m.view(), to("192.168.1.1")) == nullptr);
        b.flags &= ~dest_flag::overload;
        b.flags &= ~dest_flag::available;
        CHECK(s.schedule(m.view(), to("192.168.1.1")) == nullptr);
    }
    SUBCASE("deleting a dest rebuilds the table over the rest") {
        m.del(b, s);
        CHECK(table_names(s.table()).substr(0, 4) == "CACA");
        CHECK(s.schedule(m.view(), to("10.0.0.1")) == &a); // bucket 39, odd
    }
    SUBCASE("an empty service picks nothing") {
        for (dest* d : {&a, &b, &c}) m.del(*d, s);
        CHECK(table_names(s.table()) == std::string(256, '-'));
        CHECK(s.schedule(m.view(), to("192.168.1.1")) == nullptr);
    }
}

TEST_CASE("dh: a weight edit does not rebuild (the kernel has no dh upd hook)") {
    dest_list_model m;
    sched::dh s;
    dest& a = m.named('A', 1);
    m.add(a, s);
    m.add(m.named('B', 1), s);
    const std::string before = table_names(s.table());
    m.edit(a, 7, 0, 0, s);
    CHECK(table_names(s.table()) == before);
}

TEST_CASE("dh: the same configuration gives the same dest for the same flow after a rebuild") {
    std::mt19937_64 rng(5);
    std::size_t flows = 0;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        sched::dh s;
        test::churn_plan plan;
        plan.seed = seed;
        test::churner c(plan);
        for (int i = 0; i < 300; ++i) c.config_change(s);
        flows += test::check_same_as_fresh(s, sched::dh{}, c.svc, rng);
    }
    CHECK(flows > 0);
}

TEST_CASE("dh: fast and reference agree on randomized churn") {
    const auto make = [](std::uint64_t) { return std::pair<sched::dh, sched::reference_dh>{}; };
    CHECK(test::churn_seeds("dh, up to 64 dests and 3000", 1, 10, make,
                            [](std::uint64_t seed, test::churn_plan& p) {
                                p.initial_dests = seed == 10 ? 3000 : seed * 3;
                                p.max_dests = seed == 10 ? 3500 : 64;
                                p.picks = 12000;
                            }) >= 100000);
}
