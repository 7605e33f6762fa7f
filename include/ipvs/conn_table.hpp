// SPDX-License-Identifier: MIT
// The connection table: fixed capacity, one writer, O(1) lookups both ways, templates, expiry, flood defense.
#pragma once

// Design
// ------
// Source: ip_vs_conn.c as spec §3 describes it — one hash over (protocol, caddr, cport), the in-,
// out- and template lookups of §3.3, the expiry rules of §3.5/§3.6, the defense of §3.8.
//
// Share-nothing model: one conn_table per core, never shared, never locked. Packets reach the core
// that owns their flow by `shard_of(flow_hasher::hash_inbound / hash_outbound, n)` (flow_hash.hpp):
// both directions of a NATed flow hash the *client* endpoint, which NAT leaves alone, so the client's
// packets and the real server's replies meet on the same core and in the same probe sequence of its
// table. (NIC RSS on the 5-tuple is not symmetric across NAT; steer in software or program the NIC.)
//
// Layout — open addressing in the style of boost::unordered_flat_map (Boost.Unordered foa/): a
// compact metadata array and the entries themselves in the slots. Three arrays, allocated once at
// construction, never resized:
//
//   meta     [G] × 16 B                    G = ⌈capacity / (15 × 0.9)⌉ groups
//   entries  [15·G] × sizeof(Entry)        conn4 56 B / conn6 80 B; slot index = the entry's handle
//   wheel    2^slot_bits × 12 B + bitmap   timer_wheel.hpp
//
//   one metadata group (16 B)                    its entries: slots 15g … 15g+14
//   +--------------------------------+-----+     +---------+-----------+-----+------------+
//   | tag[0..14]   (0 = empty slot)  | ovf |     | e[15g]  | e[15g+1]  |  …  | e[15g+14]  |
//   +--------------------------------+-----+     +---------+-----------+-----+------------+
//    0                              15    16
//
// A key's 64-bit flow hash picks its home group (bits 63..32, multiply-shift) and its tag (bits 7..0,
// never 0). Lookup: compare the 15 tags at once (SSE2, or a byte loop elsewhere), check the entry in
// each matching slot, then stop unless ovf ≠ 0, else go on to the next group (linear probing,
// wrapping; the next group is usually in the same cache line). ovf counts the entries that were
// inserted past this group because it was full; erase decrements the counts on the path, so — unlike
// boost's sticky overflow bits, which a rehash clears — a table of fixed size does not degrade under
// endless churn (a count saturates at 255 and then stays: only a pathological cluster gets there).
// Entries never move (no rehash, no displacement), so a slot index is a stable handle for the timer
// wheel and for `control`. The metadata is 1.07 B per slot, so it stays in cache far longer than the
// entries: a hit costs one DRAM access (the entry), a miss usually none, like boost::unordered_flat_map;
// a full table (90 %) probes further on misses than boost's, which grows by doubling and sits lower.
//
// Memory per connection, index included, at full capacity (90 % of the slots, boost allows 87.5 %):
// IPv4 (56 + 16/15) / 0.9 = 63.4 B; IPv6 (80 + 16/15) / 0.9 = 90.1 B; plus the wheel (12 B × wheel
// slots: by default ≤ 0.4 B per connection, ≤ 0.8 MB). Pass conn_counters as the entry's Stats
// policy for per-connection packets/bytes (+16 B an entry).
//
// Lookups (spec §3.3). All three hash (protocol, caddr, cport); they differ in what else must match:
// - find_in (client → VIP): caddr, cport, vaddr, vport, protocol (one memcmp of the key bytes) and
//   (cport == 0) == NO_CPORT; retried with cport 0 while any NO_CPORT entry exists. Never a template.
// - find_out (real server → client): caddr, cport, protocol, and the real server = (dest addr, dport)
//   for MASQ connections, (vaddr, vport) otherwise. No templates. When a client endpoint reused
//   towards another virtual service lands on the same real server, two entries share an out tuple;
//   the kernel answers with the newest (it hashes at the bucket's head), so insert marks the older
//   ones out-shadowed; when the owner goes, they answer again. Deviation: with three or more such
//   entries, which of the survivors answers is not by age (Linux: the newest).
// - find_template: the key bytes and TEMPLATE, not invalidated (§3.5: a template failing
//   check_template is re-keyed to vport 0xffff and left to expire; here it is also marked so that it
//   never matches, even for a service on port 65535).
// - *_batch: the same answers for a burst of keys through a rolling three-stage software pipeline
//   (hash + prefetch the metadata; match tags + prefetch the entry; resolve), 16 keys apart.
//   find_in_batch also prefetches, for writing, the slot a missed key's insert would take.
//
// Expiry (spec §3.6): insert arms the entry's timer at now + timeout, touch() re-arms it (a single
// store when the deadline moves later), expire() polls the wheel. An entry that fires while it
// controls connections (n_control > 0) is re-armed with 60 s and its timeout becomes 60 s (callback
// reason `deferred`); otherwise it is unhashed, detached from its controller, handed to the callback
// (reason `timed_out`: do the dest bookkeeping there) and freed. If an entry whose timeout is 0
// ("expired now") releases the last connection of a controller that is not an ASSURED template, the
// controller expires now too (§3.5).
//
// Flood defense (spec §3.8, plus a bound the kernel lacks). Entries are inserted `embryonic` (a new
// connection: SYN, first datagram) or `established`; confirm() moves one to established (the
// director calls it when the state machine reaches ESTABLISHED, or a UDP reply is seen) and also
// confirms its controlling template.
// - At most `embryonic_limit` (default capacity/2) embryonic entries exist: an embryonic insert at the
//   limit, and any insert into a full table, first evicts one embryonic entry — the least recently
//   touched of `evict_samples` random embryonic entries (sampled LRU, at most `evict_probes` probes),
//   never one that controls connections, never the `control` passed to that insert. An established
//   entry is never evicted, so a spoofed SYN / UDP flood cannot evict or starve established flows, and
//   at least capacity − embryonic_limit slots stay available to them. If no victim is found the
//   insert fails (`embryonic_limit` / `full`); the table never exceeds its capacity or allocates.
// - At most `max_per_client` entries may share one (protocol, caddr, cport): they share one hash, so
//   this bounds the probe length an attacker can build from one spoofed source endpoint.
// - The kernel's modes: `drop_entry()` is random_dropentry (scan capacity-proportional random groups,
//   drop embryonic / idle entries by the §3.8 rules, including the per-in_pkts countdown), and
//   `defense` holds update_defense_level's mode machine for drop_entry, drop_packet (todrop()) and
//   secure_tcp, fed with the table's free slots as "available memory".
//
// Invariants: size() ≤ capacity(); every in-use entry is in exactly one index slot and armed in the
// wheel; the embryonic count equals the entries with conn_bit::embryonic; no operation allocates after
// construction; lookups, insert, erase, touch are O(1) expected (bounded by max_per_client for one
// client endpoint). Not thread-safe by design (one writer per table).
//
// Deviations from the kernel: fixed capacity instead of unbounded chains; iteration is in entry order,
// not bucket order (it only ever mattered for listing order, §3.2); no refcounts (an entry is never
// in use across an expire() call); duplicate inserts are refused (`exists`) where the kernel would
// hash a second entry; the embryonic bound and per-client bound are additions.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>
#include <ipvs/conn.hpp>
#include <ipvs/flow_hash.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/timer_wheel.hpp>

namespace ipvs {

enum class insert_status : std::uint8_t {
    inserted, ///< the new entry is in the table
    exists,   ///< an entry with the same key (and template-ness) is already there: `entry` points to it
    full,     ///< capacity reached and no embryonic entry could be evicted
    embryonic_limit, ///< embryonic bound reached and no embryonic entry could be evicted
    client_limit,    ///< max_per_client entries already share this (protocol, caddr, cport)
};

template <class Entry>
struct insert_result {
    insert_status status;
    Entry* entry; ///< the new entry (inserted) or the existing one (exists); nullptr otherwise
    [[nodiscard]] explicit operator bool() const noexcept { return status == insert_status::inserted; }
};

/// How an insert counts for the flood defense.
enum class admit : std::uint8_t { embryonic, established };

/// Why the removal callback is called.
enum class expire_reason : std::uint8_t {
    timed_out, ///< the timer fired: the entry is removed after the callback
    evicted,   ///< flood defense made room: the entry is removed after the callback
    deferred,  ///< the timer fired while it controls connections: re-armed with 60 s, not removed
};

struct conn_table_config {
    std::size_t capacity = 4096;
    std::size_t embryonic_limit = 0; ///< 0 → capacity / 2
    std::uint32_t max_per_client = 64;
    timer_wheel_config wheel{.slot_bits = 0};   ///< slot_bits 0 → chosen from the capacity (8..16)
    std::uint64_t seed = 0x5eed5eed5eed5eedULL; ///< eviction sampling and drop_entry randomness
    unsigned evict_samples = 8;
    unsigned evict_probes = 64;
};

/// What drop_entry does with an entry (spec §3.8).
enum class drop_verdict : std::uint8_t { keep, drop, try_drop };

/// random_dropentry's rules, on the kernel's numeric states (TCP spec §4.1, SCTP §5.1).
struct kernel_drop_rule {
    template <class Entry>
    [[nodiscard]] constexpr drop_verdict operator()(const Entry& e) const noexcept {
        if (e.is_template()) {
            if (e.flags & conn_flag::one_packet) return drop_verdict::try_drop;
            return (e.state & template_assured) ? drop_verdict::keep : drop_verdict::drop;
        }
        if (e.protocol == ipproto::tcp) {
            constexpr std::uint8_t established = 1, syn_recv = 3, synack = 10;
            if (e.state == syn_recv || e.state == synack) return drop_verdict::drop;
            return e.state == established ? drop_verdict::try_drop : drop_verdict::keep;
        }
        if (e.protocol == ipproto::sctp) {
            constexpr std::uint8_t init1 = 1, init = 2, established = 8;
            if (e.state == init1 || e.state == init) return drop_verdict::drop;
            return e.state == established ? drop_verdict::try_drop : drop_verdict::keep;
        }
        return drop_verdict::try_drop;
    }
};

/// update_defense_level's mode machine (spec §3.8) for the drop_entry, drop_packet and secure_tcp
/// sysctls (0 off, 1 auto, 2 auto and active, 3 always), called once a second with the available
/// "memory" — for a conn_table, its free slots, with amemthresh in entries.
class defense {
public:
    int drop_entry = 0;
    int drop_packet = 0;
    int secure_tcp = 0;
    int am_droprate = 10;
    long amemthresh = 1024;

    void update(long availmem) noexcept {
        const bool nomem = availmem < amemthresh;
        m_drop_entry_on = step(drop_entry, nomem);
        m_secure_tcp_on = step(secure_tcp, nomem);
        switch (drop_packet) {
        case 0:
            m_rate = 0;
            break;
        case 1:
        case 2:
            if (nomem) {
                m_rate = m_counter = static_cast<int>(amemthresh / (amemthresh - availmem));
                drop_packet = 2;
            } else {
                m_rate = 0;
                drop_packet = 1;
            }
            break;
        default:
            m_rate = am_droprate;
            break;
        }
    }
    [[nodiscard]] bool drop_entry_active() const noexcept { return m_drop_entry_on; }
    [[nodiscard]] bool secure_tcp_active() const noexcept { return m_secure_tcp_on; }
    [[nodiscard]] int drop_rate() const noexcept { return m_rate; }
    /// todrop(): once per scheduling attempt; drops one of every `drop_rate()` new connections.
    [[nodiscard]] bool todrop() noexcept {
        if (m_rate == 0) return false;
        if (--m_counter > 0) return false;
        m_counter = m_rate;
        return true;
    }

private:
    static bool step(int& mode, bool nomem) noexcept {
        switch (mode) {
        case 0:
            return false;
        case 1:
            if (!nomem) return false;
            mode = 2;
            return true;
        case 2:
            if (nomem) return true;
            mode = 1;
            return false;
        default:
            return true;
        }
    }
    bool m_drop_entry_on = false;
    bool m_secure_tcp_on = false;
    int m_rate = 0;
    int m_counter = 0;
};

namespace detail {

/// One metadata group: 15 tags and the overflow count; its entries are slots 15·g … 15·g + 14.
struct alignas(16) conn_group {
    std::uint8_t tag[15];
    std::uint8_t ovf;
};
static_assert(sizeof(conn_group) == 16);
inline constexpr unsigned group_width = 15;

/// Bit i set ⇔ tags[i] == t, for i < 15 (portable version).
[[nodiscard]] inline std::uint32_t match_tag_portable(const std::uint8_t* tags, std::uint8_t t) noexcept {
    std::uint32_t m = 0;
    for (unsigned i = 0; i < group_width; ++i) m |= static_cast<std::uint32_t>(tags[i] == t) << i;
    return m;
}
/// Bit i set ⇔ tags[i] == t, i < 15; `tags` is 16-byte aligned (the start of a conn_group).
[[nodiscard]] inline std::uint32_t match_tag(const std::uint8_t* tags, std::uint8_t t) noexcept {
#if defined(__SSE2__)
    const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(tags));
    const int m = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(t))));
    return static_cast<std::uint32_t>(m) & 0x7fffU;
#else
    return match_tag_portable(tags, t);
#endif
}

/// splitmix64: eviction sampling and drop_entry.
struct rng64 {
    std::uint64_t s;
    std::uint64_t next() noexcept {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, n) for n < 2^32.
    std::uint32_t below(std::uint64_t n) noexcept {
        return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32);
    }
};

inline void prefetch(const void* p) noexcept { __builtin_prefetch(p, 0, 3); }

} // namespace detail

/// The connection table. `Entry` is basic_conn<4|16, Stats> (conn4 / conn6); `Hash` maps
/// (protocol, caddr, cport) to 64 bits (flow_hasher); `Clock` gives `now()` (read once per call that
/// needs time — for a datapath, a clock the poll loop sets once per burst); `Allocator` allocates the
/// three arrays, once, in the constructor.
template <class Entry = conn4, class Hash = flow_hasher, class Clock = steady_clock,
          class Allocator = std::allocator<Entry>>
class conn_table {
    static_assert(std::is_same_v<Entry, basic_conn<Entry::addr_len, typename Entry::stats_type>>,
                  "ipvs: conn_table<Entry> needs Entry = basic_conn<4 or 16, Stats> (conn4, conn6)");

public:
    static constexpr std::size_t addr_len = Entry::addr_len;
    using entry_type = Entry;
    using addr_type = typename Entry::addr_type;
    using in_type = in_tuple<addr_len>;
    using out_type = out_tuple<addr_len>;
    using handle_type = std::uint32_t;

    static_assert(
        std::is_invocable_r_v<std::uint64_t, const Hash&, std::uint8_t, const addr_type&, std::uint16_t>,
        "ipvs: Hash must be callable as hash(std::uint8_t proto, const addr_bytes<N>& caddr, "
        "std::uint16_t cport) -> std::uint64_t (see flow_hasher)");

    explicit conn_table(conn_table_config cfg = {}, Hash hash = Hash(), Clock clock = Clock(),
                        const Allocator& alloc = Allocator())
        : m_cfg(validate(cfg)), m_hash(std::move(hash)), m_clock(std::move(clock)),
          m_groups(group_count(m_cfg.capacity), detail::conn_group{}, group_alloc_t(alloc)),
          m_pool(m_groups.size() * detail::group_width, Entry{}, alloc),
          m_wheel(pool_hooks{m_pool.data()}, static_cast<std::uint32_t>(m_pool.size()), m_cfg.wheel,
                  hook_alloc_t(alloc)),
          m_rng{m_cfg.seed}, m_ngroups(static_cast<std::uint32_t>(m_groups.size())) {}

    conn_table(const conn_table&) = delete;
    conn_table& operator=(const conn_table&) = delete;

    // --- sizes --------------------------------------------------------------------------------------
    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] bool empty() const noexcept { return m_size == 0; }
    [[nodiscard]] std::size_t capacity() const noexcept { return m_cfg.capacity; }
    /// Slots (capacity / 0.9, rounded up to whole groups): handles are below this.
    [[nodiscard]] std::size_t slots() const noexcept { return m_pool.size(); }
    [[nodiscard]] std::size_t available() const noexcept { return capacity() - m_size; }
    [[nodiscard]] std::size_t embryonic() const noexcept { return m_embryonic; }
    [[nodiscard]] std::size_t embryonic_limit() const noexcept { return m_cfg.embryonic_limit; }
    [[nodiscard]] std::size_t index_groups() const noexcept { return m_ngroups; }
    /// Bytes of the entry slots and the metadata (what the per-connection budget counts).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        return m_pool.size() * sizeof(Entry) + m_groups.size() * sizeof(detail::conn_group);
    }
    /// The same plus the timer wheel's own arrays.
    [[nodiscard]] std::size_t total_memory_bytes() const noexcept {
        return memory_bytes() + m_wheel.memory_bytes();
    }

    [[nodiscard]] Clock& clock() noexcept { return m_clock; }
    [[nodiscard]] const Hash& hasher() const noexcept { return m_hash; }
    [[nodiscard]] const timer_wheel_config& wheel_config() const noexcept { return m_cfg.wheel; }

    [[nodiscard]] handle_type handle(const Entry& e) const noexcept {
        IPVS_ASSERT(&e >= m_pool.data() && &e < m_pool.data() + m_pool.size());
        return static_cast<handle_type>(&e - m_pool.data());
    }
    [[nodiscard]] Entry& at(handle_type h) noexcept { return m_pool[h]; }
    [[nodiscard]] const Entry& at(handle_type h) const noexcept { return m_pool[h]; }
    /// The controlling template of `e`, or nullptr.
    [[nodiscard]] Entry* controller(const Entry& e) noexcept {
        return e.control == nil_handle ? nullptr : &m_pool[e.control];
    }
    /// The absolute (tick-rounded) expiry time of `e`.
    [[nodiscard]] time_ns deadline(const Entry& e) const noexcept { return m_wheel.deadline(handle(e)); }

    // --- lookups ------------------------------------------------------------------------------------
    /// Client → VIP (spec §3.3 in-lookup).
    [[nodiscard]] Entry* find_in(const in_type& k) noexcept {
        Entry* e =
            probe(hash_of(k.protocol, k.caddr, k.cport), [&](const Entry& x) { return match_in(x, k); });
        return e ? e : retry_no_cport(k);
    }
    /// Real server → client (spec §3.3 out-lookup).
    [[nodiscard]] Entry* find_out(const out_type& k) noexcept {
        return probe(hash_of(k.protocol, k.caddr, k.cport), [&](const Entry& x) { return match_out(x, k); });
    }
    /// Persistence template (spec §3.5), key from make_template_key / make_fwmark_template_key.
    [[nodiscard]] Entry* find_template(const in_type& k) noexcept {
        return probe(hash_of(k.protocol, k.caddr, k.cport),
                     [&](const Entry& x) { return match_template(x, k); });
    }
    /// find_in for a burst: out[i] = find_in(keys[i]). Precondition: out.size() >= keys.size().
    void find_in_batch(std::span<const in_type> keys, std::span<Entry*> out) noexcept {
        IPVS_ASSERT(out.size() >= keys.size());
        batch<true>(keys, out, [](const Entry& x, const in_type& k) { return match_in(x, k); });
        if (m_no_cport != 0)
            for (std::size_t i = 0; i < keys.size(); ++i)
                if (!out[i]) out[i] = retry_no_cport(keys[i]);
    }
    /// Changes whenever an entry enters or leaves the index (insert, erase, expiry, eviction, a
    /// template re-keyed): lookups made at one generation stay valid while it does not change.
    [[nodiscard]] std::uint64_t generation() const noexcept { return m_generation; }
    /// find_out for a burst.
    void find_out_batch(std::span<const out_type> keys, std::span<Entry*> out) noexcept {
        IPVS_ASSERT(out.size() >= keys.size());
        batch<false>(keys, out, [](const Entry& x, const out_type& k) { return match_out(x, k); });
    }

    // --- insert / remove ----------------------------------------------------------------------------
    /// Inserts a copy of `proto` (from make_conn / make_template; its timer, control and table bits are
    /// reset) and arms it at now + timeout. If `control` is given, links the new entry to it (spec §3.5
    /// step 4: n_control++), and `control` is never the eviction victim. May evict one embryonic entry,
    /// calling `on_evict(entry[, expire_reason::evicted])` first — pointers to other embryonic entries
    /// may then dangle.
    template <class OnEvict>
    insert_result<Entry> insert(const Entry& proto, admit how, OnEvict&& on_evict,
                                Entry* control = nullptr) noexcept {
        check_callback<OnEvict>();
        const std::uint64_t h = hash_of(proto.protocol, proto.caddr, proto.cport);
        const in_type k = proto.key();
        const bool tpl = proto.is_template();
        std::uint32_t same_client = 0;
        Entry* dup = probe(h, [&](const Entry& x) {
            if (x.cport != k.cport || x.protocol != k.protocol || x.caddr != k.caddr) return false;
            ++same_client;
            return key_equal(x, k) && x.is_template() == tpl && !x.is_invalidated();
        });
        if (dup) return {insert_status::exists, dup};
        if (same_client >= m_cfg.max_per_client) return {insert_status::client_limit, nullptr};
        const handle_type keep = control ? handle(*control) : nil_handle;
        if (how == admit::embryonic && m_embryonic >= m_cfg.embryonic_limit && !evict_one(on_evict, keep))
            return {insert_status::embryonic_limit, nullptr};
        if (m_size == capacity() && !evict_one(on_evict, keep)) return {insert_status::full, nullptr};

        const handle_type hd = index_insert(h);
        Entry& e = m_pool[hd];
        e = proto;
        e.timer = timer_hook{};
        e.control = nil_handle;
        e.n_control = 0;
        e.table_bits =
            static_cast<std::uint8_t>((proto.table_bits & conn_bit::dport_bits) | conn_bit::in_use);
        if (how == admit::embryonic) {
            e.table_bits |= conn_bit::embryonic;
            ++m_embryonic;
        }
        if (e.flags & conn_flag::no_cport) {
            e.table_bits |= counted_no_cport;
            ++m_no_cport;
        }
        ++m_size;
        m_wheel.arm(hd, now(), e.timeout());
        if (control) link_control(e, *control);
        // The kernel hashes a new connection at the head of its bucket, so a reply matching an older
        // connection's out tuple too (the client reused its port towards another virtual service on the
        // same real server) goes to the newest one. Older entries with the same out tuple stop
        // answering out lookups; only a reused client endpoint pays for this second walk.
        if (same_client != 0 && !tpl)
            (void)probe(h, [&](Entry& x) {
                if (&x != &e && x.cport == k.cport && x.protocol == k.protocol && x.caddr == k.caddr &&
                    same_out(x, e) && !(x.table_bits & out_shadowed)) {
                    x.table_bits |= out_shadowed;
                    ++m_shadowed;
                }
                return false;
            });
        return {insert_status::inserted, &e};
    }

    /// Removes `e` at once, without a callback (the caller does its bookkeeping). Refused (false) while
    /// `e` controls connections. Detaches `e` from its controller.
    bool erase(Entry& e) noexcept {
        if (e.n_control != 0) return false;
        const handle_type hd = handle(e);
        m_wheel.cancel(hd);
        index_erase(hd);
        if (e.control != nil_handle) --m_pool[e.control].n_control;
        release(hd);
        return true;
    }

    /// Re-arms `e` to now + e.timeout (the kernel's put after each packet, spec §3.6).
    void touch(Entry& e) noexcept { m_wheel.arm(handle(e), now(), e.timeout()); }
    /// ip_vs_conn_expire_now: the entry expires at the next expire() call.
    void expire_now(Entry& e) noexcept { m_wheel.arm(handle(e), now(), time_ns::zero()); }
    /// Embryonic → established; also confirms the controlling template (its conn got through).
    void confirm(Entry& e) noexcept {
        if (e.table_bits & conn_bit::embryonic) {
            e.table_bits &= static_cast<std::uint8_t>(~conn_bit::embryonic);
            --m_embryonic;
        }
        if (e.control != nil_handle && (m_pool[e.control].table_bits & conn_bit::embryonic))
            confirm(m_pool[e.control]);
    }
    /// ip_vs_control_add: `c` is controlled by `tpl` (precondition: `c` has no controller yet).
    void link_control(Entry& c, Entry& tpl) noexcept {
        IPVS_ASSERT(c.control == nil_handle && &c != &tpl);
        c.control = handle(tpl);
        ++tpl.n_control;
    }
    /// ip_vs_control_del.
    void unlink_control(Entry& c) noexcept {
        if (c.control == nil_handle) return;
        --m_pool[c.control].n_control;
        c.control = nil_handle;
    }
    /// check_template failed (spec §3.5 step 3): vport = dport = 0xffff, never matched again, left to
    /// expire with its timer untouched.
    void invalidate_template(Entry& t) noexcept {
        t.vport = 0xffff;
        t.table_bits = static_cast<std::uint8_t>(
            (t.table_bits & ~conn_bit::dport_bits) | conn_bit::invalidated |
            (static_cast<std::uint8_t>(dport_mode::all_ones) << conn_bit::dport_shift));
    }
    /// ip_vs_conn_fill_cport: a NO_CPORT entry learns its client port and is re-hashed — which moves
    /// it to another slot: the returned pointer replaces `e`. Refused (nullptr) if `e` has no NO_CPORT
    /// flag or controls connections (their `control` handles would go stale).
    [[nodiscard]] Entry* fill_cport(Entry& e, std::uint16_t cport) noexcept {
        if (!(e.flags & conn_flag::no_cport) || e.n_control != 0) return nullptr;
        const handle_type old = handle(e);
        const time_ns dl = m_wheel.deadline(old);
        Entry copy = e;
        m_wheel.cancel(old);
        index_erase(old);
        m_pool[old] = Entry{};
        copy.cport = cport;
        copy.flags &= ~conn_flag::no_cport;
        if (copy.table_bits & counted_no_cport) {
            copy.table_bits &= static_cast<std::uint8_t>(~counted_no_cport);
            --m_no_cport;
        }
        const handle_type hd = index_insert(hash_of(copy.protocol, copy.caddr, copy.cport));
        copy.timer = timer_hook{};
        m_pool[hd] = copy;
        const time_ns t = now();
        m_wheel.arm(hd, t, dl > t ? dl - t : time_ns::zero());
        return &m_pool[hd];
    }

    /// Runs expiry (spec §3.6) for what is due now: at most `max_expirations` timer firings (see
    /// timer_wheel::poll for the work bound). `cb(entry)` or `cb(entry, expire_reason)` is called for
    /// each removal (and, for the two-argument form, each deferral); it may change entries and dests but
    /// must not insert or erase.
    template <class Callback>
    poll_result expire(std::size_t max_expirations, Callback&& cb) {
        check_callback<Callback>();
        const time_ns t = now();
        return m_wheel.poll(t, max_expirations, [&](std::uint32_t hd) {
            Entry& e = m_pool[hd];
            if (e.n_control > 0) {
                e.set_timeout(std::chrono::seconds(60));
                m_wheel.arm(hd, t, std::chrono::seconds(60));
                notify(cb, e, expire_reason::deferred);
                return;
            }
            remove(hd, expire_reason::timed_out, cb, e.timeout_ms == 0);
        });
    }

    /// Visits every entry (connections and templates), in entry order (an `ipvsadm -Lnc` dump).
    template <class F>
    void for_each(F&& f) {
        for (auto& e : m_pool)
            if (e.table_bits & conn_bit::in_use) f(e);
    }
    template <class F>
    void for_each(F&& f) const {
        for (const auto& e : m_pool)
            if (e.table_bits & conn_bit::in_use) f(e);
    }

    // --- kernel defense modes (spec §3.8) -----------------------------------------------------------
    /// random_dropentry: looks at every entry of `groups` random index groups and marks victims to
    /// expire now (removed by the next expire(), reason timed_out). Returns the number marked.
    template <class Rule = kernel_drop_rule>
    std::size_t drop_entry(std::size_t groups, Rule rule = Rule()) noexcept {
        std::size_t dropped = 0;
        const time_ns t = now();
        for (std::size_t n = 0; n < groups; ++n) {
            const std::uint32_t gi = m_rng.below(m_ngroups);
            const detail::conn_group& g = m_groups[gi];
            for (unsigned i = 0; i < detail::group_width; ++i) {
                if (g.tag[i] == 0) continue;
                const handle_type hd = gi * detail::group_width + i;
                Entry& e = m_pool[hd];
                if (e.n_control != 0) continue;
                const drop_verdict v = rule(std::as_const(e));
                if (v == drop_verdict::keep || (v == drop_verdict::try_drop && !try_drop(e, t))) continue;
                m_wheel.arm(hd, t, time_ns::zero());
                ++dropped;
            }
        }
        return dropped;
    }
    /// One second's worth: index groups / 32 (the kernel scans conn_tab_size / 32 buckets a second).
    std::size_t drop_entry() noexcept { return drop_entry(std::max<std::size_t>(1, m_ngroups / 32)); }

private:
    using group_alloc_t =
        typename std::allocator_traits<Allocator>::template rebind_alloc<detail::conn_group>;
    using hook_alloc_t = typename std::allocator_traits<Allocator>::template rebind_alloc<timer_hook>;
    static constexpr std::size_t key_bytes = 2 * addr_len + 5; // caddr, vaddr, cport, vport, protocol
    static constexpr std::uint8_t counted_no_cport = 0x20;     // table_bits: counted in m_no_cport
    static constexpr std::uint8_t out_shadowed = 0x40;         // table_bits: a newer entry owns its out tuple

    /// Whether two connections have the same out tuple (the real server's reply would match both).
    [[nodiscard]] static bool same_out(const Entry& a, const Entry& b) noexcept {
        if (a.is_template() || b.is_template() || a.fwd() != b.fwd()) return false;
        if (a.fwd() == fwd_method::masq)
            return a.dest && b.dest && a.dest->ep.addr == b.dest->ep.addr && a.dport() == b.dport();
        return a.vport == b.vport && a.vaddr == b.vaddr;
    }

    struct pool_hooks {
        Entry* pool;
        timer_hook& operator()(std::uint32_t h) const noexcept { return pool[h].timer; }
    };

    static conn_table_config validate(conn_table_config c) {
        if (c.capacity == 0) throw std::invalid_argument("ipvs: conn_table capacity must be > 0");
        if (c.capacity >= (std::size_t{1} << 31))
            throw std::invalid_argument("ipvs: conn_table capacity must be below 2^31");
        if (c.embryonic_limit == 0 || c.embryonic_limit > c.capacity)
            c.embryonic_limit = std::max<std::size_t>(1, c.capacity / 2);
        if (c.max_per_client == 0) throw std::invalid_argument("ipvs: conn_table max_per_client must be > 0");
        if (c.wheel.slot_bits == 0) {
            // About 32 entries per slot (≤ 0.4 B per connection), 1024..65536 slots (a rotation of
            // 4 s .. 262 s at the default tick): long timeouts are revisited once a rotation, and a
            // poll lagging less than one rotation keeps the exact order.
            c.wheel.slot_bits =
                static_cast<unsigned>(std::clamp<int>(std::bit_width(c.capacity / 32), 10, 16));
        }
        return c;
    }
    /// ⌈capacity / (15 × 0.9)⌉ = ⌈2·capacity / 27⌉: at capacity at most 90 % of the slots are used.
    static std::size_t group_count(std::size_t capacity) noexcept {
        return std::max<std::size_t>(1, (capacity * 2 + 26) / 27);
    }

    [[nodiscard]] time_ns now() const noexcept { return m_clock.now(); }
    [[nodiscard]] std::uint64_t hash_of(std::uint8_t proto, const addr_type& a,
                                        std::uint16_t port) const noexcept {
        return m_hash(proto, a, port);
    }
    [[nodiscard]] std::uint32_t home_of(std::uint64_t h) const noexcept {
        return static_cast<std::uint32_t>(((h >> 32) * m_ngroups) >> 32);
    }
    [[nodiscard]] static std::uint8_t tag_of(std::uint64_t h) noexcept {
        const auto t = static_cast<std::uint8_t>(h);
        return t == 0 ? std::uint8_t{1} : t;
    }
    [[nodiscard]] std::uint32_t next_group(std::uint32_t g) const noexcept {
        return g + 1 == m_ngroups ? 0 : g + 1;
    }

    [[nodiscard]] static bool key_equal(const Entry& e, const in_type& k) noexcept {
        return std::memcmp(&e, &k, key_bytes) == 0;
    }
    [[nodiscard]] static bool match_in(const Entry& e, const in_type& k) noexcept {
        return key_equal(e, k) && ((k.cport == 0) == ((e.flags & conn_flag::no_cport) != 0));
    }
    [[nodiscard]] static bool match_template(const Entry& e, const in_type& k) noexcept {
        return key_equal(e, k) && e.is_template() && !e.is_invalidated();
    }
    [[nodiscard]] static bool match_out(const Entry& e, const out_type& k) noexcept {
        if (e.cport != k.cport || e.protocol != k.protocol || e.caddr != k.caddr || e.is_template() ||
            (e.table_bits & out_shadowed))
            return false;
        if (e.fwd() == fwd_method::masq)
            return e.dest != nullptr && e.dport() == k.dport &&
                   std::memcmp(e.dest->ep.addr.bytes.data(), k.daddr.data(), addr_len) == 0;
        return e.vport == k.dport && e.vaddr == k.daddr;
    }

    /// Walks the probe sequence of hash `h` from group `g` until `pred` accepts an entry or the
    /// sequence provably ends (ovf count 0 for the class).
    template <class Pred>
    Entry* probe_from(std::uint64_t h, std::uint32_t g, Pred&& pred) noexcept {
        const std::uint8_t t = tag_of(h);
        for (std::uint32_t n = 0; n < m_ngroups; ++n) {
            const detail::conn_group& G = m_groups[g];
            Entry* base = &m_pool[std::size_t{g} * detail::group_width];
            for (std::uint32_t m = detail::match_tag(G.tag, t); m != 0; m &= m - 1) {
                Entry& e = base[std::countr_zero(m)];
                if (pred(e)) return &e;
            }
            if (G.ovf == 0) return nullptr;
            g = next_group(g);
        }
        return nullptr;
    }
    template <class Pred>
    Entry* probe(std::uint64_t h, Pred&& pred) noexcept {
        return probe_from(h, home_of(h), pred);
    }

    Entry* retry_no_cport(const in_type& k) noexcept {
        if (m_no_cport == 0 || k.cport == 0) return nullptr;
        in_type k0 = k;
        k0.cport = 0;
        return probe(hash_of(k0.protocol, k0.caddr, k0.cport),
                     [&](const Entry& x) { return match_in(x, k0); });
    }

    /// A rolling three-stage software pipeline over the keys: at step j, key j is hashed and its
    /// metadata group prefetched, key j − D has its tags matched and its first candidate entry
    /// prefetched, key j − 2D is resolved (falling back to the scalar probe past the home group).
    /// D = 16 keeps up to ~32 lines requested ahead: enough lead for a ~300 ns DRAM latency (measured on
    /// the benchmark VM) at ~10 ns of work a key; deeper did not help there.
    template <bool PrefetchInsert, class Key, class Match>
    void batch(std::span<const Key> keys, std::span<Entry*> out, Match match) noexcept {
        constexpr std::size_t depth = 16, ring = 64; // ring ≥ 2·depth + 1, a power of two
        struct stage {
            std::uint64_t h;
            std::uint32_t g;
            std::uint32_t m;
        } st[ring];
        const std::size_t n = keys.size();
        for (std::size_t j = 0; j < n + 2 * depth; ++j) {
            if (j < n) {
                stage& s0 = st[j & (ring - 1)];
                const Key& k = keys[j];
                s0.h = hash_of(k.protocol, k.caddr, k.cport);
                s0.g = home_of(s0.h);
                detail::prefetch(&m_groups[s0.g]);
            }
            if (j >= depth && j - depth < n) {
                stage& s1 = st[(j - depth) & (ring - 1)];
                s1.m = detail::match_tag(m_groups[s1.g].tag, tag_of(s1.h));
                if (s1.m != 0) {
                    const Entry* p =
                        &m_pool[std::size_t{s1.g} * detail::group_width + std::countr_zero(s1.m)];
                    detail::prefetch(p);
                    detail::prefetch(reinterpret_cast<const char*>(p) + key_bytes +
                                     7); // key + flags may straddle
                }
            }
            if (j >= 2 * depth) {
                const std::size_t i = j - 2 * depth;
                const stage& s2 = st[i & (ring - 1)];
                const Key& k = keys[i];
                Entry* entries = &m_pool[std::size_t{s2.g} * detail::group_width];
                Entry* r = nullptr;
                for (std::uint32_t m = s2.m; m != 0; m &= m - 1) {
                    Entry& e = entries[std::countr_zero(m)];
                    if (match(e, k)) {
                        r = &e;
                        break;
                    }
                }
                if (!r && m_groups[s2.g].ovf != 0)
                    r = probe_from(s2.h, next_group(s2.g), [&](const Entry& x) { return match(x, k); });
                if (PrefetchInsert && !r) {
                    // A miss is most often a new connection about to be inserted: the slot it will take
                    // (the home group's first free one) is fetched for writing now, with the burst's other
                    // misses, instead of stalling the insert on its own.
                    if (const std::uint32_t free = detail::match_tag(m_groups[s2.g].tag, 0)) {
                        const Entry* p = &entries[std::countr_zero(free)];
                        __builtin_prefetch(p, 1, 3);
                        __builtin_prefetch(reinterpret_cast<const char*>(p) + sizeof(Entry) - 1, 1, 3);
                    }
                }
                out[i] = r;
            }
        }
    }

    /// Takes the first free slot of hash `h`'s probe sequence (one exists: size < capacity < slots)
    /// and returns it, counting the full groups passed.
    handle_type index_insert(std::uint64_t h) noexcept {
        ++m_generation;
        std::uint32_t g = home_of(h);
        for (std::uint32_t n = 0; n < m_ngroups; ++n) {
            detail::conn_group& G = m_groups[g];
            if (const std::uint32_t free = detail::match_tag(G.tag, 0)) {
                const auto i = static_cast<unsigned>(std::countr_zero(free));
                G.tag[i] = tag_of(h);
                return g * detail::group_width + i;
            }
            if (G.ovf != 0xff) ++G.ovf; // the entry lives past this full group
            g = next_group(g);
        }
        IPVS_ASSERT(false && "conn_table: no free slot");
        return nil_handle;
    }
    /// Frees slot `hd` in the metadata and undoes the overflow counts of the groups its entry passed.
    void index_erase(handle_type hd) noexcept {
        ++m_generation;
        const Entry& e = m_pool[hd];
        const std::uint32_t g = hd / detail::group_width;
        m_groups[g].tag[hd % detail::group_width] = 0;
        for (std::uint32_t p = home_of(hash_of(e.protocol, e.caddr, e.cport)); p != g; p = next_group(p))
            if (m_groups[p].ovf != 0xff) --m_groups[p].ovf;
    }

    /// `gone` (already out of the index) owned an out tuple: the entries it shadowed answer again.
    void unshadow(const Entry& gone) noexcept {
        (void)probe(hash_of(gone.protocol, gone.caddr, gone.cport), [&](Entry& x) {
            if ((x.table_bits & out_shadowed) && x.cport == gone.cport && x.protocol == gone.protocol &&
                x.caddr == gone.caddr && same_out(x, gone)) {
                x.table_bits &= static_cast<std::uint8_t>(~out_shadowed);
                --m_shadowed;
            }
            return false;
        });
    }

    void release(handle_type hd) noexcept {
        Entry& e = m_pool[hd];
        if (e.table_bits & conn_bit::embryonic) --m_embryonic;
        if (e.table_bits & counted_no_cport) --m_no_cport;
        if (e.table_bits & out_shadowed)
            --m_shadowed;
        else if (m_shadowed != 0 && !e.is_template())
            unshadow(e);
        --m_size;
        e = Entry{};
    }

    template <class Cb>
    static void notify(Cb& cb, Entry& e, expire_reason r) {
        if constexpr (std::is_invocable_v<Cb&, Entry&, expire_reason>)
            cb(e, r);
        else if (r != expire_reason::deferred)
            cb(e);
    }
    template <class Cb>
    static constexpr void check_callback() noexcept {
        static_assert(
            std::is_invocable_v<Cb&, Entry&, expire_reason> || std::is_invocable_v<Cb&, Entry&>,
            "ipvs: the removal callback must be callable as cb(entry&) or cb(entry&, expire_reason)");
    }

    /// Unhash, disarm, detach from the controller (maybe expiring it, spec §3.5), callback, free.
    template <class Cb>
    void remove(handle_type hd, expire_reason why, Cb& cb, bool expired_now) {
        Entry& e = m_pool[hd];
        m_wheel.cancel(hd);
        index_erase(hd);
        if (e.control != nil_handle) {
            Entry& ct = m_pool[e.control];
            --ct.n_control;
            if (expired_now && ct.n_control == 0 && !(ct.is_template() && (ct.state & template_assured)))
                m_wheel.arm(e.control, now(), time_ns::zero());
        }
        notify(cb, e, why);
        release(hd);
    }

    /// Sampled LRU over embryonic entries that control nothing; false if none was found.
    template <class Cb>
    bool evict_one(Cb& cb, handle_type keep) {
        handle_type best = nil_handle;
        time_ns best_deadline{};
        unsigned found = 0;
        for (unsigned p = 0; p < m_cfg.evict_probes && found < m_cfg.evict_samples; ++p) {
            const handle_type h = m_rng.below(m_pool.size());
            const Entry& e = m_pool[h];
            if (!(e.table_bits & conn_bit::embryonic) || e.n_control != 0 || h == keep) continue;
            ++found;
            const time_ns d = m_wheel.deadline(h);
            if (best == nil_handle || d < best_deadline) {
                best = h;
                best_deadline = d;
            }
        }
        if (best == nil_handle) return false;
        remove(best, expire_reason::evicted, cb, true);
        return true;
    }

    /// todrop_entry (spec §3.8): idle for 60 s and 0 < in_pkts ≤ 8, every in_pkts-th time.
    bool try_drop(const Entry& e, time_ns t) noexcept {
        if (m_wheel.deadline(handle(e)) - t > e.timeout() - std::chrono::seconds(60)) return false;
        if (e.in_pkts > 8 || e.in_pkts == 0) return false;
        auto& counter = m_todrop_counter[e.in_pkts];
        if (--counter > 0) return false;
        counter = static_cast<std::int8_t>(e.in_pkts);
        return true;
    }

    conn_table_config m_cfg;
    Hash m_hash;
    Clock m_clock;
    std::vector<detail::conn_group, group_alloc_t> m_groups;
    std::vector<Entry, Allocator> m_pool;
    timer_wheel<pool_hooks, hook_alloc_t> m_wheel;
    std::uint64_t m_generation = 0; ///< see generation()
    detail::rng64 m_rng;
    std::uint32_t m_ngroups = 0;
    std::size_t m_size = 0;
    std::size_t m_embryonic = 0;
    std::size_t m_no_cport = 0;
    std::size_t m_shadowed = 0; // entries with out_shadowed set
    std::int8_t m_todrop_counter[9] = {};
};

} // namespace ipvs
