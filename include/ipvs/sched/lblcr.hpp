// SPDX-License-Identifier: MIT
// lblcr — locality-based least connection with replication (spec §2.12): `lblcr` over preallocated
// pools and the literal `reference_lblcr`.
#pragma once

// Design
// ------
// Source: spec §2.12 (the kernel's ip_vs_lblcr.c). The table, its hash, its GC and busy() are
// lblc's (lblc.hpp); an entry holds a *set* of dests instead of one:
//
//   entry.data = { head, size, lastmod }     head: first member in m_members (no_index = empty)
//   m_members:  [dest*, next][dest*, next]   preallocated; free members chained through `next`
//
// Set order is the kernel's: a new member goes to the head. Schedule on a hit: `set_min` (least
// overhead/weight among AVAILABLE, non-OVERLOAD members, first wins ties); then, if the set has
// more than one member and was last modified more than `expiration` ago, `set_max` (the most loaded
// member with weight > 0) is removed; then the set_min result is returned unless it is NULL or
// busy(), in which case wlc over the service picks and joins the set. On a miss wlc picks and a new
// entry holds just that dest. Sets are scanned (they hold at most the service's dests, usually a
// few); the service-wide parts — busy() and wlc — come from lblc's lazily refreshed index: O(1) per
// counter change, the pending refresh (amortised O(log n) per change) when a pick needs them.
//
// Invariants: a set's `size` is the length of its member chain; members are distinct, listed dests;
// `lastmod` is the time of the set's last insertion or removal.
//
// Deviations from the kernel (none of them shows in the recorded vectors):
// - Both pools are bounded (lblcr_options): a full entry pool caches nothing (the kernel's kmalloc
//   failure path), a full member pool leaves the set as it was (ip_vs_dest_set_insert's failure).
// - del_dest removes the deleted dest from every set, so its owner may free it. The kernel keeps it
//   (pinned in the trash): set_min skips it (not AVAILABLE), `size` still counts it, set_max may
//   still choose it for removal after `expiration`, and a revival from the trash makes it usable
//   again in the sets it was in.
// - When the expiry step finds no member with weight > 0 to remove, lastmod stays as it was: the
//   kernel stamps lastmod where it erases a member. (Spec §2.12 words the stamp as part of the step.)

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <stdexcept>
#include <vector>

#include <ipvs/clock.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/sched/lblc.hpp>
#include <ipvs/sched/scheduler.hpp>
#include <ipvs/sched/wlc.hpp>

namespace ipvs::sched {

/// Construction options of lblcr: lblc's (expiration = the sysctl lblcr_expiration) and the member
/// pool, shared by all sets (default: two members per entry of the default entry pool).
struct lblcr_options : lblc_options {
    std::uint32_t member_capacity = 4 * 16384;
};

} // namespace ipvs::sched

namespace ipvs::detail {

/// ip_vs_dest_set_min as a fold over the members in set order: the first AVAILABLE member with
/// !OVERLOAD and weight > 0 seeds it; a later !OVERLOAD member replaces it when
/// loh·d.weight > doh·least.weight and it is AVAILABLE (its weight is not re-checked).
struct set_min_fold {
    dest* least = nullptr;
    int loh = 0;
    void operator()(dest* d) noexcept {
        if (d->overloaded()) return;
        const int doh = overhead(*d);
        if (least == nullptr) {
            if (d->weight > 0 && d->available()) {
                least = d;
                loh = doh;
            }
        } else if (static_cast<std::int64_t>(loh) * d->weight >
                       static_cast<std::int64_t>(doh) * least->weight &&
                   d->available()) {
            least = d;
            loh = doh;
        }
    }
};

/// ip_vs_dest_set_max as a fold: the first member with weight > 0 seeds it (OVERLOAD and AVAILABLE
/// are not looked at); a later one replaces it when moh·d.weight < doh·most.weight and d.weight > 0.
struct set_max_fold {
    dest* most = nullptr;
    int moh = 0;
    void operator()(dest* d) noexcept {
        const int doh = overhead(*d);
        if (most == nullptr) {
            if (d->weight > 0) {
                most = d;
                moh = doh;
            }
        } else if (static_cast<std::int64_t>(moh) * d->weight <
                       static_cast<std::int64_t>(doh) * most->weight &&
                   d->weight > 0) {
            most = d;
            moh = doh;
        }
    }
};

/// An entry's dest set in the fast lblcr: a chain through the shared member pool.
struct lblcr_set {
    std::uint32_t head = no_index;
    std::uint32_t size = 0;
    time_ns lastmod{0};
};

/// A slot of the fast lblcr's member pool: a set member, or a free slot (d == nullptr).
struct lblcr_member {
    dest* d = nullptr;
    std::uint32_t next = no_index;
};

/// The reference's dest set: a std::list, new members at the front.
struct reference_lblcr_set {
    std::list<dest*> members;
    time_ns lastmod{0};
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// LBLC with replication: no allocation in schedule(), decisions identical to the kernel's
/// (deviations: design block).
class lblcr : public ipvs::detail::locality_hooks<true> {
public:
    lblcr() : lblcr(lblcr_options{}) {}
    explicit lblcr(const lblcr_options& o) : m_table(o), m_members(checked(o.member_capacity)) {
        for (std::uint32_t i = 0; i < o.member_capacity; ++i)
            m_members[i].next = i + 1 < o.member_capacity ? i + 1 : ipvs::detail::no_index;
        m_free = 0;
    }

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& in) noexcept {
        m_table.run_timer(in.now, releaser());
        if (auto* en = m_table.find(in.daddr)) {
            en->lastuse = in.now;
            auto& set = en->data;
            dest* d = fold(set, ipvs::detail::set_min_fold{}).least;
            if (set.size > 1 && in.now > set.lastmod + m_table.expiration()) {
                if (dest* m = fold(set, ipvs::detail::set_max_fold{}).most) {
                    erase_member(set, m);
                    set.lastmod = in.now;
                }
            }
            if (d && !busy(list, *d)) return d; // d may be the member just removed, as in the kernel
            d = least(list);
            if (d) insert_member(set, *d, in.now);
            return d;
        }
        dest* d = least(list);
        if (d) create(in, *d);
        return d;
    }

    /// Records `d` for `in.daddr` as if schedule() had chosen it (replays of recorded picks).
    void assume_picked(dest_list /*list*/, dest& d, const sched_input& in) noexcept {
        m_table.run_timer(in.now, releaser());
        if (auto* en = m_table.find(in.daddr)) {
            en->lastuse = in.now;
            insert_member(en->data, d, in.now);
        } else {
            create(in, d);
        }
    }

    void del_dest(dest_list list, dest& d) {
        unlink(list, d);
        m_table.for_each([&](auto& e) { erase_member(e.data, &d); }); // see the deviations
    }

    /// Runs the GC ticks due up to `now` without a pick.
    void expire(time_ns now) noexcept { m_table.run_timer(now, releaser()); }
    [[nodiscard]] std::size_t entries() const noexcept { return m_table.size(); }
    [[nodiscard]] const ipvs::detail::lblc_gc_state& gc() const noexcept { return m_table.gc(); }
    /// The members of `daddr`'s set in set order (empty without an entry); for tests and listings.
    [[nodiscard]] std::vector<dest*> members(const inet_addr& daddr) {
        std::vector<dest*> out;
        if (auto* en = m_table.find(daddr)) fold(en->data, [&](dest* d) { out.push_back(d); });
        return out;
    }

private:
    using member = ipvs::detail::lblcr_member;

    static std::uint32_t checked(std::uint32_t capacity) {
        if (capacity == 0 || capacity == ipvs::detail::no_index)
            throw std::invalid_argument("ipvs: lblcr member capacity out of range");
        return capacity;
    }

    /// Applies `f(dest*)` to the members in set order and returns it.
    template <class F>
    F fold(const ipvs::detail::lblcr_set& set, F f) const noexcept {
        for (std::uint32_t i = set.head; i != ipvs::detail::no_index; i = m_members[i].next)
            f(m_members[i].d);
        return f;
    }

    /// A new entry holding just `d` (ip_vs_lblcr_new); nothing when a pool is full.
    void create(const sched_input& in, dest& d) noexcept {
        if (auto* fresh = m_table.insert(in.daddr, in.now)) {
            fresh->data.lastmod = in.now;
            link_member(fresh->data, d, in.now);
        }
    }

    /// ip_vs_dest_set_insert with the membership check.
    void insert_member(ipvs::detail::lblcr_set& set, dest& d, time_ns now) noexcept {
        for (std::uint32_t i = set.head; i != ipvs::detail::no_index; i = m_members[i].next)
            if (m_members[i].d == &d) return;
        link_member(set, d, now);
    }

    void link_member(ipvs::detail::lblcr_set& set, dest& d, time_ns now) noexcept {
        if (m_free == ipvs::detail::no_index) return; // pool exhausted: the kernel's kmalloc failure
        const std::uint32_t i = m_free;
        m_free = m_members[i].next;
        m_members[i] = member{&d, set.head};
        set.head = i;
        ++set.size;
        set.lastmod = now;
    }

    /// Unlinks `d` from `set` if it is a member (lastmod is the caller's business).
    void erase_member(ipvs::detail::lblcr_set& set, const dest* d) noexcept {
        for (std::uint32_t* link = &set.head; *link != ipvs::detail::no_index;
             link = &m_members[*link].next) {
            const std::uint32_t i = *link;
            if (m_members[i].d != d) continue;
            *link = m_members[i].next;
            m_members[i] = member{nullptr, m_free};
            m_free = i;
            --set.size;
            return;
        }
    }

    /// The GC's on_erase: an expired entry gives its members back to the pool.
    struct release_set {
        lblcr* self;
        void operator()(ipvs::detail::lblcr_set& set) const noexcept {
            while (set.head != ipvs::detail::no_index) self->erase_member(set, self->m_members[set.head].d);
        }
    };
    [[nodiscard]] release_set releaser() noexcept { return release_set{this}; }

    ipvs::detail::locality_table<ipvs::detail::lblcr_set> m_table;
    std::vector<member> m_members;
    std::uint32_t m_free = ipvs::detail::no_index;
};

/// lblcr as the kernel writes it: list buckets and std::list sets, busy() and wlc as scans.
class reference_lblcr : public ipvs::detail::locality_hooks<false> {
public:
    reference_lblcr() : reference_lblcr(lblcr_options{}) {}
    explicit reference_lblcr(const lblcr_options& o) : m_table(o) {}

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& in) noexcept {
        m_table.run_timer(in.now);
        if (auto* en = m_table.find(in.daddr)) {
            en->lastuse = in.now;
            auto& set = en->data;
            dest* d = fold(set, ipvs::detail::set_min_fold{}).least;
            if (set.members.size() > 1 && in.now > set.lastmod + m_table.expiration()) {
                if (dest* m = fold(set, ipvs::detail::set_max_fold{}).most) {
                    set.members.remove(m);
                    set.lastmod = in.now;
                }
            }
            if (d && !busy(list, *d)) return d;
            d = least(list);
            if (!d) return nullptr;
            if (std::find(set.members.begin(), set.members.end(), d) == set.members.end()) {
                set.members.push_front(d);
                set.lastmod = in.now;
            }
            return d;
        }
        dest* d = least(list);
        if (!d) return nullptr;
        auto* fresh = m_table.insert(in.daddr, in.now);
        fresh->data.members.push_front(d);
        fresh->data.lastmod = in.now;
        return d;
    }

    void del_dest(dest_list list, dest& d) {
        unlink(list, d);
        m_table.for_each([&](auto& e) { e.data.members.remove(&d); }); // as lblcr (design block)
    }

    void expire(time_ns now) { m_table.run_timer(now); }
    [[nodiscard]] std::size_t entries() const noexcept { return m_table.size(); }
    [[nodiscard]] const ipvs::detail::lblc_gc_state& gc() const noexcept { return m_table.gc(); }
    [[nodiscard]] std::vector<dest*> members(const inet_addr& daddr) {
        auto* en = m_table.find(daddr);
        return en ? std::vector<dest*>(en->data.members.begin(), en->data.members.end())
                  : std::vector<dest*>{};
    }

private:
    template <class F>
    static F fold(const ipvs::detail::reference_lblcr_set& set, F f) noexcept {
        for (dest* d : set.members) f(d);
        return f;
    }

    ipvs::detail::reference_locality_table<ipvs::detail::reference_lblcr_set> m_table;
};

static_assert(scheduler<lblcr> && scheduler<reference_lblcr>);

} // namespace ipvs::sched
