// SPDX-License-Identifier: MIT
// Sync codec benchmarks: records per second encoded and decoded (v1 IPv4 / IPv6) against a vector-building
// baseline.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include <ipvs/sync.hpp>

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

} // namespace

// Argument: 4 = IPv4 (36-byte records), 6 = IPv6 (72-byte records). The checksum counter is one pass's
// sum: an ipvs run and its baseline with the same argument must show the same value.
BENCHMARK(BM_encode_ipvs)->Arg(4)->Arg(6);
BENCHMARK(BM_encode_baseline)->Arg(4)->Arg(6);
BENCHMARK(BM_decode_ipvs)->Arg(4)->Arg(6);
BENCHMARK(BM_decode_baseline)->Arg(4)->Arg(6);

BENCHMARK_MAIN();
