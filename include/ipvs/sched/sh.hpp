// SPDX-License-Identifier: MIT
// sh — source hashing (spec §2.9): a 256-bucket table keyed by the client address (and port with sh-port).
#pragma once

// Design
// ------
// Source: spec §2.9 (the kernel's ip_vs_sh.c), §1.9: the table is rebuilt on add, del and upd.
// Build: walk the buckets with a list cursor; a dest gets max(weight, 1) consecutive buckets per
// round, rounds repeat until the 256 buckets are full. Key: (offset + hash_32(port + fold(saddr), 8))
// & 255, port = the client's source port only with sh-port and a TCP/UDP/SCTP packet.
// Lookup returns the bucket's dest unless it is quiescent (weight <= 0) or OVERLOAD; with sh-fallback
// the kernel then probes buckets 2·ih, 2·ih+1, … (mod 256, a quirk of its offset arithmetic) for the
// first usable dest.
//
// `sh` answers the fallback probe in O(1) as well: it keeps a 256-bit bitmap of the buckets whose
// dest is usable, and per dest the mask of its buckets (masks of different dests are disjoint).
// Invariant: `m_usable` = OR of `mask` over the owners with `usable` set, `usable == eligible(d)` as of
// the last hook or counts_changed — a weight change arrives through upd_dest (rebuild), an OVERLOAD
// change through counts_changed, which XORs the dest's mask. The probe is then "first set bit at or
// after 2·ih, cyclically": four words at most. Only the first 256 dests of the list can own buckets,
// so `dest::sched_slot` (the owner index) is set for those; other dests are ignored by the hooks.
// `reference_sh` probes bucket by bucket, as the kernel does. Both build the table with `sh_build`.
// Deviation: none. The table size is the kernel default (CONFIG_IP_VS_SH_TAB_BITS = 8).

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <ipvs/detail/hash.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {

inline constexpr unsigned sh_tab_bits = 8;
inline constexpr std::size_t sh_tab_size = std::size_t{1} << sh_tab_bits;

} // namespace ipvs::sched

namespace ipvs::detail {
using sched::dest_list;
using sched::has_ports;
using sched::sched_flags;
using sched::sched_input;
using sched::sh_tab_bits;
using sched::sh_tab_size;

/// The kernel's ip_vs_sh_hashkey(): bucket of (addr, port) shifted by `offset`.
[[nodiscard]] constexpr std::size_t sh_hashkey(const inet_addr& addr, std::uint16_t port,
                                               std::uint32_t offset) noexcept {
    return (offset + ipvs::detail::hash_32(static_cast<std::uint32_t>(port + addr.fold()), sh_tab_bits)) &
           (sh_tab_size - 1);
}

/// The port sh hashes: the client's with sh-port and a protocol that has ports; else 0.
[[nodiscard]] constexpr std::uint16_t sh_port(sched_flags flags, const sched_input& in) noexcept {
    return flags.port && has_ports(in.protocol) ? in.sport : std::uint16_t{0};
}

/// Fills the buckets from the list (spec §2.9 "Table build"): max(weight, 1) consecutive buckets per
/// dest per round; all NULL for an empty list.
inline void sh_build(dest_list l, std::span<dest*, sh_tab_size> table) noexcept {
    std::size_t p = 0;
    int c = 0;
    for (dest*& b : table) {
        if (l.empty()) {
            b = nullptr;
            continue;
        }
        b = l[p];
        if (++c >= l[p]->weight) { // the current weight, not last_weight
            p = p + 1 == l.size() ? 0 : p + 1;
            c = 0;
        }
    }
}

/// A set of the 256 buckets as four words.
struct bucket_mask {
    std::array<std::uint64_t, sh_tab_size / 64> w{};

    void set(std::size_t i) noexcept { w[i >> 6] |= std::uint64_t{1} << (i & 63); }
    void toggle(const bucket_mask& o) noexcept {
        for (std::size_t k = 0; k < w.size(); ++k) w[k] ^= o.w[k];
    }
    /// The first member at or after `s`, wrapping past 255 to 0; sh_tab_size if empty.
    [[nodiscard]] std::size_t find_next_cyclic(std::size_t s) const noexcept {
        const std::size_t first = s >> 6;
        for (std::size_t k = 0; k <= w.size(); ++k) {
            const std::size_t wi = (first + k) % w.size();
            std::uint64_t bits = w[wi];
            if (k == 0) bits &= ~std::uint64_t{0} << (s & 63);           // at or after s
            if (k == w.size()) bits &= ~(~std::uint64_t{0} << (s & 63)); // wrapped: before s
            if (bits != 0) return wi * 64 + static_cast<std::size_t>(std::countr_zero(bits));
        }
        return sh_tab_size;
    }
};

} // namespace ipvs::detail

namespace ipvs::sched {

/// Source hashing with an O(1) fallback probe.
class sh {
public:
    sh() noexcept = default;
    explicit sh(sched_flags flags) noexcept : m_flags(flags) {}

    /// The kernel's init_service: build the table for a service that already has `l`.
    void init_service(dest_list l) { rebuild(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        const std::size_t ih = detail::sh_hashkey(in.saddr, detail::sh_port(m_flags, in), 0);
        dest* d = m_table[ih];
        if (d == nullptr) return nullptr; // empty service
        if (eligible(*d)) return d;
        if (!m_flags.fallback) return nullptr;
        const std::size_t b = m_usable.find_next_cyclic((2 * ih) & (sh_tab_size - 1));
        return b == sh_tab_size ? nullptr : m_table[b];
    }

    void add_dest(dest_list l, dest& /*d*/) { rebuild(l); }
    void del_dest(dest_list l, dest& /*d*/) { rebuild(l); }
    void upd_dest(dest_list l, dest& /*d*/) { rebuild(l); }

    void counts_changed(dest_list /*l*/, dest& d) noexcept {
        if (d.sched_slot >= m_owners.size()) return;
        owner& o = m_owners[static_cast<std::size_t>(d.sched_slot)];
        if (o.d != &d || o.usable == eligible(d)) return; // not ours (e.g. trashed), or no change
        o.usable = !o.usable;
        m_usable.toggle(o.mask);
    }

    /// The buckets (for counting flows that move when the configuration changes).
    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_table; }

private:
    struct owner {
        dest* d = nullptr;
        detail::bucket_mask mask;
        bool usable = false;
    };

    void rebuild(dest_list l) {
        detail::sh_build(l, m_table);
        // A dest owns buckets only if the build's cursor reached it: at most the first 256.
        m_owners.assign(std::min(l.size(), sh_tab_size), owner{});
        for (std::size_t i = 0; i < m_owners.size(); ++i) {
            m_owners[i].d = l[i];
            m_owners[i].usable = eligible(*l[i]);
            l[i]->sched_slot = i;
        }
        for (std::size_t b = 0; b < sh_tab_size; ++b)
            if (m_table[b] != nullptr) m_owners[static_cast<std::size_t>(m_table[b]->sched_slot)].mask.set(b);
        m_usable = {};
        for (const owner& o : m_owners)
            if (o.usable) m_usable.toggle(o.mask);
    }

    sched_flags m_flags{};
    std::array<dest*, sh_tab_size> m_table{};
    std::vector<owner> m_owners;
    detail::bucket_mask m_usable;
};

/// The kernel's sh, literally (spec §2.9): the fallback probes bucket by bucket.
class reference_sh {
public:
    reference_sh() noexcept = default;
    explicit reference_sh(sched_flags flags) noexcept : m_flags(flags) {}

    void init_service(dest_list l) noexcept { detail::sh_build(l, m_table); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        const std::uint16_t port = detail::sh_port(m_flags, in);
        const auto ih = static_cast<std::uint32_t>(detail::sh_hashkey(in.saddr, port, 0));
        dest* d = m_table[ih];
        if (!m_flags.fallback) return d != nullptr && eligible(*d) ? d : nullptr;
        if (d == nullptr) return nullptr;
        if (eligible(*d)) return d;
        for (std::uint32_t off = 0; off < sh_tab_size; ++off) {
            const auto ro = static_cast<std::uint32_t>((off + ih) % sh_tab_size);
            d = m_table[detail::sh_hashkey(in.saddr, port, ro)];
            if (d == nullptr) return nullptr;
            if (eligible(*d)) return d;
        }
        return nullptr;
    }

    void add_dest(dest_list l, dest& /*d*/) noexcept { detail::sh_build(l, m_table); }
    void del_dest(dest_list l, dest& /*d*/) noexcept { detail::sh_build(l, m_table); }
    void upd_dest(dest_list l, dest& /*d*/) noexcept { detail::sh_build(l, m_table); }
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_table; }

private:
    sched_flags m_flags{};
    std::array<dest*, sh_tab_size> m_table{};
};

static_assert(scheduler<sh>);
static_assert(scheduler<reference_sh>);

} // namespace ipvs::sched
