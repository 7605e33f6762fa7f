// SPDX-License-Identifier: MIT
// fo — weighted fail-over (spec §2.7): O(log n) indexed `fo` and the kernel-style `reference_fo`.
#pragma once

// Design
// ------
// Source: spec §2.7 (the kernel's ip_vs_fo.c).
// Kernel rule: among dests without OVERLOAD take the highest weight, strict `weight > hw` with hw
// starting at 0 — so weight-0 dests never win and the first dest of maximal weight does.
// Index: `first_best` with eligible = !OVERLOAD && weight > 0, beats = strictly higher weight.
// Counters matter only through OVERLOAD, so `counts_changed` is needed only when that flag moves
// (it is cheap either way).
// Invariant: the tree root is the dest the scan would return, given the hooks ran.
// Deviation: none in the decisions; O(log n) per pick and per change instead of O(n).

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

struct fo_traits {
    [[nodiscard]] static bool eligible(const dest& d) noexcept { return ipvs::eligible(d); }
    [[nodiscard]] static bool beats(const dest& later, const dest& earlier) noexcept {
        return later.weight > earlier.weight;
    }
};

struct fo_policy : first_best<fo_traits> {
    /// The loop of spec §2.7, step by step (the reference, and the fallback without an index).
    [[nodiscard]] static dest* scan(sched::dest_list list) noexcept {
        dest* hd = nullptr;
        int hw = 0;
        for (dest* d : list) {
            if (!d->overloaded() && d->weight > hw) {
                hd = d;
                hw = d->weight;
            }
        }
        return hd;
    }
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Weighted fail-over with an O(log n) index; decisions identical to the kernel's.
class fo final : public ipvs::detail::least_scheduler<ipvs::detail::fo_policy> {};

/// Weighted fail-over as the kernel does it: a full scan on every pick, no state.
class reference_fo final : public ipvs::detail::scan_scheduler<ipvs::detail::fo_policy> {};

static_assert(scheduler<fo> && scheduler<reference_fo>);

} // namespace ipvs::sched
