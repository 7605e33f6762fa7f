// SPDX-License-Identifier: MIT
// Director benchmarks: established packets through in(), new connections, NAT rewrite alone — each with a
// baseline.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include <ipvs/director.hpp>

namespace {

using bytes = std::vector<std::uint8_t>;
bool smoke() { return std::getenv("IPVS_BENCH_SMOKE") != nullptr; }

// A 54-byte-class TCP/IPv4 packet (40 bytes of IP+TCP) from client i to the VIP with the given flags.
bytes make_packet(std::uint32_t i, std::uint8_t flags) {
    bytes p(40, 0);
    p[0] = 0x45;
    p[3] = 40;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = ipvs::ipproto::tcp;
    const std::uint32_t client = 0x0a010000U + (i >> 8); // 10.1.x.y, 256 ports per address
    const std::uint16_t cport = static_cast<std::uint16_t>(1024 + (i & 0xff) * 97 % 60000);
    for (int k = 0; k < 4; ++k) p[12 + k] = static_cast<std::uint8_t>(client >> (24 - 8 * k));
    p[16] = 10, p[17] = 0, p[18] = 0, p[19] = 100;
    p[20] = static_cast<std::uint8_t>(cport >> 8), p[21] = static_cast<std::uint8_t>(cport);
    p[23] = 80;
    p[32] = 0x50;
    p[33] = flags;
    p[34] = 0xff;
    auto b = std::as_bytes(std::span(p));
    ipvs::store_be16(reinterpret_cast<std::byte*>(p.data()) + 10, ipvs::internet_checksum(b.first(20)));
    const auto src = ipvs::inet_addr::load(ipvs::family::v4, b.data() + 12),
               dst = ipvs::inet_addr::load(ipvs::family::v4, b.data() + 16);
    ipvs::store_be16(reinterpret_cast<std::byte*>(p.data()) + 36,
                     ipvs::internet_checksum(b.subspan(20), ipvs::pseudo_header(src, dst, 6, 20)));
    return p;
}

// The same over IPv6 (60 bytes): client fd01::x:y, port as above, to [fd00::100]:80.
bytes make_packet6(std::uint32_t i, std::uint8_t flags) {
    bytes p(60, 0);
    p[0] = 0x60;
    p[5] = 20;
    p[6] = ipvs::ipproto::tcp;
    p[7] = 64;
    p[8] = 0xfd, p[9] = 0x01;
    p[20] = static_cast<std::uint8_t>(i >> 24), p[21] = static_cast<std::uint8_t>(i >> 16);
    p[22] = static_cast<std::uint8_t>(i >> 8), p[23] = 1;
    p[24] = 0xfd, p[38] = 0x01; // fd00::100
    const std::uint16_t cport = static_cast<std::uint16_t>(1024 + (i & 0xff) * 97 % 60000);
    p[40] = static_cast<std::uint8_t>(cport >> 8), p[41] = static_cast<std::uint8_t>(cport);
    p[43] = 80;
    p[52] = 0x50;
    p[53] = flags;
    p[54] = 0xff;
    auto b = std::as_bytes(std::span(p));
    const auto src = ipvs::inet_addr::load(ipvs::family::v6, b.data() + 8),
               dst = ipvs::inet_addr::load(ipvs::family::v6, b.data() + 24);
    ipvs::store_be16(reinterpret_cast<std::byte*>(p.data()) + 56,
                     ipvs::internet_checksum(b.subspan(40), ipvs::pseudo_header(src, dst, 6, 20)));
    return p;
}

/// The benchmarks' service: VIP 10.0.0.100:80 with 8 real servers 10.0.2.11.. :8080, weight 1.
void add_bench_service(ipvs::director& d, std::string_view scheduler) {
    ipvs::service_config c;
    c.vip = *ipvs::parse_endpoint("10.0.0.100:80");
    c.scheduler = scheduler;
    auto& s = d.add_service(c);
    for (int k = 0; k < 8; ++k)
        d.add_dest(s, ipvs::dest_config{ipvs::endpoint{ipvs::inet_addr::v4(0x0a00020bU + k), 8080}, 1});
}

// The established benchmarks' packets in the order they arrive — every flow once, in a shuffled order
// (fixed seed), round after round — laid out back to back in 64-byte slots as a NIC's RX ring holds
// them, so fetching the next packet is a sequential read for every implementation measured.
struct packet_stream {
    static constexpr std::size_t stride = 64;
    std::vector<std::byte> data;
    std::size_t n = 0, len = 0;
    /// `packet(i)`: flow i's packet (default: the client's ACK).
    template <class Make>
    packet_stream(std::size_t flows, Make packet) : data(flows * stride), n(flows) {
        std::vector<std::uint32_t> order(flows);
        for (std::uint32_t i = 0; i < flows; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(42));
        for (std::size_t i = 0; i < flows; ++i) {
            const bytes p = packet(order[i]);
            len = p.size();
            std::memcpy(data.data() + i * stride, p.data(), len);
        }
    }
    explicit packet_stream(std::size_t flows)
        : packet_stream(flows, [](std::uint32_t i) { return make_packet(i, ipvs::tcp_flag::ack); }) {}
    [[nodiscard]] const std::byte* at(std::size_t i) const noexcept { return data.data() + i * stride; }
};

/// The receive buffers a burst is copied into (the packets are rewritten in place): `burst` slots.
struct rx_ring {
    std::vector<std::byte> mem;
    std::vector<std::span<std::byte>> pkts;
    explicit rx_ring(std::size_t burst, std::size_t len = 40) : mem(burst * packet_stream::stride) {
        for (std::size_t k = 0; k < burst; ++k)
            pkts.emplace_back(mem.data() + k * packet_stream::stride, len);
    }
    /// Copies the next pkts.size() packets of `s` from position `i` (wrapping) into the slots.
    void fill(const packet_stream& s, std::size_t& i) noexcept {
        for (auto& p : pkts) {
            std::memcpy(p.data(), s.at(i), p.size());
            if (++i == s.n) i = 0;
        }
    }
};

/// The real server's answer to a packet the director forwarded to it: addresses and ports swapped
/// (which leaves both checksums valid).
bytes reply_of(bytes p) {
    std::swap_ranges(p.begin() + 12, p.begin() + 16, p.begin() + 16);
    std::swap_ranges(p.begin() + 20, p.begin() + 22, p.begin() + 22);
    return p;
}

/// Sets up n established connections (SYN, then ACK, through the director); returns the ACKs as the
/// director forwarded them.
std::vector<bytes> establish(ipvs::director& d, std::size_t n) {
    add_bench_service(d, "rr");
    std::vector<bytes> fwd;
    fwd.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        auto syn = make_packet(i, ipvs::tcp_flag::syn);
        (void)d.in(syn, ipvs::time_ns{1});
        fwd.push_back(make_packet(i, ipvs::tcp_flag::ack));
        (void)d.in(fwd.back(), ipvs::time_ns{1});
    }
    return fwd;
}

/// n established connections; the clients' ACKs and the real servers' replies as streams.
struct fixture {
    ipvs::director d;
    std::vector<bytes> forwarded; // emptied once the streams are built
    packet_stream stream, replies;
    explicit fixture(std::size_t n)
        : d(ipvs::director_config{.capacity_v4 = n + n / 8 + 1024, .capacity_v6 = 1024}),
          forwarded(establish(d, n)), stream(n),
          replies(n, [this](std::uint32_t i) { return reply_of(forwarded[i]); }) {
        forwarded = {};
    }
};

/// The rewritten destination's last byte and the TCP checksum's high byte (IPv4: 19, 36; IPv6: 39, 56).
std::uint64_t packet_sum(std::span<const std::byte> p) noexcept {
    return std::to_integer<std::uint64_t>(p[p.size() - 21]) + std::to_integer<std::uint64_t>(p[p.size() - 4]);
}

// Established packets through the whole director (lookup, state, rewrite, timer), one call per packet.
void BM_director_established(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    fixture f(n);
    rx_ring ring(1);
    std::uint64_t sum = 0;
    std::size_t i = 0;
    for (auto _ : st) {
        ring.fill(f.stream, i); // a fresh packet (in() rewrites it in place)
        const auto v = f.d.in(ring.pkts[0], ipvs::time_ns{2});
        sum += static_cast<std::uint64_t>(v.act) + packet_sum(ring.pkts[0]);
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
    st.counters["conns"] = static_cast<double>(f.d.connections());
}

/// n established IPv6 connections; the clients' ACKs as a stream.
struct fixture6 {
    ipvs::director d;
    packet_stream stream;
    explicit fixture6(std::size_t n)
        : d(ipvs::director_config{.capacity_v4 = 1024, .capacity_v6 = n + n / 8 + 1024}),
          stream(n, [](std::uint32_t i) { return make_packet6(i, ipvs::tcp_flag::ack); }) {
        ipvs::service_config c;
        c.af = ipvs::family::v6;
        c.vip = *ipvs::parse_endpoint("[fd00::100]:80");
        c.scheduler = "rr";
        auto& s = d.add_service(c);
        for (int k = 0; k < 8; ++k) {
            auto a = *ipvs::parse_addr("fd00:2::b");
            a.bytes[15] = static_cast<std::uint8_t>(0x0b + k);
            d.add_dest(s, ipvs::dest_config{ipvs::endpoint{a, 8080}, 1});
        }
        for (std::uint32_t i = 0; i < n; ++i) {
            auto syn = make_packet6(i, ipvs::tcp_flag::syn);
            (void)d.in(syn, ipvs::time_ns{1});
            auto ack = make_packet6(i, ipvs::tcp_flag::ack);
            (void)d.in(ack, ipvs::time_ns{1});
        }
    }
};

/// A burst benchmark: 32 packets of `pick(f)`'s stream at a time through `call(d, pkts, verdicts)`.
template <class Fixture = fixture, class Pick, class Call>
void burst_bench(benchmark::State& st, Pick pick, Call call) {
    const auto n = static_cast<std::size_t>(st.range(0));
    Fixture f(n);
    constexpr std::size_t burst = 32;
    rx_ring ring(burst, pick(f).len);
    std::vector<ipvs::verdict> out(burst);
    std::uint64_t sum = 0;
    std::size_t i = 0;
    for (auto _ : st) {
        ring.fill(pick(f), i);
        call(f.d, std::span(ring.pkts), std::span(out));
        for (std::size_t k = 0; k < burst; ++k)
            sum += static_cast<std::uint64_t>(out[k].act) + packet_sum(ring.pkts[k]);
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * burst));
    st.counters["result"] = static_cast<double>(sum % 1000003);
    st.counters["conns"] = static_cast<double>(f.d.connections());
}

// The same packets handed over 32 at a time (director::in_burst), as a datapath's RX burst does: the
// lookups of a burst go through the table's prefetching batch.
void BM_director_established_burst(benchmark::State& st) {
    burst_bench(
        st, [](const fixture& f) -> const packet_stream& { return f.stream; },
        [](ipvs::director& d, auto pkts, auto out) { d.in_burst(pkts, out, ipvs::time_ns{2}); });
}

// The real servers' replies to the same connections, 32 at a time (director::out_burst: out lookup,
// state, SNAT with checksums, timer re-arm).
void BM_director_reply_burst(benchmark::State& st) {
    burst_bench(
        st, [](const fixture& f) -> const packet_stream& { return f.replies; },
        [](ipvs::director& d, auto pkts, auto out) { d.out_burst(pkts, out, ipvs::time_ns{2}); });
}

// IPv6 clients' ACKs, 32 at a time (in_burst: IPv6 takes the lane one packet at a time, unbatched).
void BM_director_established_v6_burst(benchmark::State& st) {
    burst_bench<fixture6>(
        st, [](const fixture6& f) -> const packet_stream& { return f.stream; },
        [](ipvs::director& d, auto pkts, auto out) { d.in_burst(pkts, out, ipvs::time_ns{2}); });
}

// Baselines: what a straightforward userspace NAT does — a hash map on (client address, port), then the
// real server's address and port written and both checksums recomputed in full. No states, timers or
// stats. `Map` is std::unordered_map or boost::unordered_flat_map, same hash.
struct baseline_key {
    std::uint32_t saddr;
    std::uint16_t sport;
    bool operator==(const baseline_key&) const = default;
};
struct baseline_hash {
    std::size_t operator()(const baseline_key& k) const noexcept {
        return std::hash<std::uint64_t>()((std::uint64_t{k.saddr} << 16) | k.sport);
    }
};
using baseline_value = std::pair<std::uint32_t, std::uint16_t>;
/// The baselines' NAT: the real server's address and port written, TTL − 1, both checksums recomputed.
void baseline_rewrite(std::byte* p, const baseline_value& rs) noexcept {
    ipvs::store_be32(p + 16, rs.first);
    ipvs::store_be16(p + 22, rs.second);
    p[8] = std::byte{static_cast<std::uint8_t>(std::to_integer<unsigned>(p[8]) - 1)};
    ipvs::store_be16(p + 10, 0);
    ipvs::store_be16(p + 10, ipvs::internet_checksum(std::span<const std::byte>(p, 20)));
    ipvs::store_be16(p + 36, 0);
    const auto s = ipvs::inet_addr::load(ipvs::family::v4, p + 12),
               d = ipvs::inet_addr::load(ipvs::family::v4, p + 16);
    ipvs::store_be16(p + 36, ipvs::internet_checksum(std::span<const std::byte>(p + 20, 20),
                                                     ipvs::pseudo_header(s, d, 6, 20)));
}
template <class Map>
void baseline_established(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    Map table;
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto pkt = make_packet(i, ipvs::tcp_flag::ack);
        const auto* p = reinterpret_cast<const std::byte*>(pkt.data());
        table[{ipvs::load_be32(p + 12), ipvs::load_be16(p + 20)}] = {0x0a00020bU + i % 8, 8080};
    }
    const packet_stream stream(n);
    rx_ring ring(1);
    std::uint64_t sum = 0;
    std::size_t i = 0;
    for (auto _ : st) {
        ring.fill(stream, i);
        std::byte* p = ring.pkts[0].data();
        const auto it = table.find({ipvs::load_be32(p + 12), ipvs::load_be16(p + 20)});
        if (it != table.end()) baseline_rewrite(p, it->second);
        sum += 1 + packet_sum(ring.pkts[0]);
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
}
void BM_baseline_established(benchmark::State& st) {
    baseline_established<std::unordered_map<baseline_key, baseline_value, baseline_hash>>(st);
}
void BM_baseline_flat_established(benchmark::State& st) {
    baseline_established<boost::unordered_flat_map<baseline_key, baseline_value, baseline_hash>>(st);
}

// The new-connection benchmarks' director (one wlc service, 8 dests, room for 2^20 connections) and
// 2^18 SYNs of distinct clients.
struct syn_fixture {
    static constexpr std::uint32_t pool = 1 << 18;
    ipvs::director d{ipvs::director_config{.capacity_v4 = 1 << 20, .capacity_v6 = 1024}};
    std::vector<bytes> syns;
    syn_fixture() {
        add_bench_service(d, "wlc");
        syns.reserve(pool);
        for (std::uint32_t i = 0; i < pool; ++i) syns.push_back(make_packet(i, ipvs::tcp_flag::syn));
    }
};

// New connections: SYN → service → schedule → insert → state → rewrite; the table is recycled by expiry.
void BM_director_new_conn(benchmark::State& st) {
    syn_fixture f;
    auto& d = f.d;
    const auto& syns = f.syns;
    const std::uint32_t pool = syn_fixture::pool;
    bytes pkt(40);
    std::uint64_t sum = 0, fwd = 0;
    std::uint32_t i = 0;
    ipvs::time_ns now{1};
    for (auto _ : st) {
        std::memcpy(pkt.data(), syns[i].data(), 40);
        const auto v = d.in(pkt, now);
        fwd += v.act == ipvs::action::forward;
        sum += pkt[19];
        if (++i ==
            pool) { // every flow has had its SYN: let the SYN_RECV entries (60 s) expire, go round again
            i = 0;
            st.PauseTiming();
            now += std::chrono::seconds(120);
            while (d.poll(now, 1 << 20) != 0) {
            }
            st.ResumeTiming();
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
    st.counters["forwarded"] = static_cast<double>(fwd) / static_cast<double>(st.iterations());
}

// The same SYNs handed over 32 at a time (director::in_burst).
void BM_director_new_conn_burst(benchmark::State& st) {
    syn_fixture f;
    auto& d = f.d;
    const auto& syns = f.syns;
    const std::uint32_t pool = syn_fixture::pool;
    constexpr std::size_t burst = 32;
    std::vector<bytes> pkts(burst, bytes(40));
    std::vector<ipvs::verdict> out(burst);
    std::uint64_t sum = 0, fwd = 0;
    std::uint32_t i = 0;
    ipvs::time_ns now{1};
    for (auto _ : st) {
        for (std::size_t k = 0; k < burst; ++k) std::memcpy(pkts[k].data(), syns[i + k].data(), 40);
        d.in_burst(std::span(pkts), std::span(out), now);
        for (std::size_t k = 0; k < burst; ++k) {
            fwd += out[k].act == ipvs::action::forward;
            sum += pkts[k][19];
        }
        i += burst;
        if (i == pool) { // as BM_director_new_conn: expire the SYN_RECV entries untimed, go round again
            i = 0;
            st.PauseTiming();
            now += std::chrono::seconds(120);
            while (d.poll(now, 1 << 20) != 0) {
            }
            st.ResumeTiming();
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * burst));
    st.counters["result"] = static_cast<double>(sum % 1000003);
    st.counters["forwarded"] = static_cast<double>(fwd) / static_cast<double>(st.iterations() * burst);
}

// Baseline for new connections: the same SYNs into a hash map — a lookup that misses, a real server
// picked round-robin, the insert, the rewrite with full checksums; no states, timers or counters. As in
// BM_director_new_conn the map is emptied, untimed, when the pool of distinct clients wraps.
template <class Map>
void baseline_new_conn(benchmark::State& st) {
    constexpr std::uint32_t pool = syn_fixture::pool;
    std::vector<bytes> syns;
    syns.reserve(pool);
    for (std::uint32_t i = 0; i < pool; ++i) syns.push_back(make_packet(i, ipvs::tcp_flag::syn));
    Map table;
    table.reserve(std::size_t{1} << 20); // the director's table holds 2^20 too
    bytes pkt(40);
    std::uint64_t sum = 0;
    std::uint32_t i = 0, next_rs = 0;
    for (auto _ : st) {
        std::memcpy(pkt.data(), syns[i].data(), 40);
        auto* p = reinterpret_cast<std::byte*>(pkt.data());
        const auto [it, inserted] =
            table.try_emplace(baseline_key{ipvs::load_be32(p + 12), ipvs::load_be16(p + 20)},
                              baseline_value{0x0a00020bU + next_rs, 8080});
        if (inserted) next_rs = (next_rs + 1) % 8;
        baseline_rewrite(p, it->second);
        sum += pkt[19] + pkt[36];
        if (++i == pool) {
            i = 0;
            st.PauseTiming();
            table.clear();
            st.ResumeTiming();
        }
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
}
void BM_baseline_new_conn(benchmark::State& st) {
    baseline_new_conn<std::unordered_map<baseline_key, baseline_value, baseline_hash>>(st);
}
void BM_baseline_flat_new_conn(benchmark::State& st) {
    baseline_new_conn<boost::unordered_flat_map<baseline_key, baseline_value, baseline_hash>>(st);
}

// The rewrite alone: DNAT of a parsed IPv4 TCP packet (RFC 1624 updates), vs a full recompute baseline.
void BM_rewrite_nat(benchmark::State& st) {
    auto base = make_packet(7, ipvs::tcp_flag::ack);
    const auto info = ipvs::parse(base).info;
    const auto rs = *ipvs::parse_addr("10.0.2.11");
    bytes pkt(40);
    std::uint64_t sum = 0;
    for (auto _ : st) {
        std::memcpy(pkt.data(), base.data(), 40);
        (void)ipvs::nat_rewrite(pkt, info, ipvs::nat_dir::dnat, rs, 8080);
        sum += pkt[36];
        benchmark::DoNotOptimize(pkt.data());
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
}
void BM_rewrite_full_recompute(benchmark::State& st) {
    auto base = make_packet(7, ipvs::tcp_flag::ack);
    const auto rs = *ipvs::parse_addr("10.0.2.11");
    bytes pkt(40);
    std::uint64_t sum = 0;
    for (auto _ : st) {
        std::memcpy(pkt.data(), base.data(), 40);
        auto* p = reinterpret_cast<std::byte*>(pkt.data());
        rs.store(p + 16);
        ipvs::store_be16(p + 22, 8080);
        ipvs::store_be16(p + 10, 0);
        ipvs::store_be16(p + 10, ipvs::internet_checksum(std::span<const std::byte>(p, 20)));
        ipvs::store_be16(p + 36, 0);
        const auto s = ipvs::inet_addr::load(ipvs::family::v4, p + 12);
        ipvs::store_be16(p + 36, ipvs::internet_checksum(std::span<const std::byte>(p + 20, 20),
                                                         ipvs::pseudo_header(s, rs, 6, 20)));
        sum += pkt[36];
        benchmark::DoNotOptimize(pkt.data());
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.counters["result"] = static_cast<double>(sum % 1000003);
}

void sizes(benchmark::internal::Benchmark* b) {
    if (smoke())
        b->Arg(1 << 14);
    else
        b->Arg(1 << 10)->Arg(1 << 17)->Arg(1 << 20);
}

} // namespace

BENCHMARK(BM_director_established)->Apply(sizes);
BENCHMARK(BM_director_established_burst)->Apply(sizes);
BENCHMARK(BM_director_reply_burst)->Apply(sizes);
BENCHMARK(BM_director_established_v6_burst)->Apply(sizes);
BENCHMARK(BM_baseline_established)->Apply(sizes);
BENCHMARK(BM_baseline_flat_established)->Apply(sizes);
BENCHMARK(BM_director_new_conn);
BENCHMARK(BM_director_new_conn_burst);
BENCHMARK(BM_baseline_new_conn);
BENCHMARK(BM_baseline_flat_new_conn);
BENCHMARK(BM_rewrite_nat);
BENCHMARK(BM_rewrite_full_recompute);

BENCHMARK_MAIN();
