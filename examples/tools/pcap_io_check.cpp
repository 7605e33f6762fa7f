// SPDX-License-Identifier: MIT
// Exercises examples/common/pcap_io.hpp from CTest: reads captures (and fails clearly on bad ones),
// compares two captures, makes the bad fixtures, and round-trips frames through the writer.
//
//   pcap_io_check read FILE [--any-link]   frames and bytes; exit 1 with the reader's message on error
//   pcap_io_check same A B                 exit 0 when both hold the same records (times, bytes)
//   pcap_io_check make-fixtures DIR SAMPLE writes bad and converted copies of SAMPLE (classic pcap)
//   pcap_io_check roundtrip DIR            writer → reader, microsecond and nanosecond files
//   pcap_io_check live IF_A IF_B           inject on A, capture on B (a veth pair): every frame arrives
//                                          intact, and neither side reads back what it injected itself
//
// The fixtures are made from the raw bytes, not with libpcap, so the reader is judged against files
// it did not write: a copy cut inside the last record's data, one cut inside the last record's
// header, one cut inside the file header, a raw-IP (DLT_RAW) capture, a text file, and the same
// records in pcapng (SHB + IDB + EPBs, pcapng spec draft-ietf-opsawg-pcapng §4).

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "../common/pcap_io.hpp"

namespace {

using ipvs::examples::capture_reader;
using ipvs::examples::capture_writer;
using ipvs::examples::frame_record;
using ipvs::examples::live_port;
using ipvs::examples::read_status;

struct owned_record {
    std::chrono::nanoseconds ts;
    std::vector<std::byte> data;
    std::uint32_t wire_len;
    bool operator==(const owned_record&) const = default;
};

int fail(const std::string& msg) {
    std::fprintf(stderr, "pcap_io_check: %s\n", msg.c_str());
    return 1;
}

/// Every record of `path`, or the reader's error.
bool read_all(const std::string& path, bool any_link, std::vector<owned_record>& out, std::string& error) {
    auto r = capture_reader::open(path, error, !any_link);
    if (!r) return false;
    frame_record f;
    while (true) {
        switch (r->next(f)) {
        case read_status::frame:
            out.push_back({f.ts, {f.data.begin(), f.data.end()}, f.wire_len});
            break;
        case read_status::end:
            return true;
        case read_status::none:
            break; // offline never says this
        case read_status::error:
            error = r->error();
            return false;
        }
    }
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
bool spit(const std::filesystem::path& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    return static_cast<bool>(out);
}
std::uint32_t le32(std::string_view s, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
    return v;
}
void put_le32(std::string& s, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_le16(std::string& s, std::uint16_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>(v >> 8);
}

/// pcapng with one Ethernet interface at the default microsecond resolution.
std::string to_pcapng(std::string_view pcap) {
    std::string out;
    put_le32(out, 0x0A0D0D0A); // Section Header Block
    put_le32(out, 28);
    put_le32(out, 0x1A2B3C4D); // byte-order magic
    put_le16(out, 1);
    put_le16(out, 0);
    put_le32(out, 0xffffffff); // section length: unknown (-1)
    put_le32(out, 0xffffffff);
    put_le32(out, 28);
    put_le32(out, 1); // Interface Description Block
    put_le32(out, 20);
    put_le16(out, 1); // LINKTYPE_ETHERNET
    put_le16(out, 0);
    put_le32(out, le32(pcap, 16)); // snaplen
    put_le32(out, 20);
    for (std::size_t at = 24; at + 16 <= pcap.size();) {
        const std::uint32_t sec = le32(pcap, at), usec = le32(pcap, at + 4), cap = le32(pcap, at + 8),
                            len = le32(pcap, at + 12);
        const std::uint64_t ts = std::uint64_t{sec} * 1'000'000 + usec;
        const std::uint32_t padded = (cap + 3) & ~3U;
        put_le32(out, 6); // Enhanced Packet Block
        put_le32(out, 32 + padded);
        put_le32(out, 0); // interface 0
        put_le32(out, static_cast<std::uint32_t>(ts >> 32));
        put_le32(out, static_cast<std::uint32_t>(ts));
        put_le32(out, cap);
        put_le32(out, len);
        out.append(pcap.substr(at + 16, cap));
        out.append(padded - cap, '\0');
        put_le32(out, 32 + padded);
        at += 16 + cap;
    }
    return out;
}

int make_fixtures(const std::filesystem::path& dir, const std::string& sample_path) {
    const std::string sample = slurp(sample_path);
    if (sample.size() < 24 + 16 + 20 || le32(sample, 0) != 0xa1b2c3d4U)
        return fail(sample_path + ": not a little-endian microsecond pcap file");
    std::filesystem::create_directories(dir);
    std::size_t last = 24; // offset of the last record's header
    for (std::size_t at = 24; at + 16 <= sample.size(); at += 16 + le32(sample, at + 8)) last = at;
    const std::uint32_t first_len = le32(sample, 24 + 8);
    bool ok = spit(dir / "truncated_data.pcap", std::string_view(sample).substr(0, sample.size() - 10)) &&
              spit(dir / "truncated_header.pcap", std::string_view(sample).substr(0, last + 7)) &&
              spit(dir / "short_file_header.pcap", std::string_view(sample).substr(0, 10)) &&
              spit(dir / "not_a_capture.pcap",
                   "-A -t 10.0.0.100:80 -s rr\nthis is a rules file, not a capture\n") &&
              spit(dir / "sample.pcapng", to_pcapng(sample));
    if (!ok) return fail("cannot write into " + dir.string());
    // A raw-IP capture: the first sample frame without its Ethernet header, written by hand.
    std::string raw = sample.substr(0, 20);
    put_le32(raw, DLT_RAW);
    raw.append(sample.substr(24, 8));
    put_le32(raw, first_len - 14);
    put_le32(raw, first_len - 14);
    raw.append(sample.substr(24 + 16 + 14, first_len - 14));
    if (!spit(dir / "raw_link.pcap", raw)) return fail("cannot write into " + dir.string());
    std::printf("fixtures in %s\n", dir.string().c_str());
    return 0;
}

int roundtrip(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    std::vector<owned_record> frames;
    for (std::uint32_t i = 0; i < 50; ++i) {
        owned_record r;
        // Timestamps with sub-microsecond digits: a microsecond file keeps them truncated.
        r.ts = std::chrono::nanoseconds{1'704'067'200'000'000'000LL + std::int64_t{i} * 1'234'567'891};
        for (std::uint32_t k = 0; k < 60 + i * 7; ++k)
            r.data.push_back(std::byte{static_cast<std::uint8_t>(i * 31 + k)});
        r.wire_len = static_cast<std::uint32_t>(r.data.size());
        frames.push_back(std::move(r));
    }
    for (bool nano : {false, true}) {
        const std::string path = (dir / (nano ? "rt_nano.pcap" : "rt_micro.pcap")).string();
        std::string error;
        auto w = capture_writer::open(path, error, DLT_EN10MB, 262144, nano);
        if (!w) return fail(error);
        for (const auto& f : frames) w->write(f.ts, f.data);
        if (!w->finish(error)) return fail(error);
        std::vector<owned_record> back;
        if (!read_all(path, false, back, error)) return fail(error);
        if (back.size() != frames.size()) return fail(path + ": frame count differs");
        for (std::size_t i = 0; i < frames.size(); ++i) {
            auto want = frames[i];
            if (!nano) want.ts = want.ts / 1000 * 1000;
            if (!(back[i] == want)) return fail(path + ": frame " + std::to_string(i + 1) + " differs");
        }
        std::printf("%s: %zu frames round-tripped\n", path.c_str(), back.size());
    }
    return 0;
}

/// Frames of the test's own EtherType (0x88b5, IEEE 802 local experimental) seen on `port` within
/// `wait_ms`: the kernel's own traffic on a fresh link (IPv6 router solicitations, MLD) is skipped.
std::vector<owned_record> test_frames(live_port& port, int wait_ms, std::size_t want, std::string& error) {
    std::vector<owned_record> got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{port.selectable_fd(), POLLIN, 0};
        (void)::poll(&pfd, 1, 20);
        frame_record f;
        read_status st;
        while ((st = port.next(f)) == read_status::frame)
            if (f.data.size() >= 14 && f.data[12] == std::byte{0x88} && f.data[13] == std::byte{0xb5})
                got.push_back({f.ts, {f.data.begin(), f.data.end()}, f.wire_len});
        if (st == read_status::error) {
            error = port.error();
            break;
        }
    }
    return got;
}

int live(const std::string& if_a, const std::string& if_b) {
    std::string error;
    auto a = live_port::open(if_a, error);
    if (!a) return fail(error);
    auto b = live_port::open(if_b, error);
    if (!b) return fail(error);
    std::vector<std::vector<std::byte>> sent;
    for (std::size_t i = 0; i < 20; ++i) {
        std::vector<std::byte> f(60 + i * 50, std::byte{0});
        for (std::size_t k = 0; k < 6; ++k) f[k] = std::byte{0xff};                          // broadcast
        for (std::size_t k = 6; k < 12; ++k) f[k] = std::byte{static_cast<std::uint8_t>(k)}; // source
        f[12] = std::byte{0x88};
        f[13] = std::byte{0xb5};
        for (std::size_t k = 14; k < f.size(); ++k) f[k] = std::byte{static_cast<std::uint8_t>(i + k)};
        if (!a->inject(f)) return fail(a->error());
        sent.push_back(std::move(f));
    }
    const auto got = test_frames(*b, 2000, sent.size(), error);
    if (!error.empty()) return fail(error);
    if (got.size() != sent.size())
        return fail(if_b + ": received " + std::to_string(got.size()) + " of " + std::to_string(sent.size()) +
                    " frames");
    for (std::size_t i = 0; i < sent.size(); ++i)
        if (got[i].data != sent[i])
            return fail(if_b + ": frame " + std::to_string(i + 1) + " arrived changed");
    const auto echo = test_frames(*a, 200, 1, error); // PCAP_D_IN: A must not read its own frames
    if (!echo.empty()) return fail(if_a + ": read back a frame it injected itself");
    std::printf("%s -> %s: %zu frames injected and captured intact\n", if_a.c_str(), if_b.c_str(),
                got.size());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() >= 2 && a[0] == "read") {
        std::vector<owned_record> frames;
        std::string error;
        if (!read_all(a[1], a.size() == 3 && a[2] == "--any-link", frames, error)) return fail(error);
        std::uint64_t bytes = 0;
        for (const auto& f : frames) bytes += f.data.size();
        std::printf("%s: %zu frames, %llu bytes\n", a[1].c_str(), frames.size(),
                    static_cast<unsigned long long>(bytes));
        return 0;
    }
    if (a.size() == 3 && a[0] == "same") {
        std::vector<owned_record> x, y;
        std::string error;
        if (!read_all(a[1], false, x, error) || !read_all(a[2], false, y, error)) return fail(error);
        if (x != y) return fail(a[1] + " and " + a[2] + " differ");
        std::printf("%s and %s: the same %zu frames\n", a[1].c_str(), a[2].c_str(), x.size());
        return 0;
    }
    if (a.size() == 3 && a[0] == "make-fixtures") return make_fixtures(a[1], a[2]);
    if (a.size() == 2 && a[0] == "roundtrip") return roundtrip(a[1]);
    if (a.size() == 3 && a[0] == "live") return live(a[1], a[2]);
    std::fprintf(stderr,
                 "usage: pcap_io_check read FILE [--any-link] | same A B | make-fixtures DIR SAMPLE | "
                 "roundtrip DIR | live IF_A IF_B\n");
    return 2;
}
