// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/sh.hpp>: spec §2.9's tables and lookups, the flags, stability, fast vs reference.
#include <doctest/doctest.h>

#include <map>

#include <ipvs/sched/sh.hpp>

#include "sched_churn.hpp"

using namespace ipvs;
using ipvs::test::dest_list_model;
using ipvs::test::table_names;

namespace {} // namespace

using abc = ipvs::test::abc_service;

TEST_CASE_TEMPLATE("sh: the table gives each dest max(weight, 1) buckets per round", S, sched::sh,
                   sched::reference_sh) {
    S s;
    SUBCASE("C2, B3, A4") {
        abc x(s, 4, 3, 2);
        const std::string t = x.letters(s.table(), 256);
        REQUIRE(t.size() == 256);
        CHECK(t.substr(0, 20) == "CCBBBAAAACCBBBAAAACC");
        CHECK(t.substr(250) == "AACCBB");
        std::map<char, int> total;
        for (char c : t) ++total[c];
        CHECK(total['A'] == 112);
        CHECK(total['B'] == 86);
        CHECK(total['C'] == 58);
    }
    SUBCASE("C0, B3, A0: a quiescent dest still gets one bucket") {
        abc x(s, 0, 3, 0);
        CHECK(x.letters(s.table(), 10) == "CBBBACBBBA");
    }
    SUBCASE("an empty service has no buckets and picks nothing") {
        dest_list_model m;
        s.init_service(m.view());
        CHECK(table_names(s.table()) == std::string(256, '-'));
        CHECK(s.schedule(m.view(), test::flow_from("192.168.1.1")) == nullptr);
    }
}

TEST_CASE_TEMPLATE("sh: the spec's lookups for list C, B, A of weight 1", S, sched::sh, sched::reference_sh) {
    SUBCASE("source address only") {
        S s;
        abc x(s, 1, 1, 1);
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1")) == x.b); // bucket 136
        CHECK(s.schedule(x.m.view(), test::flow_from("10.0.0.1")) == x.c);    // bucket 39
        CHECK(s.schedule(x.m.view(), test::flow_from("172.16.5.9")) == x.b);  // bucket 115
        CHECK(s.schedule(x.m.view(), test::flow_from("2001:db8::1")) == x.c); // bucket 63
        // without sh-port the port never matters
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1", 12345)) == x.b);
    }
    SUBCASE("sh-port hashes the client port of TCP, UDP and SCTP only") {
        S s(sched::sched_flags{.fallback = false, .port = true});
        abc x(s, 1, 1, 1);
        CHECK(ipvs::detail::sh_hashkey(*parse_addr("192.168.1.1"), 12345, 0) == 231);
        for (std::uint8_t proto : {6, 17, 132})
            CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1", 12345, proto)) == x.c);
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1", 12345, 1)) == x.b); // ICMP: port 0
    }
    SUBCASE("a quiescent dest: null without fallback, the probe 2·ih, 2·ih+1 … with it") {
        S plain;
        abc x(plain, 1, 1, 1);
        x.m.edit(*x.b, 0, 0, 0, plain);
        CHECK(plain.schedule(x.m.view(), test::flow_from("192.168.1.1")) == nullptr);
        S fb(sched::sched_flags{.fallback = true, .port = false});
        fb.init_service(x.m.view());
        // bucket 136 → B (weight 0); probes start at (2·136) mod 256 = 16 (B again), then 17 → A
        CHECK(fb.schedule(x.m.view(), test::flow_from("192.168.1.1")) == x.a);
        CHECK(fb.schedule(x.m.view(), test::flow_from("10.0.0.1")) == x.c); // a usable bucket needs no probe
    }
    SUBCASE("OVERLOAD refuses the bucket like weight 0, and clearing it restores it") {
        S s(sched::sched_flags{.fallback = true, .port = false});
        abc x(s, 1, 1, 1);
        x.b->flags |= dest_flag::overload;
        s.counts_changed(x.m.view(), *x.b);
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1")) == x.a);
        x.b->flags &= ~dest_flag::overload;
        s.counts_changed(x.m.view(), *x.b);
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1")) == x.b);
    }
    SUBCASE("fallback with every dest unusable gives null") {
        S s(sched::sched_flags{.fallback = true, .port = false});
        abc x(s, 0, 0, 0);
        CHECK(s.schedule(x.m.view(), test::flow_from("192.168.1.1")) == nullptr);
    }
}

TEST_CASE("sh: the same configuration gives the same dest for the same flow after a rebuild") {
    std::mt19937_64 rng(11);
    std::size_t flows = 0;
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        const sched::sched_flags flags{.fallback = seed % 2 == 0, .port = seed % 3 == 0};
        sched::sh s(flags);
        test::churn_plan plan;
        plan.seed = seed;
        plan.mixed_af = true;
        test::churner c(plan);
        for (int i = 0; i < 300; ++i) c.config_change(s);
        flows += test::check_same_as_fresh(s, sched::sh(flags), c.svc, rng);
        // an edit and its undo rebuild the same table
        if (!c.svc.list.empty()) {
            dest& d = *c.svc.list.back();
            const int w = d.weight;
            const std::vector<dest*> before(s.table().begin(), s.table().end());
            c.svc.edit(d, w + 3, d.u_threshold, d.l_threshold, s);
            c.svc.edit(d, w, d.u_threshold, d.l_threshold, s);
            CHECK(std::equal(before.begin(), before.end(), s.table().begin(), s.table().end()));
        }
    }
    CHECK(flows > 0);
}

TEST_CASE("sh: fast and reference agree on randomized churn") {
    const auto make = [](std::uint64_t seed) {
        const sched::sched_flags flags{.fallback = seed % 2 == 1, .port = (seed / 2) % 2 == 1};
        return std::pair{sched::sh(flags), sched::reference_sh(flags)};
    };
    SUBCASE("up to 64 dests, every flag combination") {
        CHECK(
            test::churn_seeds("sh, up to 64 dests", 1, 8, make, [](std::uint64_t seed, test::churn_plan& p) {
                p.initial_dests = seed * 2;
                p.max_dests = seed % 3 == 0 ? 5 : 64;
                p.picks = 14000;
                p.mixed_af = true;
            }) >= 100000);
    }
    SUBCASE("a few thousand dests (only 256 own buckets)") {
        CHECK(test::churn_seeds("sh, about 3000 dests", 99, 99, make, [](std::uint64_t, test::churn_plan& p) {
                  p.initial_dests = 3000;
                  p.max_dests = 3500;
                  p.picks = 20000;
                  p.config_every = 64;
              }) > 0);
    }
}

TEST_CASE("sh: the bucket bitmap finds the next member cyclically") {
    ipvs::detail::bucket_mask m;
    CHECK(m.find_next_cyclic(0) == sched::sh_tab_size);
    m.set(3);
    m.set(200);
    CHECK(m.find_next_cyclic(0) == 3);
    CHECK(m.find_next_cyclic(3) == 3);
    CHECK(m.find_next_cyclic(4) == 200);
    CHECK(m.find_next_cyclic(201) == 3); // wraps past 255
    ipvs::detail::bucket_mask only200;
    only200.set(200);
    m.toggle(only200);
    CHECK(m.find_next_cyclic(4) == 3);
}
