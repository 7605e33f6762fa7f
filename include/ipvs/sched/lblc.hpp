// SPDX-License-Identifier: MIT
// lblc — locality-based least connection (spec §2.11): `lblc` over a preallocated table with an
// O(1) busy test, the literal `reference_lblc`, and the table both lblc and lblcr use.
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
// `d.active > d.weight && some listed dest m has 2·m.active < m.weight`; the second half is kept as
// a count of such dests (`underload_tracker`), updated in O(1) on each counts_changed, so a pick
// costs one hash lookup plus, on a miss, wlc's O(log n) index.
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
#include <chrono>
#include <cstddef>
#include <cstdint>
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

/// busy(d) in O(1): how many listed dests are underloaded, kept current by `update` after every
/// change of a dest's counters or weight. Per-dest state lives in a small open-addressing table
/// keyed by the dest's address (dest::sched_slot belongs to the embedded wlc index).
class underload_tracker {
public:
    /// Re-reads the whole list (control path: add/del dest). Strong guarantee.
    void rebuild(sched::dest_list list) {
        std::size_t cap = 8;
        while (cap < 2 * list.size()) cap *= 2;
        std::vector<const dest*> keys(cap, nullptr);
        std::vector<std::uint8_t> under(cap, 0);
        std::size_t count = 0;
        for (const dest* d : list) {
            std::size_t i = slot_of(d, cap - 1, keys);
            keys[i] = d;
            under[i] = underloaded(*d) ? 1 : 0;
            count += under[i];
        }
        m_keys = std::move(keys);
        m_under = std::move(under);
        m_count = count;
    }

    /// `d`'s counters or weight changed. A dest not in the list (deleted) is ignored.
    void update(const dest& d) noexcept {
        if (m_keys.empty()) return;
        const std::size_t i = slot_of(&d, m_keys.size() - 1, m_keys);
        if (m_keys[i] != &d) return;
        const std::uint8_t now = underloaded(d) ? 1 : 0;
        m_count = m_count - m_under[i] + now;
        m_under[i] = now;
    }

    [[nodiscard]] bool busy(const dest& d) const noexcept { return d.active_conns > d.weight && m_count > 0; }
    [[nodiscard]] std::size_t underloaded_count() const noexcept { return m_count; }

private:
    /// Linear probing from a multiplicative hash of the pointer; returns `d`'s slot or the free slot
    /// where it would go (the table is at most half full, so one exists).
    static std::size_t slot_of(const dest* d, std::size_t mask,
                               const std::vector<const dest*>& keys) noexcept {
        auto h = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(d)) * 0x9E3779B97F4A7C15ULL;
        std::size_t i = static_cast<std::size_t>(h >> 32) & mask;
        while (keys[i] != nullptr && keys[i] != d) i = (i + 1) & mask;
        return i;
    }

    std::vector<const dest*> m_keys;
    std::vector<std::uint8_t> m_under;
    std::size_t m_count = 0;
};

/// The service-wide half of lblc and lblcr: wlc over the service (`Least`) and busy(), kept current
/// by the hooks. `Indexed`: busy() through an underload_tracker (O(1)); else the kernel's scan.
/// The derived scheduler adds schedule() and a del_dest that also forgets its own references.
template <class Least, bool Indexed>
class locality_hooks {
public:
    void add_dest(sched::dest_list list, dest& d) {
        m_least.add_dest(list, d);
        if constexpr (Indexed) m_busy.rebuild(list);
    }
    void upd_dest(sched::dest_list list, dest& d) {
        m_least.upd_dest(list, d);
        if constexpr (Indexed) m_busy.update(d);
    }
    void counts_changed(sched::dest_list list, dest& d) noexcept {
        m_least.counts_changed(list, d);
        if constexpr (Indexed) m_busy.update(d);
    }

protected:
    /// The service part of del_dest.
    void unlink(sched::dest_list list, dest& d) {
        m_least.del_dest(list, d);
        if constexpr (Indexed) m_busy.rebuild(list);
    }
    [[nodiscard]] bool busy(sched::dest_list list, const dest& d) const noexcept {
        if constexpr (Indexed) {
            return m_busy.busy(d);
        } else {
            return busy_scan(list, d);
        }
    }

    Least m_least;
    struct no_tracker {};
    [[no_unique_address]] std::conditional_t<Indexed, underload_tracker, no_tracker> m_busy;
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
            if (m_pool[i].addr == a) return &m_pool[i];
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
            if (e.addr == a) return &e;
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

/// Locality-based least connection: O(1) on a cache hit, wlc's O(log n) index on a miss, no
/// allocation in schedule(). Decisions identical to the kernel's (deviations: design block).
class lblc : public ipvs::detail::locality_hooks<wlc, true> {
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
        dest* d = m_least.schedule(list, in);
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
class reference_lblc : public ipvs::detail::locality_hooks<reference_wlc, false> {
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
        dest* d = m_least.schedule(list, in);
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
