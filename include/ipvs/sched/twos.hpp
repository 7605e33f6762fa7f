// SPDX-License-Identifier: MIT
// twos — power of two choices (spec §2.14): O(log n) `twos` and the kernel-style `reference_twos`.
#pragma once

// Design
// ------
// Source: spec §2.14 (the kernel's ip_vs_twos.c, Linux ≥ 6.5; the recorded 6.1 kernel has no twos).
// Kernel rule: total = sum of the weights of eligible dests (!OVERLOAD, weight > 0), none → NULL;
// draw r1 = below(total + 1), then r2 = below(total + 1); walk the eligible dests in list order
// subtracting each weight from r1 and r2 — the first dest where r1 ≤ 0 is choice 1, likewise
// choice 2; return choice 2 if weight2 * overhead1 > weight1 * overhead2 (int arithmetic), else
// choice 1.
// The walk picks, for r, the first eligible dest whose inclusive weight prefix is ≥ r; r = 0 picks
// the first eligible dest, the same as r = 1. `twos` keeps the eligible weights in a sum tree over
// list positions (detail/least_index.hpp) and finds that dest by descending it: O(log n).
// Randomness is injected: `Rng::below(n)` must return a value uniform in [0, n) like the kernel's
// get_random_u32_below(); both classes draw exactly twice per pick that has an eligible dest and
// never otherwise, so two instances fed identical sources make identical decisions.
// Deviations: none in the decisions. Precondition (as in the kernel, whose sum is an int): the
// eligible weights sum to less than INT_MAX.

#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {

/// A random source for twos: `below(n)` is uniform in [0, n), like get_random_u32_below().
template <class R>
concept bounded_rng = requires(R& r, std::uint32_t n) {
    { r.below(n) }
    noexcept->std::convertible_to<std::uint32_t>;
};

/// The default source: splitmix64 with a fixed seed (reproducible runs) and Lemire's multiply-shift
/// bounded draw with rejection (unbiased; the method get_random_u32_below() uses too).
class splitmix_rng {
public:
    static constexpr std::uint64_t default_seed = 0x9e3779b97f4a7c15ULL;

    constexpr splitmix_rng() noexcept = default;
    constexpr explicit splitmix_rng(std::uint64_t seed) noexcept : m_state(seed) {}

    /// The next 32 random bits (the high half of splitmix64's output).
    [[nodiscard]] constexpr std::uint32_t next() noexcept {
        std::uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return static_cast<std::uint32_t>((z ^ (z >> 31)) >> 32);
    }

    /// Uniform in [0, n); 0 for n == 0.
    [[nodiscard]] constexpr std::uint32_t below(std::uint32_t n) noexcept {
        std::uint64_t m = std::uint64_t{next()} * n;
        auto low = static_cast<std::uint32_t>(m);
        if (low < n) {
            const std::uint32_t threshold = (0u - n) % n; // 2^32 mod n: the biased low values
            while (low < threshold) {
                m = std::uint64_t{next()} * n;
                low = static_cast<std::uint32_t>(m);
            }
        }
        return static_cast<std::uint32_t>(m >> 32);
    }

private:
    std::uint64_t m_state = default_seed;
};

static_assert(bounded_rng<splitmix_rng>);

} // namespace ipvs::sched

namespace ipvs::detail {

/// Index policy: the summary of a range is the sum of its eligible weights.
struct twos_policy {
    using summary = std::int64_t;
    [[nodiscard]] static summary leaf(dest& d) noexcept { return ipvs::eligible(d) ? d.weight : 0; }
    [[nodiscard]] static summary combine(summary head, summary tail) noexcept { return head + tail; }
};

/// Step 4: the less loaded per weight of the two, choice 1 on ties, in the kernel's int arithmetic.
[[nodiscard]] inline dest* twos_choose(dest& c1, dest& c2) noexcept {
    return wrapping_mul(c2.weight, overhead(c1)) > wrapping_mul(c1.weight, overhead(c2)) ? &c2 : &c1;
}

/// Step 1 of the kernel: the eligible weight total (0 = none eligible).
[[nodiscard]] inline std::int64_t twos_total(sched::dest_list list) noexcept {
    std::int64_t total = 0;
    for (const dest* d : list) {
        if (ipvs::eligible(*d)) total += d->weight;
    }
    return total;
}

/// Steps 3 and 4 of the kernel for drawn r1, r2 (each ≤ the eligible total): the list walk.
[[nodiscard]] inline dest* twos_walk(sched::dest_list list, std::int64_t r1, std::int64_t r2) noexcept {
    dest* c1 = nullptr;
    dest* c2 = nullptr;
    for (dest* d : list) {
        if (d->overloaded() || d->weight <= 0) continue;
        r1 -= d->weight;
        r2 -= d->weight;
        if (r1 <= 0 && c1 == nullptr) c1 = d;
        if (r2 <= 0 && c2 == nullptr) c2 = d;
        if (c1 != nullptr && c2 != nullptr) break;
    }
    if (c1 == nullptr || c2 == nullptr) return c1; // unreachable while r1, r2 ≤ total
    return twos_choose(*c1, *c2);
}

/// The random source a twos scheduler owns, and the two draws of step 2.
template <sched::bounded_rng Rng>
class twos_source {
public:
    twos_source() = default;
    explicit twos_source(Rng rng) noexcept(std::is_nothrow_move_constructible_v<Rng>)
        : m_rng(std::move(rng)) {}

    /// The source, e.g. to reseed it or to inspect a scripted one.
    [[nodiscard]] Rng& rng() noexcept { return m_rng; }

protected:
    /// Draws r = below(total + 1) for a total ≥ 1.
    [[nodiscard]] std::int64_t draw(std::int64_t total) noexcept {
        return static_cast<std::int64_t>(m_rng.below(static_cast<std::uint32_t>(total + 1)));
    }

private:
    Rng m_rng{};
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Power of two choices with a weight sum tree: O(log n) per pick and per change.
template <bounded_rng Rng = splitmix_rng>
class twos final : public ipvs::detail::indexed_hooks<ipvs::detail::twos_policy>,
                   public ipvs::detail::twos_source<Rng> {
public:
    using ipvs::detail::twos_source<Rng>::twos_source;
    twos() = default;

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& /*in*/) noexcept {
        const bool indexed = this->m_tree.covers(list);
        const std::int64_t total = indexed ? this->m_tree.root() : ipvs::detail::twos_total(list);
        if (total <= 0) return nullptr; // no eligible dest: the kernel draws nothing either
        const std::int64_t r1 = this->draw(total);
        const std::int64_t r2 = this->draw(total);
        if (!indexed) return ipvs::detail::twos_walk(list, r1, r2);
        dest* c1 = pick(r1);
        dest* c2 = pick(r2);
        if (c1 == nullptr || c2 == nullptr) return ipvs::detail::twos_walk(list, r1, r2); // index out of date
        return ipvs::detail::twos_choose(*c1, *c2);
    }

private:
    /// The first eligible dest whose inclusive weight prefix is ≥ max(r, 1).
    [[nodiscard]] dest* pick(std::int64_t r) const noexcept {
        std::int64_t rest = r < 1 ? 1 : r;
        const auto pos = this->m_tree.descend([&rest](std::int64_t head_side) noexcept {
            if (head_side >= rest) return true;
            rest -= head_side;
            return false;
        });
        return this->m_tree.at(pos);
    }
};

/// Power of two choices as the kernel does it: two list walks per pick, no index.
template <bounded_rng Rng = splitmix_rng>
class reference_twos final : public ipvs::detail::scan_hooks, public ipvs::detail::twos_source<Rng> {
public:
    using ipvs::detail::twos_source<Rng>::twos_source;
    reference_twos() = default;

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& /*in*/) noexcept {
        const std::int64_t total = ipvs::detail::twos_total(list);
        if (total <= 0) return nullptr;
        const std::int64_t r1 = this->draw(total);
        const std::int64_t r2 = this->draw(total);
        return ipvs::detail::twos_walk(list, r1, r2);
    }
};

static_assert(scheduler<twos<>> && scheduler<reference_twos<>>);

} // namespace ipvs::sched
