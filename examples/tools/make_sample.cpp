// SPDX-License-Identifier: MIT
// Generates the bundled sample capture (examples/data/sample.pcap) and its rules (sample.rules),
// deterministically: the same bytes on every run, compiler and host.

// What the capture is
// -------------------
// Traffic seen on the director's client-side link, in front of the services: clients (IPv4 10.1.x.y,
// IPv6 fd01::/16) behind their next hop (MAC 02:00:00:00:01:02) talk to the VIPs (10.0.0.100,
// fd00::100, and 10.0.3.0/24 for the fwmark service) on the director (MAC 02:00:00:00:01:01) —
// the addresses of tests/data/FORMAT.md "The recorded director". Replies come from the VIP: the demo
// plays them as if the chosen real server had sent them. Conversations overlap in time:
// - TCP: 3-way handshake (SYN options MSS, SACK-permitted, window scale), one to three request /
//   response rounds, then a FIN close from either side or a RST from either side;
// - UDP: DNS queries and answers, some clients re-using their port for several queries;
// - SCTP: INIT, INIT-ACK (state cookie), COOKIE-ECHO (once bundled with DATA), COOKIE-ACK, DATA and
//   SACK both ways, then SHUTDOWN / SHUTDOWN-ACK / SHUTDOWN-COMPLETE or an ABORT;
// - a few deliberately bad frames, each listed by `--list` with its frame number: a truncated IPv4
//   header, an IHL of 4, a TCP data offset of 4, an SCTP chunk longer than its packet, a TCP segment
//   with a wrong checksum (the only bad checksum in the file), and an IPv4 fragment pair (a DNS
//   query in two fragments; its checksums are right).
// All other checksums are right: IPv4 header, TCP, UDP (RFC 1071 with the pseudo-headers of RFC 793 /
// 768 / 8200 §8.1) and SCTP CRC32c (RFC 4960 §6.8), computed with the library's own functions.
//
// Determinism: one splitmix64 stream with a fixed seed drives every choice, integer arithmetic only
// (no <random> distributions, whose results differ between standard libraries), fixed timestamps
// from 2024-01-01T00:00:00Z, frames ordered by (timestamp, creation order). The file is classic pcap
// (little-endian, microseconds) written by hand, so no libpcap version can change a byte.
//
// Usage: make_sample OUT.pcap OUT.rules [--list]

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/bytes.hpp>
#include <ipvs/checksum.hpp>
#include <ipvs/crc32c.hpp>
#include <ipvs/headers.hpp>

#include "../common/rules.hpp"

namespace {

using bytes = std::vector<std::byte>;
using ipvs::inet_addr;
using mac = std::array<std::uint8_t, 6>;

constexpr mac director_mac = {0x02, 0, 0, 0, 0x01, 0x01};
constexpr mac next_hop_mac = {0x02, 0, 0, 0, 0x01, 0x02};
constexpr std::int64_t epoch_us = 1704067200LL * 1'000'000; // 2024-01-01T00:00:00Z

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and the same on every platform.
class rng {
public:
    explicit rng(std::uint64_t seed) : m_s(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (m_s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform enough in [lo, hi] for a sample (modulo bias is irrelevant here, determinism is not).
    std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + next() % (hi - lo + 1); }
    bool chance(unsigned percent) { return next() % 100 < percent; }
    std::uint32_t u32() { return static_cast<std::uint32_t>(next() >> 32); }

private:
    std::uint64_t m_s;
};

// ---------------------------------------------------------------------------------------------------
// Byte building

void put8(bytes& b, std::uint8_t v) { b.push_back(std::byte{v}); }
void put16(bytes& b, std::uint16_t v) {
    put8(b, static_cast<std::uint8_t>(v >> 8));
    put8(b, static_cast<std::uint8_t>(v));
}
void put32(bytes& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}
void put_text(bytes& b, std::string_view s) {
    for (char c : s) put8(b, static_cast<std::uint8_t>(c));
}
void append(bytes& b, const bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
void pad4(bytes& b) {
    while (b.size() % 4 != 0) put8(b, 0);
}

/// TCP segment with a correct checksum over the pseudo-header (RFC 793 §3.1, RFC 8200 §8.1).
struct tcp_fields {
    std::uint16_t sport = 0, dport = 0;
    std::uint32_t seq = 0, ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t window = 0;
    bytes options; // a multiple of 4 bytes
    bytes payload;
};
bytes tcp_segment(const inet_addr& src, const inet_addr& dst, const tcp_fields& f) {
    bytes s;
    put16(s, f.sport);
    put16(s, f.dport);
    put32(s, f.seq);
    put32(s, f.ack);
    put8(s, static_cast<std::uint8_t>((5 + f.options.size() / 4) << 4));
    put8(s, f.flags);
    put16(s, f.window);
    put16(s, 0); // checksum
    put16(s, 0); // urgent pointer
    append(s, f.options);
    append(s, f.payload);
    const auto sum = ipvs::pseudo_header(src, dst, ipvs::ipproto::tcp, static_cast<std::uint32_t>(s.size()));
    ipvs::store_be16(s.data() + ipvs::tcp_hdr::check, ipvs::internet_checksum(s, sum));
    return s;
}

/// UDP datagram with a correct checksum (RFC 768: a computed 0 is sent as 0xffff).
bytes udp_datagram(const inet_addr& src, const inet_addr& dst, std::uint16_t sport, std::uint16_t dport,
                   const bytes& payload) {
    bytes u;
    put16(u, sport);
    put16(u, dport);
    put16(u, static_cast<std::uint16_t>(8 + payload.size()));
    put16(u, 0);
    append(u, payload);
    const auto sum = ipvs::pseudo_header(src, dst, ipvs::ipproto::udp, static_cast<std::uint32_t>(u.size()));
    std::uint16_t c = ipvs::internet_checksum(u, sum);
    ipvs::store_be16(u.data() + ipvs::udp_hdr::check, c == 0 ? 0xffff : c);
    return u;
}

/// SCTP packet: common header + chunks, CRC32c over the whole packet with the field zeroed, stored
/// little-endian as Linux does (RFC 4960 §6.8, Appendix B).
bytes sctp_packet(std::uint16_t sport, std::uint16_t dport, std::uint32_t vtag, const bytes& chunks) {
    bytes p;
    put16(p, sport);
    put16(p, dport);
    put32(p, vtag);
    put32(p, 0);
    append(p, chunks);
    const std::uint32_t crc = ipvs::crc32c(p);
    for (std::size_t i = 0; i < 4; ++i)
        p[ipvs::sctp_hdr::check + i] = std::byte{static_cast<std::uint8_t>(crc >> (8 * i))};
    return p;
}

bytes chunk(std::uint8_t type, std::uint8_t flags, const bytes& value) {
    bytes c;
    put8(c, type);
    put8(c, flags);
    put16(c, static_cast<std::uint16_t>(4 + value.size())); // the length excludes the padding
    append(c, value);
    pad4(c);
    return c;
}

/// IPv4 header (no options) + payload; the header checksum is right. `frag` = flags|offset field.
bytes ipv4_packet(const inet_addr& src, const inet_addr& dst, std::uint8_t proto, std::uint16_t id,
                  std::uint16_t frag, const bytes& payload, std::uint8_t ttl = 63) {
    bytes h;
    put8(h, 0x45);
    put8(h, 0);
    put16(h, static_cast<std::uint16_t>(20 + payload.size()));
    put16(h, id);
    put16(h, frag);
    put8(h, ttl);
    put8(h, proto);
    put16(h, 0);
    for (std::size_t i = 0; i < 4; ++i) put8(h, src.bytes[i]);
    for (std::size_t i = 0; i < 4; ++i) put8(h, dst.bytes[i]);
    ipvs::store_be16(h.data() + ipvs::ipv4_hdr::check, ipvs::internet_checksum(h));
    append(h, payload);
    return h;
}

bytes ipv6_packet(const inet_addr& src, const inet_addr& dst, std::uint8_t next, std::uint32_t flow,
                  const bytes& payload) {
    bytes h;
    put32(h, 0x60000000U | (flow & 0xfffff));
    put16(h, static_cast<std::uint16_t>(payload.size()));
    put8(h, next);
    put8(h, 63); // hop limit: one hop already behind us
    for (auto b : src.bytes) put8(h, b);
    for (auto b : dst.bytes) put8(h, b);
    append(h, payload);
    return h;
}

bytes ethernet(const mac& dst, const mac& src, std::uint16_t type, const bytes& payload) {
    bytes f;
    for (auto b : dst) put8(f, b);
    for (auto b : src) put8(f, b);
    put16(f, type);
    append(f, payload);
    return f;
}

// ---------------------------------------------------------------------------------------------------
// The capture being built

struct frame {
    std::int64_t ts_us;
    std::size_t seq; // creation order: breaks timestamp ties deterministically
    bytes data;
    std::string bad; // non-empty: what is deliberately wrong with it
};

class capture {
public:
    void add(std::int64_t ts_us, bytes data, std::string bad = {}) {
        m_frames.push_back(frame{ts_us, m_frames.size(), std::move(data), std::move(bad)});
    }
    void sort() {
        std::sort(m_frames.begin(), m_frames.end(), [](const frame& a, const frame& b) {
            return std::tie(a.ts_us, a.seq) < std::tie(b.ts_us, b.seq);
        });
    }
    [[nodiscard]] const std::vector<frame>& frames() const { return m_frames; }

private:
    std::vector<frame> m_frames;
};

/// One conversation between a client and a VIP: addresses, IP IDs, and the clock of its packets.
struct flow {
    inet_addr client, vip;
    std::uint16_t cport = 0, vport = 0;
    std::uint16_t id_c = 0, id_v = 0; // IPv4 identification, per direction
    std::uint32_t flow_label_c = 0, flow_label_v = 0;
    std::int64_t t = 0; // µs since the epoch of the capture

    /// Wraps an L4 payload into the frame of one direction (`from_client`) and adds it at time t.
    bytes frame_of(bool from_client, std::uint8_t proto, const bytes& l4) {
        const inet_addr& src = from_client ? client : vip;
        const inet_addr& dst = from_client ? vip : client;
        const mac& dmac = from_client ? director_mac : next_hop_mac;
        const mac& smac = from_client ? next_hop_mac : director_mac;
        if (client.is_v4()) {
            std::uint16_t& id = from_client ? id_c : id_v;
            const bool df = proto == ipvs::ipproto::tcp || proto == ipvs::ipproto::sctp;
            return ethernet(dmac, smac, ipvs::ethertype::ipv4,
                            ipv4_packet(src, dst, proto, id++, df ? ipvs::ipv4_hdr::flag_df : 0, l4));
        }
        return ethernet(dmac, smac, ipvs::ethertype::ipv6,
                        ipv6_packet(src, dst, proto, from_client ? flow_label_c : flow_label_v, l4));
    }
};

// ---------------------------------------------------------------------------------------------------
// The scenario

class generator {
public:
    generator() : m_rng(0x1b5a3c7e2024ULL) {}

    void run() {
        setup_rules();
        std::int64_t t = epoch_us;
        // Conversations start every ~2.5 ms in a shuffled order of kinds, so services interleave.
        std::vector<int> plan;
        auto want = [&](int kind, int n) { plan.insert(plan.end(), static_cast<std::size_t>(n), kind); };
        want(k_http4, 64);
        want(k_wrr4, 44);
        want(k_http6, 36);
        want(k_fwmark, 20);
        want(k_dns4, 44);
        want(k_dns6, 24);
        want(k_sctp4, 10);
        want(k_sctp6, 6);
        for (std::size_t i = plan.size(); i > 1; --i) std::swap(plan[i - 1], plan[m_rng.range(0, i - 1)]);
        for (int kind : plan) {
            t += static_cast<std::int64_t>(m_rng.range(800, 4200));
            conversation(kind, t);
        }
        persistent_clients(epoch_us + 20'000);
        malformed(epoch_us + 150'000);
        m_cap.sort();
    }

    [[nodiscard]] const capture& cap() const { return m_cap; }
    [[nodiscard]] const ipvs::examples::rule_set& rules() const { return m_rules; }

private:
    enum : int { k_http4, k_wrr4, k_http6, k_fwmark, k_dns4, k_dns6, k_sctp4, k_sctp6 };

    static inet_addr addr(std::string_view s) { return *ipvs::parse_addr(s); }

    void service(std::uint8_t proto, std::string_view vip, std::uint16_t port, std::string sched,
                 std::vector<std::tuple<std::string_view, std::uint16_t, std::uint32_t>> dests,
                 std::uint32_t fwmark = 0, std::uint32_t persist = 0) {
        ipvs::examples::service_rule s;
        s.protocol = proto;
        s.fwmark = fwmark;
        if (fwmark == 0) s.vip = ipvs::endpoint{addr(vip), port};
        s.af = fwmark == 0 ? s.vip.addr.af : ipvs::family::v4;
        s.netmask_prefix = s.af == ipvs::family::v4 ? 32 : 128;
        s.scheduler = std::move(sched);
        s.persistent = persist != 0;
        s.persist_timeout = persist;
        for (auto [a, p, w] : dests) {
            ipvs::examples::dest_rule d;
            d.ep = ipvs::endpoint{addr(a), p};
            d.fwd = ipvs::fwd_method::masq;
            d.weight = w;
            s.dests.push_back(d);
        }
        m_rules.services.push_back(std::move(s));
    }

    void setup_rules() {
        using namespace ipvs::examples;
        service(proto_tcp, "10.0.0.100", 80, "rr",
                {{"10.0.2.11", 8080, 1}, {"10.0.2.12", 8080, 1}, {"10.0.2.13", 8080, 1}});
        service(proto_tcp, "10.0.0.100", 8080, "wrr",
                {{"10.0.2.11", 8080, 3}, {"10.0.2.12", 8080, 2}, {"10.0.2.13", 8080, 1}});
        service(proto_tcp, "10.0.0.100", 8000, "rr", {{"10.0.2.14", 8000, 1}, {"10.0.2.15", 8000, 1}}, 0,
                300);
        service(proto_tcp, "fd00::100", 80, "wlc", {{"fd00:2::b", 8080, 2}, {"fd00:2::c", 8080, 1}});
        service(proto_udp, "10.0.0.100", 53, "rr", {{"10.0.2.11", 5353, 1}, {"10.0.2.12", 5353, 1}});
        service(proto_udp, "fd00::100", 53, "rr", {{"fd00:2::b", 5353, 1}, {"fd00:2::c", 5353, 1}});
        service(proto_sctp, "10.0.0.100", 3868, "rr", {{"10.0.2.11", 3869, 1}, {"10.0.2.12", 3869, 1}});
        service(proto_sctp, "fd00::100", 3868, "rr", {{"fd00:2::b", 3869, 1}, {"fd00:2::c", 3869, 1}});
        service(proto_tcp, "", 0, "rr", {{"10.0.2.16", 0, 1}, {"10.0.2.17", 0, 1}}, 16);
        mark_rule m;
        m.prefix = addr("10.0.3.0");
        m.prefix_len = 24;
        m.protocol = proto_tcp;
        m.port = 80;
        m.mark = 16;
        m_rules.marks.push_back(m);
    }

    // Clients: a pool per family, drawn with repetition so some clients open several flows.
    inet_addr client4() {
        const auto i = m_rng.range(0, 89);
        return inet_addr::v4(0x0a010000U | static_cast<std::uint32_t>(((i * 37) % 256) << 8) |
                             static_cast<std::uint32_t>(2 + (i * 11) % 250));
    }
    inet_addr client6() {
        const auto i = m_rng.range(0, 39);
        std::array<std::uint8_t, 16> b{0xfd, 0x01};
        b[3] = static_cast<std::uint8_t>(1 + i % 4); // fd01:0:N::
        b[14] = static_cast<std::uint8_t>(0x10 + i);
        b[15] = static_cast<std::uint8_t>(i * 7);
        return inet_addr::v6(b);
    }
    /// An ephemeral port (Linux's 32768..60999) not yet used by this client and protocol.
    std::uint16_t port_for(const inet_addr& c, std::uint8_t proto) {
        while (true) {
            const auto p = static_cast<std::uint16_t>(m_rng.range(32768, 60999));
            if (m_used.insert({c, proto, p}).second) return p;
        }
    }
    flow new_flow(const inet_addr& c, const inet_addr& vip, std::uint16_t vport, std::uint8_t proto,
                  std::int64_t t) {
        flow f;
        f.client = c;
        f.vip = vip;
        f.vport = vport;
        f.cport = port_for(c, proto);
        f.id_c = static_cast<std::uint16_t>(m_rng.next());
        f.id_v = static_cast<std::uint16_t>(m_rng.next());
        f.flow_label_c = m_rng.u32() & 0xfffff;
        f.flow_label_v = m_rng.u32() & 0xfffff;
        f.t = t;
        return f;
    }

    // Delays: a reply leaves the VIP 0.2–1.5 ms after the request (director + real server); the client,
    // further away, answers 4–30 ms later.
    std::int64_t server_delay() { return static_cast<std::int64_t>(m_rng.range(200, 1500)); }
    std::int64_t client_delay() { return static_cast<std::int64_t>(m_rng.range(4000, 30000)); }

    void conversation(int kind, std::int64_t t) {
        struct spec {
            bool v6;
            std::uint16_t port;
            std::uint8_t proto;
        };
        // clang-format off
        static constexpr std::array<spec, 8> specs = {{
            {false, 80, ipvs::ipproto::tcp},  {false, 8080, ipvs::ipproto::tcp}, {true, 80, ipvs::ipproto::tcp},
            {false, 80, ipvs::ipproto::tcp},  {false, 53, ipvs::ipproto::udp},   {true, 53, ipvs::ipproto::udp},
            {false, 3868, ipvs::ipproto::sctp}, {true, 3868, ipvs::ipproto::sctp},
        }}; // indexed by k_http4 … k_sctp6
        // clang-format on
        const spec& k = specs[static_cast<std::size_t>(kind)];
        inet_addr vip = addr(k.v6 ? "fd00::100" : "10.0.0.100");
        if (kind == k_fwmark)
            vip = inet_addr::v4(0x0a000300U | static_cast<std::uint32_t>(m_rng.range(1, 40)));
        const inet_addr client = k.v6 ? client6() : client4();
        flow f = new_flow(client, vip, k.port, k.proto, t);
        if (k.proto == ipvs::ipproto::tcp)
            tcp_conversation(f);
        else if (k.proto == ipvs::ipproto::udp)
            dns_conversation(f);
        else
            sctp_association(f);
    }

    /// The persistent service: each client opens several connections over time; the director must send
    /// them all to one real server (rr would otherwise alternate).
    void persistent_clients(std::int64_t t0) {
        for (int c = 0; c < 8; ++c) {
            const inet_addr client =
                inet_addr::v4(0x0a016400U | static_cast<std::uint32_t>(10 + c)); // 10.1.100.x
            std::int64_t t = t0 + c * 9'000;
            for (int k = 0; k < 4; ++k) {
                tcp_conversation(new_flow(client, addr("10.0.0.100"), 8000, ipvs::ipproto::tcp, t));
                t += static_cast<std::int64_t>(m_rng.range(60'000, 160'000));
            }
        }
    }

    // --- TCP ---------------------------------------------------------------------------------------

    struct tcp_side {
        std::uint32_t seq, ack;
    };

    void tcp_send(flow& f, bool from_client, tcp_side& me, std::uint8_t flags, const bytes& payload,
                  std::uint16_t window, const bytes& options = {}, std::string bad = {}) {
        tcp_fields h;
        h.sport = from_client ? f.cport : f.vport;
        h.dport = from_client ? f.vport : f.cport;
        h.seq = me.seq;
        h.ack = (flags & ipvs::tcp_flag::ack) ? me.ack : 0;
        h.flags = flags;
        h.window = window;
        h.options = options;
        h.payload = payload;
        bytes seg = tcp_segment(from_client ? f.client : f.vip, from_client ? f.vip : f.client, h);
        if (!bad.empty()) { // a wrong TCP checksum: flip bits of the stored value
            seg[ipvs::tcp_hdr::check] ^= std::byte{0x5a};
        }
        m_cap.add(f.t, f.frame_of(from_client, ipvs::ipproto::tcp, seg), std::move(bad));
        me.seq += static_cast<std::uint32_t>(payload.size()) +
                  ((flags & (ipvs::tcp_flag::syn | ipvs::tcp_flag::fin)) ? 1U : 0U);
    }

    /// MSS 1460, NOP, window scale 7, NOP, NOP, SACK permitted (RFC 9293 §3.2, RFC 7323, RFC 2018).
    static bytes syn_options() {
        bytes o;
        for (std::uint8_t b : {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2}) put8(o, b);
        return o;
    }

    bytes http_request(const flow& f, int round) {
        std::string host = ipvs::examples::format_addr(f.vip);
        if (f.vip.is_v6()) host = "[" + host + "]";
        std::string r = "GET /item/" + std::to_string(m_rng.range(1, 9999)) + (round > 0 ? "?next" : "") +
                        " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: make_sample\r\nAccept: */*\r\n\r\n";
        bytes b;
        put_text(b, r);
        return b;
    }
    bytes http_response() {
        const auto n = m_rng.range(40, 360);
        std::string body;
        for (std::uint64_t i = 0; i < n; ++i) body += static_cast<char>('a' + (m_rng.next() % 26));
        bytes b;
        put_text(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(n) +
                        "\r\n\r\n" + body);
        return b;
    }

    void tcp_conversation(flow f) {
        tcp_side c{m_rng.u32(), 0}, s{m_rng.u32(), 0};
        using namespace ipvs::tcp_flag;
        tcp_send(f, true, c, syn, {}, 64240, syn_options());
        s.ack = c.seq;
        f.t += server_delay();
        tcp_send(f, false, s, syn | ack, {}, 65160, syn_options());
        c.ack = s.seq;
        f.t += client_delay();
        tcp_send(f, true, c, ack, {}, 502);
        const int rounds = static_cast<int>(m_rng.range(1, 3));
        for (int r = 0; r < rounds; ++r) {
            f.t += r == 0 ? 30 : client_delay();
            const bytes req = http_request(f, r);
            tcp_send(f, true, c, psh | ack, req, 502);
            s.ack = c.seq;
            f.t += server_delay();
            tcp_send(f, false, s, psh | ack, http_response(), 509);
            c.ack = s.seq;
            f.t += client_delay();
            tcp_send(f, true, c, ack, {}, 501);
            // One established flow carries a retransmission of its request with a wrong checksum.
            if (!m_bad_tcp_done && f.vport == 80 && f.client.is_v4() && f.vip == addr("10.0.0.100")) {
                m_bad_tcp_done = true;
                f.t += 200;
                tcp_side again{c.seq - static_cast<std::uint32_t>(req.size()), c.ack};
                tcp_send(f, true, again, psh | ack, req, 501, {}, "tcp segment with a wrong checksum");
            }
        }
        const auto close = m_rng.range(0, 99);
        f.t += client_delay();
        if (close < 70) { // client closes
            tcp_send(f, true, c, fin | ack, {}, 501);
            s.ack = c.seq;
            f.t += server_delay();
            tcp_send(f, false, s, fin | ack, {}, 509);
            c.ack = s.seq;
            f.t += client_delay();
            tcp_send(f, true, c, ack, {}, 501);
        } else if (close < 80) { // server closes (keep-alive timeout)
            tcp_send(f, false, s, fin | ack, {}, 509);
            c.ack = s.seq;
            f.t += client_delay();
            tcp_send(f, true, c, fin | ack, {}, 501);
            s.ack = c.seq;
            f.t += server_delay();
            tcp_send(f, false, s, ack, {}, 509);
        } else if (close < 92) { // client aborts
            tcp_send(f, true, c, rst | ack, {}, 0);
        } else { // server aborts
            tcp_send(f, false, s, rst | ack, {}, 0);
        }
    }

    // --- UDP (DNS) ---------------------------------------------------------------------------------

    static void put_name(bytes& b, std::string_view name) {
        while (!name.empty()) {
            const auto dot = name.find('.');
            const auto label = name.substr(0, dot);
            put8(b, static_cast<std::uint8_t>(label.size()));
            put_text(b, label);
            name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
        }
        put8(b, 0);
    }
    /// A DNS query (RFC 1035 §4.1); `pad` > 0 adds an EDNS(0) OPT record with that much padding.
    static bytes dns_query(std::uint16_t id, const std::string& name, std::uint16_t qtype,
                           std::size_t pad = 0) {
        bytes b;
        put16(b, id);
        put16(b, 0x0100); // standard query, recursion desired
        put16(b, 1);
        put16(b, 0);
        put16(b, 0);
        put16(b, pad != 0 ? 1 : 0);
        put_name(b, name);
        put16(b, qtype);
        put16(b, 1);    // IN
        if (pad != 0) { // OPT RR (RFC 6891) with a Padding option (RFC 7830)
            put8(b, 0);
            put16(b, 41);
            put16(b, 4096);
            put32(b, 0);
            put16(b, static_cast<std::uint16_t>(4 + pad));
            put16(b, 12);
            put16(b, static_cast<std::uint16_t>(pad));
            b.insert(b.end(), pad, std::byte{0});
        }
        return b;
    }
    bytes dns_answer(std::uint16_t id, const std::string& name, std::uint16_t qtype) {
        bytes b;
        put16(b, id);
        put16(b, 0x8180); // response, recursion desired + available
        put16(b, 1);
        put16(b, 1);
        put16(b, 0);
        put16(b, 0);
        put_name(b, name);
        put16(b, qtype);
        put16(b, 1);
        put16(b, 0xc00c); // the name again, compressed
        put16(b, qtype);
        put16(b, 1);
        put32(b, 300);
        if (qtype == 1) {
            put16(b, 4);
            put32(b, 0xc6336400U | static_cast<std::uint32_t>(m_rng.range(1, 254))); // 198.51.100.x
        } else {
            put16(b, 16);
            put32(b, 0x20010db8);
            put32(b, 0);
            put32(b, 0);
            put32(b, m_rng.u32());
        }
        return b;
    }

    void dns_conversation(flow f) {
        const int queries = m_rng.chance(30) ? static_cast<int>(m_rng.range(2, 3)) : 1;
        for (int q = 0; q < queries; ++q) {
            const auto id = static_cast<std::uint16_t>(m_rng.next());
            const std::string name = "host" + std::to_string(m_rng.range(1, 500)) + ".example.com";
            const std::uint16_t qtype = f.client.is_v4() ? 1 : 28;
            m_cap.add(
                f.t, f.frame_of(true, ipvs::ipproto::udp,
                                udp_datagram(f.client, f.vip, f.cport, f.vport, dns_query(id, name, qtype))));
            f.t += server_delay();
            m_cap.add(f.t, f.frame_of(
                               false, ipvs::ipproto::udp,
                               udp_datagram(f.vip, f.client, f.vport, f.cport, dns_answer(id, name, qtype))));
            f.t += client_delay() * 3;
        }
    }

    // --- SCTP --------------------------------------------------------------------------------------

    static bytes init_value(std::uint32_t tag, std::uint32_t tsn, const bytes& cookie) {
        bytes v;
        put32(v, tag);
        put32(v, 106496); // a_rwnd
        put16(v, 10);     // outbound streams
        put16(v, 65535);  // inbound streams
        put32(v, tsn);
        if (!cookie.empty()) { // State Cookie parameter (type 7), INIT-ACK only
            put16(v, 7);
            put16(v, static_cast<std::uint16_t>(4 + cookie.size()));
            append(v, cookie);
        }
        return v;
    }
    static bytes data_value(std::uint32_t tsn, std::uint16_t ssn, const bytes& payload) {
        bytes v;
        put32(v, tsn);
        put16(v, 0); // stream 0
        put16(v, ssn);
        put32(v, 46); // PPID 46: Diameter
        append(v, payload);
        return v;
    }
    static bytes sack_value(std::uint32_t cum_tsn) {
        bytes v;
        put32(v, cum_tsn);
        put32(v, 106496);
        put16(v, 0);
        put16(v, 0);
        return v;
    }
    /// A Diameter Device-Watchdog request or answer (RFC 6733 §3, §4, §5.5): header + AVPs.
    static bytes diameter(bool request, std::uint32_t hop_by_hop, std::uint32_t end_to_end,
                          const std::string& host) {
        bytes avps;
        auto avp = [&](std::uint32_t code, const bytes& data) {
            put32(avps, code);
            put32(avps, 0x40000000U | static_cast<std::uint32_t>(8 + data.size())); // M flag, length
            append(avps, data);
            pad4(avps);
        };
        auto text = [](std::string_view t) {
            bytes b;
            put_text(b, t);
            return b;
        };
        if (!request) {
            bytes rc;
            put32(rc, 2001); // DIAMETER_SUCCESS
            avp(268, rc);    // Result-Code
        }
        avp(264, text(host));          // Origin-Host
        avp(296, text("example.com")); // Origin-Realm
        bytes m;
        put32(m, 0x01000000U | static_cast<std::uint32_t>(20 + avps.size())); // version 1, length
        put32(m, (request ? 0x80000000U : 0U) | 280U);                        // flags, Device-Watchdog
        put32(m, 0);                                                          // application 0
        put32(m, hop_by_hop);
        put32(m, end_to_end);
        append(m, avps);
        return m;
    }

    void sctp_send(flow& f, bool from_client, std::uint32_t vtag, const bytes& chunks) {
        const std::uint16_t sp = from_client ? f.cport : f.vport, dp = from_client ? f.vport : f.cport;
        m_cap.add(f.t, f.frame_of(from_client, ipvs::ipproto::sctp, sctp_packet(sp, dp, vtag, chunks)));
    }

    void sctp_association(flow f) {
        namespace ch = ipvs::sctp_chunk;
        const std::uint32_t tag_c = m_rng.u32() | 1, tag_s = m_rng.u32() | 1;
        std::uint32_t tsn_c = m_rng.u32(), tsn_s = m_rng.u32();
        bytes cookie;
        for (int i = 0; i < 24; ++i) put8(cookie, static_cast<std::uint8_t>(m_rng.next()));
        sctp_send(f, true, 0, chunk(ch::init, 0, init_value(tag_c, tsn_c, {})));
        f.t += server_delay();
        sctp_send(f, false, tag_c, chunk(ch::init_ack, 0, init_value(tag_s, tsn_s, cookie)));
        f.t += client_delay();
        std::uint16_t ssn = 0;
        const bool bundle = !m_bundled_done; // the first association bundles DATA with its COOKIE-ECHO
        m_bundled_done = true;
        bytes echo = chunk(ch::cookie_echo, 0, cookie);
        const std::string client_host = "peer" + std::to_string(m_rng.range(1, 99)) + ".example.com";
        std::uint32_t hbh = m_rng.u32();
        const std::uint32_t e2e = m_rng.u32();
        if (bundle)
            append(echo, chunk(ch::data, 0x03,
                               data_value(tsn_c++, ssn++, diameter(true, hbh++, e2e, client_host))));
        sctp_send(f, true, tag_s, echo);
        f.t += server_delay();
        bytes ack_chunks = chunk(ch::cookie_ack, 0, {});
        if (bundle) append(ack_chunks, chunk(ch::sack, 0, sack_value(tsn_c - 1)));
        sctp_send(f, false, tag_c, ack_chunks);
        const int rounds = static_cast<int>(m_rng.range(1, 3));
        for (int r = 0; r < rounds; ++r) {
            f.t += client_delay();
            sctp_send(
                f, true, tag_s,
                chunk(ch::data, 0x03,
                      data_value(tsn_c++, ssn++,
                                 diameter(true, hbh, e2e + static_cast<std::uint32_t>(r), client_host))));
            f.t += server_delay();
            sctp_send(f, false, tag_c, chunk(ch::sack, 0, sack_value(tsn_c - 1)));
            f.t += 50;
            sctp_send(f, false, tag_c,
                      chunk(ch::data, 0x03,
                            data_value(tsn_s++, static_cast<std::uint16_t>(r),
                                       diameter(false, hbh++, e2e + static_cast<std::uint32_t>(r),
                                                "aaa.example.com"))));
            f.t += client_delay();
            sctp_send(f, true, tag_s, chunk(ch::sack, 0, sack_value(tsn_s - 1)));
        }
        f.t += client_delay();
        if (m_rng.chance(75)) { // graceful: SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE (RFC 4960 §9.2)
            bytes cum;
            put32(cum, tsn_s - 1);
            sctp_send(f, true, tag_s, chunk(ch::shutdown, 0, cum));
            f.t += server_delay();
            sctp_send(f, false, tag_c, chunk(ch::shutdown_ack, 0, {}));
            f.t += client_delay();
            sctp_send(f, true, tag_s, chunk(ch::shutdown_complete, 0, {}));
        } else { // ABORT with the peer's tag (T bit clear)
            sctp_send(f, true, tag_s, chunk(ch::abort, 0, {}));
        }
    }

    // --- Deliberately bad frames -------------------------------------------------------------------

    void malformed(std::int64_t t) {
        const inet_addr vip = addr("10.0.0.100");
        auto syn_to = [&](flow& f) {
            tcp_fields h;
            h.sport = f.cport;
            h.dport = 80;
            h.seq = m_rng.u32();
            h.flags = ipvs::tcp_flag::syn;
            h.window = 64240;
            h.options = syn_options();
            return tcp_segment(f.client, vip, h);
        };
        { // IPv4 header cut after 12 bytes
            flow f = new_flow(client4(), vip, 80, ipvs::ipproto::tcp, t);
            bytes fr = f.frame_of(true, ipvs::ipproto::tcp, syn_to(f));
            fr.resize(14 + 12);
            m_cap.add(t, fr, "truncated IPv4 header (12 of 20 bytes)");
        }
        t += 7'000;
        { // IHL 4: a header shorter than the minimum (the checksum is over the 20 bytes written)
            flow f = new_flow(client4(), vip, 80, ipvs::ipproto::tcp, t);
            bytes fr = f.frame_of(true, ipvs::ipproto::tcp, syn_to(f));
            fr[14] = std::byte{0x44};
            ipvs::store_be16(fr.data() + 14 + ipvs::ipv4_hdr::check, 0);
            const auto sum = ipvs::internet_checksum(std::span<const std::byte>(fr).subspan(14, 20));
            ipvs::store_be16(fr.data() + 14 + ipvs::ipv4_hdr::check, sum);
            m_cap.add(t, fr, "IPv4 IHL 4 (16-byte header)");
        }
        t += 9'000;
        { // TCP data offset 4 (16 bytes), checksum right over what is there
            flow f = new_flow(client4(), vip, 80, ipvs::ipproto::tcp, t);
            bytes seg = syn_to(f);
            seg[ipvs::tcp_hdr::doff] = std::byte{0x40};
            ipvs::store_be16(seg.data() + ipvs::tcp_hdr::check, 0);
            const auto sum = ipvs::pseudo_header(f.client, vip, ipvs::ipproto::tcp,
                                                 static_cast<std::uint32_t>(seg.size()));
            ipvs::store_be16(seg.data() + ipvs::tcp_hdr::check, ipvs::internet_checksum(seg, sum));
            m_cap.add(t, f.frame_of(true, ipvs::ipproto::tcp, seg), "TCP data offset 4 (16-byte header)");
        }
        t += 11'000;
        { // SCTP DATA chunk whose length runs past the packet (CRC right)
            flow f = new_flow(client4(), vip, 3868, ipvs::ipproto::sctp, t);
            bytes c = chunk(ipvs::sctp_chunk::data, 0x03,
                            data_value(m_rng.u32(), 0, diameter(true, 1, 1, "peer0.example.com")));
            ipvs::store_be16(c.data() + 2, 400);
            m_cap.add(t, f.frame_of(true, ipvs::ipproto::sctp, sctp_packet(f.cport, 3868, m_rng.u32(), c)),
                      "SCTP DATA chunk length 400 past the end of the packet");
        }
        t += 13'000;
        { // a DNS query in two IPv4 fragments (RFC 791: offsets in 8-byte units), then its answer
            flow f = new_flow(client4(), vip, 53, ipvs::ipproto::udp, t);
            const std::string name = "fragmented.example.com";
            const auto id = static_cast<std::uint16_t>(m_rng.next());
            const bytes dgram = udp_datagram(f.client, vip, f.cport, 53, dns_query(id, name, 16, 240));
            const std::size_t first = 160; // a multiple of 8
            const bytes part1(dgram.begin(), dgram.begin() + first),
                part2(dgram.begin() + first, dgram.end());
            const std::uint16_t ipid = f.id_c++;
            m_cap.add(t,
                      ethernet(director_mac, next_hop_mac, ipvs::ethertype::ipv4,
                               ipv4_packet(f.client, vip, ipvs::ipproto::udp, ipid, ipvs::ipv4_hdr::flag_mf,
                                           part1)),
                      "IPv4 fragment 1 of 2 (offset 0, MF)");
            t += 40;
            m_cap.add(t,
                      ethernet(director_mac, next_hop_mac, ipvs::ethertype::ipv4,
                               ipv4_packet(f.client, vip, ipvs::ipproto::udp, ipid,
                                           static_cast<std::uint16_t>(first / 8), part2)),
                      "IPv4 fragment 2 of 2 (offset 160)");
            f.t = t + server_delay();
            m_cap.add(f.t, f.frame_of(false, ipvs::ipproto::udp,
                                      udp_datagram(vip, f.client, 53, f.cport, dns_answer(id, name, 1))));
        }
    }

    rng m_rng;
    capture m_cap;
    ipvs::examples::rule_set m_rules;
    std::set<std::tuple<inet_addr, std::uint8_t, std::uint16_t>> m_used;
    bool m_bad_tcp_done = false;
    bool m_bundled_done = false;
};

void put_le16(std::string& s, std::uint16_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>(v >> 8);
}
void put_le32(std::string& s, std::uint32_t v) {
    put_le16(s, static_cast<std::uint16_t>(v));
    put_le16(s, static_cast<std::uint16_t>(v >> 16));
}

/// Classic pcap (the tcpdump file format): little-endian magic 0xa1b2c3d4 = microsecond timestamps.
std::string pcap_file(const capture& cap) {
    std::string s;
    put_le32(s, 0xa1b2c3d4U);
    put_le16(s, 2);
    put_le16(s, 4);
    put_le32(s, 0);     // thiszone
    put_le32(s, 0);     // sigfigs
    put_le32(s, 65535); // snaplen
    put_le32(s, 1);     // LINKTYPE_ETHERNET
    for (const auto& f : cap.frames()) {
        put_le32(s, static_cast<std::uint32_t>(f.ts_us / 1'000'000));
        put_le32(s, static_cast<std::uint32_t>(f.ts_us % 1'000'000));
        put_le32(s, static_cast<std::uint32_t>(f.data.size()));
        put_le32(s, static_cast<std::uint32_t>(f.data.size()));
        for (auto b : f.data) s += static_cast<char>(std::to_integer<unsigned char>(b));
    }
    return s;
}

bool write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) {
        std::fprintf(stderr, "make_sample: cannot write %s\n", path.c_str());
        return false;
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc > 4 || (argc == 4 && std::string_view(argv[3]) != "--list")) {
        std::fprintf(stderr, "usage: make_sample OUT.pcap OUT.rules [--list]\n");
        return 2;
    }
    generator g;
    g.run();
    const std::string rules_text =
        "# The rules of the bundled sample capture (sample.pcap), made by examples/tools/make_sample.cpp.\n"
        "# ipvsadm-save -n format; --mark lines are the demo's own fwmark rules (see "
        "examples/common/rules.hpp).\n" +
        ipvs::examples::to_text(g.rules());
    // The generator's rules must read back as what it meant: a check of the writer and the reader.
    const auto back = ipvs::examples::parse_rules(rules_text);
    if (!back || ipvs::examples::to_text(back.rules) != ipvs::examples::to_text(g.rules())) {
        std::fprintf(stderr, "make_sample: the rules do not read back: %s\n",
                     back ? "different text" : back.error->what().c_str());
        return 1;
    }
    if (!write_file(argv[1], pcap_file(g.cap())) || !write_file(argv[2], rules_text)) return 1;
    if (argc == 4) {
        std::size_t n = 0;
        for (const auto& f : g.cap().frames()) {
            ++n;
            if (!f.bad.empty()) std::printf("frame %zu: %s\n", n, f.bad.c_str());
        }
        std::printf("%zu frames\n", n);
    }
    return 0;
}
