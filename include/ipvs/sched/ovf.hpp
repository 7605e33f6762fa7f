// SPDX-License-Identifier: MIT
// ovf — weighted overflow (spec §2.8): O(log n) indexed `ovf` and the kernel-style `reference_ovf`.
#pragma once

// Design
// ------
// Source: spec §2.8 (the kernel's ip_vs_ovf.c).
// Kernel rule: skip dests with OVERLOAD, active_conns > weight, or weight 0; take the highest
// weight, strict `>`, first wins ties. A dest with active_conns == weight is still eligible.
// Index: `first_best` with that eligibility (re-evaluated at every `counts_changed`) and beats =
// strictly higher weight.
// Invariant: the tree root is the dest the scan would return, given the hooks ran.
// Deviation: none in the decisions; O(log n) per pick and per counter change instead of O(n).

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

struct ovf_traits {
    [[nodiscard]] static bool eligible(const dest& d) noexcept {
        return !d.overloaded() && d.active_conns <= d.weight && d.weight != 0;
    }
    [[nodiscard]] static bool beats(const dest& later, const dest& earlier) noexcept {
        return later.weight > earlier.weight;
    }
};

struct ovf_policy : first_best<ovf_traits> {
    /// The loop of spec §2.8, step by step (the reference, and the fallback without an index).
    [[nodiscard]] static dest* scan(sched::dest_list list) noexcept {
        dest* h = nullptr;
        for (dest* d : list) {
            if (d->overloaded() || d->active_conns > d->weight || d->weight == 0) continue;
            if (h == nullptr || d->weight > h->weight) h = d;
        }
        return h;
    }
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Weighted overflow with an O(log n) index; decisions identical to the kernel's.
class ovf final : public ipvs::detail::least_scheduler<ipvs::detail::ovf_policy> {};

/// Weighted overflow as the kernel does it: a full scan on every pick, no state.
class reference_ovf final : public ipvs::detail::scan_scheduler<ipvs::detail::ovf_policy> {};

static_assert(scheduler<ovf> && scheduler<reference_ovf>);

} // namespace ipvs::sched
