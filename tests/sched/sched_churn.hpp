// SPDX-License-Identifier: MIT
// Test support for the scheduler tests: a dest list kept as the kernel keeps it, and a randomized churn.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/dest.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::test {

/// A service's dest list in kernel order (new dests at the head), driving the hooks of every
/// scheduler passed to it, as spec §1.9 says. Dests live in a deque (stable addresses) and stay alive
/// after deletion, like the kernel's trash, so they can be revived with their counters.
class dest_list_model {
public:
    std::vector<dest*> list; ///< head first
    std::vector<dest*> trash;

    [[nodiscard]] sched::dest_list view() const noexcept { return list; }

    /// A new dest object (not yet in the list).
    dest& make(endpoint ep, int weight, std::uint32_t u_threshold = 0, std::uint32_t l_threshold = 0) {
        dest& d = m_pool.emplace_back();
        d.ep = ep;
        d.weight = weight;
        d.u_threshold = u_threshold;
        d.l_threshold = l_threshold;
        return d;
    }

    /// A dest named by one letter (kept in its port, so `name()` can print sequences).
    dest& named(char name, int weight) {
        return make(
            {inet_addr::v4(0x0a000000U + static_cast<std::uint8_t>(name)), static_cast<std::uint8_t>(name)},
            weight);
    }

    /// Sets up dests that exist before the scheduler is attached, in list order head first (spec
    /// §2.2's worked examples), without running any hook; call the scheduler's init_service after.
    void place(const std::vector<dest*>& head_first) {
        for (auto it = head_first.rbegin(); it != head_first.rend(); ++it) {
            list.insert(list.begin(), *it);
            (*it)->list_seq = ++m_seq;
            (*it)->last_weight = (*it)->weight;
            (*it)->flags |= dest_flag::available;
        }
    }

    /// place() of letter-named dests with these weights, head first, then each scheduler's
    /// init_service (the kernel's attach to an existing service). Returns the dests head first.
    template <class... S>
    std::vector<dest*> place_named(std::initializer_list<std::pair<char, int>> head_first, S&... s) {
        std::vector<dest*> ds;
        for (auto [c, w] : head_first) ds.push_back(&named(c, w));
        place(ds);
        (s.init_service(view()), ...);
        return ds;
    }

    /// ipvsadm -a (also reviving `d` from the trash with its counters).
    template <class... S>
    void add(dest& d, S&... s) {
        std::erase(trash, &d);
        list.insert(list.begin(), &d);
        d.list_seq = ++m_seq;
        d.sched_slot = 0;
        d.last_weight = d.weight;
        d.flags |= dest_flag::available;
        overload_after_config(d);
        (s.add_dest(view(), d), ...);
    }

    /// ipvsadm -d: unlink, then the del hooks; the dest goes to the trash.
    template <class... S>
    void del(dest& d, S&... s) {
        std::erase(list, &d);
        d.flags &= ~dest_flag::available;
        trash.push_back(&d);
        (s.del_dest(view(), d), ...);
    }

    /// ipvsadm -e: weight and thresholds, then the upd hooks.
    template <class... S>
    void edit(dest& d, int weight, std::uint32_t u_threshold, std::uint32_t l_threshold, S&... s) {
        d.weight = weight;
        if (weight != 0) d.last_weight = weight;
        d.u_threshold = u_threshold;
        d.l_threshold = l_threshold;
        overload_after_config(d);
        (s.upd_dest(view(), d), ...);
    }

    /// A new connection bound to `d` (counted inactive or active), then counts_changed.
    template <class... S>
    void bind(dest& d, bool active, S&... s) {
        ++(active ? d.active_conns : d.inactive_conns);
        overload_after_bind(d);
        (s.counts_changed(view(), d), ...);
    }

    /// A connection of `d` freed, then counts_changed.
    template <class... S>
    void unbind(dest& d, S&... s) {
        if (d.active_conns > 0) {
            --d.active_conns;
        } else if (d.inactive_conns > 0) {
            --d.inactive_conns;
        } else {
            return;
        }
        overload_after_unbind(d);
        (s.counts_changed(view(), d), ...);
    }

private:
    std::deque<dest> m_pool;
    std::uint64_t m_seq = 0;
};

/// The letter of a dest made by `named` ('-' for nullptr).
[[nodiscard]] inline char name(const dest* d) { return d == nullptr ? '-' : static_cast<char>(d->ep.port); }

/// `n` picks of `s` over `m`'s list as a string of names (flows as `in`).
template <class S>
std::string pick_names(S& s, const dest_list_model& m, std::size_t n, const sched::sched_input& in = {}) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += name(s.schedule(m.view(), in));
    return out;
}

/// The spec's three-dest examples (§2.9, §2.13): A = 10.0.0.1:80, B = 10.0.0.2:80, C = 10.0.0.3:80 added
/// in that order, so the list is C, B, A.
struct abc_service {
    dest_list_model m;
    dest* a = nullptr;
    dest* b = nullptr;
    dest* c = nullptr;

    template <class S>
    abc_service(S& s, int wa, int wb, int wc) {
        a = &m.make(*parse_endpoint("10.0.0.1:80"), wa);
        b = &m.make(*parse_endpoint("10.0.0.2:80"), wb);
        c = &m.make(*parse_endpoint("10.0.0.3:80"), wc);
        for (dest* d : {a, b, c}) m.add(*d, s);
    }

    /// The first `n` entries of a table as letters ('-' for an empty one).
    [[nodiscard]] std::string letters(std::span<dest* const> t, std::size_t n) const {
        std::string out;
        for (std::size_t i = 0; i < n && i < t.size(); ++i)
            out += t[i] == a ? 'A' : t[i] == b ? 'B' : t[i] == c ? 'C' : '-';
        return out;
    }
};

/// Dest k's endpoint: 10.0.x.y or, for odd k when `mixed_af`, fd00:2::x:y00, port 8080. Distinct k give
/// distinct fold + port, so no two dests share an mh permutation.
[[nodiscard]] inline endpoint churn_endpoint(std::size_t k, bool mixed_af) {
    const auto kk = static_cast<std::uint32_t>(k & 0xffff);
    if (mixed_af && k % 2 == 1) {
        std::array<std::uint8_t, 16> b{0xfd, 0x00, 0x00, 0x02};
        b[13] = static_cast<std::uint8_t>(kk >> 8);
        b[14] = static_cast<std::uint8_t>(kk);
        return {inet_addr::v6(b), 8080};
    }
    return {inet_addr::v4(0x0a000000U + kk), 8080};
}

/// A connection's first packet from `saddr`:`sport` to the VIP 10.0.0.100 (TCP unless told).
[[nodiscard]] inline sched::sched_input flow_from(const char* saddr, std::uint16_t sport = 40000,
                                                  std::uint8_t protocol = 6) {
    sched::sched_input in;
    in.saddr = *parse_addr(saddr);
    in.daddr = *parse_addr("10.0.0.100");
    in.sport = sport;
    in.protocol = protocol;
    return in;
}

/// A random flow: client address (v4 or v6) and port, destination address, protocol.
[[nodiscard]] inline sched::sched_input random_flow(std::mt19937_64& rng) {
    sched::sched_input in;
    const auto r = rng();
    if (r % 4 == 0) {
        std::array<std::uint8_t, 16> b{0xfd, 0x01};
        for (std::size_t i = 8; i < 16; ++i) b[i] = static_cast<std::uint8_t>(rng());
        in.saddr = inet_addr::v6(b);
    } else {
        in.saddr = inet_addr::v4(0x0a010000U | static_cast<std::uint32_t>(rng() & 0xffff));
    }
    in.daddr = inet_addr::v4(0x0a030000U | static_cast<std::uint32_t>(rng() & 0xff));
    in.sport = static_cast<std::uint16_t>(1024 + rng() % 60000);
    in.dport = 80;
    static constexpr std::uint8_t protos[] = {6, 17, 132, 1};
    in.protocol = protos[(r >> 8) % 4];
    return in;
}

/// How a churn run is shaped.
struct churn_plan {
    std::uint64_t seed = 1;
    std::size_t initial_dests = 8; ///< added one by one before the first pick
    bool place_initial = false;    ///< instead: present before the schedulers' init_service
    std::size_t max_dests = 64;
    std::size_t picks = 10000;
    int max_weight = 6;
    bool thresholds = true;    ///< give some dests u/l thresholds, so OVERLOAD comes and goes
    bool mixed_af = false;     ///< IPv6 dests too (hashing schedulers)
    unsigned config_every = 8; ///< on average one configuration change per this many picks
    unsigned unbind_every = 1; ///< on average one connection freed per this many picks
};

/// A random configuration history over one dest list: adds, deletes, revivals from the trash,
/// weight and threshold edits, and connections freed (which move OVERLOAD), each followed by the hooks
/// of the schedulers passed in.
class churner {
public:
    dest_list_model svc;
    std::mt19937_64 rng;

    explicit churner(const churn_plan& plan) : rng(plan.seed), m_plan(plan) {}

    /// A new dest with a random weight and maybe thresholds, not yet in the list.
    dest& make_random() {
        std::uint32_t u, l;
        random_thresholds(u, l);
        return svc.make(churn_endpoint(m_made++, m_plan.mixed_af), random_weight(), u, l);
    }

    template <class... S>
    void add_new(S&... s) {
        svc.add(make_random(), s...);
    }

    /// One random configuration change (ipvsadm -a, -d, revive, -e).
    template <class... S>
    void config_change(S&... s) {
        const auto op = rng() % 10;
        if (op < 3 && svc.list.size() < m_plan.max_dests) {
            add_new(s...);
        } else if (op < 5 && !svc.list.empty()) {
            svc.del(pick_one(svc.list), s...);
        } else if (op < 6 && !svc.trash.empty() && svc.list.size() < m_plan.max_dests) {
            svc.add(pick_one(svc.trash), s...); // revive with its counters
        } else if (!svc.list.empty()) {
            dest& d = pick_one(svc.list);
            std::uint32_t u, l;
            random_thresholds(u, l);
            svc.edit(d, random_weight(), u, l, s...);
        }
    }

    /// A connection of a random dest freed (sometimes of a trashed one: its conns expire too).
    template <class... S>
    void unbind_one(S&... s) {
        std::vector<dest*>& pool = (!svc.trash.empty() && rng() % 4 == 0) ? svc.trash : svc.list;
        if (!pool.empty()) svc.unbind(pick_one(pool), s...);
    }

private:
    int random_weight() {
        if (rng() % 8 == 0) return 0;
        return static_cast<int>(1 + rng() % static_cast<unsigned>(m_plan.max_weight));
    }
    void random_thresholds(std::uint32_t& u, std::uint32_t& l) {
        u = l = 0;
        if (!m_plan.thresholds || rng() % 3 != 0) return;
        u = static_cast<std::uint32_t>(1 + rng() % 6);
        if (rng() % 2 == 0) l = static_cast<std::uint32_t>(rng() % (u + 1));
    }
    dest& pick_one(std::vector<dest*>& v) { return *v[rng() % v.size()]; }

    churn_plan m_plan;
    std::size_t m_made = 0;
};

/// Drives `fast` and `ref` through the same random history and compares every pick; a picked dest
/// gets the new connection bound to it. Returns the number of picks compared; stops at the first
/// difference (which fails the test).
template <class Fast, class Ref>
std::size_t run_churn(Fast& fast, Ref& ref, const churn_plan& plan) {
    churner c(plan);
    if (plan.place_initial) { // the dests exist before the schedulers are attached
        std::vector<dest*> initial;
        for (std::size_t i = 0; i < plan.initial_dests; ++i) initial.push_back(&c.make_random());
        c.svc.place(initial);
        fast.init_service(c.svc.view());
        ref.init_service(c.svc.view());
    } else {
        for (std::size_t i = 0; i < plan.initial_dests; ++i) c.add_new(fast, ref);
    }
    std::size_t compared = 0;
    for (std::size_t step = 0; step < plan.picks; ++step) {
        if (c.rng() % plan.config_every == 0) c.config_change(fast, ref);
        if (c.rng() % plan.unbind_every == 0) c.unbind_one(fast, ref);
        const sched::sched_input in = random_flow(c.rng);
        dest* a = fast.schedule(c.svc.view(), in);
        dest* b = ref.schedule(c.svc.view(), in);
        if (a != b) {
            FAIL("seed " << plan.seed << " step " << step << ": fast picked "
                         << (a ? std::to_string(a->list_seq) : "null") << ", reference "
                         << (b ? std::to_string(b->list_seq) : "null"));
            return compared;
        }
        ++compared;
        if (a != nullptr) c.svc.bind(*a, c.rng() % 2 == 0, fast, ref);
    }
    return compared;
}

/// Runs `run_churn` once per seed in [first, last]: `make(seed)` returns the {fast, reference} pair
/// and `shape(seed, plan)` fills in the plan. Reports and returns the number of picks compared.
template <class Make, class Shape>
std::size_t churn_seeds(const char* what, std::uint64_t first, std::uint64_t last, Make make, Shape shape) {
    std::size_t total = 0;
    for (std::uint64_t seed = first; seed <= last; ++seed) {
        auto [fast, ref] = make(seed);
        churn_plan plan;
        plan.seed = seed;
        shape(seed, plan);
        total += run_churn(fast, ref, plan);
    }
    MESSAGE(std::string(what) << ": " << total << " picks compared");
    return total;
}

/// Names of a table's dests ('-' for an empty slot), for checking the spec's worked tables.
[[nodiscard]] inline std::string table_names(std::span<dest* const> t) {
    std::string out;
    for (const dest* d : t) out += name(d);
    return out;
}

/// A scheduler built from scratch on `svc`'s current list agrees with `s` (built through a history):
/// same table, same pick for the same flow. Returns the number of flows compared.
template <class S>
std::size_t check_same_as_fresh(S& s, S fresh, const dest_list_model& svc, std::mt19937_64& rng) {
    fresh.init_service(svc.view());
    CHECK(std::equal(s.table().begin(), s.table().end(), fresh.table().begin(), fresh.table().end()));
    std::size_t n = 0;
    for (; n < 500; ++n) {
        const sched::sched_input in = random_flow(rng);
        REQUIRE(s.schedule(svc.view(), in) == fresh.schedule(svc.view(), in));
    }
    return n;
}

} // namespace ipvs::test
