// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/lblc.hpp>: the rules of spec §2.11 (cache, busy(), expiry and GC with the
// injected clock, the bounded pool), the lazily refreshed wlc index against the kernel's scans, and
// fast-vs-reference differentials for lblc and lblcr.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include <ipvs/sched/lblc.hpp>
#include <ipvs/sched/lblcr.hpp>
#include <ipvs/service.hpp>

using namespace ipvs;
using namespace std::chrono_literals;
using sched::lblc;
using sched::lblc_options;

namespace {

endpoint ep(const char* s) { return *parse_endpoint(s); }
inet_addr v4(std::uint32_t a) { return inet_addr::v4(a); }

sched::sched_input to(inet_addr daddr, time_ns now = 0s) {
    sched::sched_input in;
    in.saddr = v4(0x0a010203);
    in.daddr = daddr;
    in.sport = 40000;
    in.dport = 80;
    in.now = now;
    return in;
}

const inet_addr X = v4(0x0a000364); // 10.0.3.100
const inet_addr Y = v4(0x0a000365);

void bind_active(service<lblc>& s, dest& d, int n) {
    for (int i = 0; i < n; ++i) {
        s.bind(d, conn_counter::inactive);
        s.move_to_active(d);
    }
}

/// A service with A then B added (list B, A), both weight 10.
struct two_dests {
    service<lblc> s;
    dest& a;
    dest& b;
    explicit two_dests(const lblc_options& o = {})
        : s(lblc{o}), a(s.add_dest({ep("10.0.2.11:80"), 10})), b(s.add_dest({ep("10.0.2.12:80"), 10})) {}
};

} // namespace

TEST_CASE("lblc: a destination address stays with the dest wlc first chose while it is not busy") {
    two_dests t;
    CHECK(t.s.schedule(to(X)) == &t.b); // wlc: equal overheads, the list head wins
    bind_active(t.s, t.b, 5);           // wlc now prefers A, but B is not busy (5 <= 10)
    CHECK(t.s.schedule(to(X)) == &t.b);
    CHECK(t.s.schedule(to(Y)) == &t.a); // a new address goes by wlc
    CHECK(t.s.scheduler().entries() == 2);
}

TEST_CASE("lblc: busy() = active > weight while some dest has 2·active < weight") {
    two_dests t;
    REQUIRE(t.s.schedule(to(X)) == &t.b);
    SUBCASE("another dest has room: X moves to wlc's choice and stays there") {
        bind_active(t.s, t.b, 11);
        CHECK(t.s.schedule(to(X)) == &t.a);
        bind_active(t.s, t.a, 3);
        CHECK(t.s.schedule(to(X)) == &t.a); // the entry now names A
        CHECK(t.s.scheduler().entries() == 1);
    }
    SUBCASE("no dest has room: the cached dest stays even above its weight") {
        bind_active(t.s, t.a, 5); // 2·5 is not < 10
        bind_active(t.s, t.b, 11);
        CHECK(t.s.schedule(to(X)) == &t.b);
        t.s.unbind(t.a, conn_counter::active); // 2·4 < 10: A has room now
        CHECK(t.s.schedule(to(X)) == &t.a);
    }
    SUBCASE("a dest with room counts even when OVERLOADed, a weight-0 dest never") {
        auto& c = t.s.add_dest({ep("10.0.2.13:80"), 0});
        bind_active(t.s, t.a, 5);
        bind_active(t.s, t.b, 11);
        CHECK(t.s.schedule(to(X)) == &t.b); // C (weight 0) has no room: 0 < 0 is false
        t.s.edit_dest({c.ep, 5, 1});
        t.s.bind(c, conn_counter::inactive); // C OVERLOADed, active 0: 0 < 5
        REQUIRE(c.overloaded());
        CHECK(t.s.schedule(to(X)) == &t.a);
    }
    SUBCASE("a weight edit counts too") {
        bind_active(t.s, t.a, 5);
        bind_active(t.s, t.b, 11);
        CHECK(t.s.schedule(to(X)) == &t.b);
        t.s.edit_dest({t.a.ep, 11}); // 2·5 < 11
        CHECK(t.s.schedule(to(X)) == &t.a);
    }
}

TEST_CASE("lblc: the cached path ignores OVERLOAD, not weight 0 nor a deleted dest (spec §2.11)") {
    two_dests t;
    REQUIRE(t.s.schedule(to(X)) == &t.b);
    t.s.edit_dest({t.b.ep, 10, 1});
    t.s.bind(t.b, conn_counter::inactive);
    REQUIRE(t.b.overloaded());
    CHECK(t.s.schedule(to(X)) == &t.b); // cached, OVERLOAD not consulted
    CHECK(t.s.schedule(to(Y)) == &t.a); // wlc skips it
    SUBCASE("weight 0") {
        t.s.edit_dest({t.b.ep, 0});
        CHECK(t.s.schedule(to(X)) == &t.a);
    }
    SUBCASE("deleted") {
        auto gone = t.s.del_dest(t.b.ep);
        CHECK(t.s.scheduler().entries() == 1); // X's entry went with its dest
        CHECK(t.s.schedule(to(X)) == &t.a);
    }
    SUBCASE("no dest left for wlc: NULL, the entry stays") {
        t.s.edit_dest({t.b.ep, 0});
        t.s.edit_dest({t.a.ep, 0});
        CHECK(t.s.schedule(to(X)) == nullptr);
        CHECK(t.s.scheduler().entries() == 2);
    }
}

TEST_CASE("lblc: an entry idle for lblc_expiration goes at the next full GC pass, every 30 minutes") {
    // The timer runs 60 s after the start and every 60 s; the 30th run is the first full pass.
    SUBCASE("default expiration (24 h): still cached at 86399 s, gone at the pass at 86400 s") {
        for (const auto& [when, cached] : {std::pair{86399s, true}, std::pair{86400s, false}}) {
            two_dests t(lblc_options{.capacity = 64, .expiration = 24h, .started = 0s});
            REQUIRE(t.s.schedule(to(X, 0s)) == &t.b);
            bind_active(t.s, t.b, 1); // wlc would now pick A
            CHECK(t.s.schedule(to(X, when)) == (cached ? &t.b : &t.a));
        }
    }
    SUBCASE("each hit refreshes lastuse; counter and rover follow the timer") {
        two_dests t(lblc_options{.capacity = 64, .expiration = 10min, .started = 0s});
        REQUIRE(t.s.schedule(to(X, 0s)) == &t.b);
        bind_active(t.s, t.b, 1);
        CHECK(t.s.scheduler().gc().counter == 1);
        CHECK(t.s.schedule(to(X, 1799s)) == &t.b); // 29 counting runs, no full pass yet
        CHECK(t.s.scheduler().gc().counter == 30);
        CHECK(t.s.schedule(to(X, 3599s)) == &t.b); // the pass at 1800 s saw it used at 1799 s
        CHECK(t.s.scheduler().gc().counter == 30);
        CHECK(t.s.scheduler().gc().rover == 0); // a full pass ends where it began
        t.s.scheduler().expire(5400s);          // 5400 >= 3599 + 600
        CHECK(t.s.scheduler().entries() == 0);
        CHECK(t.s.scheduler().gc().counter == 1);
        CHECK(t.s.schedule(to(X, 5400s)) == &t.a);
    }
    SUBCASE("the timer starts at the first clock value seen when no start is given") {
        two_dests t(lblc_options{.capacity = 64, .expiration = 1min});
        REQUIRE(t.s.schedule(to(X, 1000s)) == &t.b);
        t.s.scheduler().expire(1000s + 30min - 1ns);
        CHECK(t.s.scheduler().entries() == 1);
        t.s.scheduler().expire(1000s + 30min);
        CHECK(t.s.scheduler().entries() == 0);
    }
}

TEST_CASE("lblc: above 16384 entries a partial pass drops entries idle 6 min until its goal") {
    constexpr std::uint32_t n = 16384 + 3000;
    two_dests t(lblc_options{.capacity = 20000, .expiration = 24h, .started = 0s});
    std::array<std::size_t, 1024> per_bucket{};
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto a = v4(0x0b000000 + i * 7);
        ++per_bucket[detail::lblc_bucket(a)];
        REQUIRE(t.s.schedule(to(a, 0s)) != nullptr);
    }
    REQUIRE(t.s.scheduler().entries() == n);
    // Runs at 60..300 s find nothing idle for 6 min: they scan every bucket, delete nothing, and
    // neither count nor move the rover (1024 steps from 0 end at 0).
    t.s.scheduler().expire(300s);
    CHECK(t.s.scheduler().entries() == n);
    CHECK(t.s.scheduler().gc().counter == 1);
    CHECK(t.s.scheduler().gc().rover == 0);
    // At 360 s everything is 6 min idle: goal = (19384 − 16384)·4/3 = 4000, whole buckets from 1.
    t.s.scheduler().expire(360s);
    const auto rover = t.s.scheduler().gc().rover;
    std::size_t before_last = 0;
    for (std::uint32_t b = 1; b < rover; ++b) before_last += per_bucket[b];
    CHECK(before_last < 4000);
    CHECK(before_last + per_bucket[rover] >= 4000);
    CHECK(t.s.scheduler().entries() == n - before_last - per_bucket[rover]);
    CHECK(t.s.scheduler().gc().counter == 1);
    // Back under 16384: the next run counts again.
    t.s.scheduler().expire(420s);
    CHECK(t.s.scheduler().gc().counter == 2);
}

TEST_CASE("lblc: with the pool full a pick still returns wlc's dest and caches nothing") {
    two_dests t(lblc_options{.capacity = 2});
    CHECK(t.s.schedule(to(X)) == &t.b);
    CHECK(t.s.schedule(to(Y)) == &t.b);
    CHECK(t.s.scheduler().entries() == 2);
    bind_active(t.s, t.b, 1);
    CHECK(t.s.schedule(to(v4(0x0a000366))) == &t.a);
    CHECK(t.s.scheduler().entries() == 2);
    CHECK_THROWS_AS(lblc(lblc_options{.capacity = 0}), std::invalid_argument);
}

TEST_CASE("lblc: assume_picked sets the entry as if the pick had been made") {
    two_dests t;
    t.s.assume_picked(t.a, to(X));
    CHECK(t.s.schedule(to(X)) == &t.a); // wlc alone would say B
    t.s.assume_picked(t.b, to(X));
    CHECK(t.s.schedule(to(X)) == &t.b);
    CHECK(t.s.scheduler().entries() == 1);
}

TEST_CASE("lblc: a miss sees every counter change made since the previous pick") {
    // A, B, C, D added in that order (list D, C, B, A), weights 10. Between two picks B's counters
    // move several times (it is queued once) and C is deleted with a change after its deletion: the
    // next miss must decide on the final counters alone, as the kernel's scan does.
    service<lblc> s;
    dest& a = s.add_dest({ep("10.0.2.11:80"), 10});
    dest& b = s.add_dest({ep("10.0.2.12:80"), 10});
    dest& c = s.add_dest({ep("10.0.2.13:80"), 10});
    dest& d = s.add_dest({ep("10.0.2.14:80"), 10});
    REQUIRE(s.schedule(to(X)) == &d); // all idle: the head
    for (dest* x : {&d, &c, &a}) bind_active(s, *x, 2);
    bind_active(s, b, 3);
    s.unbind(b, conn_counter::active);
    s.unbind(b, conn_counter::active);
    s.bind(b, conn_counter::inactive); // B: 1 active, 1 inactive = 257 < 512
    CHECK(s.schedule(to(Y)) == &b);
    auto gone = s.del_dest(c.ep);
    unbind_counts(*gone, conn_counter::active);     // its connections still end (not notified: trash)
    s.scheduler().counts_changed(s.dests(), *gone); // and a caller that notifies anyway is ignored
    s.unbind(a, conn_counter::active);
    s.unbind(a, conn_counter::active); // A: idle
    CHECK(s.schedule(to(v4(0x0a000366))) == &a);
    s.edit_dest({a.ep, 0}); // quiescent: wlc skips it; B (257/10) beats D (512/10)
    CHECK(s.schedule(to(v4(0x0a000367))) == &b);
}

// ---- the lazy index: each answer is the kernel's scan, whatever changes were queued ------------

namespace {

/// Random changes to `pool`'s dests: counters, weight (0 included), OVERLOAD; rarely a value whose
/// overhead wraps (active >= 2^23), which wlc's missing weight check turns into a winner.
void random_change(dest& d, std::mt19937_64& rng) {
    switch (rng() % 8) {
    case 0:
        d.weight = static_cast<int>(rng() % 6);
        break;
    case 1:
        d.flags ^= dest_flag::overload;
        break;
    case 2:
        d.active_conns =
            rng() % 64 == 0 ? (1 << 23) + static_cast<int>(rng() % 4) : static_cast<int>(rng() % 8);
        break;
    case 3:
        d.inactive_conns = static_cast<int>(rng() % 300);
        break;
    default: // one connection more or less (from a wrapped value back to a small one: 2^23 − 1
             // would overflow overhead()'s int sum, which the kernel's -fwrapv makes wrap)
        d.active_conns =
            d.active_conns >= (1 << 22) ? 0 : std::max(0, d.active_conns + static_cast<int>(rng() % 3) - 1);
        break;
    }
}

} // namespace

TEST_CASE("lblc index: least() and busy() equal the kernel's scans after any queued changes") {
    using detail::busy_scan;
    using detail::wlc_policy;
    std::size_t checks = 0, batched = 0;
    for (const std::size_t n : {1, 2, 3, 5, 8, 31, 64, 300, 1500}) {
        CAPTURE(n);
        std::mt19937_64 rng(n);
        std::deque<dest> pool(n + n / 4 + 1); // the extra ones start outside the list
        std::vector<dest*> list, outside;
        for (std::size_t k = 0; k < pool.size(); ++k) {
            dest& d = pool[k];
            d.weight = static_cast<int>(rng() % 6);
            d.active_conns = static_cast<int>(rng() % 8);
            d.flags = dest_flag::available;
            (k < n ? list : outside).push_back(&d);
        }
        detail::lazy_least_index idx;
        idx.assign(list);
        for (int round = 0; round < 300; ++round) {
            // A burst of changes: short ones take the level-by-level refresh, long ones the full pass.
            const std::size_t burst = rng() % 4 == 0 ? 1 + rng() % (2 * n + 1) : 1 + rng() % 4;
            batched += burst * 4 < n ? 1 : 0;
            for (std::size_t i = 0; i < burst; ++i) {
                const bool listed = outside.empty() || rng() % 8 != 0;
                dest& d = listed ? *list[rng() % list.size()] : *outside[rng() % outside.size()];
                random_change(d, rng);
                idx.changed(d); // a dest outside the list must be ignored
            }
            if (rng() % 16 == 0 && list.size() > 1) { // ipvsadm -d, or a revival at the head
                const auto k = rng() % list.size();
                outside.push_back(list[k]);
                list.erase(list.begin() + static_cast<std::ptrdiff_t>(k));
                idx.assign(list);
            } else if (rng() % 16 == 0 && !outside.empty()) {
                const auto k = rng() % outside.size();
                list.insert(list.begin(), outside[k]);
                outside.erase(outside.begin() + static_cast<std::ptrdiff_t>(k));
                list.front()->sched_slot = 0; // as the service resets it on add
                idx.assign(list);
            }
            const sched::dest_list view(list);
            const dest& probe = *list[rng() % list.size()];
            // busy() first on some rounds: it refreshes too, and least() must then need nothing more.
            if (round % 2 == 0) REQUIRE(idx.busy(view, probe) == busy_scan(view, probe));
            REQUIRE(idx.least(view) == wlc_policy::scan(view));
            REQUIRE(idx.busy(view, probe) == busy_scan(view, probe));
            ++checks;
        }
    }
    MESSAGE("lazy index: " << checks << " picks compared with the scan, " << batched << " short bursts");
    CHECK(batched > 100);
}

// ---- differential: the fast schedulers against the literal references, on random histories ----

namespace {

/// Two services fed the same operations; every pick and the GC state must agree.
template <class Fast, class Ref, class Options>
struct differential {
    service<Fast> fast;
    service<Ref> ref;
    struct conn {
        endpoint who;
        conn_counter c;
    };
    std::vector<conn> conns;
    std::vector<std::unique_ptr<dest>> fast_trash, ref_trash;
    std::mt19937_64 rng;
    std::size_t picks = 0, nulls = 0;
    std::size_t max_entries = 0; // seen at a check
    bool rover_moved = false;    // a partial pass stopped early

    differential(const Options& o, std::uint64_t seed) : fast(Fast{o}), ref(Ref{o}), rng(seed) {}

    std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); }

    template <class S>
    static dest* locate(service<S>& s, std::vector<std::unique_ptr<dest>>& trash, const endpoint& e) {
        if (dest* d = s.find_dest(e)) return d;
        for (auto& p : trash)
            if (p->ep == e) return p.get();
        return nullptr;
    }

    template <class S>
    static void add_or_revive(service<S>& s, std::vector<std::unique_ptr<dest>>& trash,
                              const dest_config& c) {
        for (auto it = trash.begin(); it != trash.end(); ++it) {
            if ((*it)->ep != c.ep) continue;
            s.add_dest(std::move(*it), c);
            trash.erase(it);
            return;
        }
        s.add_dest(c);
    }

    void configure(const dest_config& c) {
        if (fast.find_dest(c.ep)) {
            fast.edit_dest(c);
            ref.edit_dest(c);
        } else {
            add_or_revive(fast, fast_trash, c);
            add_or_revive(ref, ref_trash, c);
        }
    }

    void remove(const endpoint& e) {
        if (!fast.find_dest(e)) return;
        fast_trash.push_back(fast.del_dest(e));
        ref_trash.push_back(ref.del_dest(e));
    }

    void pick(const sched::sched_input& in) {
        dest* f = fast.schedule(in);
        dest* r = ref.schedule(in);
        ++picks;
        // Plain comparisons on this hot loop; doctest's macros only for the verdict.
        if ((f == nullptr) != (r == nullptr) || (f && f->ep != r->ep)) FAIL("pick " << picks << " differs");
        if (!f) {
            ++nulls;
            return;
        }
        const bool active = below(3) != 0;
        fast.bind(*f, conn_counter::inactive);
        ref.bind(*r, conn_counter::inactive);
        if (active) {
            fast.move_to_active(*f);
            ref.move_to_active(*r);
        }
        conns.push_back({f->ep, active ? conn_counter::active : conn_counter::inactive});
    }

    void end_conn() {
        if (conns.empty()) return;
        const auto k = below(static_cast<std::uint32_t>(conns.size()));
        const conn c = conns[k];
        conns[k] = conns.back();
        conns.pop_back();
        fast.unbind(*locate(fast, fast_trash, c.who), c.c);
        ref.unbind(*locate(ref, ref_trash, c.who), c.c);
    }

    void check_state() {
        max_entries = std::max(max_entries, fast.scheduler().entries());
        rover_moved = rover_moved || fast.scheduler().gc().rover != 0;
        CHECK(fast.scheduler().entries() == ref.scheduler().entries());
        CHECK(fast.scheduler().gc().counter == ref.scheduler().gc().counter);
        CHECK(fast.scheduler().gc().rover == ref.scheduler().gc().rover);
    }

    sched::sched_input random_input(std::uint32_t addrs, time_ns now) {
        sched::sched_input in;
        const auto k = below(addrs);
        if (k % 5 == 0) {
            std::array<std::uint8_t, 16> b{0xfd, 0, 0, 3};
            b[13] = static_cast<std::uint8_t>(k >> 16);
            b[14] = static_cast<std::uint8_t>(k >> 8);
            b[15] = static_cast<std::uint8_t>(k);
            in.daddr = inet_addr::v6(b);
        } else {
            in.daddr = v4(0x0a030000 + k);
        }
        in.now = now;
        return in;
    }

    endpoint random_dest(std::uint32_t ndests) { return endpoint{v4(0x0a00020b + below(ndests)), 80}; }

    void add_dests(std::uint32_t ndests) {
        for (std::uint32_t i = 0; i < ndests; ++i)
            configure({endpoint{v4(0x0a00020b + i), 80}, int(1 + below(5))});
    }

    /// A random history: `steps` operations over `addrs` destination addresses and `ndests` real
    /// servers — picks, connection ends, weight and threshold edits, deletes and revivals — the
    /// clock moving by seconds, sometimes by hours or days.
    void run(std::size_t steps, std::uint32_t addrs, std::uint32_t ndests) {
        time_ns now = 0s;
        add_dests(ndests);
        for (std::size_t step = 0; step < steps; ++step) {
            const auto r = below(100);
            if (r < 60) {
                pick(random_input(addrs, now));
            } else if (r < 85) {
                end_conn();
            } else if (r < 93) {
                const auto u = below(4) == 0 ? 2 + below(6) : 0;
                configure({random_dest(ndests), static_cast<int>(below(6)), u, u ? below(u) : 0});
            } else if (r < 95) {
                remove(random_dest(ndests));
            } else {
                const auto jump = below(50);
                now += jump < 45   ? std::chrono::seconds(below(30))
                       : jump < 49 ? std::chrono::hours(below(3))
                                   : 48h;
                fast.scheduler().expire(now);
                ref.scheduler().expire(now);
                check_state();
            }
        }
        check_state();
    }

    /// Bursts of `per_round` picks of many addresses every 30 s, so the table grows past the GC's
    /// 16384 target and partial passes run.
    void bursts(std::size_t rounds, std::size_t per_round, std::uint32_t addrs, std::uint32_t ndests) {
        time_ns now = 0s;
        add_dests(ndests);
        for (std::size_t round = 0; round < rounds; ++round, now += 30s) {
            for (std::size_t i = 0; i < per_round; ++i) {
                pick(random_input(addrs, now));
                if (below(2) == 0) end_conn();
            }
            fast.scheduler().expire(now);
            ref.scheduler().expire(now);
            check_state();
        }
    }
};

} // namespace

TEST_CASE_TEMPLATE("lblc, lblcr: the fast schedulers decide as the literal references on random histories", P,
                   std::pair<sched::lblc, sched::reference_lblc>,
                   std::pair<sched::lblcr, sched::reference_lblcr>) {
    using fast_t = typename P::first_type;
    using ref_t = typename P::second_type;
    using options_t =
        std::conditional_t<std::is_same_v<fast_t, sched::lblc>, lblc_options, sched::lblcr_options>;
    options_t o;
    o.capacity = 4096;
    o.expiration = 20min;
    SUBCASE("few addresses, short expiry: busy(), replacement, set growth and shrink") {
        for (std::uint64_t seed = 1; seed <= 4; ++seed) {
            differential<fast_t, ref_t, options_t> d(o, seed);
            d.run(4000, 40, 6);
            CHECK(d.picks > 2 * d.nulls);
        }
    }
    SUBCASE("hundreds of dests: misses refresh a few queued leaves, or many of them") {
        for (const std::uint32_t addrs : {40U, 3000U}) {
            differential<fast_t, ref_t, options_t> d(o, 7 + addrs);
            d.run(6000, addrs, 300);
            MESSAGE(addrs << " addresses, 300 dests: " << d.picks << " picks compared");
            CHECK(d.picks > 2 * d.nulls);
        }
    }
    SUBCASE("more addresses than the GC target: partial passes and the rover") {
        o.capacity = 24000;
        differential<fast_t, ref_t, options_t> d(o, 99);
        d.bursts(24, 1500, 60000, 8);
        CHECK(d.max_entries > detail::lblc_max_size);
        CHECK(d.rover_moved);
    }
}
