// SPDX-License-Identifier: MIT
// The ordered index behind the O(log n) schedulers: a segment tree over the service's list positions.
#pragma once

// Design
// ------
// The kernel's lc, wlc, sed, nq, fo, ovf and twos rescan the whole dest list on every pick (spec
// §2.3–§2.8, §2.14). Each of those scans is a left fold over the list in kernel order, and every
// one of them can be written as a *monoid*: a per-dest summary (`Policy::leaf`) and an associative
// `Policy::combine(head_side, tail_side)` whose fold over the list yields what the scan yields.
// For a "keep the best, replace only when strictly better" scan the summary is simply the best
// dest of a range, and combine keeps the head-side one on ties — which is exactly the kernel's
// "first in list order wins".
//
// `list_tree` keeps those summaries in a complete binary tree over list positions:
//
//     node 1 = whole list                 leaves = m_nodes[cap + pos], pos = index in dest_list
//     node i = combine(node 2i, node 2i+1) (left child = nearer the list head)
//
//     cap = bit_ceil(n): the padding leaves hold the empty summary (value-initialised), so the root
//     is always the fold of the whole list in order.
//
// Invariants (between hooks):
// - m_slots[pos] == list[pos] for the list last given to `assign`, and list[pos]->sched_slot == pos;
// - every internal node equals combine() of its children evaluated on the dests' current fields,
//   provided `refresh(d)` ran after every change of d's weight, counters or flags.
//
// Cost: `assign` (dest added or removed: every position behind the head moves) is O(n) and
// allocates; `refresh` is O(log n), `root` O(1), `descend` O(log n), none of them allocates.
//
// Positions stand in for `dest::list_seq`: the list is head first, so a smaller position is a larger
// list_seq, and the tie-breaks below compare positions only implicitly (head-side child first).

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <ipvs/dest.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::detail {

/// What `list_tree` needs from a policy (see the design block).
template <class P>
concept list_policy = requires(dest& d, const typename P::summary& s) {
    { P::leaf(d) }
    noexcept->std::same_as<typename P::summary>;
    { P::combine(s, s) }
    noexcept->std::same_as<typename P::summary>;
};

template <list_policy Policy>
class list_tree {
public:
    using summary = typename Policy::summary;

    /// Rebuilds the tree over `list` (control path, O(n)). Strong guarantee: on bad_alloc nothing changed.
    void assign(sched::dest_list list) {
        const std::size_t n = list.size();
        const std::size_t cap = std::bit_ceil(std::max<std::size_t>(n, 1));
        std::vector<summary> nodes(2 * cap);
        std::vector<dest*> slots(list.begin(), list.end());
        for (std::size_t i = 0; i < n; ++i) nodes[cap + i] = Policy::leaf(*list[i]);
        for (std::size_t i = cap - 1; i >= 1; --i) nodes[i] = Policy::combine(nodes[2 * i], nodes[2 * i + 1]);
        // Nothing below can throw: commit.
        for (std::size_t i = 0; i < n; ++i) list[i]->sched_slot = i;
        m_nodes = std::move(nodes);
        m_slots = std::move(slots);
        m_cap = cap;
    }

    /// Re-reads `d` after a change of its weight, counters or flags; O(log n). A dest this tree does
    /// not hold (e.g. one already deleted, whose connections are still being unbound) is ignored.
    void refresh(const dest& d) noexcept {
        const auto pos = d.sched_slot;
        if (pos >= m_slots.size() || m_slots[static_cast<std::size_t>(pos)] != &d) return;
        std::size_t i = m_cap + static_cast<std::size_t>(pos);
        m_nodes[i] = Policy::leaf(*m_slots[static_cast<std::size_t>(pos)]);
        for (i /= 2; i >= 1; i /= 2) m_nodes[i] = Policy::combine(m_nodes[2 * i], m_nodes[2 * i + 1]);
    }

    /// True when the tree was built over exactly this many dests. The service calls `assign` through
    /// the add/del hooks, so a mismatch means the hooks were bypassed (the schedulers then rescan).
    [[nodiscard]] bool covers(sched::dest_list list) const noexcept { return list.size() == m_slots.size(); }

    /// The fold over the whole list (the empty summary for an empty or never-assigned tree).
    [[nodiscard]] summary root() const noexcept { return m_nodes.empty() ? summary{} : m_nodes[1]; }

    /// Walks from the root to a leaf, taking the head-side child while `go_left(head_side_child)`
    /// says so; returns the leaf's list position (twos' weighted pick). Requires a non-empty tree.
    template <class GoLeft>
    [[nodiscard]] std::size_t descend(GoLeft&& go_left) const noexcept {
        std::size_t i = 1;
        while (i < m_cap) i = go_left(m_nodes[2 * i]) ? 2 * i : 2 * i + 1;
        return i - m_cap;
    }

    /// The dest at list position `pos` (nullptr for a padding leaf).
    [[nodiscard]] dest* at(std::size_t pos) const noexcept {
        return pos < m_slots.size() ? m_slots[pos] : nullptr;
    }

private:
    std::vector<summary> m_nodes; ///< 1-based heap layout, size 2 * m_cap (empty until assign)
    std::vector<dest*> m_slots;   ///< list position -> dest, as of the last assign
    std::size_t m_cap = 0;
};

/// The scheduler hooks every indexed scheduler shares: structural changes rebuild, field changes
/// refresh one path. The classes built on it add `schedule()`.
template <class Policy>
class indexed_hooks {
public:
    void add_dest(sched::dest_list list, dest& /*d*/) { m_tree.assign(list); }
    void del_dest(sched::dest_list list, dest& /*d*/) { m_tree.assign(list); }
    void upd_dest(sched::dest_list /*list*/, dest& d) noexcept { m_tree.refresh(d); }
    void counts_changed(sched::dest_list /*list*/, dest& d) noexcept { m_tree.refresh(d); }

    /// Whether the index covers `list`; if not, `schedule` falls back to the kernel's O(n) scan
    /// (same answer, just slower) — a sign that the add/del hooks were not called.
    [[nodiscard]] bool indexed(sched::dest_list list) const noexcept { return m_tree.covers(list); }

protected:
    list_tree<Policy> m_tree;
};

/// A scheduler whose whole answer is `Policy::result(root)`; `Policy::scan` is the kernel's loop,
/// used when the index does not cover the list.
template <class Policy>
class least_scheduler : public indexed_hooks<Policy> {
public:
    [[nodiscard]] dest* schedule(sched::dest_list list, const sched::sched_input& /*in*/) noexcept {
        return this->m_tree.covers(list) ? Policy::result(this->m_tree.root()) : Policy::scan(list);
    }
};

/// Policy building block for "keep the first dest that no later one strictly beats": the summary of
/// a range is its best `Traits::eligible` dest, and `Traits::beats(later, earlier)` is the scan's
/// strict replacement test. Associative as long as `beats` is a strict weak order, which holds for
/// every use here (integer keys, or ratios with positive weights compared by cross-multiplication).
template <class Traits>
struct first_best {
    using summary = dest*;
    [[nodiscard]] static summary leaf(dest& d) noexcept { return Traits::eligible(d) ? &d : nullptr; }
    [[nodiscard]] static summary combine(summary head, summary tail) noexcept {
        if (head == nullptr) return tail;
        if (tail == nullptr) return head;
        return Traits::beats(*tail, *head) ? tail : head;
    }
    [[nodiscard]] static dest* result(summary s) noexcept { return s; }
};

/// `loh / lw > doh / dw` for positive weights, exactly, as the kernel writes it: `(s64)loh * dw >
/// (s64)doh * lw` — no division, no floating point, no overflow for int operands.
[[nodiscard]] constexpr bool ratio_greater(int loh, int lw, int doh, int dw) noexcept {
    return static_cast<std::int64_t>(loh) * dw > static_cast<std::int64_t>(doh) * lw;
}

/// `a + b` and `a * b` on int with the kernel's wrap-around (it builds with -fno-strict-overflow);
/// well defined in C++20 because unsigned→signed conversion is modular.
[[nodiscard]] constexpr int wrapping_add(int a, int b) noexcept {
    return static_cast<int>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}
[[nodiscard]] constexpr int wrapping_mul(int a, int b) noexcept {
    return static_cast<int>(static_cast<std::uint32_t>(a) * static_cast<std::uint32_t>(b));
}

/// The no-op hooks of a kernel-style (rescan every time) scheduler.
struct scan_hooks {
    void add_dest(sched::dest_list /*list*/, dest& /*d*/) noexcept {}
    void del_dest(sched::dest_list /*list*/, dest& /*d*/) noexcept {}
    void upd_dest(sched::dest_list /*list*/, dest& /*d*/) noexcept {}
    void counts_changed(sched::dest_list /*list*/, dest& /*d*/) noexcept {}
};

/// A kernel-style scheduler: `schedule` is `Policy::scan`, the straightforward loop of the spec.
template <class Policy>
struct scan_scheduler : scan_hooks {
    [[nodiscard]] dest* schedule(sched::dest_list list, const sched::sched_input& /*in*/) noexcept {
        return Policy::scan(list);
    }
};

} // namespace ipvs::detail
