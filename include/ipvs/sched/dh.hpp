// SPDX-License-Identifier: MIT
// dh — destination hashing (spec §2.10): a 256-bucket table keyed by the packet's destination address.
#pragma once

// Design
// ------
// Source: spec §2.10 (the kernel's ip_vs_dh.c), §1.9: rebuilt on add and del only — the kernel has
// no upd hook for dh, and the build ignores weights, so an edit needs none.
// Build: bucket i holds the dest at list position i mod n (NULL for an empty list).
// Key: hash_32(fold(daddr), 8) — the destination address of the packet, no port.
// Lookup: NULL if the bucket is empty or its dest is not AVAILABLE, quiescent (weight <= 0) or
// OVERLOAD; there is no fallback. O(1).
// `dh` fills the table by index arithmetic; `reference_dh` walks the list cyclically as the kernel's
// build does. Deviation: none. Table size is the kernel default (CONFIG_IP_VS_DH_TAB_BITS = 8).

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include <ipvs/detail/hash.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {

inline constexpr unsigned dh_tab_bits = 8;
inline constexpr std::size_t dh_tab_size = std::size_t{1} << dh_tab_bits;

} // namespace ipvs::sched

namespace ipvs::detail {
using sched::dest_list;
using sched::dh_tab_bits;
using sched::dh_tab_size;
using sched::sched_flags;
using sched::sched_input;

/// The bucket of a packet's destination address.
[[nodiscard]] constexpr std::size_t dh_hashkey(const inet_addr& daddr) noexcept {
    return ipvs::detail::hash_32(daddr.fold(), dh_tab_bits);
}

/// The lookup's availability test: the bucket's dest must be in a service, weighted and not OVERLOAD.
[[nodiscard]] inline dest* dh_usable(dest* d) noexcept {
    return d != nullptr && d->available() && eligible(*d) ? d : nullptr;
}

} // namespace ipvs::detail

namespace ipvs::sched {

/// Destination hashing: one table read per pick.
class dh {
public:
    /// The kernel's init_service: build the table for a service that already has `l`.
    void init_service(dest_list l) noexcept { rebuild(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        return detail::dh_usable(m_table[detail::dh_hashkey(in.daddr)]);
    }

    void add_dest(dest_list l, dest& /*d*/) noexcept { rebuild(l); }
    void del_dest(dest_list l, dest& /*d*/) noexcept { rebuild(l); }
    void upd_dest(dest_list /*l*/, dest& /*d*/) noexcept {} // the kernel has no dh upd hook
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    /// The buckets (for counting flows that move when the configuration changes).
    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_table; }

private:
    void rebuild(dest_list l) noexcept {
        for (std::size_t i = 0; i < dh_tab_size; ++i) m_table[i] = l.empty() ? nullptr : l[i % l.size()];
    }

    std::array<dest*, dh_tab_size> m_table{};
};

/// The kernel's dh, literally (spec §2.10).
class reference_dh {
public:
    void init_service(dest_list l) noexcept { assign(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        dest* d = m_table[detail::dh_hashkey(in.daddr)];
        if (d == nullptr) return nullptr;
        if (!d->available() || d->weight <= 0 || d->overloaded()) return nullptr;
        return d;
    }

    void add_dest(dest_list l, dest& /*d*/) noexcept { assign(l); }
    void del_dest(dest_list l, dest& /*d*/) noexcept { assign(l); }
    void upd_dest(dest_list /*l*/, dest& /*d*/) noexcept {}
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_table; }

private:
    /// The kernel's ip_vs_dh_reassign: one list cursor, advanced (wrapping) after every bucket.
    void assign(dest_list l) noexcept {
        std::size_t p = 0;
        for (dest*& b : m_table) {
            if (l.empty()) {
                b = nullptr;
                continue;
            }
            b = l[p];
            if (++p == l.size()) p = 0;
        }
    }

    std::array<dest*, dh_tab_size> m_table{};
};

static_assert(scheduler<dh>);
static_assert(scheduler<reference_dh>);

} // namespace ipvs::sched
