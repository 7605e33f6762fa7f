// SPDX-License-Identifier: MIT
// wrr — weighted round robin (spec §2.2): the kernel's exact picks in amortised O(1), and the kernel scan.
#pragma once

// Design
// ------
// Source: spec §2.2 (the kernel's ip_vs_wrr.c), §1.9 for the hooks. State: cursor `cl` (a dest or the
// list head), current weight `cw`, `mw` = max weight − (di − 1), `di` = gcd of the positive weights.
// A pick scans from after `cl` for the first dest with `!OVERLOAD && weight >= cw`; at the list end
// `cw -= di`, and at `cw <= 0` it restarts at `mw` (with the kernel's stop/last_pass rules when every
// candidate is overloaded). Every add/del/upd hook moves `cl` to the head and adjusts `cw`.
//
// `wrr` walks only the dests that can match. Invariant: the intrusive circular list of `m_nodes`
// holds exactly the positive-weight dests with `weight >= cw`, in list order (node index = list rank,
// node 0 = the head sentinel). As `cw` falls within a cycle that set only grows, so:
// * the hooks (O(n): a radix sort) order the nodes by weight into `m_by_weight` and unlink, dancing-links
//   style, the prefix with weight < cw (unlinked nodes keep their prev/next);
// * when `cw` falls, nodes are re-linked in reverse unlink order, each O(1) and exactly where it
//   belongs (Knuth's dancing links restore a list when undone in LIFO order);
// * when `cw` wraps to `mw`, the prefix with weight < mw is unlinked again, O(1) each. A cycle
//   without OVERLOAD picks every positive-weight dest at least once, so this is amortised O(1).
// Without OVERLOAD every step of the walk returns the dest it lands on: O(1) amortised per pick.
// Overloaded dests (thresholds in force) stay in the list and are skipped one by one — exact, and
// O(n) per pick only then; `counts_changed` has nothing to do, OVERLOAD is read live.
// Why the walk never needs the full list: `cl` is always linked (a pick returns a linked node, cw
// only changes inside a pick or a hook, and hooks reset cl to the head), and the kernel's `stop` is
// set only on a last pass (cw <= di), where every positive weight — a multiple of di — is >= cw, so
// `stop` is linked too and the walk meets it exactly where the kernel's scan does.
// `reference_wrr` is the spec's loop verbatim over the dest list.
// Deviation: none in the picks. `init_service` is the kernel's init (cw = mw), used when dests exist
// before the scheduler is attached; `assume_picked` (not a kernel op) moves `cl` for replays.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {} // namespace ipvs::sched

namespace ipvs::detail {
using sched::dest_list;
using sched::sched_flags;
using sched::sched_input;

/// The kernel's di/mw of a dest list and its update rule for cw (spec §2.2).
struct wrr_weights {
    int cw = 0;
    int mw = 0;
    int di = 1;

    /// Recomputes di and mw from `l`; with `keep_cw` applies the hook's cw rule, else cw = mw (init).
    void recompute(dest_list l, bool keep_cw) noexcept {
        int g = 0;
        int max = 0;
        for (const dest* d : l) {
            if (d->weight > 0) g = std::gcd(g, d->weight);
            max = std::max(max, d->weight);
        }
        di = g > 0 ? g : 1;
        mw = max - (di - 1);
        if (!keep_cw || cw > mw || cw == 0) {
            cw = mw;
        } else if (di > 1) {
            cw = (cw / di) * di + 1;
        }
    }
};

/// Sorts `v` stably by `key` (a u32), least significant byte first: O(n) per byte the largest key
/// needs, so the hooks stay O(n) (weights below 256 take one pass).
template <class Key>
void radix_sort(std::vector<std::uint32_t>& v, std::vector<std::uint32_t>& scratch, Key key) {
    std::uint32_t max = 0;
    for (std::uint32_t x : v) max = std::max(max, key(x));
    scratch.resize(v.size());
    for (unsigned shift = 0; shift < 32 && (max >> shift) != 0; shift += 8) {
        std::array<std::size_t, 257> start{};
        for (std::uint32_t x : v) ++start[((key(x) >> shift) & 0xffU) + 1];
        for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
        for (std::uint32_t x : v) scratch[start[(key(x) >> shift) & 0xffU]++] = x;
        v.swap(scratch);
    }
}

} // namespace ipvs::detail

namespace ipvs::sched {

/// Weighted round robin over a list of the dests that can match: amortised O(1) per pick.
class wrr {
public:
    /// The kernel's init_service: attach to a service that already has `l` (cl = head, cw = mw).
    void init_service(dest_list l) { reset(l, false); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& /*in*/) noexcept {
        if (m_w.mw == 0) return nullptr; // empty service or all weights 0
        const std::uint32_t start = m_cl;
        std::uint32_t stop = none;
        bool last_pass = false;
        bool restarted = false;
        std::uint32_t e = m_nodes[m_cl].next;
        for (;;) {
            for (; e != head; e = m_nodes[e].next) {
                dest* d = m_nodes[e].d;
                if (!d->overloaded()) {
                    m_cl = e;
                    return d;
                }
                if (e == stop) { // every candidate overloaded
                    m_cl = e;
                    return nullptr;
                }
            }
            m_w.cw -= m_w.di;
            if (m_w.cw <= 0) {
                m_w.cw = m_w.mw;
                sync();
                if (last_pass || start == head) {
                    m_cl = head;
                    return nullptr;
                }
                restarted = true;
            } else {
                sync();
            }
            last_pass = m_w.cw <= m_w.di;
            if (last_pass && restarted && start != head) stop = start;
            e = m_nodes[head].next;
        }
    }

    void add_dest(dest_list l, dest& /*d*/) { reset(l, true); }
    void del_dest(dest_list l, dest& /*d*/) { reset(l, true); }
    void upd_dest(dest_list l, dest& /*d*/) { reset(l, true); }
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    /// Moves the cursor as if the last pick had returned `d` (cw unchanged). O(n). A dest the kernel
    /// could have picked has weight >= cw; any other is ignored (the states already differ).
    void assume_picked(dest_list /*l*/, dest& d) noexcept {
        for (std::uint32_t i = 1; i < m_nodes.size(); ++i)
            if (m_nodes[i].d == &d && m_nodes[i].linked) m_cl = i;
    }

    [[nodiscard]] int cw() const noexcept { return m_w.cw; }
    [[nodiscard]] int mw() const noexcept { return m_w.mw; }
    [[nodiscard]] int di() const noexcept { return m_w.di; }

private:
    static constexpr std::uint32_t head = 0;
    static constexpr std::uint32_t none = UINT32_MAX;

    struct node {
        dest* d = nullptr;
        std::uint32_t prev = 0;
        std::uint32_t next = 0;
        int weight = 0; ///< the weight as of the last hook (weights change only through upd_dest)
        bool linked = true;
    };

    void unlink(std::uint32_t i) noexcept {
        node& n = m_nodes[i];
        m_nodes[n.prev].next = n.next;
        m_nodes[n.next].prev = n.prev;
        n.linked = false;
    }
    void relink(std::uint32_t i) noexcept {
        node& n = m_nodes[i];
        m_nodes[n.prev].next = i;
        m_nodes[n.next].prev = i;
        n.linked = true;
    }

    /// Restores the invariant "linked ⇔ weight >= cw" by moving the unlinked prefix boundary.
    void sync() noexcept {
        while (m_unlinked > 0 && m_nodes[m_by_weight[m_unlinked - 1]].weight >= m_w.cw)
            relink(m_by_weight[--m_unlinked]);
        while (m_unlinked < m_by_weight.size() && m_nodes[m_by_weight[m_unlinked]].weight < m_w.cw)
            unlink(m_by_weight[m_unlinked++]);
    }

    /// The kernel's update hook (or init): cl = head, new di/mw/cw, and the node list rebuilt.
    void reset(dest_list l, bool keep_cw) {
        m_w.recompute(l, keep_cw);
        m_cl = head;
        m_nodes.assign(1, node{});
        for (dest* d : l)
            if (d->weight > 0) m_nodes.push_back(node{d, 0, 0, d->weight, true});
        const auto n = static_cast<std::uint32_t>(m_nodes.size());
        for (std::uint32_t i = 0; i < n; ++i) {
            m_nodes[i].prev = i == 0 ? n - 1 : i - 1;
            m_nodes[i].next = i + 1 == n ? 0 : i + 1;
        }
        m_by_weight.resize(n - 1);
        std::iota(m_by_weight.begin(), m_by_weight.end(), 1U);
        detail::radix_sort(m_by_weight, m_scratch,
                           [&](std::uint32_t i) { return static_cast<std::uint32_t>(m_nodes[i].weight); });
        m_unlinked = 0;
        sync();
    }

    std::vector<node> m_nodes{node{}};
    std::vector<std::uint32_t> m_by_weight; ///< node indices by increasing weight: the unlink order
    std::vector<std::uint32_t> m_scratch;
    std::size_t m_unlinked = 0; ///< m_by_weight[0, m_unlinked) are unlinked
    std::uint32_t m_cl = head;
    detail::wrr_weights m_w;
};

/// The kernel's wrr, literally (spec §2.2): O(n) scans of the dest list per pass.
class reference_wrr {
public:
    void init_service(dest_list l) noexcept {
        m_w.recompute(l, false);
        m_cl = nullptr;
    }

    [[nodiscard]] dest* schedule(dest_list l, const sched_input& /*in*/) noexcept {
        if (m_w.mw == 0) return nullptr;
        dest* const start = m_cl; // nullptr: the head
        dest* stop = nullptr;
        bool last_pass = false;
        bool restarted = false;
        std::size_t i = 0;
        for (std::size_t k = 0; k < l.size(); ++k)
            if (l[k] == m_cl) i = k + 1;
        for (;;) {
            for (; i < l.size(); ++i) {
                dest* e = l[i];
                if (!e->overloaded() && e->weight >= m_w.cw) return m_cl = e;
                if (e == stop) {
                    m_cl = e;
                    return nullptr; // all overloaded
                }
            }
            i = 0;
            m_w.cw -= m_w.di;
            if (m_w.cw <= 0) {
                m_w.cw = m_w.mw;
                if (last_pass || start == nullptr) {
                    m_cl = nullptr;
                    return nullptr;
                }
                restarted = true;
            }
            last_pass = m_w.cw <= m_w.di;
            if (last_pass && restarted && start != nullptr) stop = start;
        }
    }

    void add_dest(dest_list l, dest& /*d*/) noexcept { update(l); }
    void del_dest(dest_list l, dest& /*d*/) noexcept { update(l); }
    void upd_dest(dest_list l, dest& /*d*/) noexcept { update(l); }
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}
    void assume_picked(dest_list /*l*/, dest& d) noexcept { m_cl = &d; }

    [[nodiscard]] int cw() const noexcept { return m_w.cw; }
    [[nodiscard]] int mw() const noexcept { return m_w.mw; }
    [[nodiscard]] int di() const noexcept { return m_w.di; }

private:
    void update(dest_list l) noexcept {
        m_w.recompute(l, true);
        m_cl = nullptr;
    }

    dest* m_cl = nullptr; ///< nullptr: the list head
    detail::wrr_weights m_w;
};

static_assert(scheduler<wrr>);
static_assert(scheduler<reference_wrr>);

} // namespace ipvs::sched
