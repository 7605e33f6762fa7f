// SPDX-License-Identifier: MIT
// A virtual service: its real servers in the kernel's list order, its scheduler, and the counter
// operations every connection path goes through (spec §1.4–§1.9).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/sched/scheduler.hpp>

// Design
// ------
// `service<Sched>` mirrors the part of `struct ip_vs_service` that scheduling needs (ip_vs_ctl.c's
// add/edit/del dest and ip_vs_conn.c's bind/unbind), nothing of the packet path beyond that.
//
// Invariants
// - Every dest in `dests()` is owned by the service (heap-allocated once, so its address is stable
//   for the connections that point to it), carries AVAILABLE, and has a distinct endpoint.
// - `dests()` is the kernel's list order, head first: an added or revived dest goes to the head,
//   an edit does not move it (spec §0). `list_seq` strictly increases towards the head.
// - The scheduler hooks run exactly as spec §1.9 says: `add_dest` after the insertion at the head,
//   `del_dest` after the unlink (the dest still alive), `upd_dest` after an edit (never on add).
//   Each dest field the hook may read (weight, thresholds, OVERLOAD) is final when it runs.
// - Counters change only through bind / unbind / move_to_active / move_to_inactive, which apply the
//   OVERLOAD hysteresis of spec §1.5 and then call `counts_changed`, so an indexed scheduler never
//   sees a stale dest. A dest no longer listed (deleted, in the caller's trash) still has its
//   counters and OVERLOAD kept, but the scheduler is not told: it no longer holds that dest.
//
// Errors: configuration mistakes (negative weight, l_threshold > u_threshold, GUE without a port,
// duplicate or unknown endpoint, a scheduler hook that rejects the change) throw
// std::invalid_argument and leave the service as it was (strong guarantee). The packet-path
// operations are noexcept and allocation-free.
//
// Deviation: the kernel's trash is per network namespace and outlives services (a dest re-added to
// a re-created service of the same identity comes back with its counters, spec §1.8). Here
// `del_dest` hands the dest to the caller, who keeps it wherever its trash lives and passes it back
// to `add_dest` to revive it.

namespace ipvs {

/// What `ipvsadm -a` / `-e` give for a dest (spec §1.2). `ipvsadm -e` without `-x`/`-y` means both
/// thresholds 0: a caller parsing ipvsadm fills the fields it did not see with these defaults.
struct dest_config {
    endpoint ep{};
    int weight = 1;
    std::uint32_t u_threshold = 0;
    std::uint32_t l_threshold = 0;
    fwd_method fwd = fwd_method::masq;
    tun_info tun{};
};

/// Which counter a connection occupies (spec §1.6): a normal connection is active or inactive
/// (INACTIVE bit), a persistence template counts in persist_conns.
enum class conn_counter : std::uint8_t { inactive, active, persist };

/// The service identity and options the director interprets; the service itself only stores them.
struct service_params {
    family af = family::v4;
    std::uint8_t protocol = 6;     ///< IPPROTO_TCP / UDP / SCTP (fwmark services: TCP, spec §1.1)
    endpoint vip{};                ///< VIP and virtual port (port 0 = any port); unused with a fwmark
    std::uint32_t fwmark = 0;      ///< non-zero: matched by mark instead of vip
    sched::sched_flags sched{};    ///< SCHED1 / SCHED2 (the scheduler was built with the same flags)
    bool persistent = false;       ///< -p
    bool one_packet = false;       ///< -o
    time_ns persist_timeout{0};    ///< -p seconds
    unsigned netmask_prefix = 128; ///< persistence mask as a prefix length (≥ 32 keeps a whole IPv4 address)
};

/// Counter bookkeeping without a scheduler (spec §1.5, §1.6), for a dest that is in no service's
/// list any more (trash) — the service methods below add the scheduler notification.
inline void bind_counts(dest& d, conn_counter c) noexcept {
    switch (c) {
    case conn_counter::inactive:
        ++d.inactive_conns;
        break;
    case conn_counter::active:
        ++d.active_conns;
        break;
    case conn_counter::persist:
        ++d.persist_conns;
        break;
    }
    overload_after_bind(d);
}

/// The counterpart of bind_counts: the connection or template was freed.
inline void unbind_counts(dest& d, conn_counter c) noexcept {
    IPVS_ASSERT((c == conn_counter::inactive ? d.inactive_conns
                 : c == conn_counter::active ? d.active_conns
                                             : d.persist_conns) > 0);
    switch (c) {
    case conn_counter::inactive:
        --d.inactive_conns;
        break;
    case conn_counter::active:
        --d.active_conns;
        break;
    case conn_counter::persist:
        --d.persist_conns;
        break;
    }
    overload_after_unbind(d);
}

namespace detail {
/// The kernel's checks on a dest configuration (ip_vs_ctl.c: ERANGE / EINVAL cases).
inline void check_dest_config(const dest_config& c) {
    if (c.weight < 0) throw std::invalid_argument("ipvs: dest weight must be >= 0");
    if (c.l_threshold > c.u_threshold)
        throw std::invalid_argument("ipvs: dest lower threshold is higher than the upper threshold");
    if (c.fwd == fwd_method::tunnel && c.tun.type == tun_type::gue && c.tun.port == 0)
        throw std::invalid_argument("ipvs: GUE tunnel needs a port");
}
} // namespace detail

/// A virtual service over scheduler `Sched` (any type modelling `sched::scheduler`, e.g. one
/// scheduler class, or `sched::any_scheduler` for a choice made at run time).
template <sched::scheduler Sched>
class service {
public:
    using scheduler_type = Sched;

    explicit service(Sched s = Sched{}, service_params params = {})
        : m_sched(std::move(s)), m_params(params) {}

    service(const service&) = delete; // dests and scheduler state point into each other
    service& operator=(const service&) = delete;
    service(service&&) noexcept = default;
    service& operator=(service&&) noexcept = default;

    // ---- configuration (control path: may allocate, throws std::invalid_argument) ----

    /// ipvsadm -a: a new dest at the head of the list (counters zero).
    dest& add_dest(const dest_config& c) {
        auto fresh = std::make_unique<dest>();
        fresh->ep = c.ep;
        return add_dest(std::move(fresh), c);
    }

    /// ipvsadm -a of a dest the caller kept from `del_dest` (spec §1.8): the same object comes back
    /// with its counters, at the head of the list, reconfigured from `c` (its endpoint must match).
    /// On failure `revived` still owns the dest.
    dest& add_dest(std::unique_ptr<dest>&& revived, const dest_config& c) {
        detail::check_dest_config(c);
        if (!revived) throw std::invalid_argument("ipvs: no dest to revive");
        if (revived->ep != c.ep) throw std::invalid_argument("ipvs: revived dest has another endpoint");
        if (find_dest(c.ep)) throw std::invalid_argument("ipvs: dest already exists");
        m_list.reserve(m_list.size() + 1);
        m_owned.reserve(m_owned.size() + 1);
        m_index.reserve(m_index.size() + 1);

        dest& d = *revived;
        const dest saved = d;
        d.sched_slot = 0;
        d.list_seq = ++m_seq;
        apply_config(d, c, /*add=*/true);
        m_list.insert(m_list.begin(), &d); // the kernel's list_add: at the head
        try {
            m_sched.add_dest(dests(), d);
        } catch (...) {
            m_list.erase(m_list.begin());
            --m_seq;
            d = saved;
            throw;
        }
        m_owned.push_back(std::move(revived));
        index_insert(d);
        return d;
    }

    /// ipvsadm -e: weight, thresholds and forwarding of an existing dest; it keeps its place.
    dest& edit_dest(const dest_config& c) {
        detail::check_dest_config(c);
        dest* d = find_dest(c.ep);
        if (!d) throw std::invalid_argument("ipvs: no such dest");
        const dest saved = *d;
        apply_config(*d, c, /*add=*/false);
        try {
            m_sched.upd_dest(dests(), *d);
        } catch (...) {
            *d = saved;
            throw;
        }
        return *d;
    }

    /// ipvsadm -d: unlinks the dest (AVAILABLE cleared, scheduler told) and hands it to the caller,
    /// who keeps it alive while connections still point to it and may revive it with `add_dest`.
    [[nodiscard]] std::unique_ptr<dest> del_dest(const endpoint& ep) {
        dest* d = find_dest(ep);
        if (!d) throw std::invalid_argument("ipvs: no such dest");
        const auto pos = std::find(m_list.begin(), m_list.end(), d);
        const auto at = pos - m_list.begin();
        m_list.erase(pos);
        d->flags &= ~dest_flag::available;
        try {
            m_sched.del_dest(dests(), *d);
        } catch (...) {
            d->flags |= dest_flag::available;
            m_list.insert(m_list.begin() + at, d);
            throw;
        }
        index_erase(*d);
        auto owned =
            std::find_if(m_owned.begin(), m_owned.end(), [d](const auto& p) { return p.get() == d; });
        std::unique_ptr<dest> out = std::move(*owned);
        m_owned.erase(owned);
        return out;
    }

    /// The listed dest with endpoint `ep`, or nullptr. O(log n), no allocation.
    [[nodiscard]] dest* find_dest(const endpoint& ep) noexcept {
        auto it = std::lower_bound(m_index.begin(), m_index.end(), ep,
                                   [](const dest* d, const endpoint& e) { return d->ep < e; });
        return it != m_index.end() && (*it)->ep == ep ? *it : nullptr;
    }
    [[nodiscard]] const dest* find_dest(const endpoint& ep) const noexcept {
        return const_cast<service*>(this)->find_dest(ep);
    }

    // ---- packet path (noexcept, no allocation) ----

    /// Picks a dest for a new connection, or nullptr (the caller then goes to ip_vs_leave).
    [[nodiscard]] dest* schedule(const sched::sched_input& in) noexcept {
        return m_sched.schedule(dests(), in);
    }

    /// Tells the scheduler that `d` was chosen for `in` without asking it — a replay of a recorded
    /// decision whose inputs are unknown (pre_stale steps), or a choice made elsewhere (persistence,
    /// sync). A scheduler with per-pick state (rr's cursor, lblc's entry) offers
    /// `assume_picked(list, d, in)` or `assume_picked(list, d)`; for the others this does nothing.
    void assume_picked(dest& d, const sched::sched_input& in) noexcept {
        if constexpr (requires { m_sched.assume_picked(dests(), d, in); })
            m_sched.assume_picked(dests(), d, in);
        else if constexpr (requires { m_sched.assume_picked(dests(), d); })
            m_sched.assume_picked(dests(), d);
    }

    /// A connection (or template) was bound to `d`: a new local connection counts as inactive first
    /// (spec §1.6), a synced one as its INACTIVE bit says. Applies the OVERLOAD set rule.
    void bind(dest& d, conn_counter c) noexcept {
        bind_counts(d, c);
        notify(d);
    }

    /// The connection (or template) bound to `d` was freed. Applies the OVERLOAD clear rule.
    void unbind(dest& d, conn_counter c) noexcept {
        unbind_counts(d, c);
        notify(d);
    }

    /// A bound connection entered an active state (TCP ESTABLISHED/SYN_*, SCTP ESTABLISHED).
    /// OVERLOAD is not touched: the total does not change (spec §1.5).
    void move_to_active(dest& d) noexcept {
        IPVS_ASSERT(d.inactive_conns > 0);
        --d.inactive_conns;
        ++d.active_conns;
        notify(d);
    }

    /// A bound connection left the active states.
    void move_to_inactive(dest& d) noexcept {
        IPVS_ASSERT(d.active_conns > 0);
        --d.active_conns;
        ++d.inactive_conns;
        notify(d);
    }

    // ---- observers ----

    /// The dests in the kernel's list order, head first.
    [[nodiscard]] sched::dest_list dests() const noexcept { return {m_list.data(), m_list.size()}; }
    [[nodiscard]] std::size_t num_dests() const noexcept { return m_list.size(); }
    [[nodiscard]] Sched& scheduler() noexcept { return m_sched; }
    [[nodiscard]] const Sched& scheduler() const noexcept { return m_sched; }
    [[nodiscard]] service_params& params() noexcept { return m_params; }
    [[nodiscard]] const service_params& params() const noexcept { return m_params; }

private:
    /// __ip_vs_update_dest's field updates, in the order the hooks rely on (spec §1.2, §1.4, §1.5).
    static void apply_config(dest& d, const dest_config& c, bool add) noexcept {
        d.fwd = c.fwd;
        d.tun = c.tun;
        d.weight = c.weight;
        // last_weight: the weight on add (even 0), afterwards the latest non-zero weight (mh only).
        if (add || c.weight != 0) d.last_weight = c.weight;
        d.flags |= dest_flag::available;
        d.u_threshold = c.u_threshold;
        d.l_threshold = c.l_threshold;
        overload_after_config(d);
    }

    void notify(dest& d) noexcept {
        // A dest in the caller's trash is in no scheduler any more (see the design block).
        if (d.available()) m_sched.counts_changed(dests(), d);
    }

    void index_insert(dest& d) {
        auto it = std::lower_bound(m_index.begin(), m_index.end(), d.ep,
                                   [](const dest* x, const endpoint& e) { return x->ep < e; });
        m_index.insert(it, &d); // capacity reserved by the caller: cannot throw
    }
    void index_erase(const dest& d) noexcept { m_index.erase(std::find(m_index.begin(), m_index.end(), &d)); }

    Sched m_sched;
    service_params m_params;
    std::vector<dest*> m_list;                  ///< list order, head first
    std::vector<dest*> m_index;                 ///< sorted by endpoint, for find_dest
    std::vector<std::unique_ptr<dest>> m_owned; ///< storage, in no particular order
    std::uint64_t m_seq = 0;                    ///< last list_seq handed out
};

} // namespace ipvs
