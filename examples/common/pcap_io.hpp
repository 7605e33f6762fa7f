// SPDX-License-Identifier: MIT
// Thin RAII wrappers over libpcap for the demos: read a capture, write one, capture and inject live.
#pragma once

// Design
// ------
// Three move-only classes own one pcap handle each (and the dumper, for the writer):
// - capture_reader: pcap_open_offline_with_tstamp_precision (classic pcap and pcapng alike, nanosecond
//   timestamps whatever the file's precision), the link type checked to be Ethernet (DLT_EN10MB)
//   unless the caller asks otherwise, then next() per record;
// - capture_writer: pcap_open_dead_with_tstamp_precision + pcap_dump_open; finish() flushes, checks the
//   stream for a write error and closes;
// - live_port: pcap_create + immediate mode + pcap_activate on an interface, capturing inbound frames
//   only (PCAP_D_IN, so the frames the director injects are not read back) and injecting with
//   pcap_inject. Non-blocking: next() says `none` when nothing is waiting; poll() the selectable fd.
//
// Errors are values: open() returns nullopt and fills `error`; next() returns read_status::error
// and error() says why. A file cut short is such an error, not an end: libpcap reports a record cut
// in its header or its data from pcap_next_ex as PCAP_ERROR ("truncated dump file; tried to read …"),
// and a clean end as PCAP_ERROR_BREAK. (A file cut exactly between two records cannot be told from a
// complete one.) Nothing here throws except std::bad_alloc from the error strings.
//
// The frame a reader hands out points into libpcap's buffer: it stays valid until the next call to
// next() on the same reader.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include <pcap/pcap.h>

namespace ipvs::examples {

/// One record of a capture.
struct frame_record {
    std::chrono::nanoseconds ts{0};  ///< since the Unix epoch
    std::span<const std::byte> data; ///< the captured bytes (valid until the next read)
    std::uint32_t wire_len = 0;      ///< the frame's length on the wire (≥ data.size() when snapped)
};

enum class read_status : std::uint8_t {
    frame, ///< `out` holds the next record
    none,  ///< live: nothing waiting now
    end,   ///< offline: the capture ended cleanly
    error, ///< see error(); a truncated file ends this way
};

namespace detail {
struct pcap_closer {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};
struct dumper_closer {
    void operator()(pcap_dumper_t* d) const noexcept { pcap_dump_close(d); }
};
using pcap_handle = std::unique_ptr<pcap_t, pcap_closer>;

/// "EN10MB (Ethernet)" for a DLT value, or the number when libpcap does not know it.
[[nodiscard]] inline std::string link_type_name(int dlt) {
    const char* name = pcap_datalink_val_to_name(dlt);
    const char* desc = pcap_datalink_val_to_description(dlt);
    if (name == nullptr) return "link type " + std::to_string(dlt);
    return std::string(name) + (desc != nullptr ? std::string(" (") + desc + ")" : std::string{});
}

/// Converts a pcap header's timestamp, in the handle's precision, to nanoseconds.
[[nodiscard]] inline std::chrono::nanoseconds to_ns(const pcap_pkthdr& h, bool nano) noexcept {
    const std::int64_t sub = static_cast<std::int64_t>(h.ts.tv_usec) * (nano ? 1 : 1000);
    return std::chrono::nanoseconds{static_cast<std::int64_t>(h.ts.tv_sec) * 1'000'000'000 + sub};
}

/// pcap_next_ex on `p`, mapped to read_status (shared by the offline and the live reader).
[[nodiscard]] inline read_status next_record(pcap_t* p, bool nano, std::uint64_t& count, frame_record& out,
                                             std::string& error) {
    pcap_pkthdr* h = nullptr;
    const u_char* bytes = nullptr;
    switch (pcap_next_ex(p, &h, &bytes)) {
    case 1:
        out.ts = to_ns(*h, nano);
        out.data = std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes), h->caplen);
        out.wire_len = h->len;
        ++count;
        return read_status::frame;
    case 0:
        return read_status::none; // live: the timeout expired / non-blocking and nothing waiting
    case PCAP_ERROR_BREAK:
        return read_status::end;
    default:
        error = "after " + std::to_string(count) + " frames: " + pcap_geterr(p);
        return read_status::error;
    }
}
} // namespace detail

/// Reads a pcap or pcapng file record by record.
class capture_reader {
public:
    /// Opens `path`. With `require_ethernet` (the demos' case) any other link type is refused with a
    /// message naming it. nullopt on failure, with `error` set.
    [[nodiscard]] static std::optional<capture_reader> open(const std::string& path, std::string& error,
                                                            bool require_ethernet = true) {
        char errbuf[PCAP_ERRBUF_SIZE] = {};
        detail::pcap_handle p(
            pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
        if (!p) {
            const std::string why = errbuf; // libpcap names the file in some messages, not in others
            error = why.rfind(path, 0) == 0 ? why : path + ": " + why;
            return std::nullopt;
        }
        const int dlt = pcap_datalink(p.get());
        if (require_ethernet && dlt != DLT_EN10MB) {
            error = path + ": link type " + detail::link_type_name(dlt) +
                    " is not Ethernet (EN10MB); the director reads Ethernet frames only";
            return std::nullopt;
        }
        capture_reader r;
        r.m_nano = pcap_get_tstamp_precision(p.get()) == PCAP_TSTAMP_PRECISION_NANO;
        r.m_p = std::move(p);
        r.m_path = path;
        return r;
    }

    /// The next record into `out`: frame, end, or error (error() then says why, e.g. a truncated file).
    [[nodiscard]] read_status next(frame_record& out) {
        const auto st = detail::next_record(m_p.get(), m_nano, m_count, out, m_error);
        if (st == read_status::error) m_error = m_path + ": " + m_error;
        return st;
    }

    [[nodiscard]] const std::string& error() const noexcept { return m_error; }
    [[nodiscard]] int link_type() const noexcept { return pcap_datalink(m_p.get()); }
    [[nodiscard]] std::string link_type_name() const { return detail::link_type_name(link_type()); }
    [[nodiscard]] std::uint64_t frames_read() const noexcept { return m_count; }
    /// The snapshot length the capture was taken with.
    [[nodiscard]] int snaplen() const noexcept { return pcap_snapshot(m_p.get()); }

    /// How far into the file the reader is, in bytes (for a progress line); nullopt if unknown.
    [[nodiscard]] std::optional<std::uint64_t> position() const noexcept {
        FILE* f = pcap_file(m_p.get());
        if (f == nullptr) return std::nullopt;
        const long pos = std::ftell(f);
        if (pos < 0) return std::nullopt;
        return static_cast<std::uint64_t>(pos);
    }

private:
    capture_reader() = default;
    detail::pcap_handle m_p;
    std::string m_path;
    std::string m_error;
    std::uint64_t m_count = 0;
    bool m_nano = false;
};

/// Writes a classic pcap file (what tshark and the demos read back).
class capture_writer {
public:
    /// Creates `path` for frames of `link_type`, with microsecond or nanosecond timestamps.
    [[nodiscard]] static std::optional<capture_writer> open(const std::string& path, std::string& error,
                                                            int link_type = DLT_EN10MB, int snaplen = 262144,
                                                            bool nanosecond = false) {
        const unsigned prec = nanosecond ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO;
        detail::pcap_handle p(pcap_open_dead_with_tstamp_precision(link_type, snaplen, prec));
        if (!p) {
            error = path + ": pcap_open_dead failed";
            return std::nullopt;
        }
        std::unique_ptr<pcap_dumper_t, detail::dumper_closer> d(pcap_dump_open(p.get(), path.c_str()));
        if (!d) {
            error = path + ": " + pcap_geterr(p.get());
            return std::nullopt;
        }
        capture_writer w;
        w.m_p = std::move(p);
        w.m_d = std::move(d);
        w.m_path = path;
        w.m_nano = nanosecond;
        w.m_snaplen = static_cast<std::uint32_t>(snaplen);
        return w;
    }

    /// Appends one frame (cut to the snapshot length; `wire_len` 0 means the frame's size).
    void write(std::chrono::nanoseconds ts, std::span<const std::byte> frame,
               std::uint32_t wire_len = 0) noexcept {
        pcap_pkthdr h{};
        const auto ns = ts.count();
        h.ts.tv_sec = static_cast<decltype(h.ts.tv_sec)>(ns / 1'000'000'000);
        h.ts.tv_usec = static_cast<decltype(h.ts.tv_usec)>((ns % 1'000'000'000) / (m_nano ? 1 : 1000));
        const auto size = static_cast<std::uint32_t>(frame.size());
        h.caplen = size < m_snaplen ? size : m_snaplen;
        h.len = wire_len != 0 ? wire_len : size;
        pcap_dump(reinterpret_cast<u_char*>(m_d.get()), &h, reinterpret_cast<const u_char*>(frame.data()));
        ++m_count;
    }

    /// Flushes and closes the file; false with `error` set when a write failed (disk full, …).
    [[nodiscard]] bool finish(std::string& error) {
        if (!m_d) return true;
        bool ok = pcap_dump_flush(m_d.get()) == 0 && std::ferror(pcap_dump_file(m_d.get())) == 0;
        m_d.reset(); // pcap_dump_close → fclose
        if (!ok) error = m_path + ": write error";
        return ok;
    }

    [[nodiscard]] std::uint64_t frames_written() const noexcept { return m_count; }

private:
    capture_writer() = default;
    detail::pcap_handle m_p;
    std::unique_ptr<pcap_dumper_t, detail::dumper_closer> m_d;
    std::string m_path;
    std::uint64_t m_count = 0;
    std::uint32_t m_snaplen = 262144;
    bool m_nano = false;
};

/// One network interface, captured (inbound only) and injected into, for the live director.
class live_port {
public:
    /// Opens `ifname` in immediate mode (each frame delivered at once, no buffering delay), promiscuous
    /// (frames to the VIP's MAC are not the interface's own), non-blocking. Ethernet only.
    [[nodiscard]] static std::optional<live_port> open(const std::string& ifname, std::string& error,
                                                       int snaplen = 65535, bool promiscuous = true) {
        char errbuf[PCAP_ERRBUF_SIZE] = {};
        detail::pcap_handle p(pcap_create(ifname.c_str(), errbuf));
        if (!p) {
            error = ifname + ": " + errbuf;
            return std::nullopt;
        }
        pcap_set_snaplen(p.get(), snaplen);
        pcap_set_promisc(p.get(), promiscuous ? 1 : 0);
        pcap_set_immediate_mode(p.get(), 1);
        pcap_set_timeout(p.get(), 1);
        (void)pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO); // best effort
        const int rc = pcap_activate(p.get());
        if (rc < 0) {
            error = ifname + ": " + pcap_statustostr(rc) +
                    (rc == PCAP_ERROR ? std::string(": ") + pcap_geterr(p.get()) : "");
            return std::nullopt;
        }
        live_port l;
        if (rc > 0) l.m_warning = ifname + ": " + pcap_statustostr(rc); // e.g. promiscuous mode not supported
        if (pcap_datalink(p.get()) != DLT_EN10MB) {
            error =
                ifname + ": link type " + detail::link_type_name(pcap_datalink(p.get())) + " is not Ethernet";
            return std::nullopt;
        }
        if (pcap_setdirection(p.get(), PCAP_D_IN) != 0) {
            error = ifname + ": cannot capture inbound only: " + pcap_geterr(p.get());
            return std::nullopt;
        }
        if (pcap_setnonblock(p.get(), 1, errbuf) != 0) {
            error = ifname + ": " + errbuf;
            return std::nullopt;
        }
        l.m_nano = pcap_get_tstamp_precision(p.get()) == PCAP_TSTAMP_PRECISION_NANO;
        l.m_p = std::move(p);
        l.m_name = ifname;
        return l;
    }

    /// The next inbound frame, or `none` when nothing is waiting.
    [[nodiscard]] read_status next(frame_record& out) {
        const auto st = detail::next_record(m_p.get(), m_nano, m_count, out, m_error);
        if (st == read_status::error) m_error = m_name + ": " + m_error;
        return st;
    }

    /// Sends one whole Ethernet frame; false with error() set when the kernel refused it.
    [[nodiscard]] bool inject(std::span<const std::byte> frame) {
        if (pcap_inject(m_p.get(), frame.data(), frame.size()) < 0) {
            m_error = m_name + ": inject: " + pcap_geterr(m_p.get());
            return false;
        }
        return true;
    }

    /// A descriptor to poll() for readability, or -1.
    [[nodiscard]] int selectable_fd() const noexcept { return pcap_get_selectable_fd(m_p.get()); }

    /// Frames the kernel received / dropped for lack of buffer space, as pcap_stats reports them.
    [[nodiscard]] std::optional<std::pair<std::uint64_t, std::uint64_t>> kernel_stats() const noexcept {
        pcap_stat s{};
        if (pcap_stats(m_p.get(), &s) != 0) return std::nullopt;
        return std::pair<std::uint64_t, std::uint64_t>{s.ps_recv, s.ps_drop};
    }

    [[nodiscard]] const std::string& error() const noexcept { return m_error; }
    /// A non-fatal remark from pcap_activate (empty when none).
    [[nodiscard]] const std::string& warning() const noexcept { return m_warning; }
    [[nodiscard]] const std::string& name() const noexcept { return m_name; }

private:
    live_port() = default;
    detail::pcap_handle m_p;
    std::string m_name;
    std::string m_error;
    std::string m_warning;
    std::uint64_t m_count = 0;
    bool m_nano = false;
};

} // namespace ipvs::examples
