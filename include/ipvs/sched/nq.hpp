// SPDX-License-Identifier: MIT
// nq — never queue (spec §2.6): O(log n) indexed `nq` and the kernel-style `reference_nq`.
#pragma once

// Design
// ------
// Source: spec §2.6 (the kernel's ip_vs_nq.c).
// Kernel rule: scan the eligible dests (!OVERLOAD, weight > 0) in list order; the first one with
// active_conns == 0 is returned at once (inactive connections ignored); otherwise keep the least
// (active + 1) / weight with sed's strict cross-multiplied test, first wins ties.
// Index: `first_best` with the order "idle before busy; among idle the head-most; among busy the
// least (active + 1) / weight, head-most on ties" — a strict weak order whose head-most minimum is
// exactly what the early-returning scan finds (every dest before the first idle one is busy).
// Invariant: the tree root is the dest the scan would return, given the hooks ran.
// Deviation: none in the decisions; O(log n) per pick and per counter change instead of O(n).

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/detail/weighted_least.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

struct nq_traits {
    [[nodiscard]] static bool eligible(const dest& d) noexcept { return ipvs::eligible(d); }
    [[nodiscard]] static bool beats(const dest& later, const dest& earlier) noexcept {
        if (earlier.active_conns == 0) return false; // the scan would have stopped at `earlier`
        if (later.active_conns == 0) return true;
        return ratio_greater(sed_key::of(earlier), earlier.weight, sed_key::of(later), later.weight);
    }
};

struct nq_policy : first_best<nq_traits> {
    /// The loop of spec §2.6, step by step (the reference, and the fallback without an index).
    [[nodiscard]] static dest* scan(sched::dest_list list) noexcept {
        dest* least = nullptr;
        int loh = 0;
        for (dest* d : list) {
            if (!ipvs::eligible(*d)) continue;
            const int doh = sed_key::of(*d);
            if (d->active_conns == 0) return d;
            if (least == nullptr || ratio_greater(loh, least->weight, doh, d->weight)) {
                least = d;
                loh = doh;
            }
        }
        return least;
    }
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Never queue with an O(log n) index; decisions identical to the kernel's.
class nq final : public ipvs::detail::least_scheduler<ipvs::detail::nq_policy> {};

/// Never queue as the kernel does it: a full scan on every pick, no state.
class reference_nq final : public ipvs::detail::scan_scheduler<ipvs::detail::nq_policy> {};

static_assert(scheduler<nq> && scheduler<reference_nq>);

} // namespace ipvs::sched
