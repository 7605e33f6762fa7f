// SPDX-License-Identifier: MIT
// Checksum benchmarks: RFC 1071 sum vs a word-at-a-time baseline, RFC 1624 update vs recompute, CRC32c hw vs
// sw.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include <ipvs/checksum.hpp>
#include <ipvs/crc32c.hpp>

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> v(n + 1);
    for (auto& x : v) x = static_cast<std::uint8_t>(rng());
    return v;
}

// Baseline: the textbook RFC 1071 §4.1 loop, 16 bits at a time.
std::uint16_t baseline_sum(const std::uint8_t* p, std::size_t n) {
    std::uint32_t s = 0;
    for (; n > 1; n -= 2, p += 2) s += static_cast<std::uint32_t>((p[0] << 8) | p[1]);
    if (n) s += static_cast<std::uint32_t>(p[0] << 8);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s);
}

void set_counters(benchmark::State& st, std::size_t n, std::uint64_t result) {
    st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n));
    st.counters["result"] = static_cast<double>(result & 0xffff);
}

void BM_sum_ipvs(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto buf = random_bytes(n, 1);
    std::uint64_t r = 0;
    for (auto _ : st) {
        auto c = ipvs::internet_checksum(std::as_bytes(std::span(buf.data(), n)));
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
}
void BM_sum_baseline(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto buf = random_bytes(n, 1);
    std::uint64_t r = 0;
    for (auto _ : st) {
        auto c = baseline_sum(buf.data(), n);
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
}
// Misaligned start: the sum must not care.
void BM_sum_ipvs_odd_aligned(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto buf = random_bytes(n, 1);
    std::uint64_t r = 0;
    for (auto _ : st) {
        auto c = ipvs::internet_checksum(std::as_bytes(std::span(buf.data() + 1, n)));
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
}

// NAT of an IPv4 address: update the TCP checksum incrementally vs recompute over the 1500-byte segment.
void BM_update_incremental_v4(benchmark::State& st) {
    std::mt19937 rng(2);
    std::uint16_t check = 0x1234;
    std::uint32_t from = rng(), to = rng();
    for (auto _ : st) {
        check = ipvs::csum_update32(check, from, to);
        std::swap(from, to);
        benchmark::DoNotOptimize(check);
    }
    st.counters["result"] = check;
}
void BM_update_incremental_v6(benchmark::State& st) {
    auto a = ipvs::inet_addr::v6({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0});
    auto b = ipvs::inet_addr::v6({0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb});
    std::uint16_t check = 0x1234;
    for (auto _ : st) {
        check = ipvs::csum_update_addr(check, a, b);
        std::swap(a, b);
        benchmark::DoNotOptimize(check);
    }
    st.counters["result"] = check;
}
void BM_update_full_recompute(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    auto buf = random_bytes(n, 3);
    std::uint64_t r = 0;
    const auto src = *ipvs::parse_addr("10.1.0.1"), dst = *ipvs::parse_addr("10.0.2.11");
    for (auto _ : st) {
        buf[16] ^= 1; // the packet changed: recompute pseudo-header + whole segment
        auto c = ipvs::internet_checksum(std::as_bytes(std::span(buf.data(), n)),
                                         ipvs::pseudo_header(src, dst, 6, static_cast<std::uint32_t>(n)));
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
}

void BM_crc32c_hw(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto buf = random_bytes(n, 4);
    std::uint64_t r = 0;
    for (auto _ : st) {
        auto c = ipvs::crc32c_hw(std::as_bytes(std::span(buf.data(), n)));
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
    st.counters["hw"] = ipvs::crc32c_has_hw() ? 1 : 0;
}
void BM_crc32c_sw(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto buf = random_bytes(n, 4);
    std::uint64_t r = 0;
    for (auto _ : st) {
        auto c = ipvs::crc32c_sw(std::as_bytes(std::span(buf.data(), n)));
        benchmark::DoNotOptimize(c);
        r = c;
    }
    set_counters(st, n, r);
}

} // namespace

BENCHMARK(BM_sum_ipvs)->Arg(64)->Arg(1500)->Arg(9000);
BENCHMARK(BM_sum_ipvs_odd_aligned)->Arg(64)->Arg(1500)->Arg(9000);
BENCHMARK(BM_sum_baseline)->Arg(64)->Arg(1500)->Arg(9000);
BENCHMARK(BM_update_incremental_v4);
BENCHMARK(BM_update_incremental_v6);
BENCHMARK(BM_update_full_recompute)->Arg(64)->Arg(1500);
BENCHMARK(BM_crc32c_hw)->Arg(64)->Arg(1500)->Arg(9000);
BENCHMARK(BM_crc32c_sw)->Arg(64)->Arg(1500)->Arg(9000);

BENCHMARK_MAIN();
