// SPDX-License-Identifier: MIT
// pcap_nat: a userspace LVS-NAT director on libpcap, configured with ipvsadm-save rules, offline on captures.
//
//   pcap_nat --rules FILE --in CAPTURE --out CAPTURE [--bad-list FILE] [--quiet]
//
// Reads a capture taken in front of the services (pcap or pcapng, Ethernet), sends the requests through
// the director, plays the replies as if the chosen real servers had sent them, writes every frame the
// director emits to --out, and prints what an operator wants to see: the per-dest distribution
// (ipvsadm -Ln --stats), the connection table at the end (ipvsadm -Lnc), drops by reason, and whether
// SNAT restored every reply. Exit status: 0 success, 1 a capture error, 2 bad arguments or rules,
// 3 replies that did not come back as they left.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include <ipvs/io.hpp>

#include "../common/pcap_io.hpp"
#include "../common/replay.hpp"
#include "../common/rules.hpp"

namespace {

int usage(const char* why) {
    std::fprintf(
        stderr,
        "pcap_nat: %s\nusage: pcap_nat --rules FILE --in CAPTURE --out CAPTURE [--bad-list FILE] [--quiet]\n",
        why);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string rules_path, in_path, out_path, bad_list;
    bool quiet = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&](std::string& into) {
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        if (a == "--rules") {
            if (!value(rules_path)) return usage("--rules needs a file");
        } else if (a == "--in") {
            if (!value(in_path)) return usage("--in needs a capture");
        } else if (a == "--out") {
            if (!value(out_path)) return usage("--out needs a file");
        } else if (a == "--bad-list") {
            if (!value(bad_list)) return usage("--bad-list needs a file");
        } else if (a == "--quiet") {
            quiet = true;
        } else {
            return usage(("unknown argument " + std::string(a)).c_str());
        }
    }
    if (rules_path.empty() || in_path.empty() || out_path.empty())
        return usage("--rules, --in and --out are required");

    const auto rules = ipvs::examples::read_rules_file(rules_path);
    if (!rules.ok()) {
        std::fprintf(stderr, "pcap_nat: %s: %s\n", rules_path.c_str(), rules.error->what().c_str());
        return 2;
    }
    ipvs::director d;
    try {
        ipvs::examples::configure_director(d, rules.rules);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pcap_nat: %s: %s\n", rules_path.c_str(), e.what());
        return 2;
    }

    std::string err;
    auto reader = ipvs::examples::capture_reader::open(in_path, err);
    if (!reader) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    auto writer = ipvs::examples::capture_writer::open(out_path, err);
    if (!writer) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    std::ofstream bad_out;
    if (!bad_list.empty()) bad_out.open(bad_list);

    ipvs::examples::offline_replay replay(d, rules.rules);
    ipvs::examples::frame_record rec;
    std::uint64_t written = 0;
    ipvs::time_ns first{0}, now{0};
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    for (;;) {
        const auto st = reader->next(rec);
        if (st == ipvs::examples::read_status::end) break;
        if (st != ipvs::examples::read_status::frame) {
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
        if (!quiet && replay.stats().frames % 100000 == 0)
            std::fprintf(stderr, "pcap_nat: %llu frames, %zu connections\n",
                         static_cast<unsigned long long>(replay.stats().frames), d.connections());
    }
    if (!writer->finish(err)) {
        std::fprintf(stderr, "pcap_nat: %s\n", err.c_str());
        return 1;
    }
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& s = replay.stats();
    if (!quiet) {
        std::printf("%s\n", ipvs::list_stats(d).c_str());
        std::printf("%s\n", ipvs::list_services(d).c_str());
        std::printf("Connections at the end of the capture:\n%s\n", ipvs::list_conns(d, now).c_str());
    }
    std::printf("frames read %llu, written %llu, in %.3f s\n", static_cast<unsigned long long>(s.frames),
                static_cast<unsigned long long>(written), secs);
    std::printf(
        "requests %llu: forwarded %llu, director replies %llu, not for a service %llu, reassembled %llu\n",
        static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.forwarded),
        static_cast<unsigned long long>(s.own_replies), static_cast<unsigned long long>(s.accepted),
        static_cast<unsigned long long>(s.reassembled));
    std::printf("replies %llu: SNAT restored %llu, differ %llu, without connection %llu\n",
                static_cast<unsigned long long>(s.replies),
                static_cast<unsigned long long>(s.replies_restored),
                static_cast<unsigned long long>(s.replies_differ),
                static_cast<unsigned long long>(s.replies_without_conn));
    std::printf("inputs with a wrong TCP/UDP checksum (forwarded still wrong, as Linux does): %llu\n",
                static_cast<unsigned long long>(s.bad_checksum_inputs));
    std::printf("drops:");
    if (s.drops.empty()) std::printf(" none");
    for (const auto& [why, n] : s.drops)
        std::printf(" %s %llu;", ipvs::to_string(why), static_cast<unsigned long long>(n));
    std::printf("\nnot IP %llu, malformed L2 %llu\n", static_cast<unsigned long long>(s.not_ip),
                static_cast<unsigned long long>(s.malformed_l2));
    if (status == 0 && s.replies_differ != 0) status = 3;
    return status;
}
