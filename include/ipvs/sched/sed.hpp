// SPDX-License-Identifier: MIT
// sed — shortest expected delay (spec §2.5): O(log n) indexed `sed` and the kernel-style `reference_sed`.
#pragma once

// Design
// ------
// Source: spec §2.5 (the kernel's ip_vs_sed.c): wlc's procedure (§2.4) with the overhead replaced
// by active_conns + 1 — inactive connections do not count. The "+ 1" wraps like the kernel's int.
// Index and the exact treatment of the unchecked weight: detail/weighted_least.hpp.
// Invariant: the tree root yields the scan's answer for any counter values, given the hooks ran.
// Deviation: none in the decisions; O(log n) per pick and per counter change instead of O(n).
// Precondition: weight ≥ 0.

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/detail/weighted_least.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {
using sed_policy = weighted_least_policy<sed_key>;
} // namespace ipvs::detail

namespace ipvs::sched {

/// Shortest expected delay with an O(log n) index; decisions identical to the kernel's.
class sed final : public ipvs::detail::least_scheduler<ipvs::detail::sed_policy> {};

/// Shortest expected delay as the kernel does it: a full scan on every pick, no state.
class reference_sed final : public ipvs::detail::scan_scheduler<ipvs::detail::sed_policy> {};

static_assert(scheduler<sed> && scheduler<reference_sed>);

} // namespace ipvs::sched
