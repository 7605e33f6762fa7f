// SPDX-License-Identifier: MIT
// mh — Maglev hashing (spec §2.13): a prime-sized lookup table filled from per-dest permutations.
#pragma once

// Design
// ------
// Source: spec §2.13 (the kernel's ip_vs_mh.c; Maglev, Eisenbud et al., NSDI 2016, §3.4), §1.9: the
// table is rebuilt on add, del and upd.
// Hash: H(key, v) = the kernel's 64-bit hsiphash of the u32 v; mhkey(addr, port, key, off) =
// H(key, off + port + fold(addr)). Per dest (list order): offset = mhkey(dest, hash1) mod M,
// skip = mhkey(dest, hash2) mod (M − 1) + 1, and `turns` from last_weight (gcd-reduced, shifted right
// so the largest fits in MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2 bits). Population: dests take
// turns in list order, each claiming `turns` slots per round at the next free slot of its
// permutation, until all M slots are taken. last_weight (not weight) drives the population, so a
// dest edited to weight 0 keeps its slots and lookups hitting them fail or fall back.
// Lookup: slot = mhkey(saddr, port, hash1, 0) mod M (port only with mh-port and TCP/UDP/SCTP); its
// dest unless quiescent or OVERLOAD; with mh-fallback probe slots mhkey(…, ro) for ro = ih, ih+1, …
//
// Cost: a pick is one hsiphash and one table read, whatever the number of dests. The fallback probe
// is the kernel's and must stay so to return the same dest: expected M / (usable slots) hashes,
// at most M when nearly every slot belongs to an unusable dest.
// `mh` populates with the table itself as the "taken" map and the specialised hsiphash_u32;
// `reference_mh` is the spec's procedure verbatim (separate taken bitmap, nested list walk, generic
// SipHash-1-3 over the value's bytes), so the differential test covers both hash paths.
// Configuration errors (std::invalid_argument): a table size not in `mh_primes`, or more dests than
// slots (the kernel's EINVAL) — thrown by the constructor and by add_dest before any state changes.
// Deviation: none known. The spec does not say what becomes of the add after the kernel's EINVAL;
// here the hook throws and leaves the table as it was, so the service can roll the add back.

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <vector>

#include <ipvs/detail/hash.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::sched {

/// The table sizes the kernel offers (CONFIG_IP_VS_MH_TAB_INDEX 8..17 → primes[index − 8]).
inline constexpr std::array<std::uint32_t, 10> mh_primes = {251,  509,   1021,  2039,  4093,
                                                            8191, 16381, 32749, 65521, 131071};
/// The kernel default (index 12) and the recorded kernels' size.
inline constexpr std::uint32_t mh_default_table_size = 4093;
/// The two fixed keys (each word an `unsigned long` holding the constant).
inline constexpr ipvs::detail::siphash_key mh_hash1{2654435761U, 2654435761U};
inline constexpr ipvs::detail::siphash_key mh_hash2{2654446892U, 2654446892U};

} // namespace ipvs::sched

namespace ipvs::detail {
using sched::dest_list;
using sched::has_ports;
using sched::mh_hash1;
using sched::mh_hash2;
using sched::mh_primes;
using sched::sched_flags;
using sched::sched_input;

/// MH_TAB_BITS for table size `m` (CONFIG_IP_VS_MH_TAB_INDEX / 2); throws for a size not offered.
[[nodiscard]] inline unsigned mh_table_bits(std::uint32_t m) {
    for (std::size_t i = 0; i < mh_primes.size(); ++i)
        if (mh_primes[i] == m) return static_cast<unsigned>((i + 8) / 2);
    throw std::invalid_argument("mh: the table size must be one of 251, 509, 1021, 2039, 4093, 8191, "
                                "16381, 32749, 65521, 131071");
}

inline void mh_check_size(dest_list l, std::uint32_t m) {
    if (l.size() > m) throw std::invalid_argument("mh: more dests than table slots");
}

/// What the population reads of the weights: the gcd and the right shift (spec §2.13 "Weights").
struct mh_weights {
    int gcd = 0; ///< of the last_weights > 0; 0 if none (the table is then cleared)
    int rshift = 0;
    explicit mh_weights(dest_list l, unsigned tab_bits) noexcept {
        int max = 0;
        for (const dest* d : l) {
            if (d->last_weight > 0) gcd = std::gcd(gcd, d->last_weight);
            max = std::max(max, d->last_weight);
        }
        if (gcd > 0)
            rshift = std::max(0, static_cast<int>(std::bit_width(static_cast<unsigned>(max / gcd))) -
                                     static_cast<int>(tab_bits));
    }
    [[nodiscard]] int turns(const dest& d) const noexcept {
        const int t = (d.last_weight / gcd) >> rshift;
        return t != 0 ? t : (d.last_weight != 0 ? 1 : 0);
    }
};

/// The port mh hashes: the client's with mh-port and a protocol that has ports; else 0.
[[nodiscard]] constexpr std::uint16_t mh_port(sched_flags flags, const sched_input& in) noexcept {
    return flags.port && has_ports(in.protocol) ? in.sport : std::uint16_t{0};
}

} // namespace ipvs::detail

namespace ipvs::sched {

/// Maglev hashing: one hash and one table read per pick.
class mh {
public:
    mh() : mh(sched_flags{}) {}
    explicit mh(sched_flags flags, std::uint32_t table_size = mh_default_table_size)
        : m_flags(flags), m_size(table_size), m_bits(detail::mh_table_bits(table_size)),
          m_table(table_size, nullptr) {}

    /// The kernel's init_service: populate for a service that already has `l`.
    void init_service(dest_list l) { populate(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        const std::uint32_t x = in.saddr.fold() + detail::mh_port(m_flags, in); // mod 2^32
        const std::uint32_t ih = ipvs::detail::hsiphash_u32(mh_hash1, x) % m_size;
        dest* d = m_table[ih];
        if (d == nullptr) return nullptr; // empty table
        if (eligible(*d)) return d;
        if (!m_flags.fallback) return nullptr;
        for (std::uint32_t ro = ih, off = 0; off < m_size; ++off, ro = ro + 1 == m_size ? 0 : ro + 1) {
            d = m_table[ipvs::detail::hsiphash_u32(mh_hash1, ro + x) % m_size];
            if (d == nullptr) return nullptr;
            if (eligible(*d)) return d;
        }
        return nullptr;
    }

    void add_dest(dest_list l, dest& /*d*/) { populate(l); }
    void del_dest(dest_list l, dest& /*d*/) { populate(l); }
    void upd_dest(dest_list l, dest& /*d*/) { populate(l); }
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    /// The slots (for counting flows that move when the configuration changes).
    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_table; }
    [[nodiscard]] std::uint32_t table_size() const noexcept { return m_size; }

private:
    struct perm {
        dest* d;
        std::uint32_t next; ///< the permutation's current position (starts at the offset)
        std::uint32_t skip;
        int turns;
    };

    void populate(dest_list l) {
        detail::mh_check_size(l, m_size);
        std::fill(m_table.begin(), m_table.end(), nullptr);
        const detail::mh_weights w(l, m_bits);
        if (w.gcd < 1) return;
        m_perm.clear();
        for (dest* d : l) {
            const std::uint32_t x = d->ep.addr.fold() + d->ep.port; // the dest's own port, always
            m_perm.push_back(perm{d, ipvs::detail::hsiphash_u32(mh_hash1, x) % m_size,
                                  ipvs::detail::hsiphash_u32(mh_hash2, x) % (m_size - 1) + 1, w.turns(*d)});
        }
        // Dests claim slots in list order, `turns` consecutive claims each, wrapping round the list;
        // a slot is taken when it holds a dest. `count` carries over between rounds as in the kernel.
        std::uint32_t filled = 0;
        int count = 0;
        for (std::size_t i = 0;;) {
            perm& p = m_perm[i];
            if (p.turns >= 1) {
                while (m_table[p.next] != nullptr) {
                    p.next += p.skip;
                    if (p.next >= m_size) p.next -= m_size;
                }
                m_table[p.next] = p.d;
                if (++filled == m_size) return;
                if (++count < p.turns) continue; // the same dest claims again
                count = 0;
            }
            i = i + 1 == m_perm.size() ? 0 : i + 1;
        }
    }

    sched_flags m_flags;
    std::uint32_t m_size;
    unsigned m_bits;
    std::vector<dest*> m_table;
    std::vector<perm> m_perm; ///< reused between rebuilds
};

/// The kernel's mh, literally (spec §2.13).
class reference_mh {
public:
    reference_mh() : reference_mh(sched_flags{}) {}
    explicit reference_mh(sched_flags flags, std::uint32_t table_size = mh_default_table_size)
        : m_flags(flags), m_size(table_size), m_bits(detail::mh_table_bits(table_size)),
          m_lookup(table_size, nullptr) {}

    void init_service(dest_list l) { populate(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        const std::uint16_t port = detail::mh_port(m_flags, in);
        const std::uint32_t ih = mhkey(in.saddr, port, mh_hash1, 0) % m_size;
        dest* d = m_lookup[ih];
        const auto unavailable = [](const dest* e) { return e->weight <= 0 || e->overloaded(); };
        if (!m_flags.fallback) return d == nullptr || unavailable(d) ? nullptr : d;
        if (d == nullptr) return nullptr;
        if (!unavailable(d)) return d;
        for (std::uint32_t off = 0; off < m_size; ++off) {
            const std::uint32_t ro = (off + ih) % m_size;
            d = m_lookup[mhkey(in.saddr, port, mh_hash1, ro) % m_size];
            if (d == nullptr) return nullptr;
            if (!unavailable(d)) return d;
        }
        return nullptr;
    }

    void add_dest(dest_list l, dest& /*d*/) { populate(l); }
    void del_dest(dest_list l, dest& /*d*/) { populate(l); }
    void upd_dest(dest_list l, dest& /*d*/) { populate(l); }
    void counts_changed(dest_list /*l*/, dest& /*d*/) noexcept {}

    [[nodiscard]] std::span<dest* const> table() const noexcept { return m_lookup; }

private:
    /// H(key, v): SipHash-1-3 of v's four bytes in little-endian order, low 32 bits.
    static std::uint32_t hash(ipvs::detail::siphash_key key, std::uint32_t v) noexcept {
        const std::array<std::uint8_t, 4> bytes = {
            static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
            static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
        return static_cast<std::uint32_t>(ipvs::detail::siphash<1, 3>(key, bytes));
    }
    static std::uint32_t mhkey(const inet_addr& addr, std::uint16_t port, ipvs::detail::siphash_key key,
                               std::uint32_t offset) noexcept {
        return hash(key, offset + port + addr.fold());
    }

    void populate(dest_list l) {
        detail::mh_check_size(l, m_size);
        struct dest_setup {
            std::uint32_t perm;
            std::uint32_t skip;
            int turns;
        };
        std::fill(m_lookup.begin(), m_lookup.end(), nullptr);
        const detail::mh_weights w(l, m_bits);
        if (w.gcd < 1) return; // no dest with a last_weight: the table stays cleared
        std::vector<dest_setup> ds;
        for (const dest* d : l) {
            ds.push_back({mhkey(d->ep.addr, d->ep.port, mh_hash1, 0) % m_size,
                          mhkey(d->ep.addr, d->ep.port, mh_hash2, 0) % (m_size - 1) + 1, w.turns(*d)});
        }
        std::vector<bool> taken(m_size, false);
        std::uint32_t n = 0;
        int dt_count = 0;
        while (n < m_size) {
            std::size_t i = 0;
            while (i < l.size()) {
                if (ds[i].turns < 1) { // added with weight 0: no slots
                    ++i;
                    continue;
                }
                std::uint32_t c = ds[i].perm;
                while (taken[c]) {
                    ds[i].perm += ds[i].skip;
                    if (ds[i].perm >= m_size) ds[i].perm -= m_size;
                    c = ds[i].perm;
                }
                taken[c] = true;
                m_lookup[c] = l[i];
                if (++n == m_size) return;
                if (++dt_count >= ds[i].turns) {
                    dt_count = 0;
                    ++i;
                }
            }
        }
    }

    sched_flags m_flags;
    std::uint32_t m_size;
    unsigned m_bits;
    std::vector<dest*> m_lookup;
};

static_assert(scheduler<mh>);
static_assert(scheduler<reference_mh>);

} // namespace ipvs::sched
