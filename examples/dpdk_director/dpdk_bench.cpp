// SPDX-License-Identifier: MIT
// dpdk_bench: what the DPDK glue costs — established packets of 1M connections through one worker's director
// on mbufs (batched prefetch on / off) vs the same on byte vectors, and the dispatcher's cost per packet.
//
// Cases (items = packets; Google Benchmark's items_per_second is the per-worker packet rate):
//   BM_vector_director       baseline: director_bench's path — a 40-byte IPv4 TCP ACK copied into a
//                            std::vector<std::byte>, then director::in(), one packet at a time
//   BM_vector_director_burst the same in bursts of 32 (copy 32, then 32 × in()), batch:1 with the
//                            batched prefetch (steering.hpp): the mbuf cases' like-for-like baseline, so
//                            the glue's cost is seen apart from the gain of bursting and batching
//   BM_mbuf_director/batch   one worker fed pre-steered mbufs (CLARIFICATIONS: no dispatcher on the same
//                            core): 32 mbufs from a mempool, each burst filled with the next 32 flows'
//                            frames (the copy director_bench makes too: in() rewrites in place, so a
//                            frame cannot be replayed as it is), prefetched, viewed (mbuf_view) and run
//                            through director::in(); batch:1 runs prefetch_conns on the burst first
//   BM_dispatcher            the main lcore's work per packet: 4096 pre-built mbufs from the mempool
//                            (steering reads, never writes) in bursts of 32 — prefetch, the single-
//                            segment check, the symmetric 5-tuple hash, l2_len, the per-worker queues
// Flows are visited in one random order (seed 42), as in director_bench. Before timing, each director
// case checks its first 1,024 outputs byte for byte against the vector path (a broken glue cannot win),
// and `result` is a checksum of the rewritten bytes. IPVS_BENCH_SMOKE=1: 16k connections.

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>

#include <ipvs/director.hpp>

#include "../common/replay.hpp"
#include "../common/rules.hpp"
#include "mbuf_view.hpp"
#include "steering.hpp"

namespace {

using bytes = std::vector<std::byte>;
constexpr unsigned burst = 32;
constexpr std::size_t eth = 14, l3_len = 40;
rte_mempool* g_pool = nullptr;

bool smoke() { return std::getenv("IPVS_BENCH_SMOKE") != nullptr; }

/// director_bench's packet, built with DPDK's headers and checksum helpers: 40 bytes of IPv4 + TCP from
/// client i (10.1.x.y, 256 ports per address) to 10.0.0.100:80.
bytes make_packet(std::uint32_t i, std::uint8_t flags) {
    struct [[gnu::packed]] ip_tcp {
        rte_ipv4_hdr ip;
        rte_tcp_hdr tcp;
    } h{};
    static_assert(sizeof h == l3_len);
    h.ip.version_ihl = RTE_IPV4_VHL_DEF;
    h.ip.total_length = rte_cpu_to_be_16(l3_len);
    h.ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    h.ip.time_to_live = 64;
    h.ip.next_proto_id = IPPROTO_TCP;
    h.ip.src_addr = rte_cpu_to_be_32(0x0a010000U + (i >> 8));
    h.ip.dst_addr = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 100));
    h.tcp.src_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(1024 + (i & 0xff) * 97 % 60000));
    h.tcp.dst_port = rte_cpu_to_be_16(80);
    h.tcp.data_off = 0x50;
    h.tcp.tcp_flags = flags;
    h.tcp.rx_win = rte_cpu_to_be_16(0xff00);
    h.ip.hdr_checksum = rte_ipv4_cksum(&h.ip);
    h.tcp.cksum = rte_ipv4_udptcp_cksum(&h.ip, &h.tcp);
    bytes p(l3_len);
    std::memcpy(p.data(), &h, l3_len);
    return p;
}

/// One worker's director with n established connections, their ACKs, as L3 packets and as frames. Rules as
/// director_bench's: one rr service, eight dests.
struct fixture {
    ipvs::director d;
    std::vector<bytes> est;    // L3 (the vector path)
    std::vector<bytes> frames; // Ethernet + L3 (the mbuf path)
    std::vector<std::uint32_t> order;
    explicit fixture(std::size_t n)
        : d(ipvs::director_config{.capacity_v4 = n + n / 8 + 1024, .capacity_v6 = 1024}) {
        std::string rules = "-A -t 10.0.0.100:80 -s rr\n";
        for (int k = 11; k < 19; ++k)
            rules += "-a -t 10.0.0.100:80 -r 10.0.2." + std::to_string(k) + ":8080 -m\n";
        ipvs::examples::configure_director(d, ipvs::examples::parse_rules(rules).rules);
        est.reserve(n);
        frames.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            for (const std::uint8_t flags : {ipvs::tcp_flag::syn, ipvs::tcp_flag::ack}) { // the client's side
                bytes handshake = make_packet(i, flags);                                  // of the handshake
                (void)d.in(handshake, ipvs::time_ns{1});
            }
            est.push_back(make_packet(i, ipvs::tcp_flag::ack)); // then the flow's established packets
            bytes f(eth + l3_len);
            for (std::size_t k = 0; k < 12; ++k) f[k] = std::byte{static_cast<std::uint8_t>(0x20 + k)};
            ipvs::store_be16(f.data() + 12, ipvs::ethertype::ipv4);
            std::memcpy(f.data() + eth, est.back().data(), l3_len);
            frames.push_back(std::move(f));
        }
        order.resize(n);
        for (std::uint32_t i = 0; i < n; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(42));
    }
};

fixture& get_fixture(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<fixture>> cache;
    auto& f = cache[n];
    if (!f) {
        cache.clear(); // one size alive at a time (1M connections is ~200 MB with the packets)
        cache[n] = std::make_unique<fixture>(n);
        return *cache[n];
    }
    return *f;
}

struct mbuf_burst {
    rte_mbuf* m[burst] = {};
    mbuf_burst() {
        if (rte_pktmbuf_alloc_bulk(g_pool, m, burst) != 0) throw std::runtime_error("mempool empty");
        for (auto* x : m) {
            rte_pktmbuf_append(x, static_cast<std::uint16_t>(eth + l3_len));
            x->l2_len = eth;
        }
    }
    ~mbuf_burst() { rte_pktmbuf_free_bulk(m, burst); }
    mbuf_burst(const mbuf_burst&) = delete;
    mbuf_burst& operator=(const mbuf_burst&) = delete;
};

/// Fills the burst with the frames of flows order[at..at+32) (wrapping): what RX would have written.
void fill(mbuf_burst& b, const fixture& f, std::size_t& at) {
    for (unsigned i = 0; i < burst; ++i) {
        rte_mbuf* m = b.m[i];
        std::memcpy(rte_pktmbuf_mtod(m, void*), f.frames[f.order[at]].data(), eth + l3_len);
        m->ol_flags = 0; // RX: checksum unknown, as net_pcap and most virtual NICs say
        if (++at == f.order.size()) at = 0;
    }
}

std::size_t prefetch(ipvs::director& d, rte_mbuf* const* m, unsigned n) {
    return ipvs::dpdk::prefetch_conns(
        d, n,
        [&](std::size_t i) {
            return std::pair{
                std::span<const std::byte>(rte_pktmbuf_mtod(m[i], const std::byte*), m[i]->data_len),
                std::size_t{m[i]->l2_len}};
        },
        [](const ipvs::dpdk::flow_peek&) { return ipvs::dpdk::flow_side::client; });
}

/// The mbuf path's first 1,024 outputs must be the vector path's, byte for byte.
bool same_as_vector_path(fixture& f, bool batch) {
    mbuf_burst b;
    std::size_t at = 0;
    for (std::size_t k = 0; k < 1024 / burst; ++k) {
        const std::size_t first = at;
        fill(b, f, at);
        if (batch && prefetch(f.d, b.m, burst) != burst) return false; // every flow has its connection
        for (unsigned i = 0; i < burst; ++i) {
            auto v = ipvs::dpdk::view_mbuf(b.m[i]).view;
            bytes ref = f.est[f.order[(first + i) % f.order.size()]];
            const auto a = f.d.in(v, ipvs::time_ns{2});
            const auto r = f.d.in(ref, ipvs::time_ns{2}); // an established ACK: the same answer twice
            if (a.act != ipvs::action::forward || r.act != a.act ||
                std::memcmp(rte_pktmbuf_mtod_offset(b.m[i], const void*, eth), ref.data(), l3_len) != 0)
                return false;
        }
    }
    return true;
}

std::size_t conns() { return smoke() ? std::size_t{1} << 14 : std::size_t{1} << 20; }

void BM_vector_director(benchmark::State& st) {
    fixture& f = get_fixture(conns());
    bytes pkt(l3_len);
    std::uint64_t sum = 0;
    std::size_t i = 0;
    for (auto _ : st) {
        std::memcpy(pkt.data(), f.est[f.order[i]].data(), l3_len);
        const auto v = f.d.in(pkt, ipvs::time_ns{2});
        sum += static_cast<std::uint64_t>(v.act) + std::to_integer<unsigned>(pkt[19]) +
               std::to_integer<unsigned>(pkt[36]);
        if (++i == f.order.size()) i = 0;
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
    st.counters["conns"] = static_cast<double>(f.d.connections());
}

void BM_vector_director_burst(benchmark::State& st) {
    const bool batch = st.range(0) != 0;
    fixture& f = get_fixture(conns());
    std::vector<bytes> pkts(burst, bytes(l3_len));
    std::uint64_t sum = 0;
    std::size_t at = 0;
    for (auto _ : st) {
        for (auto& p : pkts) {
            std::memcpy(p.data(), f.est[f.order[at]].data(), l3_len);
            if (++at == f.order.size()) at = 0;
        }
        if (batch)
            sum += ipvs::dpdk::prefetch_conns(
                f.d, burst,
                [&](std::size_t i) {
                    return std::pair{std::span<const std::byte>(pkts[i]), std::size_t{0}};
                },
                [](const ipvs::dpdk::flow_peek&) { return ipvs::dpdk::flow_side::client; });
        for (auto& p : pkts) {
            const auto v = f.d.in(p, ipvs::time_ns{2});
            sum += static_cast<std::uint64_t>(v.act) + std::to_integer<unsigned>(p[19]) +
                   std::to_integer<unsigned>(p[36]);
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * burst);
    st.counters["result"] = static_cast<double>(sum % 1000003);
}

void BM_mbuf_director(benchmark::State& st) {
    const bool batch = st.range(0) != 0;
    fixture& f = get_fixture(conns());
    if (!same_as_vector_path(f, batch)) return st.SkipWithError("the mbuf path differs from the vector path");
    mbuf_burst b;
    std::uint64_t sum = 0;
    std::size_t at = 0;
    for (auto _ : st) {
        fill(b, f, at);
        for (auto* m : b.m) rte_prefetch0(rte_pktmbuf_mtod(m, void*));
        if (batch) sum += prefetch(f.d, b.m, burst);
        for (auto* m : b.m) {
            auto v = ipvs::dpdk::view_mbuf(m).view;
            const auto r = f.d.in(v, ipvs::time_ns{2});
            const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
            sum += static_cast<std::uint64_t>(r.act) + p[eth + 19] + p[eth + 36];
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * burst);
    st.counters["result"] = static_cast<double>(sum % 1000003);
}

void BM_dispatcher(benchmark::State& st) {
    fixture& f = get_fixture(conns());
    constexpr std::size_t n = 4096;
    std::vector<rte_mbuf*> ms(n);
    if (rte_pktmbuf_alloc_bulk(g_pool, ms.data(), n) != 0) return st.SkipWithError("mempool too small");
    for (std::size_t i = 0; i < n; ++i) {
        rte_pktmbuf_append(ms[i], static_cast<std::uint16_t>(eth + l3_len));
        std::memcpy(rte_pktmbuf_mtod(ms[i], void*), f.frames[f.order[i % f.order.size()]].data(),
                    eth + l3_len);
    }
    ipvs::dpdk::flow_steering steer(2);
    std::vector<rte_mbuf*> queue[2];
    queue[0].reserve(burst), queue[1].reserve(burst);
    std::uint64_t sum = 0;
    std::size_t at = 0;
    for (auto _ : st) {
        rte_mbuf** b = ms.data() + at;
        for (unsigned i = 0; i < burst; ++i) rte_prefetch0(rte_pktmbuf_mtod(b[i], void*));
        queue[0].clear(), queue[1].clear();
        for (unsigned i = 0; i < burst; ++i) {
            const auto v = ipvs::dpdk::linearize_mbuf(b[i]);
            auto view = v.view;
            const auto s = steer.steer(std::span<const std::byte>(ipvs::packet_bytes(view)));
            b[i]->l2_len = s.l3_offset & 0x7f;
            queue[s.worker].push_back(b[i]);
        }
        sum += queue[1].size();
        benchmark::DoNotOptimize(queue[0].data());
        if ((at += burst) == n) at = 0;
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * burst);
    st.counters["to_worker_2"] = static_cast<double>(sum) / static_cast<double>(st.iterations() * burst);
    rte_pktmbuf_free_bulk(ms.data(), n);
}

} // namespace

BENCHMARK(BM_vector_director);
BENCHMARK(BM_vector_director_burst)->ArgName("batch")->Arg(0)->Arg(1);
BENCHMARK(BM_mbuf_director)->ArgName("batch")->Arg(0)->Arg(1);
BENCHMARK(BM_dispatcher);

int main(int argc, char** argv) {
    // EAL first, as the tests run it: no hugepages, no PCI, a file prefix of this process.
    const std::string prefix = "ipvs_dpdk_bench_" + std::to_string(getpid());
    std::vector<std::string> eal_args = {argv[0], "--no-huge",     "--no-pci", "-m",
                                         "256",   "--file-prefix", prefix,     "--log-level=error"};
    std::vector<char*> eal;
    for (auto& a : eal_args) eal.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
        std::fprintf(stderr, "dpdk_bench: EAL could not start (%s): skipped\n", rte_strerror(rte_errno));
        return geteuid() != 0 ? 0 : 1;
    }
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    g_pool = rte_pktmbuf_pool_create("bench_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (!g_pool) {
        std::fprintf(stderr, "dpdk_bench: mempool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_mempool_free(g_pool);
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
    return 0;
}
