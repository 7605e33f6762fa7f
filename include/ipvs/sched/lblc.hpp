// SPDX-License-Identifier: MIT
// lblc — locality-based least connection (spec §2.11): `lblc` over a preallocated table and a lazily
// refreshed wlc index, the literal `reference_lblc`, and the table and index both lblc and lblcr use.
#pragma once

// Design
// ------
// Source: spec §2.11 (the kernel's ip_vs_lblc.c); the GC rules are shared with lblcr (§2.12).
// A per-service table maps a packet's *destination* address to the dest that last served it:
//
//   bucket = hash_32(fold(daddr), 10)          1024 heads (uint32 pool indexes, no_index = empty)
//   m_pool: [entry][entry][entry]...           preallocated; free entries chained through `next`
//   entry  = { addr, next, lastuse, data }     data: lblc's dest*, lblcr's member set
//
// Schedule: the entry's dest if it is AVAILABLE, has weight > 0 and is not busy(); else wlc (§2.4)
// over the service, remembered in the entry (replacing another dest's entry). busy(d) is
// `d.active > d.weight && some listed dest m has 2·m.active < m.weight`.
//
// The service-wide half (`lazy_least_index`) is wlc's segment tree (detail/weighted_least.hpp's
// monoid, so its root is the kernel's scan) plus the count of dests with 2·active < weight, and it
// is refreshed lazily: counts_changed / upd_dest only queue the dest (O(1); nothing when it is
// queued already). The first pick that needs wlc — a miss — or needs the count — a hit on a dest
// with active > weight — refreshes the queued leaves and each of their ancestors once: for k queued
// dests min(k·log n, 2n) combines. So a hit costs one hash lookup, a change O(1), a miss the pending
// refresh: amortised O(log n) per change, never more than one pass over the tree (the order of the
// kernel's scan of the list). Keeping the index current on every change instead cost O(log n) per
// bind and unbind for an answer only misses read, and made lblc 2-3x slower than the kernel-style
// scan up to n = 1024 (bench/sched_bench, picks/lblc).
//
// Time: the kernel's GC timer (every 60 s, first run 60 s after the service was created) is driven
// by the injected clock: every schedule() (and `expire(now)`, for a caller that wants memory back
// without traffic) first runs the ticks due up to `now`, each at its own tick time, in order.
// Nothing can observe the table between ticks except a pick, so this is the kernel's behaviour.
// Runs of ticks that only count (`counter++`) are skipped in one step, and of several due full
// passes only the last runs (the earlier ones delete a subset and leave `rover` where it was), so a
// long silence costs O(table) once, not once per minute. A due pass runs inside the pick that finds
// it due (O(1024 + entries) every 30 min); a director that wants every pick O(1) calls expire(now)
// from its own housekeeping timer, so that picks never find a pass due.
//
// Invariants: every entry is in exactly one bucket chain or on the free list; `m_size` counts the
// chained ones; an entry's dest is listed in the service (see the deviations); `counter` ∈ [1, 30].
// The fast classes own dest::sched_slot (the list position), as every indexed scheduler does: a
// dest belongs to one such scheduler.
//
// Deviations from the kernel (none of them shows in the recorded vectors):
// - The pool is bounded (`lblc_options::capacity`, twice the GC's 16384 target by default): when it
//   is full a pick still returns its dest but caches nothing — the kernel's path when kmalloc fails.
// - del_dest drops the entries of the deleted dest, so that its owner may free it. The kernel keeps
//   them (they hold a reference, pinning the dest in the trash): such an entry is never used (the dest
//   is not AVAILABLE) and is replaced on its next hit, so the only difference is a dest re-added
//   from the trash before its entries expired: the kernel would find them again, here wlc decides
//   (and the kernel's orphans count towards the GC's 16384).
// - The GC timer starts at `lblc_options::started`, or at the first `now` the scheduler sees.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/sched/scheduler.hpp>
#include <ipvs/sched/wlc.hpp>

namespace ipvs::sched {

/// Construction options of lblc (and the base of lblcr's).
struct lblc_options {
    /// Entries preallocated. The kernel has no hard limit: its GC trims towards 16384 entries once a
    /// minute, so twice that never runs out under the GC unless > 16384 new addresses a minute.
    std::uint32_t capacity = 2 * 16384;
    /// The sysctl net.ipv4.vs.lblc_expiration (lblcr_expiration for lblcr): idle time after which a
    /// full GC pass drops an entry (and lblcr's set shrinks). Default 24 h.
    time_ns expiration = std::chrono::hours(24);
    /// When the service was created (the GC timer's start); unset: the first `now` seen.
    std::optional<time_ns> started{};
};

} // namespace ipvs::sched

namespace ipvs::detail {

// Table geometry and GC constants of ip_vs_lblc.c / ip_vs_lblcr.c (spec §2.11).
inline constexpr unsigned lblc_tab_bits = 10;                       // CONFIG_IP_VS_LBLC_TAB_BITS
inline constexpr std::uint32_t lblc_tab_size = 1U << lblc_tab_bits; // 1024 buckets
inline constexpr std::uint32_t lblc_tab_mask = lblc_tab_size - 1;
inline constexpr std::uint32_t lblc_max_size = lblc_tab_size * 16; // GC target (tbl->max_size)
inline constexpr time_ns lblc_check_period = std::chrono::seconds(60);
inline constexpr time_ns lblc_entry_timeout = std::chrono::minutes(6); // idle time of a goal pass
inline constexpr std::uint32_t lblc_full_every = 30;                   // COUNT_FOR_FULL_EXPIRATION
inline constexpr std::uint32_t no_index = 0xffffffffU;

/// The bucket of a destination address: hash_32(fold(addr), 10), golden ratio 0x61C88647.
[[nodiscard]] constexpr std::uint32_t lblc_bucket(const inet_addr& a) noexcept {
    return (a.fold() * 0x61C88647U) >> (32 - lblc_tab_bits);
}

/// `a == b` as inet_addr's defaulted comparison defines it (all 16 bytes and the family), with two
/// 8-byte loads per address: GCC 12 makes the defaulted one a memcmp call, which took 40% of a
/// picks/lblc pick. Both tables use it, so it does not tilt the fast-vs-reference comparison.
[[nodiscard]] inline bool same_addr(const inet_addr& a, const inet_addr& b) noexcept {
    std::uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.bytes.data(), 8);
    std::memcpy(&a1, a.bytes.data() + 8, 8);
    std::memcpy(&b0, b.bytes.data(), 8);
    std::memcpy(&b1, b.bytes.data() + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0 && a.af == b.af;
}

/// The condition on `m` in busy(): it has room, 2·active < weight (the kernel's int product;
/// widened here, which differs only for active ≥ 2^30).
[[nodiscard]] inline bool underloaded(const dest& m) noexcept {
    return 2 * static_cast<std::int64_t>(m.active_conns) < m.weight;
}

/// busy(d) as the kernel computes it: a scan of the service's list (the reference).
[[nodiscard]] inline bool busy_scan(sched::dest_list list, const dest& d) noexcept {
    if (d.active_conns <= d.weight) return false;
    for (const dest* m : list)
        if (underloaded(*m)) return true;
    return false;
}

/// The service-wide half of the fast lblc and lblcr (see the design block): wlc's segment tree over
/// the list positions and the count of underloaded dests, both brought up to date only when a pick
/// needs them.
///
///   m_nodes[cap + pos] = wlc_policy::leaf(list[pos])     cap = bit_ceil(n), node 1 = the root
///   m_nodes[i]         = combine(m_nodes[2i], m_nodes[2i + 1])
///   m_under_bit[pos]   = 2·active < weight of list[pos]; m_under = how many are set
///   m_slots[pos]       = address of list[pos] | queued_tag          list[pos]->sched_slot = pos
///
/// Invariant between hooks: all of the above hold for the dests' current fields, except at the
/// queued positions m_queue[0..m_queued) (each once: those whose slot carries queued_tag), whose
/// leaf, ancestors and under_bit wait for `refresh`.
class lazy_least_index {
public:
    using policy = wlc_policy;

    /// Rebuilds everything over `list` (control path: add/del dest, O(n), allocates). Strong guarantee.
    void assign(sched::dest_list list) {
        const std::size_t n = list.size();
        const std::size_t cap = std::bit_ceil(std::max<std::size_t>(n, 1));
        std::vector<policy::summary> nodes(2 * cap);
        std::vector<std::uintptr_t> slots(n);
        std::vector<std::uint8_t> under_bit(n);
        std::vector<std::size_t> queue(n);
        std::vector<std::uint8_t> mark(cap);
        std::size_t under = 0;
        for (std::size_t i = 0; i < n; ++i) {
            slots[i] = reinterpret_cast<std::uintptr_t>(list[i]);
            nodes[cap + i] = policy::leaf(*list[i]);
            under_bit[i] = underloaded(*list[i]) ? 1 : 0;
            under += under_bit[i];
        }
        for (std::size_t i = cap - 1; i >= 1; --i) nodes[i] = policy::combine(nodes[2 * i], nodes[2 * i + 1]);
        // Nothing below throws: commit.
        for (std::size_t i = 0; i < n; ++i) list[i]->sched_slot = i;
        m_nodes = std::move(nodes);
        m_slots = std::move(slots);
        m_under_bit = std::move(under_bit);
        m_queue = std::move(queue);
        m_mark = std::move(mark);
        m_cap = cap;
        m_depth = static_cast<std::size_t>(std::bit_width(cap) - 1);
        m_queued = 0;
        m_under = under;
    }

    /// `d`'s counters, OVERLOAD or weight changed: O(1), one load of this index's own state (the
    /// slot tells both "listed here" and "already queued"). A dest this index does not hold —
    /// deleted, in a trash — is ignored.
    void changed(const dest& d) noexcept {
        const auto pos = static_cast<std::size_t>(d.sched_slot);
        if (pos >= m_slots.size() || m_slots[pos] != reinterpret_cast<std::uintptr_t>(&d)) return;
        m_slots[pos] |= queued_tag;
        m_queue[m_queued++] = pos;
    }

    /// wlc's pick over `list` (spec §2.4): the root once refreshed; the kernel's scan when the index
    /// does not cover the list (the add/del hooks were bypassed).
    [[nodiscard]] dest* least(sched::dest_list list) noexcept {
        if (!covers(list)) return policy::scan(list);
        if (m_queued != 0) refresh();
        return policy::result(m_nodes[1]);
    }

    /// busy(d) of spec §2.11: d.active > d.weight while some listed dest has 2·active < weight. O(1)
    /// once the pending refresh has run, which only a dest over its weight makes necessary.
    [[nodiscard]] bool busy(sched::dest_list list, const dest& d) noexcept {
        if (d.active_conns <= d.weight) return false;
        if (!covers(list)) return busy_scan(list, d);
        if (m_queued != 0) refresh();
        return m_under > 0;
    }

private:
    static constexpr std::uintptr_t queued_tag = 1; // dest is at least 4-aligned: the low bit is free
    static_assert(alignof(dest) > 1);

    [[nodiscard]] bool covers(sched::dest_list list) const noexcept {
        return !m_nodes.empty() && list.size() == m_slots.size();
    }

    /// Re-reads the queued dests and recombines their ancestors, each once: level by level, every
    /// level's parents deduplicated through m_mark. That costs min(k·log n, 2n) combines for k queued
    /// leaves; once k·log n reaches n, one bottom-up pass over all internal nodes is cheaper.
    void refresh() noexcept {
        const std::size_t k = m_queued;
        m_queued = 0;
        for (std::size_t i = 0; i < k; ++i) {
            const std::size_t pos = m_queue[i];
            m_slots[pos] &= ~queued_tag;
            dest& d = *reinterpret_cast<dest*>(m_slots[pos]);
            const std::uint8_t under = underloaded(d) ? 1 : 0;
            m_under = m_under - m_under_bit[pos] + under;
            m_under_bit[pos] = under;
            m_nodes[m_cap + pos] = policy::leaf(d);
            m_queue[i] = m_cap + pos; // from here on node indexes, all at the same depth
        }
        if (k * m_depth >= m_cap) {
            for (std::size_t i = m_cap - 1; i >= 1; --i) recombine(i);
            return;
        }
        for (std::size_t len = k; len > 0 && m_queue[0] > 1;) {
            std::size_t out = 0;
            for (std::size_t i = 0; i < len; ++i) {
                const std::size_t parent = m_queue[i] / 2;
                if (m_mark[parent] != 0) continue;
                m_mark[parent] = 1;
                m_queue[out++] = parent; // out <= i: overwrites only entries already read
            }
            for (std::size_t i = 0; i < out; ++i) {
                m_mark[m_queue[i]] = 0;
                recombine(m_queue[i]);
            }
            len = out;
        }
    }

    void recombine(std::size_t i) noexcept {
        m_nodes[i] = policy::combine(m_nodes[2 * i], m_nodes[2 * i + 1]);
    }

    std::vector<policy::summary> m_nodes; ///< 1-based heap layout, 2·m_cap entries (empty until assign)
    std::vector<std::uintptr_t> m_slots;  ///< list position -> dest address | queued_tag
    std::vector<std::uint8_t> m_under_bit;
    std::vector<std::size_t> m_queue; ///< n entries: the queued positions (refresh's work list)
    std::vector<std::uint8_t> m_mark; ///< refresh's scratch: internal node already on the next level
    std::size_t m_cap = 0;
    std::size_t m_depth = 0; ///< log2(m_cap): how many ancestors a leaf has
    std::size_t m_queued = 0;
    std::size_t m_under = 0;
};

/// The service-wide half of lblc and lblcr: wlc over the service and busy(). `Indexed`: through a
/// lazy_least_index kept by the hooks; else the kernel's scans, no state. The derived scheduler adds
/// schedule() and a del_dest that also forgets its own references.
template <bool Indexed>
class locality_hooks {
public:
    void add_dest(sched::dest_list list, dest& /*d*/) {
        if constexpr (Indexed) m_index.assign(list);
    }
    void upd_dest(sched::dest_list /*list*/, dest& d) noexcept {
        if constexpr (Indexed) m_index.changed(d);
    }
    void counts_changed(sched::dest_list /*list*/, dest& d) noexcept {
        if constexpr (Indexed) m_index.changed(d);
    }

protected:
    /// The service part of del_dest.
    void unlink(sched::dest_list list, dest& /*d*/) {
        if constexpr (Indexed) m_index.assign(list);
    }
    /// wlc over the service (spec §2.4).
    [[nodiscard]] dest* least(sched::dest_list list) noexcept {
        if constexpr (Indexed) {
            return m_index.least(list);
        } else {
            return wlc_policy::scan(list);
        }
    }
    [[nodiscard]] bool busy(sched::dest_list list, const dest& d) noexcept {
        if constexpr (Indexed) {
            return m_index.busy(list, d);
        } else {
            return busy_scan(list, d);
        }
    }

private:
    struct scan_only {};
    [[no_unique_address]] std::conditional_t<Indexed, lazy_least_index, scan_only> m_index;
};

/// The GC timer state and tick rule shared by the fast table and the reference (spec §2.11):
/// which kind of pass a tick runs, the goal of a partial pass.
struct lblc_gc_state {
    std::uint32_t counter = 1;
    std::uint32_t rover = 0;
    std::optional<time_ns> next_tick{};

    /// Arms the timer on first use: 60 s after `started`, or after the first `now` seen.
    void arm(const std::optional<time_ns>& started, time_ns now) noexcept {
        if (!next_tick) next_tick = (started ? *started : now) + lblc_check_period;
    }
    [[nodiscard]] bool full_due() const noexcept { return counter % lblc_full_every == 0; }
    /// How many entries a partial pass deletes at most: (entries − max) · 4/3, capped at max/2.
    [[nodiscard]] static std::int64_t goal(std::size_t entries) noexcept {
        auto g = (static_cast<std::int64_t>(entries) - lblc_max_size) * 4 / 3;
        return g > lblc_max_size / 2 ? lblc_max_size / 2 : g;
    }
};

/// The fast table: 1024 bucket heads over a preallocated pool (see the design block). `Payload` is
/// the per-entry data; the `on_erase(Payload&)` callbacks let lblcr free an entry's set.
template <class Payload>
class locality_table {
public:
    struct entry {
        inet_addr addr{};
        std::uint32_t next = no_index;
        time_ns lastuse{0};
        Payload data{};
    };

    explicit locality_table(const sched::lblc_options& o)
        : m_heads(lblc_tab_size, no_index), m_pool(checked(o.capacity)), m_expiration(o.expiration),
          m_started(o.started) {
        for (std::uint32_t i = 0; i < o.capacity; ++i) m_pool[i].next = i + 1 < o.capacity ? i + 1 : no_index;
        m_free = 0;
    }

    [[nodiscard]] entry* find(const inet_addr& a) noexcept {
        for (std::uint32_t i = m_heads[lblc_bucket(a)]; i != no_index; i = m_pool[i].next)
            if (same_addr(m_pool[i].addr, a)) return &m_pool[i];
        return nullptr;
    }

    /// A new entry at the head of `a`'s bucket (lastuse = now, data value-initialised), or nullptr
    /// when the pool is exhausted. Precondition: no entry for `a`.
    [[nodiscard]] entry* insert(const inet_addr& a, time_ns now) noexcept {
        if (m_free == no_index) return nullptr;
        const std::uint32_t i = m_free;
        entry& e = m_pool[i];
        m_free = e.next;
        auto& head = m_heads[lblc_bucket(a)];
        e.addr = a;
        e.lastuse = now;
        e.data = Payload{};
        e.next = head;
        head = i;
        ++m_size;
        return &e;
    }

    /// Unlinks `victim` (found by `find`) and puts it on the free list.
    template <class OnErase>
    void erase(entry& victim, OnErase&& on_erase) noexcept {
        erase_in_bucket(lblc_bucket(victim.addr), on_erase, [&](const entry& e) { return &e == &victim; });
    }

    /// Deletes every entry matching `pred` (control path: a dest was deleted).
    template <class Pred, class OnErase>
    void erase_if(Pred&& pred, OnErase&& on_erase) noexcept {
        for (std::uint32_t b = 0; b < lblc_tab_size; ++b) erase_in_bucket(b, on_erase, pred);
    }

    /// Visits every entry (control path).
    template <class F>
    void for_each(F&& f) noexcept {
        for (std::uint32_t b = 0; b < lblc_tab_size; ++b)
            for (std::uint32_t i = m_heads[b]; i != no_index; i = m_pool[i].next) f(m_pool[i]);
    }

    /// Runs the GC ticks due up to `now` (see the design block for the two shortcuts).
    template <class OnErase>
    void run_timer(time_ns now, OnErase&& on_erase) noexcept {
        m_gc.arm(m_started, now);
        while (*m_gc.next_tick <= now) {
            const time_ns t = *m_gc.next_tick;
            const auto due = (now - t) / lblc_check_period + 1; // ticks at t, t+60s, ... <= now
            if (m_size <= lblc_max_size && !m_gc.full_due()) {
                // Counting ticks: nothing but counter++ until the next full pass.
                const auto k = std::min<std::int64_t>(due, lblc_full_every - m_gc.counter % lblc_full_every);
                m_gc.counter += static_cast<std::uint32_t>(k);
                *m_gc.next_tick += k * lblc_check_period;
                continue;
            }
            if (m_size <= lblc_max_size && due > lblc_full_every) {
                // A full pass now, counting ticks, a full pass 30 ticks later: only deletions, and
                // the later one's are a superset, rover unchanged. Jump to the last full pass due.
                *m_gc.next_tick += (due - 1) / lblc_full_every * lblc_full_every * lblc_check_period;
                continue;
            }
            tick(t, on_erase);
            *m_gc.next_tick += lblc_check_period;
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] std::size_t capacity() const noexcept { return m_pool.size(); }
    [[nodiscard]] time_ns expiration() const noexcept { return m_expiration; }
    [[nodiscard]] const lblc_gc_state& gc() const noexcept { return m_gc; }

private:
    static std::uint32_t checked(std::uint32_t capacity) {
        if (capacity == 0 || capacity == no_index)
            throw std::invalid_argument("ipvs: lblc capacity out of range");
        return capacity;
    }

    template <class OnErase>
    void tick(time_ns t, OnErase& on_erase) noexcept {
        if (m_gc.full_due()) {
            // Full pass: every bucket from rover+1 round to rover; drop entries idle >= expiration.
            for (std::uint32_t n = 0, j = m_gc.rover; n < lblc_tab_size; ++n) {
                j = (j + 1) & lblc_tab_mask;
                erase_in_bucket(j, on_erase, [&](const entry& e) { return t >= e.lastuse + m_expiration; });
            }
            m_gc.counter = 1;
            return;
        }
        if (m_size <= lblc_max_size) {
            ++m_gc.counter;
            return;
        }
        // Partial pass: from rover+1, drop entries idle >= 6 min, stop after the bucket in which
        // the goal was reached; rover = the last bucket scanned.
        std::int64_t goal = lblc_gc_state::goal(m_size);
        std::uint32_t j = m_gc.rover;
        for (std::uint32_t n = 0; n < lblc_tab_size; ++n) {
            j = (j + 1) & lblc_tab_mask;
            goal -= static_cast<std::int64_t>(erase_in_bucket(
                j, on_erase, [&](const entry& e) { return t >= e.lastuse + lblc_entry_timeout; }));
            if (goal <= 0) break;
        }
        m_gc.rover = j;
    }

    /// Removes the entries of bucket `b` that match `pred`; returns how many.
    template <class OnErase, class Pred>
    std::size_t erase_in_bucket(std::uint32_t b, OnErase& on_erase, Pred&& pred) noexcept {
        std::size_t n = 0;
        for (std::uint32_t* link = &m_heads[b]; *link != no_index;) {
            entry& e = m_pool[*link];
            if (!pred(e)) {
                link = &e.next;
                continue;
            }
            const std::uint32_t i = *link;
            *link = e.next;
            on_erase(e.data);
            e.next = m_free;
            m_free = i;
            --m_size;
            ++n;
        }
        return n;
    }

    std::vector<std::uint32_t> m_heads;
    std::vector<entry> m_pool;
    std::uint32_t m_free = no_index;
    std::size_t m_size = 0;
    time_ns m_expiration;
    std::optional<time_ns> m_started;
    lblc_gc_state m_gc{};
};

/// The reference table: the kernel's shape taken literally — 1024 std::list buckets (new entries at
/// the front), unbounded, and one GC tick per 60 s of clock, no shortcuts.
template <class Payload>
class reference_locality_table {
public:
    struct entry {
        inet_addr addr{};
        time_ns lastuse{0};
        Payload data{};
    };

    explicit reference_locality_table(const sched::lblc_options& o)
        : m_buckets(lblc_tab_size), m_expiration(o.expiration), m_started(o.started) {}

    [[nodiscard]] entry* find(const inet_addr& a) noexcept {
        for (auto& e : m_buckets[lblc_bucket(a)])
            if (same_addr(e.addr, a)) return &e;
        return nullptr;
    }
    entry* insert(const inet_addr& a, time_ns now) {
        ++m_size;
        return &m_buckets[lblc_bucket(a)].emplace_front(entry{a, now, Payload{}});
    }
    void erase(entry& victim) {
        m_buckets[lblc_bucket(victim.addr)].remove_if([&](const entry& e) { return &e == &victim; });
        --m_size;
    }
    template <class Pred>
    std::size_t erase_if_in(std::uint32_t b, Pred&& pred) {
        const auto n = m_buckets[b].remove_if(pred);
        m_size -= n;
        return n;
    }
    template <class Pred>
    void erase_if(Pred&& pred) {
        for (std::uint32_t b = 0; b < lblc_tab_size; ++b) erase_if_in(b, pred);
    }
    template <class F>
    void for_each(F&& f) {
        for (auto& bucket : m_buckets)
            for (auto& e : bucket) f(e);
    }

    void run_timer(time_ns now) {
        m_gc.arm(m_started, now);
        for (; *m_gc.next_tick <= now; *m_gc.next_tick += lblc_check_period) {
            const time_ns t = *m_gc.next_tick;
            if (m_gc.full_due()) {
                for (std::uint32_t n = 0; n < lblc_tab_size; ++n) {
                    m_gc.rover = (m_gc.rover + 1) & lblc_tab_mask;
                    erase_if_in(m_gc.rover, [&](const entry& e) { return t >= e.lastuse + m_expiration; });
                }
                m_gc.counter = 1;
            } else if (m_size <= lblc_max_size) {
                ++m_gc.counter;
            } else {
                std::int64_t goal = lblc_gc_state::goal(m_size);
                for (std::uint32_t n = 0; n < lblc_tab_size; ++n) {
                    m_gc.rover = (m_gc.rover + 1) & lblc_tab_mask;
                    goal -= static_cast<std::int64_t>(erase_if_in(
                        m_gc.rover, [&](const entry& e) { return t >= e.lastuse + lblc_entry_timeout; }));
                    if (goal <= 0) break;
                }
            }
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] time_ns expiration() const noexcept { return m_expiration; }
    [[nodiscard]] const lblc_gc_state& gc() const noexcept { return m_gc; }

private:
    std::vector<std::list<entry>> m_buckets;
    std::size_t m_size = 0;
    time_ns m_expiration;
    std::optional<time_ns> m_started;
    lblc_gc_state m_gc{};
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Locality-based least connection: O(1) per cache hit and per counter change, a miss pays the
/// pending refresh of wlc's index (amortised O(log n) per change); no allocation in schedule().
/// Decisions identical to the kernel's (deviations: design block).
class lblc : public ipvs::detail::locality_hooks<true> {
public:
    lblc() : lblc(lblc_options{}) {}
    explicit lblc(const lblc_options& o) : m_table(o) {}

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& in) noexcept {
        m_table.run_timer(in.now, no_payload);
        auto* en = m_table.find(in.daddr);
        if (en) {
            en->lastuse = in.now;
            dest* d = en->data;
            if (d->available() && d->weight > 0 && !busy(list, *d)) return d;
        }
        dest* d = least(list);
        if (d) remember(en, in, *d);
        return d;
    }

    /// Sets the entry for `in.daddr` as if schedule() had returned `d` (replays of recorded picks).
    void assume_picked(dest_list /*list*/, dest& d, const sched_input& in) noexcept {
        m_table.run_timer(in.now, no_payload);
        auto* en = m_table.find(in.daddr);
        if (en) en->lastuse = in.now;
        remember(en, in, d);
    }

    void del_dest(dest_list list, dest& d) {
        unlink(list, d);
        m_table.erase_if([&](const auto& e) { return e.data == &d; }, no_payload);
    }

    /// Runs the GC ticks due up to `now` without a pick (a director's housekeeping timer).
    void expire(time_ns now) noexcept { m_table.run_timer(now, no_payload); }
    [[nodiscard]] std::size_t entries() const noexcept { return m_table.size(); }
    [[nodiscard]] const ipvs::detail::lblc_gc_state& gc() const noexcept { return m_table.gc(); }

private:
    static constexpr auto no_payload = [](dest*&) noexcept {};

    /// ip_vs_lblc_new: keep an entry that already names `d`, else replace it by a new one.
    void remember(ipvs::detail::locality_table<dest*>::entry* en, const sched_input& in, dest& d) noexcept {
        if (en && en->data == &d) return;
        if (en) m_table.erase(*en, no_payload);
        if (auto* fresh = m_table.insert(in.daddr, in.now)) fresh->data = &d;
    }

    ipvs::detail::locality_table<dest*> m_table;
};

/// lblc as the kernel writes it: list buckets, the busy() scan, wlc's scan, one GC tick at a time.
class reference_lblc : public ipvs::detail::locality_hooks<false> {
public:
    reference_lblc() : reference_lblc(lblc_options{}) {}
    explicit reference_lblc(const lblc_options& o) : m_table(o) {}

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& in) noexcept {
        m_table.run_timer(in.now);
        auto* en = m_table.find(in.daddr);
        if (en) {
            en->lastuse = in.now;
            dest* d = en->data;
            if (d->available() && d->weight > 0 && !busy(list, *d)) return d;
        }
        dest* d = least(list);
        if (!d) return nullptr;
        if (en && en->data == d) return d;
        if (en) m_table.erase(*en);
        m_table.insert(in.daddr, in.now)->data = d;
        return d;
    }

    void del_dest(dest_list list, dest& d) {
        unlink(list, d);
        m_table.erase_if([&](const auto& e) { return e.data == &d; }); // as lblc (design block)
    }

    void expire(time_ns now) { m_table.run_timer(now); }
    [[nodiscard]] std::size_t entries() const noexcept { return m_table.size(); }
    [[nodiscard]] const ipvs::detail::lblc_gc_state& gc() const noexcept { return m_table.gc(); }

private:
    ipvs::detail::reference_locality_table<dest*> m_table;
};

static_assert(scheduler<lblc> && scheduler<reference_lblc>);

} // namespace ipvs::sched
