// SPDX-License-Identifier: MIT
// dpdk_director: the ipvs director inside a DPDK application — a dispatcher lcore steering flows to worker
// lcores, one share-nothing director each, configured from ipvsadm-save rules like pcap_nat.
//
//   dpdk_director [EAL options] -- --rules FILE [--bad-list FILE] [--no-batch] [--quiet]
//                                    [--rx-port N] [--tx-port N]
//
//   e.g. dpdk_director --no-huge --no-pci -m 256 --file-prefix demo -l 0-1
//          --vdev net_pcap0,rx_pcap=examples/data/sample.pcap,tx_pcap=out.pcap
//          -- --rules examples/data/sample.rules              (one command line)
//
// Layout (one RX and one TX queue, as net_pcap has):
//
//   main lcore: rx_burst(32) ─► steer (symmetric 5-tuple hash) ─► ring[w] ─► worker lcore w
//               tx_burst      ◄──────────────── tx ring[w] ◄──── director w + replay
//
// The main lcore is the dispatcher and the transmitter; every other lcore is a worker with its own
// director, replay state and rings (share-nothing: no lock, no shared connection). Workers dequeue bursts
// of 32, prefetch the frames and (unless --no-batch) their connections with the table's batched
// lookups, then run each frame through the same offline replay as pcap_nat (examples/common/replay.hpp):
// requests go through director::in(), the capture's replies are played as the chosen real server's
// packets through director::out(). A forwarded frame leaves in its own mbuf, rewritten in place.
//
// The director's clock is the capture's: the dispatcher stamps each mbuf with the frame's RX timestamp
// (net_pcap delivers the capture's) relative to the first, plus 1 s — as pcap_nat does. The input is
// drained when the RX port stays empty (net_pcap's end of file); the workers finish their rings, the
// TX side writes everything, and the stats pcap_nat prints follow (per worker, then the summary).
//
// Exit status: 0 success, 1 a DPDK error, 2 bad arguments or rules, 3 replies that did not come back as
// they left, 77 when EAL cannot start without root (the tests then report a skip).

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include <ipvs/io.hpp>

#include "../common/replay.hpp"
#include "../common/rules.hpp"
#include "mbuf_view.hpp"
#include "steering.hpp"

namespace {

using ipvs::dpdk::flow_side;
using ipvs::dpdk::mbuf_view;

constexpr unsigned burst = 32;
constexpr unsigned ring_size = 1024; // per worker and direction; a power of two
constexpr unsigned pool_per_worker = 4 * ring_size + 2 * burst;
constexpr unsigned rx_desc = 256, tx_desc = 256;
constexpr int empty_polls_at_end = 16; // net_pcap returns nothing at end of file, at once

/// What the dispatcher and the workers attach to each mbuf (a dynamic field of the app's own).
struct frame_meta {
    std::int64_t now_ns; ///< the director's clock for this frame
    std::uint8_t bad;    ///< the frame was made from an input with a wrong TCP/UDP checksum
};
int g_meta_offset = -1;
frame_meta& meta(rte_mbuf* m) { return *RTE_MBUF_DYNFIELD(m, g_meta_offset, frame_meta*); }

struct options {
    std::string rules, bad_list;
    bool batch = true, quiet = false;
    std::uint16_t rx_port = 0, tx_port = 0;
};

/// Sleeps a little after a run of empty polls, so idle lcores leave a shared machine's cores alone.
struct idle_backoff {
    unsigned empty = 0;
    void idle() {
        if (++empty < 64)
            rte_pause();
        else
            std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    void busy() { empty = 0; }
};

struct worker {
    unsigned lcore = 0;
    ipvs::director d;
    ipvs::examples::offline_replay replay;
    rte_ring* rx = nullptr; // dispatcher → worker
    rte_ring* tx = nullptr; // worker → transmitter
    rte_mempool* pool = nullptr;
    bool batch = true;
    std::atomic<bool>* stop = nullptr;
    std::atomic<bool> done{false};
    std::uint64_t steered = 0, alloc_failures = 0, prefetched = 0;
    ipvs::time_ns last{0};

    explicit worker(const ipvs::examples::rule_set& rules) : replay(d, rules) {
        ipvs::examples::configure_director(d, rules);
    }

    void push(rte_mbuf** out, unsigned& n) {
        unsigned sent = 0;
        idle_backoff wait;
        while (sent < n) { // back-pressure, never a drop: the output must hold every frame
            const unsigned k =
                rte_ring_enqueue_burst(tx, reinterpret_cast<void**>(out + sent), n - sent, nullptr);
            sent += k;
            if (k == 0) wait.idle();
        }
        n = 0;
    }

    /// One burst: prefetch the frames, then their connections, then run each through the replay.
    void run_burst(rte_mbuf** pkts, unsigned n, rte_mbuf** out, unsigned& n_out) {
        for (unsigned i = 0; i < n; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
        if (batch)
            prefetched += ipvs::dpdk::prefetch_conns(
                d, n,
                [&](std::size_t i) {
                    const auto* m = pkts[i];
                    return std::pair{
                        std::span<const std::byte>(rte_pktmbuf_mtod(m, const std::byte*), m->data_len),
                        std::size_t{m->l2_len}};
                },
                [&](const ipvs::dpdk::flow_peek& p) {
                    return replay.is_vip(p.daddr)   ? flow_side::client
                           : replay.is_vip(p.saddr) ? flow_side::client_reverse
                                                    : flow_side::skip;
                });
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            auto v = ipvs::dpdk::view_mbuf(m); // the dispatcher linearized every chain
            last = ipvs::time_ns(meta(m).now_ns);
            bool consumed = false;
            replay.process_in_place(v.view, last, [&](std::span<const std::byte> f, bool bad) {
                rte_mbuf* o = m;
                if (f.data() == rte_pktmbuf_mtod(m, const std::byte*)) {
                    consumed = true; // the input itself, rewritten in place
                } else {             // a new frame (the director's own answer, a re-fragmented datagram)
                    o = rte_pktmbuf_alloc(pool);
                    char* p = o ? rte_pktmbuf_append(o, static_cast<std::uint16_t>(f.size())) : nullptr;
                    if (!p) {
                        if (o) rte_pktmbuf_free(o);
                        ++alloc_failures;
                        return;
                    }
                    std::memcpy(p, f.data(), f.size());
                }
                meta(o).bad = bad ? 1 : 0;
                out[n_out++] = o;
                if (n_out == burst) push(out, n_out);
            });
            if (!consumed) rte_pktmbuf_free(m);
        }
    }

    int main_loop() {
        rte_mbuf* pkts[burst];
        rte_mbuf* out[burst];
        unsigned n_out = 0;
        idle_backoff wait;
        for (;;) {
            const unsigned n = rte_ring_dequeue_burst(rx, reinterpret_cast<void**>(pkts), burst, nullptr);
            if (n == 0) {
                if (stop->load(std::memory_order_acquire) && rte_ring_empty(rx)) break;
                wait.idle();
                continue;
            }
            wait.busy();
            run_burst(pkts, n, out, n_out);
            if (n_out) push(out, n_out);
        }
        done.store(true, std::memory_order_release);
        return 0;
    }
};

int worker_main(void* arg) { return static_cast<worker*>(arg)->main_loop(); }

int usage(const char* why) {
    std::fprintf(stderr,
                 "dpdk_director: %s\nusage: dpdk_director [EAL options] -- --rules FILE [--bad-list FILE] "
                 "[--no-batch] [--quiet] [--rx-port N] [--tx-port N]\n",
                 why);
    return 2;
}

int parse_options(int argc, char** argv, options& o) {
    std::string rx, tx;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        std::string* into = a == "--rules"      ? &o.rules
                            : a == "--bad-list" ? &o.bad_list
                            : a == "--rx-port"  ? &rx
                            : a == "--tx-port"  ? &tx
                                                : nullptr;
        if (into) {
            if (++i == argc) return usage((std::string(a) + " needs a value").c_str());
            *into = argv[i];
        } else if (a == "--no-batch") {
            o.batch = false;
        } else if (a == "--quiet") {
            o.quiet = true;
        } else {
            return usage(("unknown argument " + std::string(a)).c_str());
        }
    }
    for (auto [text, port] : {std::pair{&rx, &o.rx_port}, std::pair{&tx, &o.tx_port}}) {
        if (text->empty()) continue;
        const auto r = std::from_chars(text->data(), text->data() + text->size(), *port);
        if (r.ec != std::errc{} || r.ptr != text->data() + text->size()) return usage("a port is a number");
    }
    if (o.rules.empty()) return usage("--rules is required");
    return 0;
}

/// One RX queue and one TX queue on each port used.
bool setup_port(std::uint16_t port, rte_mempool* pool, bool rx, bool tx) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, rx ? 1 : 0, tx ? 1 : 0, &conf) != 0) return false;
    const int socket = rte_eth_dev_socket_id(port);
    const unsigned s = socket < 0 ? 0 : static_cast<unsigned>(socket);
    if (rx && rte_eth_rx_queue_setup(port, 0, rx_desc, s, nullptr, pool) != 0) return false;
    if (tx && rte_eth_tx_queue_setup(port, 0, tx_desc, s, nullptr) != 0) return false;
    return rte_eth_dev_start(port) == 0;
}

/// The main lcore: RX + steering, and TX of what the workers give back.
class dispatcher {
public:
    dispatcher(const options& o, std::vector<std::unique_ptr<worker>>& ws)
        : m_o(o), m_ws(ws), m_steer(static_cast<std::uint32_t>(ws.size())), m_out(ws.size()) {
        if (!o.bad_list.empty()) m_bad.open(o.bad_list);
        rte_mbuf_dyn_rx_timestamp_register(&m_ts_offset, &m_ts_flag); // net_pcap's RX time, if it gives one
    }

    void run(std::atomic<bool>& stop) {
        rte_mbuf* pkts[burst];
        int empty = 0;
        idle_backoff wait;
        while (empty < empty_polls_at_end) {
            const unsigned n = rte_eth_rx_burst(m_o.rx_port, 0, pkts, burst);
            if (n == 0) {
                ++empty;
                drain_tx();
                wait.idle();
                continue;
            }
            empty = 0;
            wait.busy();
            steer_burst(pkts, n);
            drain_tx();
        }
        stop.store(true, std::memory_order_release);
        for (;;) { // until every worker has finished and every frame is out
            bool all_done = true;
            for (const auto& w : m_ws) all_done = all_done && w->done.load(std::memory_order_acquire);
            const unsigned moved = drain_tx();
            if (all_done && moved == 0 && tx_rings_empty()) break;
            if (moved == 0) wait.idle();
        }
    }

    [[nodiscard]] std::uint64_t rx() const noexcept { return m_rx; }
    [[nodiscard]] std::uint64_t written() const noexcept { return m_written; }
    [[nodiscard]] std::uint64_t chains_dropped() const noexcept { return m_chains_dropped; }
    [[nodiscard]] std::uint64_t by_fragment_cache() const noexcept { return m_frag_steered; }

private:
    void steer_burst(rte_mbuf** pkts, unsigned n) {
        for (unsigned i = 0; i < n; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
        for (auto& q : m_out) q.clear();
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            ++m_rx;
            const auto v = ipvs::dpdk::linearize_mbuf(m); // the library sees contiguous bytes only
            if (!v.ok()) {
                ++m_chains_dropped;
                rte_pktmbuf_free(m);
                continue;
            }
            const auto s = m_steer.steer(std::span<const std::byte>(ipvs::packet_bytes(v.view)));
            m->l2_len = s.l3_offset & 0x7f;
            m_frag_steered += s.by_fragment_cache;
            meta(m) = {clock_of(m).count(), 0};
            m_out[s.worker].push_back(m);
        }
        for (std::size_t w = 0; w < m_ws.size(); ++w) {
            auto& q = m_out[w];
            m_ws[w]->steered += q.size();
            unsigned sent = 0;
            idle_backoff wait;
            while (sent < q.size()) { // offline: wait for the worker rather than drop
                sent += rte_ring_enqueue_burst(m_ws[w]->rx, reinterpret_cast<void**>(q.data() + sent),
                                               static_cast<unsigned>(q.size()) - sent, nullptr);
                if (sent < q.size() && drain_tx() == 0) wait.idle();
            }
        }
    }

    /// The capture's time (pcap_nat's clock: since the first frame, plus 1 s), or the TSC without one.
    ipvs::time_ns clock_of(rte_mbuf* m) {
        std::int64_t t;
        if (m_ts_offset >= 0 && (m->ol_flags & m_ts_flag) != 0)
            t = static_cast<std::int64_t>(*RTE_MBUF_DYNFIELD(m, m_ts_offset, rte_mbuf_timestamp_t*)) *
                1000; // µs
        else
            t = static_cast<std::int64_t>(rte_get_tsc_cycles() / (rte_get_tsc_hz() / 1000000)) * 1000;
        if (!m_have_first) m_first = t, m_have_first = true;
        return ipvs::time_ns(t - m_first) + std::chrono::seconds(1);
    }

    unsigned drain_tx() {
        unsigned moved = 0;
        rte_mbuf* pkts[burst];
        for (auto& w : m_ws) {
            const unsigned n = rte_ring_dequeue_burst(w->tx, reinterpret_cast<void**>(pkts), burst, nullptr);
            unsigned sent = 0;
            while (sent < n)
                sent += rte_eth_tx_burst(m_o.tx_port, 0, pkts + sent, static_cast<std::uint16_t>(n - sent));
            for (unsigned i = 0; i < n; ++i) {
                ++m_written;
                if (meta(pkts[i]).bad && m_bad) m_bad << m_written << '\n'; // 1-based, as tshark counts
            }
            moved += n;
        }
        return moved;
    }
    bool tx_rings_empty() const {
        for (const auto& w : m_ws)
            if (!rte_ring_empty(w->tx)) return false;
        return true;
    }

    const options& m_o;
    std::vector<std::unique_ptr<worker>>& m_ws;
    ipvs::dpdk::flow_steering m_steer;
    std::vector<std::vector<rte_mbuf*>> m_out;
    std::ofstream m_bad;
    int m_ts_offset = -1;
    std::uint64_t m_ts_flag = 0;
    bool m_have_first = false;
    std::int64_t m_first = 0;
    std::uint64_t m_rx = 0, m_written = 0, m_chains_dropped = 0, m_frag_steered = 0;
};

} // namespace

/// After a successful rte_eal_init: on every way out, the ports closed (net_pcap flushes and frees its
/// files), EAL cleaned up, and this run's runtime directory (its own --file-prefix) removed.
struct eal_session {
    eal_session() = default;
    eal_session(const eal_session&) = delete;
    eal_session& operator=(const eal_session&) = delete;
    ~eal_session() {
        std::uint16_t port;
        RTE_ETH_FOREACH_DEV(port) {
            rte_eth_dev_stop(port);
            rte_eth_dev_close(port);
        }
        const std::string runtime_dir = rte_eal_get_runtime_dir();
        rte_eal_cleanup();
        std::error_code ec;
        std::filesystem::remove_all(runtime_dir, ec);
    }
};

int main(int argc, char** argv) {
    const int used = rte_eal_init(argc, argv);
    if (used < 0) {
        std::fprintf(stderr, "dpdk_director: EAL could not start: %s\n", rte_strerror(rte_errno));
        return geteuid() != 0 ? 77 : 1;
    }
    const eal_session eal;
    options o;
    argv[used] = argv[0];
    if (const int rc = parse_options(argc - used, argv + used, o); rc != 0) return rc;

    const auto rules = ipvs::examples::read_rules_file(o.rules);
    if (!rules.ok()) {
        std::fprintf(stderr, "dpdk_director: %s: %s\n", o.rules.c_str(), rules.error->what().c_str());
        return 2;
    }
    std::vector<unsigned> lcores;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) lcores.push_back(lc);
    if (lcores.empty()) {
        std::fprintf(stderr,
                     "dpdk_director: needs at least one worker lcore besides the main one (e.g. -l 0-1)\n");
        return 2;
    }
    if (rte_eth_dev_count_avail() == 0 || !rte_eth_dev_is_valid_port(o.rx_port) ||
        !rte_eth_dev_is_valid_port(o.tx_port)) {
        std::fprintf(stderr,
                     "dpdk_director: no such port (give one with --vdev net_pcap0,rx_pcap=IN,tx_pcap=OUT)\n");
        return 2;
    }
    static const rte_mbuf_dynfield meta_desc = {"ipvs_dpdk_director_meta", sizeof(frame_meta),
                                                alignof(frame_meta), 0};
    g_meta_offset = rte_mbuf_dynfield_register(&meta_desc);
    auto* pool = rte_pktmbuf_pool_create(
        "ipvs_pool", pool_per_worker * static_cast<unsigned>(lcores.size()) + rx_desc + tx_desc, 256, 0,
        RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (g_meta_offset < 0 || !pool) {
        std::fprintf(stderr, "dpdk_director: mbuf pool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    const bool one_port = o.rx_port == o.tx_port;
    if (!setup_port(o.rx_port, pool, true, one_port) ||
        (!one_port && !setup_port(o.tx_port, pool, false, true))) {
        std::fprintf(stderr, "dpdk_director: port setup failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }

    std::vector<std::unique_ptr<worker>> ws;
    std::atomic<bool> stop{false};
    try {
        for (unsigned l : lcores) {
            auto w = std::make_unique<worker>(rules.rules);
            const std::string id = std::to_string(l);
            w->lcore = l;
            w->rx =
                rte_ring_create(("ipvs_rx" + id).c_str(), ring_size,
                                static_cast<int>(rte_lcore_to_socket_id(l)), RING_F_SP_ENQ | RING_F_SC_DEQ);
            w->tx =
                rte_ring_create(("ipvs_tx" + id).c_str(), ring_size,
                                static_cast<int>(rte_lcore_to_socket_id(l)), RING_F_SP_ENQ | RING_F_SC_DEQ);
            w->pool = pool;
            w->batch = o.batch;
            w->stop = &stop;
            if (!w->rx || !w->tx) {
                std::fprintf(stderr, "dpdk_director: rings: %s\n", rte_strerror(rte_errno));
                return 1;
            }
            ws.push_back(std::move(w));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dpdk_director: %s: %s\n", o.rules.c_str(), e.what());
        return 2;
    }

    dispatcher disp(o, ws);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& w : ws) rte_eal_remote_launch(worker_main, w.get(), w->lcore);
    disp.run(stop);
    rte_eal_mp_wait_lcore();
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rte_eth_dev_stop(o.rx_port); // closes net_pcap's dump file before the summary
    if (!one_port) rte_eth_dev_stop(o.tx_port);
    ipvs::examples::replay_stats total;
    std::uint64_t alloc_failures = 0;
    for (const auto& w : ws) {
        total += w->replay.stats();
        alloc_failures += w->alloc_failures;
        if (o.quiet) continue;
        if (ws.size() > 1) std::printf("=== worker lcore %u\n", w->lcore);
        std::printf("%s\n", ipvs::list_stats(w->d).c_str());
        std::printf("%s\n", ipvs::list_services(w->d).c_str());
        std::printf("Connections at the end of the capture:\n%s\n", ipvs::list_conns(w->d, w->last).c_str());
    }
    std::printf("dispatcher: %llu frames received, %llu chained mbufs that could not be linearized, %llu "
                "fragments steered after their first\n",
                static_cast<unsigned long long>(disp.rx()),
                static_cast<unsigned long long>(disp.chains_dropped()),
                static_cast<unsigned long long>(disp.by_fragment_cache()));
    for (std::size_t i = 0; i < ws.size(); ++i)
        std::printf("worker %zu: %llu frames (lcore %u), %llu connections prefetched by batched lookups\n",
                    i + 1, static_cast<unsigned long long>(ws[i]->steered), ws[i]->lcore,
                    static_cast<unsigned long long>(ws[i]->prefetched));
    if (alloc_failures)
        std::printf("frames lost for want of an mbuf: %llu\n",
                    static_cast<unsigned long long>(alloc_failures));
    ipvs::examples::print_summary(stdout, total, disp.written(), secs);
    for (auto& w : ws) {
        rte_ring_free(w->rx);
        rte_ring_free(w->tx);
    }
    ws.clear();
    return total.replies_differ != 0 ? 3 : 0;
}
