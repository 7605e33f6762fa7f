// SPDX-License-Identifier: MIT
// Flood benchmark: the per-packet cost of established flows through the director, quiet and under a SYN
// flood, a UDP flood, an ICMP error storm and a flood for unknown services (issue 7: within 2× of quiet).
//
// Method. A director with a table of `capacity` entries holds `flows` established TCP connections
// (capacity / 4). Each iteration first feeds 512 flood packets (timed apart), then times a burst of 64
// established-flow packets (manual timing on the thread's CPU clock, two reads per burst), so the figure is
// what an established packet costs with the flood's state in the table and its traffic in the caches — 8
// flood packets for every established one. The flood's sources are spoofed (fixed-seed splitmix64 over
// 100.64.0.0/10 × 64000 ports), pre-built, 10 × capacity distinct ones, replayed in a ring. Counters:
// `ratio` = ns per established packet / the quiet run's (the baseline in the same binary and run,
// registered first), `flood_ns` = ns per flood packet, `lost` = established packets not forwarded to
// their dest (must be 0), `result` = a checksum of the rewritten bytes.
// IPVS_BENCH_SMOKE=1: capacity 4096 instead of 65536.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <time.h>

#include <ipvs/director.hpp>

namespace {

using bytes = std::vector<std::uint8_t>;
bool smoke() { return std::getenv("IPVS_BENCH_SMOKE") != nullptr; }

enum class flood : int { quiet, syn, udp, icmp, unknown_service };
constexpr const char* flood_names[] = {"quiet", "syn", "udp", "icmp", "unknown_service"};

void put16(bytes& p, std::size_t at, std::uint16_t v) {
    p[at] = static_cast<std::uint8_t>(v >> 8);
    p[at + 1] = static_cast<std::uint8_t>(v);
}
void put32(bytes& p, std::size_t at, std::uint32_t v) {
    put16(p, at, static_cast<std::uint16_t>(v >> 16));
    put16(p, at + 2, static_cast<std::uint16_t>(v));
}

/// An IPv4 packet saddr:sport → daddr:dport (TCP with `flags`, UDP when flags is 0xff), checksums valid.
void build(bytes& p, std::uint32_t saddr, std::uint16_t sport, std::uint32_t daddr, std::uint16_t dport,
           std::uint8_t flags) {
    const bool udp = flags == 0xff;
    const std::size_t l4 = udp ? 16 : 20;
    p.assign(20 + l4, 0); // no allocation once the buffer has grown
    p[0] = 0x45;
    put16(p, 2, static_cast<std::uint16_t>(p.size()));
    p[6] = 0x40;
    p[8] = 64;
    p[9] = udp ? ipvs::ipproto::udp : ipvs::ipproto::tcp;
    put32(p, 12, saddr);
    put32(p, 16, daddr);
    put16(p, 20, sport);
    put16(p, 22, dport);
    if (udp) {
        put16(p, 24, static_cast<std::uint16_t>(l4));
    } else {
        p[32] = 0x50;
        p[33] = flags;
        put16(p, 34, 64240);
    }
    const auto b = std::as_bytes(std::span(p));
    put16(p, 10, ipvs::internet_checksum(b.first(20)));
    const std::uint16_t c = ipvs::internet_checksum(
        b.subspan(20), ipvs::pseudo_header(ipvs::inet_addr::v4(saddr), ipvs::inet_addr::v4(daddr), p[9],
                                           static_cast<std::uint32_t>(l4)));
    put16(p, udp ? 26 : 36, c == 0 && udp ? 0xffff : c);
}
bytes packet(std::uint32_t saddr, std::uint16_t sport, std::uint32_t daddr, std::uint16_t dport,
             std::uint8_t flags) {
    bytes p;
    build(p, saddr, sport, daddr, dport, flags);
    return p;
}

/// ICMP fragmentation needed from `router` to `dst`, quoting the first 28 bytes of `quoted`.
void build_icmp_error(bytes& p, std::uint32_t router, std::uint32_t dst, const bytes& quoted) {
    p.assign(20 + 8 + 28, 0);
    p[0] = 0x45;
    put16(p, 2, static_cast<std::uint16_t>(p.size()));
    p[8] = 64;
    p[9] = ipvs::ipproto::icmp;
    put32(p, 12, router);
    put32(p, 16, dst);
    p[20] = 3;
    p[21] = 4;
    put32(p, 24, 1400);
    std::memcpy(p.data() + 28, quoted.data(), 28);
    const auto b = std::as_bytes(std::span(p));
    put16(p, 10, ipvs::internet_checksum(b.first(20)));
    put16(p, 22, ipvs::internet_checksum(b.subspan(20)));
}

constexpr std::uint32_t vip = 0x0a000064; // 10.0.0.100
constexpr std::uint32_t rs0 = 0x0a00020b; // 10.0.2.11 …

struct world {
    std::size_t capacity;
    flood kind;
    ipvs::director d;
    std::vector<bytes> est;          ///< one ACK per established flow
    std::vector<std::uint32_t> dest; ///< the dest address each flow is bound to
    std::vector<bytes> storm;        ///< the flood's ring of packet buffers

    world(std::size_t cap, flood what)
        : capacity(cap), kind(what), d(ipvs::director_config{.capacity_v4 = cap, .capacity_v6 = 256}) {
        ipvs::service_config t;
        t.vip = {ipvs::inet_addr::v4(vip), 80};
        auto& st = d.add_service(t);
        ipvs::service_config u = t;
        u.vip.port = 53;
        u.protocol = ipvs::ipproto::udp;
        auto& su = d.add_service(u);
        for (std::uint32_t k = 0; k < 8; ++k) {
            d.add_dest(st, ipvs::dest_config{{ipvs::inet_addr::v4(rs0 + k), 8080}, 1});
            d.add_dest(su, ipvs::dest_config{{ipvs::inet_addr::v4(rs0 + k), 5353}, 1});
        }
        const std::size_t flows = cap / 4;
        for (std::uint32_t i = 0; i < flows; ++i) {
            const std::uint32_t c = 0x0a010000U + i / 200; // 10.1.x.y, 200 ports each
            const auto cp = static_cast<std::uint16_t>(20000 + i % 200);
            auto syn = packet(c, cp, vip, 80, ipvs::tcp_flag::syn);
            const auto v = d.in(syn, ipvs::time_ns{1});
            auto sa = packet(v.to->ep.addr.v4_host(), 8080, c, cp, ipvs::tcp_flag::syn | ipvs::tcp_flag::ack);
            (void)d.out(sa, ipvs::time_ns{1});
            est.push_back(packet(c, cp, vip, 80, ipvs::tcp_flag::ack));
            auto ack = est.back();
            (void)d.in(ack, ipvs::time_ns{1});
            dest.push_back(v.to->ep.addr.v4_host());
        }
        storm.resize(kind == flood::quiet ? 0 : ring);
        for (auto& p : storm) p.reserve(64);
        refill();
    }

    /// Writes the next `ring` flood packets, each from a fresh spoofed source (a NIC's RX ring of
    /// buffers, reused: the flood's cache footprint is the ring's, as on a real datapath).
    void refill() {
        for (std::size_t i = 0; i < storm.size(); ++i, ++made) {
            const std::uint64_t r = rng.next();
            const auto src = 0x64400000U | static_cast<std::uint32_t>(r & 0x3fffff);
            const auto sp = static_cast<std::uint16_t>(1024 + (r >> 32) % 64000);
            switch (kind) {
            case flood::syn:
                build(storm[i], src, sp, vip, 80, ipvs::tcp_flag::syn);
                break;
            case flood::udp:
                build(storm[i], src, sp, vip, 53, 0xff);
                break;
            case flood::icmp: {
                // Half quote an established flow (forwarded to its dest), half a random one (not ours).
                const std::size_t f = (r >> 16) % est.size();
                const std::uint32_t client = i % 2 ? 0x0a010000U + static_cast<std::uint32_t>(f / 200) : src;
                const auto cport = i % 2 ? static_cast<std::uint16_t>(20000 + f % 200) : sp;
                build(quoted, vip, 80, client, cport, ipvs::tcp_flag::ack);
                build_icmp_error(storm[i], src, vip, quoted);
                break;
            }
            default:
                build(storm[i], src, sp, vip, static_cast<std::uint16_t>(1000 + i % 50), ipvs::tcp_flag::syn);
            }
        }
    }

    static constexpr std::size_t ring = 4096;
    ipvs::detail::rng64 rng{0x5eedULL}; // the table's own splitmix64, fixed seed
    std::uint64_t made = 0;             ///< flood packets written so far (all from distinct sources)
    bytes quoted;
};

double g_quiet_ns = 0; // the quiet run's ns per established packet (registered first)

void BM_established_under_flood(benchmark::State& st) {
    const auto kind = static_cast<flood>(st.range(0));
    const std::size_t cap = smoke() ? 4096 : 65536;
    world w(cap, kind);
    st.SetLabel(flood_names[st.range(0)]);
    constexpr std::size_t burst = 64, flood_per_burst = 512;
    bytes pkt(w.est[0].size()); // every established packet is a 40-byte ACK
    std::uint64_t sum = 0, lost = 0, flood_pkts = 0;
    std::size_t fi = 0, ei = 0;
    double est_s = 0, flood_s = 0;
    ipvs::time_ns now{std::chrono::seconds(2)};
    // This thread's CPU time, not the wall clock: on a shared 2-core machine a preemption inside a
    // window would otherwise land in it (the windows are short: 64 packets).
    auto cpu_now = [] {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    };
    std::uint64_t iter = 0;
    for (auto _ : st) {
        if (fi == w.storm.size()) {
            w.refill(); // untimed: the packets "arrive"
            fi = 0;
        }
        const double t0 = cpu_now();
        for (std::size_t k = 0; k < flood_per_burst && fi < w.storm.size(); ++k, ++fi) {
            sum += static_cast<std::uint64_t>(w.d.in(w.storm[fi], now).act); // rewritten in place: used once
            ++flood_pkts;
        }
        now += std::chrono::microseconds(1);
        const double t1 = cpu_now();
        for (std::size_t k = 0; k < burst; ++k) {
            const auto& src = w.est[ei];
            std::memcpy(pkt.data(), src.data(), src.size());
            const auto v = w.d.in(pkt, now);
            lost += v.act != ipvs::action::forward || !v.to || v.to->ep.addr.v4_host() != w.dest[ei];
            sum += pkt[19] + pkt[36];
            if (++ei == w.est.size()) ei = 0;
        }
        const double t2 = cpu_now();
        if ((++iter & 255) == 0) (void)w.d.poll(now); // the datapath loop's expiry, untimed
        const double e = t2 - t1;
        est_s += e;
        flood_s += t1 - t0;
        st.SetIterationTime(e);
    }
    const double ns = est_s * 1e9 / static_cast<double>(st.iterations() * burst);
    if (kind == flood::quiet) g_quiet_ns = ns;
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * burst));
    st.counters["est_ns"] = ns;
    st.counters["ratio"] = g_quiet_ns > 0 ? ns / g_quiet_ns : 0;
    st.counters["flood_ns"] = flood_pkts ? flood_s * 1e9 / static_cast<double>(flood_pkts) : 0;
    st.counters["lost"] = static_cast<double>(lost);
    st.counters["table"] = static_cast<double>(w.d.table_v4().size());
    st.counters["capacity"] = static_cast<double>(w.capacity);
    st.counters["sources"] = static_cast<double>(w.made);
    st.counters["result"] = static_cast<double>(sum % 1000003);
}

} // namespace

BENCHMARK(BM_established_under_flood)->ArgName("flood")->DenseRange(0, 4)->UseManualTime();

BENCHMARK_MAIN();
