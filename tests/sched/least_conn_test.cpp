// SPDX-License-Identifier: MIT
// lc, wlc, sed, nq, fo, ovf, twos: the spec's worked examples and tie-breaks, fast vs reference differential.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/dest.hpp>
#include <ipvs/sched/fo.hpp>
#include <ipvs/sched/lc.hpp>
#include <ipvs/sched/nq.hpp>
#include <ipvs/sched/ovf.hpp>
#include <ipvs/sched/sed.hpp>
#include <ipvs/sched/twos.hpp>
#include <ipvs/sched/wlc.hpp>

// Every allocation of this executable is counted, so a test can show that schedule() and
// counts_changed() allocate nothing.
namespace {
std::atomic<std::size_t> g_allocations{0};
} // namespace

void* operator new(std::size_t n) {
    ++g_allocations;
    if (void* p = std::malloc(n != 0 ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace ipvs;
using namespace ipvs::sched;

/// A dest as a test writes it: name, weight, active, inactive, OVERLOAD.
struct spec {
    std::string name;
    int weight = 1;
    int active = 0;
    int inactive = 0;
    bool overload = false;
};

/// A service's dest list as the kernel keeps it (head first), announcing every change to one
/// scheduler through the hooks, the way the service will.
template <class S>
class service {
public:
    explicit service(S s = S{}) : m_sched(std::move(s)) {}

    /// Builds the list `head_first` by adding its dests from the tail (each new dest goes to the head).
    explicit service(const std::vector<spec>& head_first, S s = S{}) : m_sched(std::move(s)) {
        for (auto it = head_first.rbegin(); it != head_first.rend(); ++it) add(*it);
    }

    dest& add(const spec& sp) {
        dest& d = m_pool.emplace_back();
        d.weight = d.last_weight = sp.weight;
        d.active_conns = sp.active;
        d.inactive_conns = sp.inactive;
        d.flags = dest_flag::available | (sp.overload ? dest_flag::overload : 0u);
        d.list_seq = ++m_seq;
        m_names[&d] = sp.name;
        m_by_name[sp.name] = &d;
        m_list.insert(m_list.begin(), &d);
        m_sched.add_dest(list(), d);
        return d;
    }

    void remove(dest& d) {
        std::erase(m_list, &d);
        d.flags &= ~dest_flag::available;
        m_sched.del_dest(list(), d);
    }

    dest& operator[](const std::string& name) { return *m_by_name.at(name); }

    /// Sets counters and flags of `name` and tells the scheduler.
    void set_counts(const std::string& name, int active, int inactive, bool overload = false) {
        dest& d = (*this)[name];
        d.active_conns = active;
        d.inactive_conns = inactive;
        d.flags = overload ? d.flags | dest_flag::overload : d.flags & ~dest_flag::overload;
        m_sched.counts_changed(list(), d);
    }

    void set_weight(const std::string& name, int weight) {
        dest& d = (*this)[name];
        d.weight = weight;
        m_sched.upd_dest(list(), d);
    }

    /// The scheduler's pick as a dest name ("none" for nullptr).
    std::string pick() {
        dest* d = m_sched.schedule(list(), sched_input{});
        return d == nullptr ? "none" : m_names.at(d);
    }

    [[nodiscard]] dest_list list() const noexcept { return dest_list(m_list); }
    S& sched() noexcept { return m_sched; }

private:
    S m_sched;
    std::deque<dest> m_pool;
    std::vector<dest*> m_list;
    std::map<const dest*, std::string> m_names;
    std::map<std::string, dest*> m_by_name;
    std::uint64_t m_seq = 0;
};

/// The pick of scheduler S on a fresh service whose list (head first) is `head_first`.
template <class S>
std::string pick(const std::vector<spec>& head_first) {
    service<S> svc(head_first);
    return svc.pick();
}

/// Both the indexed scheduler and its reference must give `expected`.
template <class Fast, class Ref>
void check_pick(const std::vector<spec>& head_first, const std::string& expected) {
    CHECK(pick<Fast>(head_first) == expected);
    CHECK(pick<Ref>(head_first) == expected);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Spec §2.6 worked examples (list order A, B, C).

TEST_CASE("spec §2.6 example 1: A(w1,a1,i0) B(w2,a1,i10) C(w3,a2,i0)") {
    const std::vector<spec> l{{"A", 1, 1, 0}, {"B", 2, 1, 10}, {"C", 3, 2, 0}};
    check_pick<lc, reference_lc>(l, "A");
    check_pick<wlc, reference_wlc>(l, "B");
    check_pick<sed, reference_sed>(l, "B");
    check_pick<nq, reference_nq>(l, "B");
    check_pick<fo, reference_fo>(l, "C");
    check_pick<ovf, reference_ovf>(l, "C");
}

TEST_CASE("spec §2.6 example 2: A(w1,a3) B(w3,a3) C(w3,a2)") {
    const std::vector<spec> l{{"A", 1, 3}, {"B", 3, 3}, {"C", 3, 2}};
    check_pick<ovf, reference_ovf>(l, "B");
    check_pick<fo, reference_fo>(l, "B");
    check_pick<sed, reference_sed>(l, "C");
    check_pick<nq, reference_nq>(l, "C");
}

TEST_CASE("spec §2.6 example 3: A(w2,a0,i5) B(w2,a0,i0)") {
    const std::vector<spec> l{{"A", 2, 0, 5}, {"B", 2, 0, 0}};
    check_pick<lc, reference_lc>(l, "B");
    check_pick<wlc, reference_wlc>(l, "B");
    check_pick<nq, reference_nq>(l, "A");
    check_pick<sed, reference_sed>(l, "A");
}

// ---------------------------------------------------------------------------------------------
// Tie-breaks and exclusions, one rule per subcase.

TEST_CASE("lc: first minimum in list order wins; weight 0 and OVERLOAD are skipped") {
    SUBCASE("equal overhead: the head-most") {
        check_pick<lc, reference_lc>({{"A", 1, 1}, {"B", 5, 0, 3}, {"C", 1, 0, 3}}, "B");
    }
    SUBCASE("new dests go to the head, so the last added wins a tie") {
        service<lc> svc;
        svc.add({"first", 1});
        svc.add({"second", 1});
        CHECK(svc.pick() == "second");
    }
    SUBCASE("weight 0 skipped") { check_pick<lc, reference_lc>({{"A", 0, 0}, {"B", 1, 2}}, "B"); }
    SUBCASE("OVERLOAD skipped") { check_pick<lc, reference_lc>({{"A", 1, 0, 0, true}, {"B", 1, 2}}, "B"); }
    SUBCASE("one active outweighs 255 inactive") {
        check_pick<lc, reference_lc>({{"A", 1, 1}, {"B", 1, 0, 255}}, "B");
    }
    SUBCASE("256 inactive equal one active: tie, head-most") {
        check_pick<lc, reference_lc>({{"A", 1, 1}, {"B", 1, 0, 256}}, "A");
    }
    SUBCASE("nothing eligible") { check_pick<lc, reference_lc>({{"A", 0}, {"B", 3, 0, 0, true}}, "none"); }
    SUBCASE("empty service") { check_pick<lc, reference_lc>({}, "none"); }
}

TEST_CASE("wlc: cross-multiplied ratio, first eligible seeds, later weight 0 never wins") {
    SUBCASE("equal ratio 512/2 = 256/1: the head-most") {
        check_pick<wlc, reference_wlc>({{"A", 2, 2}, {"B", 1, 1}}, "A");
    }
    SUBCASE("strictly smaller ratio behind wins") {
        check_pick<wlc, reference_wlc>({{"A", 2, 2, 1}, {"B", 1, 1}}, "B");
    }
    SUBCASE("weight-0 dest with zero overhead behind the seed does not win") {
        check_pick<wlc, reference_wlc>({{"A", 1, 5}, {"B", 0, 0}}, "A");
    }
    SUBCASE("weight-0 head is not the seed") {
        check_pick<wlc, reference_wlc>({{"A", 0, 0}, {"B", 1, 9}}, "B");
    }
    SUBCASE("OVERLOAD skipped in both steps") {
        check_pick<wlc, reference_wlc>({{"A", 9, 0, 0, true}, {"B", 1, 3}, {"C", 9, 0, 0, true}}, "B");
    }
    SUBCASE("nothing eligible") { check_pick<wlc, reference_wlc>({{"A", 0}, {"B", 0}}, "none"); }
    // Step 2 without the weight check: 0 * loh > doh * least.weight holds once doh < 0.
    SUBCASE("unchecked weight: a weight-0 dest with negative overhead behind the seed wins") {
        check_pick<wlc, reference_wlc>({{"A", 1, 0}, {"B", 0, -1}, {"C", 5, 0}}, "B");
    }
    SUBCASE("unchecked weight: such a dest in front of the seed is never looked at") {
        check_pick<wlc, reference_wlc>({{"A", 0, -1}, {"B", 1, 0}}, "B");
    }
    SUBCASE("unchecked weight: the overhead's int wrap (active 2^23 -> INT_MIN) has the same effect") {
        check_pick<wlc, reference_wlc>({{"A", 1, 0}, {"B", 0, 1 << 23}}, "B");
    }
}

TEST_CASE("sed: (active + 1) / weight, inactive ignored, ties to the head-most") {
    SUBCASE("inactive ignored") { check_pick<sed, reference_sed>({{"A", 1, 0, 100}, {"B", 1, 0, 0}}, "A"); }
    SUBCASE("heavier weight wins among idle dests") {
        check_pick<sed, reference_sed>({{"A", 1, 0}, {"B", 3, 0}}, "B");
    }
    SUBCASE("2/2 == 3/3: head-most") { check_pick<sed, reference_sed>({{"A", 2, 1}, {"B", 3, 2}}, "A"); }
    SUBCASE("weight 0 behind never wins") { check_pick<sed, reference_sed>({{"A", 1, 7}, {"B", 0, 0}}, "A"); }
    SUBCASE("OVERLOAD skipped") { check_pick<sed, reference_sed>({{"A", 1, 0, 0, true}, {"B", 1, 4}}, "B"); }
}

TEST_CASE("nq: the first idle dest wins at once; otherwise sed's rule") {
    SUBCASE("first idle beats a heavier idle dest behind it") {
        check_pick<nq, reference_nq>({{"A", 1, 1}, {"B", 1, 0, 50}, {"C", 100, 0}}, "B");
    }
    SUBCASE("an idle dest beats a busy one of better ratio in front of it") {
        check_pick<nq, reference_nq>({{"A", 100, 1}, {"B", 1, 0}}, "B");
    }
    SUBCASE("no idle dest: least (active + 1) / weight") {
        check_pick<nq, reference_nq>({{"A", 1, 1}, {"B", 4, 3}, {"C", 3, 1}}, "C");
    }
    SUBCASE("idle but weight 0 or OVERLOAD does not count") {
        check_pick<nq, reference_nq>({{"A", 0, 0}, {"B", 1, 0, 0, true}, {"C", 1, 5}}, "C");
    }
}

TEST_CASE("fo: highest weight, strict, first wins; OVERLOAD skipped") {
    SUBCASE("first of the maximal weight") {
        check_pick<fo, reference_fo>({{"A", 2}, {"B", 3}, {"C", 3}}, "B");
    }
    SUBCASE("counters do not matter") {
        check_pick<fo, reference_fo>({{"A", 3, 100, 100}, {"B", 2, 0}}, "A");
    }
    SUBCASE("OVERLOAD skipped") { check_pick<fo, reference_fo>({{"A", 5, 0, 0, true}, {"B", 3}}, "B"); }
    SUBCASE("all weight 0: none") { check_pick<fo, reference_fo>({{"A", 0}, {"B", 0}}, "none"); }
}

TEST_CASE("ovf: highest weight among active <= weight; active == weight is eligible") {
    SUBCASE("active == weight eligible") { check_pick<ovf, reference_ovf>({{"A", 1}, {"B", 2, 2}}, "B"); }
    SUBCASE("active == weight + 1 not") { check_pick<ovf, reference_ovf>({{"A", 1}, {"B", 2, 3}}, "A"); }
    SUBCASE("inactive does not count") { check_pick<ovf, reference_ovf>({{"A", 1}, {"B", 2, 0, 99}}, "B"); }
    SUBCASE("first of the maximal weight") { check_pick<ovf, reference_ovf>({{"A", 4}, {"B", 4}}, "A"); }
    SUBCASE("weight 0 and OVERLOAD skipped") {
        check_pick<ovf, reference_ovf>({{"A", 0}, {"B", 5, 0, 0, true}, {"C", 1}}, "C");
    }
    SUBCASE("everything overflowing: none") {
        check_pick<ovf, reference_ovf>({{"A", 1, 2}, {"B", 2, 3}}, "none");
    }
}

// ---------------------------------------------------------------------------------------------
// The index follows the hooks.

TEST_CASE_TEMPLATE("indexed schedulers: the pick follows counts_changed, upd_dest, add and delete", S, lc,
                   wlc, sed, nq) {
    service<S> svc({{"A", 2}, {"B", 2}});
    CHECK(svc.pick() == "A");
    svc.set_counts("A", 3, 0); // A busier: every scheduler here moves to B
    CHECK(svc.pick() == "B");
    svc.set_counts("B", 4, 0, true); // B overloaded
    CHECK(svc.pick() == "A");
    svc.set_counts("B", 0, 0); // back
    CHECK(svc.pick() == "B");
    svc.set_weight("B", 0); // quiescent
    CHECK(svc.pick() == "A");
    svc.add({"C", 2}); // idle, at the head
    CHECK(svc.pick() == "C");
    dest& c = svc["C"];
    svc.remove(c);
    CHECK(svc.pick() == "A");
    // A deleted dest's connections still unbind; the index must ignore it.
    c.active_conns = 0;
    svc.sched().counts_changed(svc.list(), c);
    CHECK(svc.pick() == "A");
    CHECK(svc.sched().indexed(svc.list()));
}

TEST_CASE("ovf: the pick follows active_conns crossing the weight, OVERLOAD and weight edits") {
    service<ovf> svc({{"A", 2}, {"B", 2}});
    CHECK(svc.pick() == "A");
    svc.set_counts("A", 2, 0); // active == weight: still A
    CHECK(svc.pick() == "A");
    svc.set_counts("A", 3, 0);
    CHECK(svc.pick() == "B");
    svc.set_counts("B", 0, 0, true);
    CHECK(svc.pick() == "none");
    svc.set_weight("A", 3); // active 3 == weight 3 again
    CHECK(svc.pick() == "A");
    svc.set_counts("B", 0, 0, false);
    svc.set_weight("B", 4);
    CHECK(svc.pick() == "B");
}

TEST_CASE("fo: the pick follows weight edits and OVERLOAD") {
    service<fo> svc({{"A", 2}, {"B", 3}});
    CHECK(svc.pick() == "B");
    svc.set_counts("B", 0, 0, true);
    CHECK(svc.pick() == "A");
    svc.set_counts("B", 0, 0, false);
    svc.set_weight("A", 4);
    CHECK(svc.pick() == "A");
}

TEST_CASE_TEMPLATE("indexed schedulers: a list the hooks never saw is still scheduled right (rescan)", S, lc,
                   wlc, sed, nq, fo, ovf) {
    std::deque<dest> pool(3);
    std::vector<dest*> list;
    for (int i = 0; i < 3; ++i) {
        pool[static_cast<std::size_t>(i)].weight = i + 1;
        pool[static_cast<std::size_t>(i)].flags = dest_flag::available;
        list.push_back(&pool[static_cast<std::size_t>(i)]);
    }
    S s;
    CHECK_FALSE(s.indexed(dest_list(list)));
    // All idle, weights 1, 2, 3 from the head: lc, wlc (0/w ties) and nq (first idle) take the head;
    // sed (1/w), fo and ovf (highest weight) the weight-3 tail.
    dest* expected =
        (std::is_same_v<S, lc> || std::is_same_v<S, wlc> || std::is_same_v<S, nq>) ? list[0] : list[2];
    CHECK(s.schedule(dest_list(list), sched_input{}) == expected);
}

// ---------------------------------------------------------------------------------------------
// twos with a scripted random source.

namespace {
/// Hands out the given values and records every bound it was asked for.
struct scripted_rng {
    std::vector<std::uint32_t> values;
    std::vector<std::uint32_t> bounds{};
    std::size_t next = 0;
    std::uint32_t below(std::uint32_t n) noexcept {
        bounds.push_back(n);
        const std::uint32_t v = next < values.size() ? values[next++] : 0;
        return v < n ? v : 0; // a script error shows up as a wrong pick
    }
};

/// twos' pick (fast and reference must agree) for draws r1, r2, and the bounds they were drawn below.
template <template <class> class T>
std::pair<std::string, std::vector<std::uint32_t>> twos_pick(const std::vector<spec>& head_first,
                                                             std::uint32_t r1, std::uint32_t r2) {
    service<T<scripted_rng>> svc(head_first, T<scripted_rng>(scripted_rng{{r1, r2}}));
    std::string got = svc.pick();
    return {got, svc.sched().rng().bounds};
}

void check_twos(const std::vector<spec>& head_first, std::uint32_t r1, std::uint32_t r2,
                const std::string& expected, std::uint32_t bound) {
    CAPTURE(r1);
    CAPTURE(r2);
    const auto fast = twos_pick<twos>(head_first, r1, r2);
    const auto ref = twos_pick<reference_twos>(head_first, r1, r2);
    CHECK(fast.first == expected);
    CHECK(ref.first == expected);
    const std::vector<std::uint32_t> bounds{bound, bound};
    CHECK(fast.second == bounds);
    CHECK(ref.second == bounds);
}
} // namespace

TEST_CASE("twos: r in [0, total] selects by cumulative weight; ties keep choice 1") {
    // A1 B2 C3, all idle: total 6, both draws below 7; subtracting weights, the first dest where
    // r <= 0 is chosen: r 0,1 -> A; 2,3 -> B; 4,5,6 -> C.
    const std::vector<spec> l{{"A", 1}, {"B", 2}, {"C", 3}};
    const char* by_r[] = {"A", "A", "B", "B", "C", "C", "C"};
    for (std::uint32_t r = 0; r <= 6; ++r) check_twos(l, r, r, by_r[r], 7);
    // Idle dests: overheads 0, weight2 * 0 > weight1 * 0 is false, so choice 1 stays.
    check_twos(l, 0, 6, "A", 7);
    check_twos(l, 6, 0, "C", 7);
}

TEST_CASE("twos: the less loaded per weight of the two choices wins") {
    const std::vector<spec> l{{"A", 1, 1}, {"B", 2, 1}};
    check_twos(l, 0, 3, "B", 4); // 2 * 256 > 1 * 256: choice 2
    check_twos(l, 3, 0, "B", 4); // 1 * 256 > 2 * 256 is false: choice 1
    const std::vector<spec> even{{"A", 1, 1}, {"B", 1, 1}};
    check_twos(even, 2, 0, "B", 3); // tie: choice 1
}

TEST_CASE("twos: OVERLOAD and weight 0 are neither counted nor chosen") {
    const std::vector<spec> l{{"A", 0}, {"B", 5, 0, 0, true}, {"C", 2}, {"D", 1}};
    check_twos(l, 0, 0, "C", 4);
    check_twos(l, 2, 2, "C", 4);
    check_twos(l, 3, 3, "D", 4);
    SUBCASE("nothing eligible: nullptr and no draw") {
        const std::vector<spec> none{{"A", 0}, {"B", 5, 0, 0, true}};
        for (const auto& got : {twos_pick<twos>(none, 0, 0), twos_pick<reference_twos>(none, 0, 0)}) {
            CHECK(got.first == "none");
            CHECK(got.second.empty());
        }
    }
}

TEST_CASE("twos: step 4 multiplies in 32-bit int, wrapping") {
    // A(w1, active 10000): overhead 2,560,000; B(w1000, idle). r1 -> A, r2 -> B.
    // weight2 * overhead1 = 2.56e9 wraps to -1,734,967,296, not > 1 * 0: choice 1 (A).
    check_twos({{"A", 1, 10000}, {"B", 1000}}, 0, 1000, "A", 1002);
    // A tenth of the load: 1000 * 256,000 does not wrap, so choice 2 (B) wins.
    check_twos({{"A", 1, 1000}, {"B", 1000}}, 0, 1000, "B", 1002);
}

TEST_CASE("splitmix_rng: below(n) stays in range, is reproducible and reaches every value") {
    splitmix_rng a, b(splitmix_rng::default_seed), c(42);
    std::vector<int> seen(7, 0);
    bool differs = false;
    for (int i = 0; i < 1000; ++i) {
        const auto x = a.below(7);
        REQUIRE(x < 7);
        CHECK(x == b.below(7));
        differs = differs || x != c.below(7);
        ++seen[x];
    }
    CHECK(differs);
    for (int s : seen) CHECK(s > 100); // 1000 / 7 ≈ 143 each
    CHECK(a.below(1) == 0);
    CHECK(a.below(0) == 0);
}

// ---------------------------------------------------------------------------------------------
// Fast vs reference differential.

namespace {

/// Per scheduler: the pair under test, and what counts as a tie with the chosen dest (a pick where
/// some other dest ties is one where only the tie-break decided).
struct lc_case {
    using fast = lc;
    using ref = reference_lc;
    static constexpr const char* name = "lc";
    static bool tie(const dest& c, const dest& d) { return eligible(d) && overhead(d) == overhead(c); }
};
struct wlc_case {
    using fast = wlc;
    using ref = reference_wlc;
    static constexpr const char* name = "wlc";
    static bool tie(const dest& c, const dest& d) {
        return eligible(d) && std::int64_t{overhead(c)} * d.weight == std::int64_t{overhead(d)} * c.weight;
    }
};
struct sed_case {
    using fast = sed;
    using ref = reference_sed;
    static constexpr const char* name = "sed";
    static bool tie(const dest& c, const dest& d) {
        return eligible(d) &&
               (std::int64_t{c.active_conns} + 1) * d.weight == (std::int64_t{d.active_conns} + 1) * c.weight;
    }
};
struct nq_case {
    using fast = nq;
    using ref = reference_nq;
    static constexpr const char* name = "nq";
    static bool tie(const dest& c, const dest& d) {
        if (c.active_conns == 0) return eligible(d) && d.active_conns == 0;
        return sed_case::tie(c, d);
    }
};
struct fo_case {
    using fast = fo;
    using ref = reference_fo;
    static constexpr const char* name = "fo";
    static bool tie(const dest& c, const dest& d) { return eligible(d) && d.weight == c.weight; }
};
struct ovf_case {
    using fast = ovf;
    using ref = reference_ovf;
    static constexpr const char* name = "ovf";
    static bool tie(const dest& c, const dest& d) {
        return eligible(d) && d.active_conns <= d.weight && d.weight == c.weight;
    }
};
struct twos_case {
    using fast = twos<>;
    using ref = reference_twos<>;
    static constexpr const char* name = "twos";
    static bool tie(const dest&, const dest&) { return false; } // random choices: no tie-break to count
};

/// One randomized run's shape.
struct run_shape {
    const char* label;
    std::uint64_t seed;
    std::size_t initial; ///< dests added before the first pick
    std::size_t max_dests;
    std::size_t steps;
    int max_weight; ///< weights drawn from 0..max_weight (0 about one time in six)
    int max_count;  ///< counters kept in 0..max_count (small: ties)
    int structural; ///< per-mille of steps that add or delete a dest
    bool extremes;  ///< counters and weights at the edges of int (wrapping overheads, negatives)
};

struct run_stats {
    std::size_t picks = 0;
    std::size_t null_picks = 0;
    std::size_t tie_picks = 0;
    std::size_t mismatches = 0;
    std::size_t unindexed = 0;
    std::string first_mismatch;
};

/// Applies random service activity to one dest list shared by a fast scheduler and its reference,
/// comparing their picks between the changes.
template <class Case>
class differential {
public:
    explicit differential(const run_shape& shape)
        : m_shape(shape), m_gen(shape.seed), m_fast(make<typename Case::fast>(shape.seed)),
          m_ref(make<typename Case::ref>(shape.seed)) {}

    run_stats run() {
        for (std::size_t i = 0; i < m_shape.initial; ++i) add_new();
        for (std::size_t step = 0; step < m_shape.steps; ++step) one_step();
        if constexpr (requires { m_fast.rng(); }) {
            // Both drew the same number of times.
            if (m_fast.rng().next() != m_ref.rng().next()) record_mismatch("random streams diverged");
        }
        return m_stats;
    }

private:
    template <class S>
    static S make(std::uint64_t seed) {
        if constexpr (requires { S(splitmix_rng(seed)); }) {
            return S(splitmix_rng(seed));
        } else {
            return S{};
        }
    }

    int rnd(int n) { return static_cast<int>(m_gen() % static_cast<std::uint64_t>(n)); }
    std::size_t index(std::size_t n) { return static_cast<std::size_t>(m_gen() % n); }
    bool chance(int per_mille) { return rnd(1000) < per_mille; }

    int draw_weight() {
        if (m_shape.extremes) {
            static constexpr int w[] = {0, 0, 1, 1, 2, 3, 7, 1000, 65535, 100'000'000};
            return w[index(std::size(w))];
        }
        return rnd(6) == 0 ? 0 : 1 + rnd(m_shape.max_weight);
    }

    /// Extreme counters that keep overhead() = active * 256 + inactive free of signed overflow in
    /// the addition while its shift wraps (as the kernel's does).
    void draw_extreme_counts(dest& d) {
        static constexpr int a[] = {-3,
                                    -1,
                                    0,
                                    0,
                                    1,
                                    2,
                                    3,
                                    (1 << 22),
                                    (1 << 23) + 1,
                                    3 * (1 << 23) + 7,
                                    std::numeric_limits<int>::max()};
        static constexpr int i[] = {-3, 0, 0, 1, 2, 255, 256, 1000};
        d.active_conns = a[index(std::size(a))];
        d.inactive_conns = i[index(std::size(i))];
    }

    dest& random_dest() {
        // Mostly listed dests; sometimes one in the trash (its connections still come and go).
        if (!m_trash.empty() && (m_list.empty() || chance(100))) return *m_trash[index(m_trash.size())];
        return *m_list[index(m_list.size())];
    }

    void counts_changed(dest& d) {
        m_fast.counts_changed(list(), d);
        m_ref.counts_changed(list(), d);
    }

    void set_thresholds(dest& d) {
        if (rnd(3) == 0) {
            d.u_threshold = static_cast<std::uint32_t>(1 + rnd(2 * m_shape.max_count + 1));
            d.l_threshold =
                rnd(2) == 0 ? 0 : static_cast<std::uint32_t>(rnd(static_cast<int>(d.u_threshold) + 1));
        } else {
            d.u_threshold = d.l_threshold = 0;
        }
    }

    void insert_head(dest& d) {
        d.flags |= dest_flag::available;
        d.list_seq = ++m_seq;
        d.sched_slot = 0;
        overload_after_config(d);
        m_list.insert(m_list.begin(), &d);
        m_fast.add_dest(list(), d);
        m_ref.add_dest(list(), d);
    }

    void add_new() {
        dest& d = m_pool.emplace_back();
        d.weight = d.last_weight = draw_weight();
        if (m_shape.extremes) {
            draw_extreme_counts(d);
        } else {
            d.active_conns = rnd(m_shape.max_count + 1);
            d.inactive_conns = rnd(m_shape.max_count + 1);
        }
        set_thresholds(d);
        insert_head(d);
    }

    void add_or_revive() {
        if (m_list.size() >= m_shape.max_dests) return;
        if (!m_trash.empty() && rnd(2) == 0) {
            // Revived from the trash with its old counters, at the head again.
            const auto k = index(m_trash.size());
            dest* d = m_trash[k];
            m_trash.erase(m_trash.begin() + static_cast<std::ptrdiff_t>(k));
            d->weight = draw_weight();
            if (d->weight != 0) d->last_weight = d->weight;
            set_thresholds(*d);
            insert_head(*d);
        } else {
            add_new();
        }
    }

    void remove_one() {
        if (m_list.empty()) return;
        const auto k = index(m_list.size());
        dest* d = m_list[k];
        m_list.erase(m_list.begin() + static_cast<std::ptrdiff_t>(k));
        d->flags &= ~dest_flag::available;
        m_trash.push_back(d);
        m_fast.del_dest(list(), *d);
        m_ref.del_dest(list(), *d);
    }

    void edit_one() {
        if (m_list.empty()) return;
        dest& d = random_dest();
        if (!d.available()) return;
        d.weight = draw_weight();
        if (d.weight != 0) d.last_weight = d.weight;
        if (rnd(2) == 0) set_thresholds(d);
        overload_after_config(d);
        m_fast.upd_dest(list(), d);
        m_ref.upd_dest(list(), d);
    }

    /// A connection event on a dest: bind, unbind, or a state change moving it between counters.
    void conn_event(dest& d) {
        if (m_shape.extremes) {
            draw_extreme_counts(d);
        } else {
            const int cap = m_shape.max_count;
            switch (rnd(4)) {
            case 0: // bind: new connections start inactive (§1.6); sync may bind active ones
                ++(rnd(4) == 0 ? d.active_conns : d.inactive_conns);
                if (d.active_conns > cap) d.active_conns = cap;
                if (d.inactive_conns > cap) d.inactive_conns = cap;
                overload_after_bind(d);
                break;
            case 1: // unbind
                if (rnd(2) == 0 && d.active_conns > 0) {
                    --d.active_conns;
                } else if (d.inactive_conns > 0) {
                    --d.inactive_conns;
                }
                overload_after_unbind(d);
                break;
            case 2: // established: inactive -> active
                if (d.inactive_conns > 0 && d.active_conns < cap) --d.inactive_conns, ++d.active_conns;
                break;
            default: // closing: active -> inactive
                if (d.active_conns > 0 && d.inactive_conns < cap) --d.active_conns, ++d.inactive_conns;
                break;
            }
        }
        counts_changed(d);
    }

    void pick() {
        if (!m_fast.indexed(list())) ++m_stats.unindexed;
        dest* a = m_fast.schedule(list(), sched_input{});
        dest* b = m_ref.schedule(list(), sched_input{});
        ++m_stats.picks;
        if (a != b) {
            std::ostringstream os;
            os << "pick " << m_stats.picks << ": fast " << position(a) << ", reference " << position(b)
               << " of " << m_list.size();
            record_mismatch(os.str());
        }
        if (b == nullptr) {
            ++m_stats.null_picks;
            return;
        }
        for (const dest* d : m_list) {
            if (d != b && Case::tie(*b, *d)) {
                ++m_stats.tie_picks;
                break;
            }
        }
        // The new connection binds to the chosen dest (§1.6: counted inactive first).
        if (chance(600)) {
            if (m_shape.extremes || b->inactive_conns < m_shape.max_count) {
                if (!m_shape.extremes) ++b->inactive_conns;
                overload_after_bind(*b);
                counts_changed(*b);
            }
        }
    }

    void one_step() {
        const int r = rnd(1000);
        if (r < m_shape.structural) {
            if (rnd(2) == 0) {
                add_or_revive();
            } else {
                remove_one();
            }
        } else if (r < 450) {
            pick();
        } else if (m_list.empty() && m_trash.empty()) {
            add_new();
        } else if (r < 800) {
            conn_event(random_dest());
        } else if (r < 880) {
            dest& d = random_dest();
            d.flags ^= dest_flag::overload; // OVERLOAD set or cleared behind the hysteresis' back
            counts_changed(d);
        } else {
            edit_one();
        }
    }

    std::string position(const dest* d) const {
        if (d == nullptr) return "none";
        for (std::size_t i = 0; i < m_list.size(); ++i) {
            if (m_list[i] == d) return "#" + std::to_string(i);
        }
        return "a dest not in the list";
    }

    void record_mismatch(const std::string& what) {
        if (m_stats.mismatches++ == 0) m_stats.first_mismatch = what;
    }

    [[nodiscard]] dest_list list() const noexcept { return dest_list(m_list); }

    run_shape m_shape;
    std::mt19937_64 m_gen;
    typename Case::fast m_fast;
    typename Case::ref m_ref;
    std::deque<dest> m_pool;
    std::vector<dest*> m_list;  ///< head first
    std::vector<dest*> m_trash; ///< deleted, still alive
    std::uint64_t m_seq = 0;
    run_stats m_stats;
};

template <class Case>
void run_differential() {
    std::vector<run_shape> shapes;
    for (std::uint64_t s = 1; s <= 40; ++s) {
        // n from 1 to 20, small weights and counters: ties on nearly every pick.
        const auto n = static_cast<std::size_t>(1 + (s * 7) % 20);
        shapes.push_back(
            {"small", s, n, 20, 6500, 1 + static_cast<int>(s % 4), 2 + static_cast<int>(s % 3), 40, false});
    }
    for (std::uint64_t s = 101; s <= 110; ++s) shapes.push_back({"extreme", s, 8, 20, 4000, 0, 3, 40, true});
    // A couple of thousand dests; structural changes (O(n) each) kept rare.
    shapes.push_back({"large", 201, 2000, 2500, 6000, 5, 4, 2, false});

    std::map<std::string, run_stats> total;
    for (const auto& shape : shapes) {
        const run_stats st = differential<Case>(shape).run();
        run_stats& t = total[shape.label];
        t.picks += st.picks;
        t.null_picks += st.null_picks;
        t.tie_picks += st.tie_picks;
        t.unindexed += st.unindexed;
        if (st.mismatches != 0 && t.mismatches == 0) {
            t.first_mismatch = std::string("seed ") + std::to_string(shape.seed) + ", " + st.first_mismatch;
        }
        t.mismatches += st.mismatches;
    }
    std::size_t all = 0;
    for (const auto& entry : total) {
        // (no structured binding: clang 14 cannot capture one in doctest's message lambdas)
        const std::string& label = entry.first;
        const run_stats& t = entry.second;
        MESSAGE(std::string(Case::name) << " " << label << ": " << t.picks << " picks compared ("
                                        << t.tie_picks << " decided by a tie-break, " << t.null_picks
                                        << " none), " << t.mismatches << " mismatches");
        CHECK_MESSAGE(t.mismatches == 0, std::string(Case::name) << " " << label << ": " << t.first_mismatch);
        CHECK(t.unindexed == 0);
        CHECK(t.picks > 0);
        all += t.picks;
    }
    CHECK(all >= 100'000);
}

} // namespace

TEST_CASE_TEMPLATE("differential: indexed scheduler == kernel-style reference on randomized service activity",
                   C, lc_case, wlc_case, sed_case, nq_case, fo_case, ovf_case, twos_case) {
    run_differential<C>();
}

TEST_CASE("indexed schedulers: schedule() and counts_changed() allocate nothing") {
    std::deque<dest> pool(50);
    std::vector<dest*> list;
    lc s_lc;
    wlc s_wlc;
    sed s_sed;
    nq s_nq;
    fo s_fo;
    ovf s_ovf;
    twos<> s_twos;
    auto each = [&](auto&& f) { f(s_lc), f(s_wlc), f(s_sed), f(s_nq), f(s_fo), f(s_ovf), f(s_twos); };
    for (std::size_t i = 0; i < pool.size(); ++i) {
        pool[i].weight = static_cast<int>(i % 5);
        pool[i].flags = dest_flag::available;
        list.insert(list.begin(), &pool[i]);
        each([&](auto& s) { s.add_dest(dest_list(list), pool[i]); });
    }
    const std::size_t before = g_allocations.load();
    std::size_t picked = 0;
    for (int round = 0; round < 2000; ++round) {
        dest& d = pool[static_cast<std::size_t>(round) % pool.size()];
        d.active_conns = round % 7;
        d.inactive_conns = round % 3;
        d.flags ^= (round % 11 == 0) ? dest_flag::overload : 0u;
        each([&](auto& s) {
            s.counts_changed(dest_list(list), d);
            s.upd_dest(dest_list(list), d);
            picked += s.schedule(dest_list(list), sched_input{}) != nullptr ? 1 : 0;
        });
    }
    CHECK(g_allocations.load() == before);
    CHECK(picked > 0);
}

TEST_CASE("scheduler types model the concept and are default-constructible") {
    static_assert(scheduler<lc> && scheduler<wlc> && scheduler<sed> && scheduler<nq> && scheduler<fo> &&
                  scheduler<ovf> && scheduler<twos<>>);
    static_assert(scheduler<reference_lc> && scheduler<reference_wlc> && scheduler<reference_sed> &&
                  scheduler<reference_nq> && scheduler<reference_fo> && scheduler<reference_ovf> &&
                  scheduler<reference_twos<>>);
    static_assert(std::is_default_constructible_v<lc> && std::is_default_constructible_v<twos<>> &&
                  std::is_default_constructible_v<reference_twos<>>);
    CHECK(true);
}
