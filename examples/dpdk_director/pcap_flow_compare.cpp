// SPDX-License-Identifier: MIT
// pcap_flow_compare: do two captures hold the same frames as sets per flow, in order within each flow?
//
//   pcap_flow_compare A B              exit 0 when they do, 1 with the first difference when not
//   pcap_flow_compare --self-test A D  writes mutated copies of A into directory D and checks that the
//                                      comparison catches each change (and accepts a reordering across flows)
//
// A flow is the protocol and the unordered pair of endpoints (address, port) — an ICMP error counts in the
// flow it quotes, a fragment without ports in the flow of its protocol and addresses — so both directions
// of a connection are one flow, and frames that a multi-worker datapath interleaves differently across
// flows still compare equal. Frames are compared byte for byte; capture timestamps are ignored.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ipvs/ethernet.hpp>
#include <ipvs/parse.hpp>

#include "../common/pcap_io.hpp"

namespace {

using frame = std::vector<std::byte>;
using flows = std::map<std::string, std::vector<frame>>;

std::string endpoint_key(const ipvs::inet_addr& a, std::uint16_t port) {
    std::string k(reinterpret_cast<const char*>(a.bytes.data()), a.size());
    k.push_back(static_cast<char>(port >> 8));
    k.push_back(static_cast<char>(port & 0xff));
    return k;
}

std::string flow_of(std::span<const std::byte> f) {
    const auto eth = ipvs::parse_ethernet(f);
    if (!eth) return "not-ethernet";
    if (eth->ethertype != ipvs::ethertype::ipv4 && eth->ethertype != ipvs::ethertype::ipv6) return "not-ip";
    const auto r = ipvs::parse(f, eth->l3_offset);
    const auto& ip = r.info.ip;
    std::uint8_t proto = ip.protocol;
    std::string a, b;
    if (r.ok() && r.info.inner.present && r.info.inner.has_ports) {
        const auto& q = r.info.inner;
        proto = q.ip.protocol;
        a = endpoint_key(q.ip.saddr, q.sport), b = endpoint_key(q.ip.daddr, q.dport);
    } else if (r.ok()) {
        a = endpoint_key(ip.saddr, r.info.l4.sport), b = endpoint_key(ip.daddr, r.info.l4.dport);
    } else if (r.status == ipvs::parse_status::truncated_l3 ||
               r.status == ipvs::parse_status::bad_ip_version) {
        return "not-parsed";
    } else {
        a = endpoint_key(ip.saddr, 0), b = endpoint_key(ip.daddr, 0);
    }
    if (b < a) std::swap(a, b);
    return std::string(1, static_cast<char>(proto)) + a + b;
}

bool read_all(const std::string& path, std::vector<std::pair<std::chrono::nanoseconds, frame>>& out) {
    std::string err;
    auto r = ipvs::examples::capture_reader::open(path, err);
    if (!r) {
        std::fprintf(stderr, "pcap_flow_compare: %s\n", err.c_str());
        return false;
    }
    ipvs::examples::frame_record rec;
    for (;;) {
        const auto st = r->next(rec);
        if (st == ipvs::examples::read_status::end) return true;
        if (st != ipvs::examples::read_status::frame) {
            std::fprintf(stderr, "pcap_flow_compare: %s\n", r->error().c_str());
            return false;
        }
        out.emplace_back(rec.ts, frame(rec.data.begin(), rec.data.end()));
    }
}

flows group(const std::vector<std::pair<std::chrono::nanoseconds, frame>>& frames) {
    flows g;
    for (const auto& [ts, f] : frames) g[flow_of(f)].push_back(f);
    return g;
}

std::string printable(const std::string& key) {
    std::string s;
    char buf[4];
    for (unsigned char c : key) std::snprintf(buf, sizeof buf, "%02x", c), s += buf;
    return s;
}

/// Empty when equal, else the first difference.
std::string compare(const flows& a, const flows& b) {
    for (const auto& [key, fa] : a) {
        const auto it = b.find(key);
        if (it == b.end())
            return "flow " + printable(key) + " (" + std::to_string(fa.size()) + " frames) only in the first";
        const auto& fb = it->second;
        for (std::size_t i = 0; i < std::min(fa.size(), fb.size()); ++i)
            if (fa[i] != fb[i])
                return "flow " + printable(key) + ": frame " + std::to_string(i + 1) + " of the flow differs";
        if (fa.size() != fb.size())
            return "flow " + printable(key) + ": " + std::to_string(fa.size()) + " frames vs " +
                   std::to_string(fb.size());
    }
    for (const auto& [key, fb] : b)
        if (!a.contains(key))
            return "flow " + printable(key) + " (" + std::to_string(fb.size()) +
                   " frames) only in the second";
    return {};
}

std::size_t total(const flows& f) {
    std::size_t n = 0;
    for (const auto& [k, v] : f) n += v.size();
    return n;
}

int self_test(const std::string& path, const std::string& dir) {
    std::vector<std::pair<std::chrono::nanoseconds, frame>> base;
    if (!read_all(path, base) || base.size() < 4) return 1;
    std::filesystem::create_directories(dir);
    // Two frames of one flow, next to each other in that flow and different; and two neighbours of two flows.
    std::size_t same_a = 0, same_b = 0, cross = 0;
    std::map<std::string, std::size_t> last;
    for (std::size_t i = 0; i < base.size(); ++i) {
        const auto k = flow_of(base[i].second);
        if (auto it = last.find(k);
            it != last.end() && same_b == 0 && base[it->second].second != base[i].second)
            same_a = it->second, same_b = i;
        last[k] = i;
        if (i > 0 && cross == 0 && flow_of(base[i - 1].second) != k) cross = i;
    }
    struct mutation {
        const char* name;
        bool should_match;
        std::vector<std::pair<std::chrono::nanoseconds, frame>> frames;
    };
    std::vector<mutation> ms;
    ms.push_back({"one byte changed", false, base});
    ms.back().frames[base.size() / 2].second.back() ^= std::byte{1};
    ms.push_back({"one frame dropped", false, base});
    ms.back().frames.erase(ms.back().frames.begin() + static_cast<long>(base.size() / 3));
    ms.push_back({"two frames of one flow swapped", false, base});
    std::swap(ms.back().frames[same_a].second, ms.back().frames[same_b].second);
    ms.push_back({"two frames of two flows swapped", true, base});
    std::swap(ms.back().frames[cross - 1].second, ms.back().frames[cross].second);
    const flows ref = group(base);
    int failures = 0;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        auto& m = ms[i];
        const std::string file = dir + "/mutated_" + std::to_string(i + 1) + ".pcap";
        std::string err;
        auto w = ipvs::examples::capture_writer::open(file, err);
        if (!w) return std::fprintf(stderr, "pcap_flow_compare: %s\n", err.c_str()), 1;
        for (const auto& [ts, f] : m.frames) w->write(ts, f);
        if (!w->finish(err)) return std::fprintf(stderr, "pcap_flow_compare: %s\n", err.c_str()), 1;
        std::vector<std::pair<std::chrono::nanoseconds, frame>> back;
        if (!read_all(file, back)) return 1;
        const std::string diff = compare(ref, group(back));
        const bool ok = diff.empty() == m.should_match;
        std::printf("%s: %s (%s)\n", m.name, ok ? "as expected" : "WRONG",
                    diff.empty() ? "same" : diff.c_str());
        failures += !ok;
    }
    return failures ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc == 4 && std::string(argv[1]) == "--self-test") return self_test(argv[2], argv[3]);
    if (argc != 3) {
        std::fprintf(stderr, "usage: pcap_flow_compare A B | pcap_flow_compare --self-test A DIR\n");
        return 2;
    }
    std::vector<std::pair<std::chrono::nanoseconds, frame>> a, b;
    if (!read_all(argv[1], a) || !read_all(argv[2], b)) return 1;
    const flows fa = group(a), fb = group(b);
    const std::string diff = compare(fa, fb);
    if (!diff.empty()) {
        std::printf("DIFFERENT: %s\n", diff.c_str());
        return 1;
    }
    std::printf("same frames: %zu in %zu flows (%s, %s)\n", total(fa), fa.size(), argv[1], argv[2]);
    return total(fa) == 0 ? 1 : 0; // two empty captures prove nothing
}
