// SPDX-License-Identifier: MIT
// The procedure wlc and sed share (spec §2.4, §2.5): least key/weight, as an index policy and as a scan.
#pragma once

// Design
// ------
// Source: spec §2.4 (ip_vs_wlc.c); §2.5 (ip_vs_sed.c) is the same procedure with another key.
// Kernel procedure, for key(d) = overhead (wlc) or active + 1 (sed):
//   1. least = first dest in list order with !OVERLOAD && weight > 0 (none → NULL);
//   2. for each later dest d with !OVERLOAD — weight NOT re-checked —
//      if (s64)key(least) * d.weight > (s64)key(d) * least.weight then least = d;
//   3. return least.
// Among eligible dests step 2 is "strictly smaller key/weight wins, first wins ties": a strict weak
// order (exact rational comparison, weights > 0), so the head-most minimum is a monoid (`best`).
// The missing weight check matters only for a weight-0 dest d behind the first eligible one: the
// test becomes 0 > key(d) * least.weight, true exactly when key(d) < 0 — impossible for sane
// counters, but possible once overhead wraps (active ≥ 2^23, the kernel's int arithmetic) or
// counters went negative. Such a "stray" dest then wins and keeps winning (with least.weight = 0
// nothing can beat it: key(least) * d.weight ≤ 0). So the scan returns
//   the head-most stray behind the first eligible dest, if any; else the head-most best.
// The summary carries what that needs: `best`, the range's head-most stray, and the head-most
// stray behind the range's first eligible dest; combine() is associative, so the tree reproduces
// the scan for every counter value.
// Precondition: weight ≥ 0 (the kernel rejects negative weights with ERANGE).

#include <ipvs/dest.hpp>
#include <ipvs/detail/least_index.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

/// wlc's key: the connection overhead of spec §1.3.
struct wlc_key {
    [[nodiscard]] static int of(const dest& d) noexcept { return overhead(d); }
};

/// sed's and nq's key, the expected delay: active_conns + 1, with the kernel's int wrap-around.
struct sed_key {
    [[nodiscard]] static int of(const dest& d) noexcept { return wrapping_add(d.active_conns, 1); }
};

/// `Key::of(d)` is the scheduler's load figure (int, kernel arithmetic).
template <class Key>
struct weighted_least_policy {
    struct summary {
        dest* best = nullptr;        ///< eligible dest with the least key/weight, head-most on ties
        dest* stray = nullptr;       ///< head-most !OVERLOAD, weight-0 dest with key < 0
        dest* stray_after = nullptr; ///< head-most stray behind the range's first eligible dest
    };

    [[nodiscard]] static summary leaf(dest& d) noexcept {
        summary s;
        if (ipvs::eligible(d)) {
            s.best = &d;
        } else if (!d.overloaded() && d.weight == 0 && Key::of(d) < 0) {
            s.stray = &d;
        }
        return s;
    }

    [[nodiscard]] static summary combine(const summary& head, const summary& tail) noexcept {
        summary s;
        if (head.best == nullptr || tail.best == nullptr) {
            s.best = head.best != nullptr ? head.best : tail.best;
        } else {
            // Step 2's test with least = head's best, d = tail's best.
            s.best =
                ratio_greater(Key::of(*head.best), head.best->weight, Key::of(*tail.best), tail.best->weight)
                    ? tail.best
                    : head.best;
        }
        s.stray = head.stray != nullptr ? head.stray : tail.stray;
        if (head.stray_after != nullptr) {
            s.stray_after = head.stray_after;
        } else {
            // Once head holds an eligible dest, every stray of tail is behind it.
            s.stray_after = head.best != nullptr ? tail.stray : tail.stray_after;
        }
        return s;
    }

    [[nodiscard]] static dest* result(const summary& s) noexcept {
        return s.stray_after != nullptr ? s.stray_after : s.best;
    }

    /// The three steps of the design block, literally (the reference, and the fallback).
    [[nodiscard]] static dest* scan(sched::dest_list list) noexcept {
        auto it = list.begin();
        while (it != list.end() && !ipvs::eligible(**it)) ++it;
        if (it == list.end()) return nullptr;
        dest* least = *it;
        int loh = Key::of(*least);
        for (++it; it != list.end(); ++it) {
            dest& d = **it;
            if (d.overloaded()) continue;
            const int doh = Key::of(d);
            if (ratio_greater(loh, least->weight, doh, d.weight)) {
                least = &d;
                loh = doh;
            }
        }
        return least;
    }
};

} // namespace ipvs::detail
