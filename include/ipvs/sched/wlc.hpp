// SPDX-License-Identifier: MIT
// wlc — weighted least connection (spec §2.4): O(log n) indexed `wlc` and the kernel-style `reference_wlc`.
#pragma once

// Design
// ------
// Source: spec §2.4 (the kernel's ip_vs_wlc.c), overhead of §1.3.
// Kernel rule: least overhead/weight, compared as (s64)loh * d.weight > (s64)doh * least.weight;
// the first eligible dest seeds the scan and later dests are not re-checked for weight > 0 (so a
// weight-0 dest can never win while overheads are non-negative); ties keep the earlier dest.
// Index and the exact treatment of the missing weight check: detail/weighted_least.hpp.
// Invariant: the tree root yields the scan's answer for any counter values, given the hooks ran.
// Deviation: none in the decisions; O(log n) per pick and per counter change instead of O(n).
// Precondition: weight ≥ 0.

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/detail/weighted_least.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {
using wlc_policy = weighted_least_policy<wlc_key>;
} // namespace ipvs::detail

namespace ipvs::sched {

/// Weighted least connection with an O(log n) index; decisions identical to the kernel's.
class wlc final : public ipvs::detail::least_scheduler<ipvs::detail::wlc_policy> {};

/// Weighted least connection as the kernel does it: a full scan on every pick, no state.
class reference_wlc final : public ipvs::detail::scan_scheduler<ipvs::detail::wlc_policy> {};

static_assert(scheduler<wlc> && scheduler<reference_wlc>);

} // namespace ipvs::sched
