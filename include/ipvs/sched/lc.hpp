// SPDX-License-Identifier: MIT
// lc — least connection (spec §2.3): O(log n) indexed `lc` and the kernel-style `reference_lc`.
#pragma once

// Design
// ------
// Source: spec §2.3 (the kernel's ip_vs_lc.c), overhead of §1.3.
// Kernel rule: scan the list, skip OVERLOAD and weight 0, keep the dest with the smallest
// overhead = active × 256 + inactive; strict `<`, so the first minimum in list order wins.
// Index: `first_best` over list positions with key overhead(d); combine keeps the head-side dest
// unless the tail-side one has a strictly smaller overhead — the same tie-break as the scan.
// Invariant: the tree root is the dest the scan would return, given the hooks ran (see
// detail/least_index.hpp). Overhead is `ipvs::overhead` (int, wraps like the kernel's for
// active ≥ 2^23); both classes use it, so they agree for any counter values.
// Deviation: none in the decisions; the kernel is O(n) per pick, `lc` O(log n) per pick and per
// counter change, O(n) per dest add/delete.

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

struct lc_traits {
    [[nodiscard]] static bool eligible(const dest& d) noexcept { return ipvs::eligible(d); }
    [[nodiscard]] static bool beats(const dest& later, const dest& earlier) noexcept {
        return overhead(later) < overhead(earlier);
    }
};

struct lc_policy : first_best<lc_traits> {
    /// The loop of spec §2.3, step by step (the reference, and the fallback without an index).
    [[nodiscard]] static dest* scan(sched::dest_list list) noexcept {
        dest* least = nullptr;
        int loh = 0;
        for (dest* d : list) {
            if (!ipvs::eligible(*d)) continue;
            const int doh = overhead(*d);
            if (least == nullptr || doh < loh) {
                least = d;
                loh = doh;
            }
        }
        return least;
    }
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Least connection with an O(log n) index; decisions identical to the kernel's.
class lc final : public ipvs::detail::least_scheduler<ipvs::detail::lc_policy> {};

/// Least connection as the kernel does it: a full scan on every pick, no state.
class reference_lc final : public ipvs::detail::scan_scheduler<ipvs::detail::lc_policy> {};

static_assert(scheduler<lc> && scheduler<reference_lc>);

} // namespace ipvs::sched
