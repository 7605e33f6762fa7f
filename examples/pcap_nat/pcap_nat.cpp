// SPDX-License-Identifier: MIT
// pcap_nat: a userspace LVS-NAT director on libpcap, configured with ipvsadm-save rules: offline on
// captures, or live between two interfaces.
//
//   pcap_nat --rules FILE --in CAPTURE --out CAPTURE [--bad-list FILE] [--quiet]
//   pcap_nat --rules FILE --live --client-if IF --server-if IF [--stats-interval SEC] [--quiet]
//
// Offline, it reads a capture taken in front of the services (pcap or pcapng, Ethernet), sends the
// requests through the director, plays the replies as if the chosen real servers had sent them, writes
// every frame the director emits to --out, and prints what an operator wants to see: the per-dest
// distribution (ipvsadm -Ln --stats), the connection table at the end (ipvsadm -Lnc), drops by reason,
// and whether SNAT restored every reply. Exit status: 0 success, 1 a capture error, 2 bad arguments or
// rules, 3 replies that did not come back as they left.
//
// Live, it captures on --client-if (requests, through director::in) and --server-if (the real servers'
// replies, through director::out) and injects the rewritten frames; connections expire on real time
// (CLOCK_MONOTONIC). The stats and the connection table are printed every --stats-interval seconds (0:
// never), on SIGUSR1, and at the end (SIGINT / SIGTERM). The host must not route the traffic itself:
// see examples/common/live.hpp and examples/pcap_nat/live_test.sh for the setup.

#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include <ipvs/io.hpp>

#include "../common/live.hpp"
#include "../common/pcap_io.hpp"
#include "../common/replay.hpp"
#include "../common/rules.hpp"
#include "../common/sync_transport.hpp"

namespace {

using namespace ipvs::examples;

struct options {
    std::string rules_path, in_path, out_path, bad_list;
    bool quiet = false, live = false, trace = false;
    std::string client_if, server_if;
    double stats_interval = 0;
    std::vector<std::string_view> sync_args; ///< ipvsadm's --start-daemon … options, as given
};

int usage(const char* why) {
    std::fprintf(
        stderr,
        "pcap_nat: %s\n"
        "usage: pcap_nat --rules FILE --in CAPTURE --out CAPTURE [--bad-list FILE] [--quiet]\n"
        "       pcap_nat --rules FILE --live --client-if IF --server-if IF [--stats-interval SEC]"
        " [--trace] [--quiet]\n"
        "         [--start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N]\n"
        "          [--mcast-group ADDR] [--mcast-port N] [--mcast-ttl N]]\n",
        why);
    return 2;
}

/// Parses argv into `o`; returns 0, or the usage() status after printing why.
int parse_options(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        std::string num;
        if (is_sync_daemon_option(a)) {
            o.sync_args.push_back(a);
            if (sync_daemon_option_takes_value(a) && a.find('=') == std::string_view::npos && i + 1 < argc)
                o.sync_args.emplace_back(argv[++i]);
        } else if (a == "--rules") {
            if (!value(o.rules_path)) return usage("--rules needs a file");
        } else if (a == "--in") {
            if (!value(o.in_path)) return usage("--in needs a capture");
        } else if (a == "--out") {
            if (!value(o.out_path)) return usage("--out needs a file");
        } else if (a == "--bad-list") {
            if (!value(o.bad_list)) return usage("--bad-list needs a file");
        } else if (a == "--quiet") {
            o.quiet = true;
        } else if (a == "--trace") {
            o.trace = true;
        } else if (a == "--live") {
            o.live = true;
        } else if (a == "--client-if") {
            if (!value(o.client_if)) return usage("--client-if needs an interface");
        } else if (a == "--server-if") {
            if (!value(o.server_if)) return usage("--server-if needs an interface");
        } else if (a == "--stats-interval") {
            char* end = nullptr;
            if (!value(num) || (o.stats_interval = std::strtod(num.c_str(), &end), *end != '\0') ||
                o.stats_interval < 0)
                return usage("--stats-interval needs a number of seconds");
        } else {
            return usage(("unknown argument " + std::string(a)).c_str());
        }
    }
    if (o.rules_path.empty()) return usage("--rules is required");
    if (o.live) {
        if (o.client_if.empty() || o.server_if.empty())
            return usage("--live needs --client-if and --server-if");
        if (!o.in_path.empty() || !o.out_path.empty()) return usage("--live takes no --in / --out");
    } else if (!o.sync_args.empty()) {
        return usage("the sync daemon options (--start-daemon …) need --live");
    } else if (o.in_path.empty() || o.out_path.empty()) {
        return usage("--in and --out are required (or --live)");
    }
    return 0;
}

void print_tables(const ipvs::director& d, ipvs::time_ns now, const char* when) {
    std::printf("%s\n", ipvs::list_stats(d).c_str());
    std::printf("%s\n", ipvs::list_services(d).c_str());
    std::printf("Connections %s:\n%s\n", when, ipvs::list_conns(d, now).c_str());
}

int run_offline(const options& o, const rule_set& rules, ipvs::director& d) {
    std::string err;
    auto reader = capture_reader::open(o.in_path, err);
    if (!reader) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    auto writer = capture_writer::open(o.out_path, err);
    if (!writer) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    std::ofstream bad_out;
    if (!o.bad_list.empty()) bad_out.open(o.bad_list);

    offline_replay replay(d, rules);
    frame_record rec;
    std::uint64_t written = 0;
    ipvs::time_ns first{0}, now{0};
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    for (;;) {
        const auto st = reader->next(rec);
        if (st == read_status::end) break;
        if (st != read_status::frame) {
            std::fprintf(stderr, "pcap_nat: %s (after %llu frames)\n", reader->error().c_str(),
                         static_cast<unsigned long long>(reader->frames_read()));
            status = 1;
            break;
        }
        if (first.count() == 0) first = rec.ts;
        now = rec.ts - first + std::chrono::seconds(1); // the director's clock starts with the capture
        replay.process(rec.data, now, [&](std::span<const std::byte> f, bool bad) {
            writer->write(rec.ts, f);
            ++written;
            if (bad && bad_out) bad_out << written << '\n'; // 1-based frame numbers, as tshark counts
        });
        if (!o.quiet && replay.stats().frames % 100000 == 0)
            std::fprintf(stderr, "pcap_nat: %llu frames, %zu connections\n",
                         static_cast<unsigned long long>(replay.stats().frames), d.connections());
    }
    if (!writer->finish(err)) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& s = replay.stats();
    if (!o.quiet) print_tables(d, now, "at the end of the capture");
    print_summary(stdout, s, written, secs);
    if (status == 0 && s.replies_differ != 0) status = 3;
    return status;
}

volatile sig_atomic_t g_stop = 0, g_dump = 0;

ipvs::time_ns monotonic_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

void print_live(const ipvs::director& d, const live_stats& s, const sync_node* sync, ipvs::time_ns now,
                bool quiet) {
    if (!quiet) print_tables(d, now, "now");
    if (sync) {
        const auto& c = sync->stats();
        std::printf("sync: sent %llu messages (%llu send errors); received %llu, ignored %llu, records "
                    "applied %llu\n",
                    static_cast<unsigned long long>(c.sent_messages),
                    static_cast<unsigned long long>(c.send_errors),
                    static_cast<unsigned long long>(c.received_messages),
                    static_cast<unsigned long long>(c.ignored_messages),
                    static_cast<unsigned long long>(c.applied_records));
    }
    std::printf("client side: received %llu, sent %llu; server side: received %llu, sent %llu\n",
                static_cast<unsigned long long>(s.rx_client), static_cast<unsigned long long>(s.tx_client),
                static_cast<unsigned long long>(s.rx_server), static_cast<unsigned long long>(s.tx_server));
    std::printf(
        "forwarded in %llu, out %llu, director replies %llu, not ours %llu, reassembled %llu, "
        "for another MAC %llu, no neighbour %llu, inject errors %llu\n",
        static_cast<unsigned long long>(s.forwarded_in), static_cast<unsigned long long>(s.forwarded_out),
        static_cast<unsigned long long>(s.own_replies), static_cast<unsigned long long>(s.not_ours),
        static_cast<unsigned long long>(s.reassembled), static_cast<unsigned long long>(s.other_mac),
        static_cast<unsigned long long>(s.no_neighbour), static_cast<unsigned long long>(s.inject_errors));
    print_drops(stdout, s.drops);
    std::fflush(stdout);
}

int run_live(const options& o, const rule_set& rules, ipvs::director& d) {
    std::string err;
    auto cport = live_port::open(o.client_if, err);
    if (!cport) return std::fprintf(stderr, "pcap_nat: %s\n", err.c_str()), 1;
    auto sport = live_port::open(o.server_if, err);
    if (!sport) return std::fprintf(stderr, "pcap_nat: %s\n", err.c_str()), 1;
    const auto cmac = interface_mac(o.client_if, err);
    if (!cmac) return std::fprintf(stderr, "pcap_nat: %s\n", err.c_str()), 1;
    const auto smac = interface_mac(o.server_if, err);
    if (!smac) return std::fprintf(stderr, "pcap_nat: %s\n", err.c_str()), 1;
    for (const auto* p : {&*cport, &*sport})
        if (!p->warning().empty()) std::fprintf(stderr, "pcap_nat: %s\n", p->warning().c_str());

    live_director ld(d, rules, {&*cport, *cmac, neighbour_cache(o.client_if)},
                     {&*sport, *smac, neighbour_cache(o.server_if)});
    ld.set_trace(o.trace);
    std::unique_ptr<sync_node> sync; // the --start-daemon sync daemon, in this process and loop
    if (!o.sync_args.empty()) {
        try {
            sync = std::make_unique<sync_node>(d, parse_sync_daemon_options(o.sync_args));
        } catch (const std::invalid_argument& e) {
            return usage(e.what());
        } catch (const std::exception& e) {
            return std::fprintf(stderr, "pcap_nat: sync daemon: %s\n", e.what()), 1;
        }
    }
    struct sigaction sa {};
    sa.sa_handler = [](int sig) { (sig == SIGUSR1 ? g_dump : g_stop) = 1; };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);

    std::fprintf(stderr, "pcap_nat: live on %s (clients) and %s (real servers), %zu services\n",
                 o.client_if.c_str(), o.server_if.c_str(), d.services().size());
    pollfd fds[3] = {{cport->selectable_fd(), POLLIN, 0},
                     {sport->selectable_fd(), POLLIN, 0},
                     {sync ? sync->receive_fd() : -1, POLLIN, 0}};
    const auto interval =
        std::chrono::duration_cast<ipvs::time_ns>(std::chrono::duration<double>(o.stats_interval));
    auto next_dump = monotonic_now() + interval;
    frame_record rec;
    int status = 0;
    while (!g_stop) {
        auto now = monotonic_now();
        int wait_ms = 50; // wakes at least every 50 ms for expiry and signals
        if (sync) {
            const int t = sync->poll_timeout_ms(now);
            if (t >= 0 && t < wait_ms) wait_ms = t;
        }
        (void)::poll(fds, 3, wait_ms);
        now = monotonic_now();
        if (sync && (fds[2].revents & POLLIN)) sync->on_readable(now);
        for (int side = 0; side < 2 && status == 0; ++side) {
            live_port& p = side == 0 ? *cport : *sport;
            for (int n = 0; n < 256; ++n) { // bounded, so one busy side cannot starve the other
                const auto st = p.next(rec);
                if (st == read_status::none) break;
                if (st != read_status::frame) {
                    std::fprintf(stderr, "pcap_nat: %s\n", p.error().c_str());
                    status = 1;
                    break;
                }
                if (side == 0)
                    ld.on_client_frame(rec.data, now);
                else
                    ld.on_server_frame(rec.data, now);
            }
        }
        if (status != 0) break;
        now = monotonic_now();
        d.poll(now); // a sync master also syncs the entries still in use here (its on_expire hook)
        if (sync) sync->on_tick(now);
        if (g_dump || (o.stats_interval > 0 && now >= next_dump)) {
            g_dump = 0;
            next_dump = now + interval;
            print_live(d, ld.stats(), sync.get(), now, o.quiet);
        }
    }
    if (sync) sync->flush(monotonic_now()); // a master stopping sends what it holds
    print_live(d, ld.stats(), sync.get(), monotonic_now(), o.quiet);
    if (!ld.last_error().empty())
        std::fprintf(stderr, "pcap_nat: last inject error: %s\n", ld.last_error().c_str());
    return status;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    if (const int rc = parse_options(argc, argv, o)) return rc;
    const auto rules = read_rules_file(o.rules_path);
    if (!rules.ok()) {
        std::fprintf(stderr, "pcap_nat: %s: %s\n", o.rules_path.c_str(), rules.error->what().c_str());
        return 2;
    }
    ipvs::director d;
    try {
        configure_director(d, rules.rules);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pcap_nat: %s: %s\n", o.rules_path.c_str(), e.what());
        return 2;
    }
    return o.live ? run_live(o, rules.rules, d) : run_offline(o, rules.rules, d);
}
