// SPDX-License-Identifier: MIT
// rr — round robin (spec §2.1): a constant-time scheduler and the kernel's list scan as a reference.
#pragma once

// Design
// ------
// Source: spec §2.1 (the kernel's ip_vs_rr.c), §1.9 for the hooks.
// The kernel keeps a cursor into the dest list (initially the list head) and, per pick, scans forward
// from the cursor for the first eligible dest (`!OVERLOAD && weight > 0`), wrapping once and examining
// the cursor's own dest last. Deleting the cursor's dest moves the cursor to the dest before it.
//
// `rr` gives the same picks in O(depth) per pick, depth = ceil(log64 n) — 2 up to 4,096 dests, 3 up to
// 262,144 — independent of how many dests are quiescent or overloaded:
// * invariant: `m_order` is the list as of the last add/del hook, `dest::sched_slot` of each dest is
//   its index there, and `m_eligible` holds exactly the indices of eligible dests;
// * the cursor is an index into `m_order` (or `head`), so "first eligible after the cursor" is one
//   successor query on the hierarchical bitmap, and the wrap is a second query from 0;
// * add/del rebuild the index (O(n), control path); upd_dest and counts_changed flip one bit, which
//   keeps the set exact when a weight or the OVERLOAD flag changes between picks.
// `reference_rr` is the spec's procedure verbatim (O(n) scans); it finds the cursor's predecessor on
// delete through `dest::list_seq` so it shares no bookkeeping with `rr`.
// Deviation: none in the picks. Both offer `assume_picked` (not a kernel op) so a replay can set the
// cursor as if the scheduler had returned a dest.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {} // namespace ipvs::sched

namespace ipvs::detail {
using sched::dest_list;
using sched::sched_flags;
using sched::sched_input;

/// A set over positions 0..n−1 with insert, erase and "first member ≥ i" in O(depth): a 64-ary tree of
/// bit words where a bit of level L+1 says "word i of level L is non-zero".
class succ_bitset {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    /// Makes the set empty over `n` positions (control path: allocates).
    void assign(std::size_t n) {
        m_size = n;
        m_levels = 0;
        std::size_t total = 0;
        std::size_t words = (n + 63) / 64;
        if (words == 0) words = 1;
        for (;;) {
            m_begin[m_levels] = total;
            m_count[m_levels] = words;
            total += words;
            ++m_levels;
            if (words == 1) break;
            words = (words + 63) / 64;
        }
        m_words.assign(total, 0);
    }

    void insert(std::size_t i) noexcept {
        for (std::size_t lvl = 0; lvl < m_levels; ++lvl, i >>= 6) {
            std::uint64_t& w = m_words[m_begin[lvl] + (i >> 6)];
            const bool was_empty = w == 0;
            w |= std::uint64_t{1} << (i & 63);
            if (!was_empty) break; // the parent bit is already set
        }
    }

    void erase(std::size_t i) noexcept {
        for (std::size_t lvl = 0; lvl < m_levels; ++lvl, i >>= 6) {
            std::uint64_t& w = m_words[m_begin[lvl] + (i >> 6)];
            w &= ~(std::uint64_t{1} << (i & 63));
            if (w != 0) break; // the word still has members: the parent bit stays
        }
    }

    [[nodiscard]] bool contains(std::size_t i) const noexcept {
        return i < m_size && ((m_words[i >> 6] >> (i & 63)) & 1U) != 0;
    }

    /// The smallest member ≥ i, or npos.
    [[nodiscard]] std::size_t find_next(std::size_t i) const noexcept {
        if (i >= m_size) return npos;
        std::size_t lvl = 0;
        for (;;) { // climb until a word holds a member at or after position i
            const std::uint64_t w = m_words[m_begin[lvl] + (i >> 6)] & (~std::uint64_t{0} << (i & 63));
            if (w != 0) {
                i = (i & ~std::size_t{63}) | static_cast<std::size_t>(std::countr_zero(w));
                break;
            }
            if (lvl + 1 == m_levels) return npos;
            i = (i >> 6) + 1; // the next word of this level, as a position one level up
            if (i >= m_count[lvl]) return npos;
            ++lvl;
        }
        while (lvl > 0) { // descend along the lowest set bits
            --lvl;
            i = (i << 6) | static_cast<std::size_t>(std::countr_zero(m_words[m_begin[lvl] + i]));
        }
        return i;
    }

private:
    std::vector<std::uint64_t> m_words{0}; // level 0 words, then level 1, ...
    std::array<std::size_t, 12> m_begin{}; // first word of each level in m_words
    std::array<std::size_t, 12> m_count{1};
    std::size_t m_levels = 1;
    std::size_t m_size = 0;
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Round robin with an index of eligible dests: O(depth) per pick whatever the number of dests.
class rr {
public:
    /// The kernel's init_service: attach to a service that already has `l` (cursor at the head).
    void init_service(dest_list l) {
        m_cursor = head;
        rebuild(l, nullptr);
    }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& /*in*/) noexcept {
        std::size_t i = m_eligible.find_next(m_cursor == head ? 0 : m_cursor + 1);
        // Wrap (only when the cursor is not the head): from the first dest up to the cursor itself.
        if (i == npos && m_cursor != head) i = m_eligible.find_next(0);
        if (i == npos) return nullptr;
        m_cursor = i;
        return m_order[i];
    }

    void add_dest(dest_list l, dest& /*d*/) { rebuild(l, cursor_dest()); }

    void del_dest(dest_list l, dest& d) {
        dest* keep = cursor_dest();
        // The kernel moves a cursor on `d` to the element before it, so the next pick continues with
        // the element that followed `d`.
        if (keep == &d) keep = m_cursor == 0 ? nullptr : m_order[m_cursor - 1];
        rebuild(l, keep);
    }

    void upd_dest(dest_list /*l*/, dest& d) noexcept { refresh(d); }
    void counts_changed(dest_list /*l*/, dest& d) noexcept { refresh(d); }

    /// Sets the cursor as if the last pick had returned `d` (replays of steps the kernel decided).
    void assume_picked(dest_list /*l*/, dest& d) noexcept {
        if (owns(d)) m_cursor = static_cast<std::size_t>(d.sched_slot);
    }

private:
    static constexpr std::size_t npos = detail::succ_bitset::npos;
    static constexpr std::size_t head = npos; ///< the cursor at the list head

    [[nodiscard]] dest* cursor_dest() const noexcept {
        return m_cursor == head ? nullptr : m_order[m_cursor];
    }
    [[nodiscard]] bool owns(const dest& d) const noexcept {
        // A trashed dest may still see counts_changed (its connections expire): ignore it.
        return d.sched_slot < m_order.size() && m_order[static_cast<std::size_t>(d.sched_slot)] == &d;
    }

    void refresh(dest& d) noexcept {
        if (!owns(d)) return;
        const auto i = static_cast<std::size_t>(d.sched_slot);
        if (eligible(d)) {
            m_eligible.insert(i);
        } else {
            m_eligible.erase(i);
        }
    }

    /// Re-indexes the list and puts the cursor back on `keep` (nullptr: the head).
    void rebuild(dest_list l, dest* keep) {
        m_order.assign(l.begin(), l.end());
        m_eligible.assign(m_order.size());
        for (std::size_t i = 0; i < m_order.size(); ++i) {
            m_order[i]->sched_slot = i;
            if (eligible(*m_order[i])) m_eligible.insert(i);
        }
        m_cursor = (keep != nullptr && owns(*keep)) ? static_cast<std::size_t>(keep->sched_slot) : head;
    }

    std::vector<dest*> m_order;
    detail::succ_bitset m_eligible;
    std::size_t m_cursor = head;
};

/// The kernel's rr, literally (spec §2.1): a cursor dest and O(n) scans.
class reference_rr {
public:
    void init_service(dest_list /*l*/) noexcept { m_cursor = nullptr; }

    [[nodiscard]] dest* schedule(dest_list l, const sched_input& /*in*/) noexcept {
        std::size_t p = l.size(); // the cursor's position; l.size() stands for the head
        for (std::size_t i = 0; i < l.size(); ++i)
            if (l[i] == m_cursor) p = i;
        const std::size_t first = p == l.size() ? 0 : p + 1;
        for (std::size_t i = first; i < l.size(); ++i)
            if (eligible(*l[i])) return m_cursor = l[i];
        if (p == l.size()) return nullptr; // started at the head: one full pass done
        for (std::size_t i = 0; i <= p; ++i)
            if (eligible(*l[i])) return m_cursor = l[i];
        return nullptr;
    }

    void add_dest(dest_list /*l*/, dest& /*d*/) noexcept {}

    void del_dest(dest_list l, dest& d) noexcept {
        if (m_cursor != &d) return;
        // The element that preceded d: the last one nearer the head (larger list_seq).
        m_cursor = nullptr;
        for (dest* e : l)
            if (e->list_seq > d.list_seq) m_cursor = e;
    }

    void upd_dest(dest_list /*l*/, dest& /*d*/) noexcept {}
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}
    void assume_picked(dest_list /*l*/, dest& d) noexcept { m_cursor = &d; }

private:
    dest* m_cursor = nullptr; ///< nullptr: the list head
};

static_assert(scheduler<rr>);
static_assert(scheduler<reference_rr>);

} // namespace ipvs::sched
