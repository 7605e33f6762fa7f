// SPDX-License-Identifier: MIT
// A hashed timer wheel over intrusive 12-byte hooks: O(1) arm, lazy re-arm and cancel, bounded polls.
#pragma once

// Design
// ------
// Source: the kernel arms one timer per connection (spec §3.6: every packet's final "put" re-arms it
// to now + timeout). A per-packet unlink + relink touches two neighbour entries, i.e. two extra cache
// misses per packet; this wheel makes the common re-arm (a later deadline) a single store.
//
// Structure (Varghese & Lauck scheme 6, "hashed wheel"): N = 2^slot_bits slots of one tick each
// (default tick 4 ms, the kernel's jiffy at HZ=250, so whole seconds and milliseconds multiple of 4 are
// exact). An entry lives in
// one circular doubly linked list: slot (filed_tick mod N), the due list, or the pending list that
// poll() is draining. Links are 32-bit handles; list heads are sentinel handles ≥ `first_sentinel`,
// so unlinking never needs to know which list an entry is in.
//
//   hook (12 B, inside the user's entry):  [ deadline u32 | next u32 | prev u32 ]
//   sentinels: slot 0 … slot N-1 | due | pending          occupancy bitmap: N bits
//
// Invariants
// - An armed entry's list position was chosen from a deadline `filed <= hook.deadline`: re-arming to
//   a later deadline only stores it (lazy); when the wheel reaches the filed slot it finds the entry
//   not yet due and re-files it at its real deadline. Re-arming to an *earlier* deadline relinks at
//   once, so an entry is never visited after its deadline.
// - Ticks are kept in 32 bits and compared as signed differences against 64-bit wheel time, so every
//   deadline must be less than 2^31 ticks ahead (≈ 99 days at the default tick); timeouts are
//   clamped to 2^30 ticks (≈ 49 days at 4 ms, above ipvsadm's 31-day maximum).
// - Time never goes backwards for the wheel: arm() and poll() use max(now, highest now seen). A clock
//   that steps back therefore freezes expiry until it catches up (no crash, no early expiry).
// - Expiry order: by deadline tick; within a tick, by the order the entries were filed there (FIFO).
//   An entry is expired by the first poll whose `now` is at or after its deadline (never early; the
//   deadline is rounded up to a tick, so at most one tick late relative to `now`).
// - Bounded work: one poll() expires at most `max_expirations` entries and examines (expires or
//   re-files) at most max_expirations × (1 + refile_factor) entries, plus one bitmap pass. It resumes
//   where it stopped on the next call.
// - Clock jumps: a lag of less than one rotation (N ticks, 262 s by default) is walked slot by slot,
//   which keeps the exact order. A larger lag (the clock jumped forward by hours) starts a *sweep*:
//   every non-empty slot is opened once against the time of the jump, in slot order starting at the
//   old cursor, so catching up costs O(armed entries) however large the jump — but in that one catch-up
//   the overdue entries expire in slot order, not strictly by deadline.
// - Cost: an entry waiting longer than one rotation is looked at (and left in place) once per extra
//   rotation, so background work is about (armed entries / rotation) per second of clock time — pick
//   the rotation near the common timeouts (conn_table does: 262 s for large tables, TCP's 900 s costs
//   3 looks). A hierarchical wheel would bound this by the level count; the kernel's timeouts did not
//   need it.
// Deviation from the kernel: expiry happens in poll(), driven by the caller, not from softirq timers.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>

namespace ipvs {

/// The "no entry" handle (also: a hook whose `next` is nil is not armed).
inline constexpr std::uint32_t nil_handle = 0xffffffffU;

/// Intrusive per-entry timer state. Keep it inside the entry; the wheel reaches it via a handle.
struct timer_hook {
    std::uint32_t deadline = 0;      ///< due tick, low 32 bits (lazy: may be later than the filed slot)
    std::uint32_t next = nil_handle; ///< nil = not armed
    std::uint32_t prev = nil_handle;
};

struct timer_wheel_config {
    time_ns tick = std::chrono::milliseconds(4); ///< wheel resolution (kernel jiffy at HZ=250)
    unsigned slot_bits = 16;    ///< N = 2^slot_bits slots; 16 → one rotation = 262 s at the default tick
    unsigned refile_factor = 4; ///< re-files allowed per expiration in one poll (bounded work)
};

/// What one poll() did. `caught_up` = nothing due at `now` is left.
struct poll_result {
    std::size_t expired = 0;
    std::size_t examined = 0; ///< entries taken off a list (expired + re-filed)
    std::size_t slots = 0;    ///< slot lists opened
    bool caught_up = false;
};

/// `HookOf` is a callable `timer_hook&(std::uint32_t handle)` for handles below `first_sentinel`.
template <class HookOf, class Allocator = std::allocator<timer_hook>>
class timer_wheel {
public:
    timer_wheel(HookOf hook_of, std::uint32_t first_sentinel, timer_wheel_config cfg = {},
                const Allocator& alloc = Allocator())
        : m_hook_of(std::move(hook_of)), m_base(first_sentinel), m_cfg(cfg),
          m_sentinels(check(cfg, first_sentinel) + 2, timer_hook{}, alloc),
          m_bits(((std::size_t{1} << cfg.slot_bits) + 63) / 64, 0, word_alloc(alloc)) {
        m_mask = (std::uint32_t{1} << cfg.slot_bits) - 1;
        for (std::uint32_t i = 0; i < m_sentinels.size(); ++i) {
            m_sentinels[i].next = m_sentinels[i].prev = m_base + i;
        }
        m_max_timeout_ticks = std::uint64_t{1} << 30;
        m_tick = static_cast<std::uint64_t>(cfg.tick.count());
    }

    timer_wheel(const timer_wheel&) = delete; // the hook accessor usually points into its owner
    timer_wheel& operator=(const timer_wheel&) = delete;

    [[nodiscard]] time_ns tick() const noexcept { return m_cfg.tick; }
    [[nodiscard]] std::size_t slots() const noexcept { return std::size_t{m_mask} + 1; }
    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] bool armed(std::uint32_t h) const noexcept { return m_hook_of(h).next != nil_handle; }
    /// Bytes the wheel itself holds (sentinels + bitmap), for memory accounting.
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        return m_sentinels.size() * sizeof(timer_hook) + m_bits.size() * sizeof(std::uint64_t);
    }

    /// The absolute deadline of an armed entry (tick-rounded).
    [[nodiscard]] time_ns deadline(std::uint32_t h) const noexcept {
        return time_ns(static_cast<std::int64_t>(widen(m_hook_of(h).deadline) * m_tick));
    }

    /// Arms (or re-arms) `h` to expire at now + timeout. Later than the current deadline: one store.
    /// Earlier (or timeout <= 0, "expire now"): O(1) relink. Never allocates.
    void arm(std::uint32_t h, time_ns now, time_ns timeout) noexcept {
        const auto base = advance_high(now);
        timer_hook& e = m_hook_of(h);
        if (timeout <= time_ns::zero()) {
            // expire_now: straight to the due list, handled by the next poll whatever its `now`.
            if (e.next != nil_handle)
                unlink(h);
            else
                ++m_size;
            e.deadline = static_cast<std::uint32_t>(base / m_tick);
            link_tail(due_list(), h);
            return;
        }
        std::uint64_t t = static_cast<std::uint64_t>(timeout.count());
        const std::uint64_t max_ns = m_max_timeout_ticks * m_tick;
        if (t > max_ns) t = max_ns;
        // Rounded up: an entry is never expired before now + timeout.
        const auto d = static_cast<std::uint32_t>((base + t + (m_tick - 1)) / m_tick);
        if (e.next != nil_handle) {
            if (static_cast<std::int32_t>(d - e.deadline) >= 0) {
                e.deadline = d; // lazy: the entry is found not due at its filed slot and re-filed
                return;
            }
            unlink(h);
        } else {
            ++m_size;
        }
        e.deadline = d;
        file(h);
    }

    /// Disarms `h` (no-op if not armed).
    void cancel(std::uint32_t h) noexcept {
        if (m_hook_of(h).next == nil_handle) return;
        unlink(h);
        --m_size;
    }

    /// Expires what is due at `now`: calls `cb(handle)` for each, after disarming it (the callback may
    /// re-arm it or arm / cancel other entries). See the design block for the work bound and order.
    template <class Callback>
    poll_result poll(time_ns now, std::size_t max_expirations, Callback&& cb) {
        poll_result r;
        const std::uint64_t now_t = advance_high(now) / m_tick;
        const std::size_t budget = max_expirations * (std::size_t{m_cfg.refile_factor} + 1);
        const std::uint32_t pending = pending_list();
        for (;;) {
            if (!empty(pending)) {
                if (r.expired >= max_expirations || r.examined >= budget) return r;
                const std::uint32_t h = hook(pending).next;
                unlink(h);
                ++r.examined;
                if (static_cast<std::int32_t>(m_hook_of(h).deadline -
                                              static_cast<std::uint32_t>(m_pending_ref)) <= 0) {
                    --m_size;
                    ++r.expired;
                    cb(h);
                } else {
                    file(h);
                }
                continue;
            }
            if (!empty(due_list())) {
                splice_into_pending(due_list());
                m_pending_ref = std::max(now_t, m_cursor == 0 ? 0 : m_cursor - 1);
                continue;
            }
            if (m_sweeping) {
                const std::size_t n = slots();
                const std::size_t off = find_set(
                    static_cast<std::size_t>(m_sweep_start + m_sweep_done) & m_mask, n - m_sweep_done);
                if (off == npos) {
                    m_sweeping = false;
                    m_cursor = m_floor = m_sweep_ref + 1;
                    continue;
                }
                m_sweep_done += off + 1;
                splice_into_pending(
                    slot_list(static_cast<std::uint32_t>(m_sweep_start + m_sweep_done - 1) & m_mask));
                m_pending_ref = m_sweep_ref;
                ++r.slots;
                continue;
            }
            if (m_cursor > now_t) {
                r.caught_up = true;
                return r;
            }
            if (now_t - m_cursor >= slots()) {
                // More than a rotation behind: one sweep over every slot against the jump's time.
                m_sweeping = true;
                m_sweep_ref = now_t;
                m_sweep_start = m_cursor & m_mask;
                m_sweep_done = 0;
                m_floor = now_t + 1;
                continue;
            }
            const std::size_t off =
                find_set(m_cursor & m_mask, static_cast<std::size_t>(now_t - m_cursor) + 1);
            if (off == npos) {
                m_cursor = m_floor = now_t + 1;
                continue;
            }
            const std::uint64_t t = m_cursor + off;
            splice_into_pending(slot_list(static_cast<std::uint32_t>(t) & m_mask));
            m_pending_ref = t;
            m_cursor = m_floor = t + 1;
            ++r.slots;
        }
    }

private:
    using word_alloc_t = typename std::allocator_traits<Allocator>::template rebind_alloc<std::uint64_t>;
    static word_alloc_t word_alloc(const Allocator& a) { return word_alloc_t(a); }
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    static std::size_t check(const timer_wheel_config& cfg, std::uint32_t first_sentinel) {
        if (cfg.slot_bits < 1 || cfg.slot_bits > 24)
            throw std::invalid_argument("ipvs: timer wheel slot_bits must be 1..24");
        if (cfg.tick <= time_ns::zero())
            throw std::invalid_argument("ipvs: timer wheel tick must be positive");
        const std::size_t n = std::size_t{1} << cfg.slot_bits;
        if (std::uint64_t{first_sentinel} + n + 2 > nil_handle)
            throw std::invalid_argument("ipvs: timer wheel handle space exhausted");
        return n;
    }

    [[nodiscard]] std::uint32_t due_list() const noexcept { return m_base + m_mask + 1; }
    [[nodiscard]] std::uint32_t pending_list() const noexcept { return m_base + m_mask + 2; }
    [[nodiscard]] std::uint32_t slot_list(std::uint32_t s) const noexcept { return m_base + s; }

    timer_hook& hook(std::uint32_t h) noexcept {
        return h >= m_base ? m_sentinels[h - m_base] : m_hook_of(h);
    }
    [[nodiscard]] bool empty(std::uint32_t sentinel) noexcept { return hook(sentinel).next == sentinel; }

    /// Highest time seen, in ns (monotonic clamp).
    std::uint64_t advance_high(time_ns now) noexcept {
        const auto n = now.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(now.count());
        if (n > m_high_ns) m_high_ns = n;
        return m_high_ns;
    }
    /// 32-bit tick → 64-bit tick near the wheel's present.
    [[nodiscard]] std::uint64_t widen(std::uint32_t d) const noexcept {
        const std::uint64_t ref = m_high_ns / m_tick;
        return ref + static_cast<std::uint64_t>(static_cast<std::int64_t>(
                         static_cast<std::int32_t>(d - static_cast<std::uint32_t>(ref))));
    }

    void link_tail(std::uint32_t list, std::uint32_t h) noexcept {
        timer_hook& s = hook(list);
        const std::uint32_t p = s.prev;
        timer_hook& e = hook(h);
        e.prev = p;
        e.next = list;
        hook(p).next = h;
        s.prev = h;
    }
    void unlink(std::uint32_t h) noexcept {
        timer_hook& e = hook(h);
        const std::uint32_t n = e.next, p = e.prev;
        hook(p).next = n;
        hook(n).prev = p;
        e.next = e.prev = nil_handle;
        // The list became empty: if it is a slot, clear its occupancy bit.
        if (n == p && n >= m_base && n - m_base <= m_mask) clear_bit(n - m_base);
    }
    /// Files an armed-but-unlinked entry by its deadline: before the floor → due list, else its slot.
    void file(std::uint32_t h) noexcept {
        const std::uint32_t d = hook(h).deadline;
        if (static_cast<std::int32_t>(d - static_cast<std::uint32_t>(m_floor)) < 0) {
            link_tail(due_list(), h);
        } else {
            const std::uint32_t s = d & m_mask;
            link_tail(slot_list(s), h);
            m_bits[s >> 6] |= std::uint64_t{1} << (s & 63);
        }
    }
    void splice_into_pending(std::uint32_t list) noexcept {
        const std::uint32_t pend = pending_list();
        timer_hook& l = hook(list);
        const std::uint32_t first = l.next, last = l.prev;
        hook(pend).next = first;
        hook(pend).prev = last;
        hook(first).prev = pend;
        hook(last).next = pend;
        l.next = l.prev = list;
        if (list - m_base <= m_mask) clear_bit(list - m_base);
    }
    void clear_bit(std::uint32_t s) noexcept { m_bits[s >> 6] &= ~(std::uint64_t{1} << (s & 63)); }

    /// Offset (0 ≤ off < len) of the first occupied slot at or after `start`, cyclically; npos if none.
    [[nodiscard]] std::size_t find_set(std::size_t start, std::size_t len) const noexcept {
        const std::size_t n = slots();
        if (len > n) len = n;
        std::size_t done = 0;
        while (done < len) {
            const std::size_t pos = (start + done) & m_mask;
            const std::size_t bit = pos & 63;
            std::uint64_t w = m_bits[pos >> 6] >> bit;
            // Bits past the end of a wheel smaller than one word are never set, so no masking needed.
            if (w != 0) {
                const auto off = done + static_cast<std::size_t>(std::countr_zero(w));
                return off < len ? off : npos;
            }
            std::size_t step = 64 - bit;
            if (n < 64 && step > n - pos) step = n - pos;
            done += step;
        }
        return npos;
    }

    HookOf m_hook_of;
    std::uint32_t m_base;
    timer_wheel_config m_cfg;
    std::vector<timer_hook, Allocator> m_sentinels;
    std::vector<std::uint64_t, word_alloc_t> m_bits;
    std::uint32_t m_mask = 0;
    std::uint64_t m_max_timeout_ticks = 0;
    std::uint64_t m_tick = 1; ///< ns per tick
    std::size_t m_size = 0;
    std::uint64_t m_high_ns = 0;     ///< highest `now` seen (ns)
    std::uint64_t m_cursor = 0;      ///< next tick to open
    std::uint64_t m_floor = 0;       ///< entries due before this tick are filed on the due list
    std::uint64_t m_pending_ref = 0; ///< the pending list holds entries judged against this tick
    bool m_sweeping = false;
    std::uint64_t m_sweep_ref = 0;
    std::uint64_t m_sweep_start = 0;
    std::size_t m_sweep_done = 0;
};

} // namespace ipvs
