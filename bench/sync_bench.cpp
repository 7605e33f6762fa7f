// SPDX-License-Identifier: MIT
// Sync benchmarks: records per second encoded and decoded (v1 IPv4 / IPv6) against a vector-building
// baseline, and a backup applying 1,000 records to a director holding 1M connections against a
// std::unordered_map backup.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/sync.hpp>
#include <ipvs/sync_agent.hpp>

namespace {

constexpr std::size_t n_records = 4096; // spread over ⌈4096 / records-per-message⌉ messages

std::vector<ipvs::sync_record> random_records(ipvs::family af, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<ipvs::sync_record> v(n_records);
    for (auto& r : v) {
        r.af = af;
        r.protocol = (rng() & 1) ? 6 : 17;
        r.state = r.protocol == 6 ? static_cast<std::uint16_t>(1 + rng() % 7) : 0;
        r.flags = (rng() & 1) ? ipvs::sync_flag::inactive : 0;
        r.cport = static_cast<std::uint16_t>(rng());
        r.vport = 80;
        r.dport = 8080;
        r.timeout = 900;
        for (auto* a : {&r.caddr, &r.vaddr, &r.daddr}) {
            a->af = af;
            for (std::size_t i = 0; i < a->size(); ++i) a->bytes[i] = static_cast<std::uint8_t>(rng());
        }
    }
    return v;
}

// Messages of at most 1472 bytes holding `recs`, built with the library's writer.
std::vector<std::vector<std::byte>> messages_of(const std::vector<ipvs::sync_record>& recs) {
    std::vector<std::vector<std::byte>> out;
    std::array<std::byte, ipvs::sync_wire::default_maxlen_v4> buf{};
    ipvs::sync_writer w(buf, 7);
    const auto flush = [&] {
        const auto m = w.finish();
        out.emplace_back(m.begin(), m.end());
        w.reset();
    };
    for (const auto& r : recs) {
        if (w.add(r) != ipvs::sync_encode_status::ok) {
            flush();
            (void)w.add(r);
        }
    }
    flush();
    return out;
}

// --- Baseline: a straightforward codec — bytes appended to a std::vector one at a time, records
// decoded into a freshly allocated std::vector of structs, every field read through a helper. ---
struct baseline_record {
    std::uint8_t type, protocol;
    std::uint32_t flags, fwmark, timeout;
    std::uint16_t state, cport, vport, dport;
    std::array<std::uint8_t, 16> caddr, vaddr, daddr;
};

std::uint32_t rd(const std::vector<std::uint8_t>& m, std::size_t off, int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | m.at(off + static_cast<std::size_t>(i));
    return v;
}
void wr(std::vector<std::uint8_t>& m, std::uint32_t v, int n) {
    for (int i = n - 1; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::vector<baseline_record> baseline_decode(const std::vector<std::uint8_t>& m) {
    std::vector<baseline_record> out;
    if (m.size() < 8 || rd(m, 2, 2) != m.size() || m[5] != 1) return out;
    std::size_t off = 8;
    for (unsigned i = 0; i < m[4]; ++i) {
        if (off + 36 > m.size()) break;
        baseline_record r{};
        r.type = m[off];
        r.protocol = m[off + 1];
        const std::size_t len = rd(m, off + 2, 2) & 0x0fff;
        if (off + len > m.size()) break;
        r.flags = rd(m, off + 4, 4);
        r.state = static_cast<std::uint16_t>(rd(m, off + 8, 2));
        r.cport = static_cast<std::uint16_t>(rd(m, off + 10, 2));
        r.vport = static_cast<std::uint16_t>(rd(m, off + 12, 2));
        r.dport = static_cast<std::uint16_t>(rd(m, off + 14, 2));
        r.fwmark = rd(m, off + 16, 4);
        r.timeout = rd(m, off + 20, 4);
        const std::size_t alen = (r.type & 1) ? 16 : 4;
        for (std::size_t k = 0; k < alen; ++k) {
            r.caddr[k] = m.at(off + 24 + k);
            r.vaddr[k] = m.at(off + 24 + alen + k);
            r.daddr[k] = m.at(off + 24 + 2 * alen + k);
        }
        out.push_back(r);
        off += (len + 3) & ~std::size_t{3};
    }
    return out;
}

std::vector<std::uint8_t> baseline_encode(const ipvs::sync_record* r, std::size_t n) {
    std::vector<std::uint8_t> m;
    wr(m, 0, 1);
    wr(m, 7, 1);
    wr(m, 0, 2);
    wr(m, static_cast<std::uint32_t>(n), 1);
    wr(m, 1, 1);
    wr(m, 0, 2);
    for (std::size_t i = 0; i < n; ++i) {
        const bool v6 = r[i].af == ipvs::family::v6;
        wr(m, v6 ? 1 : 0, 1);
        wr(m, r[i].protocol, 1);
        wr(m, v6 ? 72 : 36, 2);
        wr(m, r[i].flags, 4);
        wr(m, r[i].state, 2);
        wr(m, r[i].cport, 2);
        wr(m, r[i].vport, 2);
        wr(m, r[i].dport, 2);
        wr(m, r[i].fwmark, 4);
        wr(m, r[i].timeout, 4);
        for (const auto* a : {&r[i].caddr, &r[i].vaddr, &r[i].daddr})
            for (std::size_t k = 0; k < a->size(); ++k) m.push_back(a->bytes[k]);
    }
    m[2] = static_cast<std::uint8_t>(m.size() >> 8);
    m[3] = static_cast<std::uint8_t>(m.size());
    return m;
}

void finish(benchmark::State& st, std::uint64_t checksum) {
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * n_records));
    st.counters["checksum"] = static_cast<double>(checksum & 0xffffffff);
}

ipvs::family family_of(benchmark::State& st) {
    return st.range(0) == 6 ? ipvs::family::v6 : ipvs::family::v4;
}

void BM_encode_ipvs(benchmark::State& st) {
    const auto recs = random_records(family_of(st), 1);
    std::array<std::byte, ipvs::sync_wire::default_maxlen_v4> buf{};
    std::uint64_t sum = 0;
    for (auto _ : st) {
        sum = 0;
        ipvs::sync_writer w(buf, 7);
        const auto take = [&] {
            const auto m = w.finish();
            sum += m.size() + std::to_integer<unsigned>(m[m.size() - 1]);
            benchmark::DoNotOptimize(buf.data());
        };
        for (const auto& r : recs) {
            if (w.add(r) != ipvs::sync_encode_status::ok) {
                take();
                w.reset();
                (void)w.add(r);
            }
        }
        take();
    }
    finish(st, sum);
}

void BM_encode_baseline(benchmark::State& st) {
    const auto recs = random_records(family_of(st), 1);
    const std::size_t per = family_of(st) == ipvs::family::v6 ? 20 : 40; // what fits 1472 bytes
    std::uint64_t sum = 0;
    for (auto _ : st) {
        sum = 0;
        for (std::size_t i = 0; i < recs.size(); i += per) {
            const auto m = baseline_encode(recs.data() + i, std::min(per, recs.size() - i));
            sum += m.size() + m.back();
            benchmark::DoNotOptimize(m.data());
        }
    }
    finish(st, sum);
}

void BM_decode_ipvs(benchmark::State& st) {
    const auto msgs = messages_of(random_records(family_of(st), 2));
    std::uint64_t sum = 0;
    for (auto _ : st) {
        sum = 0;
        for (const auto& m : msgs) {
            ipvs::sync_reader rd(m, 7);
            ipvs::sync_record r;
            while (rd.next(r) == ipvs::sync_record_status::ok) sum += r.cport + r.state + r.daddr.bytes[3];
        }
    }
    finish(st, sum);
}

void BM_decode_baseline(benchmark::State& st) {
    std::vector<std::vector<std::uint8_t>> msgs;
    for (const auto& m : messages_of(random_records(family_of(st), 2))) {
        msgs.emplace_back(m.size());
        for (std::size_t i = 0; i < m.size(); ++i) msgs.back()[i] = std::to_integer<std::uint8_t>(m[i]);
    }
    std::uint64_t sum = 0;
    for (auto _ : st) {
        sum = 0;
        for (const auto& m : msgs) {
            for (const auto& r : baseline_decode(m)) sum += r.cport + r.state + r.daddr[3];
        }
    }
    finish(st, sum);
}

// --- Backup apply: 1,000 records, in as many messages as sync_maxlen (1472 bytes: 40 IPv4 records)
// allows, into a table of 1M connections (CLARIFICATIONS "Sync apply benchmark"). ---
constexpr std::size_t table_conns = 1'000'000;
constexpr std::size_t batch_records = 1000;
constexpr std::size_t n_dests = 16;

// Connection i: client 10.64.0.0 + i, port 1024 + i % 50000, to 10.0.0.100:80, real server i % 16.
ipvs::sync_record conn_record(std::uint32_t i, bool closing) {
    ipvs::sync_record r;
    r.protocol = ipvs::ipproto::tcp;
    r.state = closing ? 4 : 1; // FIN_WAIT (INACTIVE) / ESTABLISHED
    r.flags = closing ? ipvs::sync_flag::inactive : 0;
    r.timeout = closing ? 120 : 900;
    r.cport = static_cast<std::uint16_t>(1024 + i % 50000);
    r.vport = 80;
    r.dport = 8080;
    r.caddr = ipvs::inet_addr::v4(0x0a400000U + i);
    r.vaddr = ipvs::inet_addr::v4(0x0a000064U);
    r.daddr = ipvs::inet_addr::v4(0x0a000201U + i % n_dests);
    return r;
}

std::vector<std::vector<std::byte>> batch_messages(const std::vector<std::uint32_t>& ids, bool closing) {
    std::vector<ipvs::sync_record> recs;
    for (const auto i : ids) recs.push_back(conn_record(i, closing));
    return messages_of(recs);
}

// The 1,000 connections of a batch: existing ones (fixed seed) or fresh ones past the table's.
std::vector<std::uint32_t> batch_ids(bool fresh) {
    std::mt19937 rng(42);
    std::vector<std::uint32_t> ids;
    for (std::size_t k = 0; k < batch_records; ++k)
        ids.push_back(fresh ? static_cast<std::uint32_t>(table_conns + k)
                            : static_cast<std::uint32_t>(rng() % table_conns));
    return ids;
}

struct backup_world {
    std::unique_ptr<ipvs::director> dir;
    std::unique_ptr<ipvs::sync_agent> agent;
    ipvs::time_ns now{std::chrono::seconds{10}};
};

// One director, filled once with 1M ESTABLISHED connections by the agent itself.
backup_world& world() {
    static backup_world w = [] {
        backup_world b;
        b.dir = std::make_unique<ipvs::director>(
            ipvs::director_config{.capacity_v4 = 1U << 20, .capacity_v6 = 16});
        ipvs::service_config sc;
        sc.vip = ipvs::endpoint{ipvs::inet_addr::v4(0x0a000064U), 80};
        sc.scheduler = "rr";
        auto& s = b.dir->add_service(sc);
        for (std::uint32_t k = 0; k < n_dests; ++k) {
            ipvs::dest_config dc;
            dc.ep = ipvs::endpoint{ipvs::inet_addr::v4(0x0a000201U + k), 8080};
            dc.weight = 1;
            b.dir->add_dest(s, dc);
        }
        b.agent = std::make_unique<ipvs::sync_agent>(
            *b.dir, ipvs::sync_agent::config{.backup = true, .backup_syncid = 7});
        std::vector<ipvs::sync_record> recs;
        for (std::uint32_t i = 0; i < table_conns; ++i) recs.push_back(conn_record(i, false));
        for (const auto& m : messages_of(recs)) (void)b.agent->apply(m, b.now);
        return b;
    }();
    return w;
}

// Baseline: the same backup over std::unordered_map keyed by the in-tuple, the dest found by a scan of
// the service's dests, the counters moved the same way.
struct map_key {
    std::uint32_t caddr, vaddr;
    std::uint16_t cport, vport;
    std::uint8_t proto;
    friend bool operator==(const map_key&, const map_key&) = default;
};
struct map_key_hash {
    std::size_t operator()(const map_key& k) const noexcept {
        std::uint64_t h = (std::uint64_t{k.caddr} << 32 | k.vaddr) * 0x9e3779b97f4a7c15ULL;
        h ^= (std::uint64_t{k.cport} << 24 | std::uint64_t{k.vport} << 8 | k.proto) * 0xc2b2ae3d27d4eb4fULL;
        return static_cast<std::size_t>(h ^ (h >> 29));
    }
};
struct map_conn {
    std::uint32_t flags, daddr, timeout;
    std::uint16_t dport;
    std::uint8_t state;
    int dest;
};
struct map_backup {
    std::unordered_map<map_key, map_conn, map_key_hash> conns;
    std::array<int, n_dests> active{}, inactive{};

    /// Returns the records applied.
    std::size_t apply(std::span<const std::byte> msg) {
        std::size_t applied = 0;
        ipvs::sync_reader rd(msg, 7);
        ipvs::sync_record r;
        for (auto st = rd.next(r); st != ipvs::sync_record_status::end && !ipvs::drops_rest(st);
             st = rd.next(r)) {
            if (st != ipvs::sync_record_status::ok) continue;
            const std::uint32_t flags = ipvs::sync_backup_flags(r.flags);
            const map_key k{r.caddr.v4_host(), r.vaddr.v4_host(), r.cport, r.vport, r.protocol};
            auto [it, fresh] = conns.try_emplace(k);
            map_conn& c = it->second;
            const bool inactive_now = (flags & ipvs::sync_flag::inactive) != 0;
            if (fresh) {
                c.dest = -1;
                for (int d = 0; d < static_cast<int>(n_dests); ++d)
                    if (0x0a000201U + static_cast<std::uint32_t>(d) == r.daddr.v4_host() && r.dport == 8080)
                        c.dest = d;
                if (c.dest >= 0) ++(inactive_now ? inactive : active)[static_cast<std::size_t>(c.dest)];
                c.flags = flags;
            } else {
                if (((c.flags ^ flags) & ipvs::sync_flag::inactive) && c.dest >= 0) {
                    const auto d = static_cast<std::size_t>(c.dest);
                    if (inactive_now) {
                        --active[d];
                        ++inactive[d];
                    } else {
                        ++active[d];
                        --inactive[d];
                    }
                }
                c.flags = (flags & ipvs::sync_flag::backup_upd_mask) |
                          (c.flags & ~ipvs::sync_flag::backup_upd_mask);
            }
            c.daddr = r.daddr.v4_host();
            c.dport = r.dport;
            c.state = static_cast<std::uint8_t>(r.state);
            c.timeout = r.timeout;
            ++applied;
        }
        return applied;
    }
};

map_backup& map_world() {
    static map_backup m = [] {
        map_backup b;
        b.conns.reserve(table_conns + batch_records);
        std::vector<ipvs::sync_record> recs;
        for (std::uint32_t i = 0; i < table_conns; ++i) recs.push_back(conn_record(i, false));
        for (const auto& msg : messages_of(recs)) b.apply(msg);
        return b;
    }();
    return m;
}

// Argument 0: the 1,000 records refresh existing connections (alternately into FIN_WAIT + INACTIVE and
// back, so every record moves a counter); 1: they create new connections (removed again untimed).
// `apply(msg)` returns the records applied, `remove(record)` takes one out, `size()` is the table's.
template <class Apply, class Remove, class Size>
void run_apply(benchmark::State& st, Apply&& apply, Remove&& remove, Size&& size) {
    const bool fresh = st.range(0) == 1;
    const auto ids = batch_ids(fresh);
    const std::array<std::vector<std::vector<std::byte>>, 2> batches = {batch_messages(ids, true),
                                                                        batch_messages(ids, false)};
    std::uint64_t sum = 0, round = 0;
    for (auto _ : st) {
        std::uint64_t n = 0;
        for (const auto& m : batches[fresh ? 1 : round++ & 1]) n += apply(m);
        sum = n + size();
        if (fresh) {
            st.PauseTiming();
            for (const auto i : ids) remove(conn_record(i, false));
            st.ResumeTiming();
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * batch_records));
    st.counters["messages"] = static_cast<double>(batches[0].size());
    st.counters["checksum"] = static_cast<double>(sum);
}

void BM_apply_ipvs(benchmark::State& st) {
    auto& w = world();
    auto& table = w.dir->table_v4();
    run_apply(
        st,
        [&](std::span<const std::byte> m) {
            w.now += std::chrono::milliseconds{1};
            const auto r = w.agent->apply(m, w.now);
            return std::uint64_t{r.created} + r.updated;
        },
        [&](const ipvs::sync_record& rec) {
            auto* e = table.find_in(
                ipvs::make_in_tuple<4>(rec.protocol, rec.caddr, rec.cport, rec.vaddr, rec.vport));
            if (!e) return;
            --e->dest->active_conns;
            (void)table.erase(*e);
        },
        [&] { return static_cast<std::uint64_t>(table.size()); });
}

void BM_apply_unordered_map(benchmark::State& st) {
    auto& b = map_world();
    run_apply(
        st, [&](std::span<const std::byte> m) { return static_cast<std::uint64_t>(b.apply(m)); },
        [&](const ipvs::sync_record& rec) {
            auto it =
                b.conns.find({rec.caddr.v4_host(), rec.vaddr.v4_host(), rec.cport, rec.vport, rec.protocol});
            if (it == b.conns.end()) return;
            if (it->second.dest >= 0) --b.active[static_cast<std::size_t>(it->second.dest)];
            b.conns.erase(it);
        },
        [&] { return static_cast<std::uint64_t>(b.conns.size()); });
}

} // namespace

// Argument: 4 = IPv4 (36-byte records), 6 = IPv6 (72-byte records). The checksum counter is one pass's
// sum: an ipvs run and its baseline with the same argument must show the same value.
BENCHMARK(BM_encode_ipvs)->Arg(4)->Arg(6);
BENCHMARK(BM_encode_baseline)->Arg(4)->Arg(6);
BENCHMARK(BM_decode_ipvs)->Arg(4)->Arg(6);
BENCHMARK(BM_decode_baseline)->Arg(4)->Arg(6);
// Argument: 0 = refresh existing connections, 1 = new connections. Checksum: records applied + table
// size after a batch (the same for both implementations with the same argument).
BENCHMARK(BM_apply_ipvs)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_apply_unordered_map)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
