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
// Layout of `mh` (the picks are the kernel's; only the representation differs):
//
//   m_slots[0..M)   uint32 position in the list at the last rebuild    (4 B a slot: 256 KB at 65521)
//   m_dests[pos]    that dest                   m_usable[pos] = eligible(dest) ? 1 : 0   (1 B a dest)
//
// A pick reads m_slots and m_usable, never the dest: its weight and OVERLOAD are mirrored in
// m_usable, rewritten by every rebuild (add, del, upd: weight edits) and by counts_changed (OVERLOAD
// moves on bind / unbind, spec §1.5). So mh now needs counts_changed, like the indexed schedulers,
// and owns dest::sched_slot (the dest's position, to find its byte in O(1)).
// Cost: a pick is one hsiphash and one table read, whatever the number of dests. The fallback probe
// is the kernel's and must stay so to return the same dest: expected M / (usable slots) hashes,
// at most M when nearly every slot belongs to an unusable dest.
// Population: "taken" is a bitmap (M bits, in L1), so the table is only written; a claim probes one
// slot at a time for its first few probes, then four at a time (next_free4). `reference_mh` is the
// spec's procedure verbatim (taken bitmap, nested list walk, pointer table, generic SipHash-1-3 over
// the value's bytes), so the differential test covers both hash paths and both probe loops.
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

/// Maglev hashing: one hash and one table read per pick, the dest itself not read.
class mh {
public:
    mh() : mh(sched_flags{}) {}
    explicit mh(sched_flags flags, std::uint32_t table_size = mh_default_table_size)
        : m_flags(flags), m_size(table_size), m_bits(detail::mh_table_bits(table_size)),
          m_slots(table_size, 0), m_taken((table_size + 63) / 64, 0) {}

    /// The kernel's init_service: populate for a service that already has `l`.
    void init_service(dest_list l) { populate(l); }

    [[nodiscard]] dest* schedule(dest_list /*l*/, const sched_input& in) noexcept {
        if (!m_filled) return nullptr; // no dest with a last_weight: the kernel's cleared table
        const std::uint32_t x = in.saddr.fold() + detail::mh_port(m_flags, in); // mod 2^32
        const std::uint32_t ih = ipvs::detail::hsiphash_u32(mh_hash1, x) % m_size;
        std::uint32_t i = m_slots[ih];
        if (m_usable[i] != 0) return m_dests[i];
        if (!m_flags.fallback) return nullptr;
        for (std::uint32_t ro = ih, off = 0; off < m_size; ++off, ro = ro + 1 == m_size ? 0 : ro + 1) {
            i = m_slots[ipvs::detail::hsiphash_u32(mh_hash1, ro + x) % m_size];
            if (m_usable[i] != 0) return m_dests[i];
        }
        return nullptr;
    }

    void add_dest(dest_list l, dest& /*d*/) { populate(l); }
    void del_dest(dest_list l, dest& /*d*/) { populate(l); }
    void upd_dest(dest_list l, dest& /*d*/) { populate(l); }
    /// OVERLOAD may have changed: re-reads `d`'s usable byte. A dest not listed is ignored.
    void counts_changed(dest_list /*l*/, dest& d) noexcept {
        const auto pos = static_cast<std::size_t>(d.sched_slot);
        if (pos < m_dests.size() && m_dests[pos] == &d) m_usable[pos] = eligible(d) ? 1 : 0;
    }

    /// The slots as dest pointers (all nullptr for the cleared table), for counting the flows that
    /// move when the configuration changes. Built from the index table on the first call after a
    /// rebuild (O(M), allocates once); the span then reads that copy: it stays valid, and its contents
    /// change with the next rebuild's first table() call.
    [[nodiscard]] std::span<dest* const> table() const {
        if (m_view.size() != m_size || m_view_stale) {
            m_view.resize(m_size);
            for (std::uint32_t i = 0; i < m_size; ++i) m_view[i] = m_filled ? m_dests[m_slots[i]] : nullptr;
            m_view_stale = false;
        }
        return m_view;
    }
    [[nodiscard]] std::uint32_t table_size() const noexcept { return m_size; }

private:
    struct perm {
        std::uint32_t next; ///< where the permutation's next claim starts looking
        std::uint32_t skip;
        std::uint32_t index; ///< the dest's position in the list (m_dests, m_usable)
        int turns;
    };

    /// Probes of one claim made one at a time before switching to next_free4 (mh_build benchmark:
    /// 4 to 16 do equally well; 0 costs the early claims, which mostly succeed at once, ~30%).
    static constexpr int scalar_probes = 8;

    /// The first free slot of the permutation after the taken slot `c`: c + skip, c + 2·skip, ... mod
    /// size, four at a time in four chains each advancing by 4·skip, so that the probes do not wait
    /// for each other and one branch decides four of them. Late in a population, when claims need
    /// dozens of probes, this makes the build ~15% faster than the reference's probe-by-probe loop.
    [[nodiscard]] static std::uint32_t next_free4(const std::uint64_t* taken, std::uint32_t size,
                                                  std::uint32_t c, std::uint32_t skip) noexcept {
        const auto add = [size](std::uint32_t v, std::uint32_t by) noexcept {
            v += by; // v, by < size <= 131071: no overflow
            return v >= size ? v - size : v;
        };
        const auto is_free = [taken](std::uint32_t v) noexcept {
            return static_cast<unsigned>(~(taken[v / 64] >> (v % 64)) & 1U);
        };
        std::uint32_t c4[4];
        c4[0] = add(c, skip);
        c4[1] = add(c4[0], skip);
        c4[2] = add(c4[1], skip);
        c4[3] = add(c4[2], skip);
        unsigned bits = is_free(c4[0]) | is_free(c4[1]) << 1 | is_free(c4[2]) << 2 | is_free(c4[3]) << 3;
        if (bits == 0) {
            const std::uint32_t skip2 = add(skip, skip), skip4 = add(skip2, skip2);
            do {
                c4[0] = add(c4[0], skip4);
                c4[1] = add(c4[1], skip4);
                c4[2] = add(c4[2], skip4);
                c4[3] = add(c4[3], skip4);
                bits = is_free(c4[0]) | is_free(c4[1]) << 1 | is_free(c4[2]) << 2 | is_free(c4[3]) << 3;
            } while (bits == 0);
        }
        return c4[std::countr_zero(bits)]; // the earliest free one in permutation order
    }

    void populate(dest_list l) {
        detail::mh_check_size(l, m_size);
        const detail::mh_weights w(l, m_bits);
        std::vector<dest*> dests(l.begin(), l.end());
        std::vector<std::uint8_t> usable(l.size());
        m_perm.reserve(l.size());
        // Nothing below throws: commit.
        for (std::size_t i = 0; i < l.size(); ++i) {
            usable[i] = eligible(*l[i]) ? 1 : 0;
            l[i]->sched_slot = i;
        }
        m_dests = std::move(dests);
        m_usable = std::move(usable);
        m_view_stale = true;
        m_filled = w.gcd >= 1;
        if (!m_filled) return;
        m_perm.clear();
        for (std::uint32_t i = 0; i < l.size(); ++i) {
            const dest& d = *l[i];
            if (w.turns(d) < 1) continue; // added with weight 0: no slots, and its turn is skipped
            const std::uint32_t x = d.ep.addr.fold() + d.ep.port; // the dest's own port, always
            m_perm.push_back(perm{ipvs::detail::hsiphash_u32(mh_hash1, x) % m_size,
                                  ipvs::detail::hsiphash_u32(mh_hash2, x) % (m_size - 1) + 1, i, w.turns(d)});
        }
        // Dests claim slots in list order, `turns` consecutive claims each, wrapping round the list;
        // `count` carries over between rounds as in the kernel. "Taken" is a bitmap (M bits: 8 KB
        // at M = 65521, in L1), not the table itself. Locals, so that the stores into the table
        // cannot alias what the loop reads.
        std::fill(m_taken.begin(), m_taken.end(), 0);
        const std::uint32_t size = m_size;
        std::uint64_t* const taken = m_taken.data();
        std::uint32_t* const slots = m_slots.data();
        perm* const perms = m_perm.data();
        const std::size_t nperm = m_perm.size();
        const auto is_taken = [taken](std::uint32_t c) noexcept {
            return ((taken[c / 64] >> (c % 64)) & 1U) != 0;
        };
        std::uint32_t left = size;
        int count = 0;
        for (std::size_t i = 0;;) {
            perm& p = perms[i];
            const auto step = [&p, size](std::uint32_t c) noexcept {
                return c + p.skip >= size ? c + p.skip - size : c + p.skip;
            };
            std::uint32_t c = p.next;
            for (int k = 0; is_taken(c); ++k) {
                if (k == scalar_probes) {
                    c = next_free4(taken, size, c, p.skip);
                    break;
                }
                c = step(c);
            }
            taken[c / 64] |= std::uint64_t{1} << (c % 64);
            slots[c] = p.index;
            p.next = step(c); // c is taken now: the kernel's next look at it would move on at once
            if (--left == 0) return;
            if (++count < p.turns) continue; // the same dest claims again
            count = 0;
            i = i + 1 == nperm ? 0 : i + 1;
        }
    }

    sched_flags m_flags;
    std::uint32_t m_size;
    unsigned m_bits;
    bool m_filled = false;              ///< false: the kernel's cleared table (no picks)
    std::vector<std::uint32_t> m_slots; ///< M entries: a position in m_dests (when m_filled)
    std::vector<dest*> m_dests;         ///< the list at the last populate
    std::vector<std::uint8_t> m_usable; ///< per position: eligible(dest), kept by the hooks
    std::vector<std::uint64_t> m_taken; ///< populate's scratch: M bits
    std::vector<perm> m_perm;           ///< populate's scratch, reused
    mutable std::vector<dest*> m_view;  ///< table()'s output
    mutable bool m_view_stale = true;
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
