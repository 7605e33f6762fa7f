// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/rr.hpp>: spec §2.1's examples, the del hook, and fast vs reference under churn.
#include <doctest/doctest.h>

#include <ipvs/sched/rr.hpp>

#include "sched_churn.hpp"

using namespace ipvs;
using ipvs::test::dest_list_model;
using ipvs::test::pick_names;

TEST_CASE_TEMPLATE("rr: list A,B,C of weight 1 picks A B C A B C", S, sched::rr, sched::reference_rr) {
    dest_list_model m;
    S s;
    m.place_named({{'A', 1}, {'B', 1}, {'C', 1}}, s);
    CHECK(pick_names(s, m, 6) == "ABCABC");
}

TEST_CASE_TEMPLATE("rr: a quiescent dest is skipped (B weight 0 gives A C A C)", S, sched::rr,
                   sched::reference_rr) {
    dest_list_model m;
    S s;
    m.place_named({{'A', 1}, {'B', 0}, {'C', 1}}, s);
    CHECK(pick_names(s, m, 4) == "ACAC");
}

TEST_CASE_TEMPLATE("rr: dests added one by one are picked newest first", S, sched::rr, sched::reference_rr) {
    // ipvsadm -a A, B, C gives list C, B, A (spec §0); the recorded 6.1 rr/eq3 case starts the same way.
    dest_list_model m;
    S s;
    for (char c : {'A', 'B', 'C'}) m.add(m.named(c, 1), s);
    CHECK(pick_names(s, m, 6) == "CBACBA");
    SUBCASE("a dest added later is reached after the wrap") {
        m.add(m.named('D', 1), s); // list D, C, B, A; cursor still on A
        CHECK(pick_names(s, m, 5) == "DCBAD");
    }
}

TEST_CASE_TEMPLATE("rr: deleting the cursor's dest continues with the dest that followed it", S, sched::rr,
                   sched::reference_rr) {
    dest_list_model m;
    S s;
    const auto d = m.place_named({{'A', 1}, {'B', 1}, {'C', 1}}, s);
    dest& a = *d[0];
    dest& b = *d[1];
    SUBCASE("cursor in the middle") {
        CHECK(pick_names(s, m, 2) == "AB");
        m.del(b, s);
        CHECK(pick_names(s, m, 3) == "CAC");
    }
    SUBCASE("cursor on the first dest moves to the head") {
        CHECK(pick_names(s, m, 1) == "A");
        m.del(a, s);
        CHECK(pick_names(s, m, 3) == "BCB");
    }
    SUBCASE("deleting another dest leaves the cursor") {
        CHECK(pick_names(s, m, 1) == "A");
        m.del(b, s);
        CHECK(pick_names(s, m, 3) == "CAC");
    }
}

TEST_CASE_TEMPLATE("rr: no eligible dest gives null and keeps the cursor", S, sched::rr,
                   sched::reference_rr) {
    dest_list_model m;
    S s;
    const auto d = m.place_named({{'A', 1}, {'B', 1}, {'C', 1}}, s);
    dest& a = *d[0];
    dest& c = *d[2];
    CHECK(pick_names(s, m, 2) == "AB");
    for (dest* x : d) {
        x->flags |= dest_flag::overload;
        s.counts_changed(m.view(), *x);
    }
    CHECK(pick_names(s, m, 2) == "--");
    a.flags &= ~dest_flag::overload;
    s.counts_changed(m.view(), a);
    c.flags &= ~dest_flag::overload;
    s.counts_changed(m.view(), c);
    CHECK(pick_names(s, m, 3) == "CAC"); // resumes after B
    SUBCASE("an empty service") {
        dest_list_model empty;
        S e;
        e.init_service(empty.view());
        CHECK(pick_names(e, empty, 2) == "--");
    }
}

TEST_CASE_TEMPLATE("rr: a dest before the cursor that becomes eligible waits for the wrap", S, sched::rr,
                   sched::reference_rr) {
    // The kernel's cursor stays on a dest even when that dest turns quiescent; the scan resumes after
    // it, so A (revived before the cursor) is reached only after D.
    dest_list_model m;
    S s;
    const auto d = m.place_named({{'A', 0}, {'B', 1}, {'C', 1}, {'D', 1}}, s);
    dest& a = *d[0];
    dest& c = *d[2];
    CHECK(pick_names(s, m, 2) == "BC");
    m.edit(c, 0, 0, 0, s);
    m.edit(a, 1, 0, 0, s);
    CHECK(pick_names(s, m, 4) == "DABD");
}

TEST_CASE("rr: fast and reference agree on randomized churn") {
    const auto make = [](std::uint64_t) { return std::pair<sched::rr, sched::reference_rr>{}; };
    SUBCASE("up to 64 dests") {
        CHECK(
            test::churn_seeds("rr, up to 64 dests", 1, 12, make, [](std::uint64_t seed, test::churn_plan& p) {
                p.initial_dests = seed % 4 == 0 ? 0 : seed * 3;
                p.max_dests = seed % 2 == 0 ? 64 : 9;
                p.picks = 10000;
                p.thresholds = seed % 3 != 0;
            }) >= 100000);
    }
    SUBCASE("a few thousand dests") {
        CHECK(test::churn_seeds("rr, about 3000 dests", 100, 101, make,
                                [](std::uint64_t seed, test::churn_plan& p) {
                                    p.initial_dests = 3000;
                                    p.place_initial = seed == 100;
                                    p.max_dests = 3500;
                                    p.picks = 4000;
                                    p.config_every = 4;
                                }) > 0);
    }
}

TEST_CASE("rr: the eligible index answers successor queries across levels") {
    // 64-ary levels: positions chosen to cross word and level boundaries (4096 = 64²).
    ipvs::detail::succ_bitset b;
    b.assign(10000);
    CHECK(b.find_next(0) == ipvs::detail::succ_bitset::npos);
    for (std::size_t i : {5U, 63U, 64U, 4095U, 4096U, 9999U}) b.insert(i);
    CHECK(b.find_next(0) == 5);
    CHECK(b.find_next(6) == 63);
    CHECK(b.find_next(65) == 4095);
    CHECK(b.find_next(4097) == 9999);
    b.erase(9999);
    CHECK(b.find_next(4097) == ipvs::detail::succ_bitset::npos);
    b.erase(4095);
    CHECK(b.find_next(65) == 4096);
    CHECK(b.contains(64));
    CHECK_FALSE(b.contains(4095));
    CHECK(b.find_next(10000) == ipvs::detail::succ_bitset::npos);
}
