// SPDX-License-Identifier: MIT
// Floods against a small director: spoofed SYN / UDP floods at many times the table's capacity, ICMP error
// storms, packets for unknown services — memory bounded, established flows lose nothing, defense per spec.
//
// Set-up: one director with a 4096-entry IPv4 table, TCP VIP:80 (wlc) and UDP VIP:53 (rr), four NAT dests
// each, and 1000 established TCP + 200 confirmed UDP flows. Each flood sends `flood` spoofed packets
// (10× capacity by default; IPVS_FLOOD_SCALE multiplies it) with one packet of an established flow, in
// or out, after every 8 flood packets, and polls every 1024 packets as a datapath loop would. What must
// hold (issue 7; spec §3.8 and the table's own bounds, conn_table.hpp "Flood defense"):
// - the table never exceeds its capacity, the heap does not grow during the flood (the packet path
//   never allocates), and the bookkeeping invariants hold afterwards;
// - every interleaved established-flow packet is forwarded to its own dest, correctly rewritten;
// - an established entry is never evicted: spoofed entries only evict each other (embryonic bound);
// - secure_tcp = 3: spoofed SYN + blind ACK cannot establish (DoS table: SYN_RECV + ack → SYN_RECV);
// - drop_entry (run as the kernel's once-a-second timer would) removes SYN_RECV entries, never
//   the recently used established ones; drop_packet drops 1 in `rate` new connections.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "reliability/reliability.hpp"

using namespace ipvs;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t capacity = 4096;
constexpr std::size_t n_tcp = 1000, n_udp = 200;

/// 10× capacity, times IPVS_FLOOD_SCALE (default 1), times `times` for the two big floods.
std::size_t flood_size(std::size_t times = 1) {
    std::size_t scale = 1;
    if (const char* s = std::getenv("IPVS_FLOOD_SCALE"))
        scale = static_cast<std::size_t>(std::max(1, std::atoi(s)));
    return 10 * capacity * scale * times;
}

struct fixture {
    director d{director_config{.capacity_v4 = capacity, .capacity_v6 = 256}};
    test::packet_maker m;
    test::spoofer spoof;
    endpoint vip_tcp = test::ep4("10.0.0.100:80"), vip_udp = test::ep4("10.0.0.100:53");
    std::vector<test::nat_flow> flows;
    time_ns now = 1s;

    fixture() {
        service_config t;
        t.vip = vip_tcp;
        auto& st = d.add_service(t);
        service_config u;
        u.vip = vip_udp;
        u.protocol = ipproto::udp;
        u.scheduler = "rr";
        auto& su = d.add_service(u);
        for (int i = 0; i < 4; ++i) {
            const std::string a = "10.0.2." + std::to_string(11 + i);
            d.add_dest(st, dest_config{test::ep4((a + ":8080").c_str()), 1});
            d.add_dest(su, dest_config{test::ep4((a + ":5353").c_str()), 1});
        }
        flows.reserve(n_tcp + n_udp);
        for (std::size_t i = 0; i < n_tcp + n_udp; ++i) {
            const bool tcp = i < n_tcp;
            flows.push_back(test::open_flow(d, m, now, tcp ? ipproto::tcp : ipproto::udp, test::client(i),
                                            tcp ? vip_tcp : vip_udp));
            REQUIRE(flows.back().to != nullptr);
        }
        REQUIRE(d.table_v4().size() == n_tcp + n_udp);
        REQUIRE(d.table_v4().embryonic() == 0); // all confirmed
    }

    struct result {
        std::size_t flood = 0, established_ok = 0, established_sent = 0, max_size = 0;
        std::ptrdiff_t heap_growth = 0;
        std::size_t forwarded = 0, dropped = 0, accepted = 0, replied = 0;
    };

    /// Sends `n` packets from `flood_packet` with established traffic interleaved, checking as it goes.
    template <class F>
    result run(std::size_t n, F&& flood_packet) {
        result r;
        std::size_t k = 0;
        const std::size_t heap0 = test::heap_in_use();
        for (std::size_t i = 0; i < n; ++i) {
            now += 1us;
            const verdict v = flood_packet(i);
            ++r.flood;
            r.forwarded += v.act == action::forward;
            r.dropped += v.act == action::drop;
            r.accepted += v.act == action::accept;
            r.replied += v.act == action::reply;
            if (i % 8 == 7) {
                const auto& f = flows[k++ % flows.size()];
                const bool ok = (k & 1) ? f.send_in(d, m, now) : f.send_out(d, m, now);
                r.established_ok += ok;
                ++r.established_sent;
            }
            if (i % 1024 == 1023) (void)d.poll(now);
            r.max_size = std::max(r.max_size, d.table_v4().size());
        }
        r.heap_growth = static_cast<std::ptrdiff_t>(test::heap_in_use()) - static_cast<std::ptrdiff_t>(heap0);
        return r;
    }

    /// Every established flow is still in the table and forwards both ways.
    std::size_t flows_alive() {
        std::size_t ok = 0;
        for (const auto& f : flows) ok += f.send_in(d, m, now) && f.send_out(d, m, now);
        return ok;
    }
};

void check_bounded(const fixture& fx, const fixture::result& r) {
    MESSAGE(r.flood << " flood packets (forwarded " << r.forwarded << ", dropped " << r.dropped
                    << ", accepted " << r.accepted << ", replied " << r.replied << "), " << r.established_sent
                    << " established packets interleaved, max table size " << r.max_size);
    CHECK(r.max_size <= capacity);
    CHECK(r.heap_growth == 0);
    CHECK(r.established_ok == r.established_sent); // zero loss
    CHECK(test::bookkeeping_errors(fx.d) == "");
}

} // namespace

TEST_CASE(
    "flood: a spoofed SYN flood at 40x capacity neither grows the table nor touches established flows") {
    fixture fx;
    const std::size_t n = flood_size(4); // 163,840 sources: 40× capacity
    const auto r = fx.run(n, [&](std::size_t) {
        return fx.d.in(fx.m.tcp(fx.spoof.source(), fx.vip_tcp, tcp_flag::syn), fx.now);
    });
    check_bounded(fx, r);
    // The flood's SYNs are real new connections to IPVS: forwarded while the embryonic bound evicts
    // older spoofed ones (never an established entry).
    CHECK(r.forwarded == n);
    CHECK(fx.d.table_v4().embryonic() <= fx.d.table_v4().embryonic_limit());
    CHECK(fx.d.table_v4().size() == n_tcp + n_udp + fx.d.table_v4().embryonic());
    CHECK(fx.flows_alive() == fx.flows.size());
    SUBCASE("a legitimate new client still gets in during the flood") {
        const auto f =
            test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::ep4("10.9.0.1:33333"), fx.vip_tcp);
        CHECK(f.to != nullptr);
    }
}

TEST_CASE("flood: a spoofed UDP flood at 40x capacity keeps confirmed UDP and TCP flows") {
    fixture fx;
    const std::size_t n = flood_size(4);
    const auto r =
        fx.run(n, [&](std::size_t) { return fx.d.in(fx.m.udp(fx.spoof.source(), fx.vip_udp), fx.now); });
    check_bounded(fx, r);
    CHECK(r.forwarded == n);
    CHECK(fx.d.table_v4().embryonic() <= fx.d.table_v4().embryonic_limit());
    CHECK(fx.flows_alive() == fx.flows.size());
}

TEST_CASE("flood: SYN + blind ACK from spoofed sources — secure_tcp keeps them from establishing") {
    // A spoofed client that follows its SYN with an ACK (it never sees the SYN-ACK) gets ESTABLISHED
    // under the normal table (SYN_RECV + ack → ESTABLISHED, spec §4.3), so such entries become
    // unevictable and fill what the embryonic bound leaves (capacity − embryonic_limit) — still bounded,
    // and established flows untouched. With secure_tcp = 3 the DoS table keeps them in SYN_RECV.
    for (const int secure : {0, 3}) {
        CAPTURE(secure);
        fixture fx;
        fx.d.sysctl().secure_tcp = secure;
        const std::size_t n = flood_size() / 2;
        endpoint last{};
        const auto r = fx.run(2 * n, [&](std::size_t i) {
            if (i % 2 == 0) last = fx.spoof.source();
            return fx.d.in(fx.m.tcp(last, fx.vip_tcp, i % 2 ? tcp_flag::ack : tcp_flag::syn), fx.now);
        });
        check_bounded(fx, r);
        std::size_t spoofed_established = 0, spoofed = 0;
        fx.d.for_each_conn([&](const auto& e) {
            if constexpr (std::decay_t<decltype(e)>::addr_len == 4) {
                if ((e.caddr[0] == 100) && e.protocol == ipproto::tcp) {
                    ++spoofed;
                    spoofed_established += e.state == static_cast<std::uint8_t>(tcp_state::established);
                }
            }
        });
        MESSAGE("spoofed entries " << spoofed << ", of them established " << spoofed_established);
        const auto legit =
            test::open_flow(fx.d, fx.m, fx.now, ipproto::tcp, test::ep4("10.9.0.1:33333"), fx.vip_tcp);
        if (secure == 3) {
            CHECK(spoofed_established == 0);
            CHECK(spoofed <= fx.d.table_v4().embryonic_limit());
            CHECK(legit.to != nullptr); // spoofed entries stay evictable: a new client gets in
        } else {
            // The weakness secure_tcp exists for: the fake ESTABLISHED entries are unevictable and
            // fill the table (which, unlike the kernel's, does not grow), so new clients are refused
            // until they time out (TCP ESTABLISHED: 900 s).
            CHECK(spoofed_established > 0);
            MESSAGE("secure_tcp off: a new client " << (legit.to ? "got in" : "was refused (table full)"));
        }
        CHECK(fx.flows_alive() == fx.flows.size());
    }
}

TEST_CASE("flood: ICMP error storms quoting random and real flows create nothing and forward the related") {
    fixture fx;
    const std::size_t n = flood_size();
    const std::size_t size0 = fx.d.table_v4().size();
    test::packet_maker q; // the quoted packets, built apart from the storm's
    std::size_t related_sent = 0, related_ok = 0, bad_sent = 0, bad_dropped = 0;
    const auto r = fx.run(n, [&](std::size_t i) {
        const bool from_client = i % 2 == 0;
        const bool real = i % 3 == 0;
        const bool bad = i % 5 == 0;
        const test::nat_flow& f = fx.flows[(i / 3) % fx.flows.size()];
        const endpoint peer = real ? f.client : fx.spoof.source();
        const endpoint vip = f.proto == ipproto::tcp ? fx.vip_tcp : fx.vip_udp;
        if (!from_client) {
            // A real server's error about a client → RS packet, sent to the client (spec §6.4 out_icmp).
            const auto& quoted =
                f.proto == ipproto::tcp ? q.tcp(peer, f.to->ep, tcp_flag::ack) : q.udp(peer, f.to->ep);
            const verdict v = fx.d.out(fx.m.icmp_frag_needed(f.to->ep.addr, peer.addr, quoted, !bad), fx.now);
            if (real) {
                ++related_sent;
                related_ok += v.act == action::forward; // out_icmp recomputes the ICMP sum, checks none
            }
            return v;
        }
        // A client-side router's error about a VIP → client packet, sent to the VIP (in_icmp).
        const auto& quoted = f.proto == ipproto::tcp ? q.tcp(vip, peer, tcp_flag::ack) : q.udp(vip, peer);
        auto& p = fx.m.icmp_frag_needed(fx.spoof.source().addr, vip.addr, quoted, !bad);
        const verdict v = fx.d.in(p, fx.now);
        if (real && bad) {
            ++bad_sent;
            bad_dropped += v.act == action::drop && v.reason == drop_reason::bad_checksum;
        } else if (real) {
            ++related_sent;
            related_ok += v.act == action::forward && v.to == f.to;
        }
        return v;
    });
    check_bounded(fx, r);
    MESSAGE(related_sent << " related errors, " << bad_sent << " with a bad checksum");
    CHECK(fx.d.table_v4().size() == size0); // an ICMP error never creates a connection
    CHECK(related_ok == related_sent);
    CHECK(bad_dropped == bad_sent);
    CHECK(r.accepted > 0); // the unrelated ones are not IPVS's
    CHECK(fx.flows_alive() == fx.flows.size());
}

TEST_CASE("flood: packets for unknown services and stray server-side packets are not IPVS's") {
    fixture fx;
    const std::size_t n = flood_size();
    const std::size_t size0 = fx.d.table_v4().size();
    const auto r = fx.run(n, [&](std::size_t i) {
        const endpoint src = fx.spoof.source();
        switch (i % 4) {
        case 0:
            return fx.d.in(fx.m.tcp(src, test::ep4("10.0.0.100:443"), tcp_flag::syn), fx.now);
        case 1:
            return fx.d.in(fx.m.udp(src, test::ep4("10.0.0.100:123")), fx.now);
        case 2:
            return fx.d.in(fx.m.tcp(src, test::ep4("10.0.0.200:80"), tcp_flag::syn), fx.now);
        default:
            return fx.d.out(fx.m.tcp(test::ep4("10.0.2.11:8080"), src, tcp_flag::ack), fx.now);
        }
    });
    check_bounded(fx, r);
    CHECK(r.accepted == n);
    CHECK(fx.d.table_v4().size() == size0);
}

TEST_CASE("flood: drop_entry, run once a second during a SYN flood, removes SYN_RECV entries only") {
    // The director has no defense timer (see the report): the test runs the kernel's
    // update_defense_level step itself — drop_entry() over capacity-proportional random groups, then
    // the poll that removes what it marked (spec §3.8).
    fixture fx;
    std::size_t marked = 0;
    const auto r = fx.run(flood_size(), [&](std::size_t i) {
        if (i % 4096 == 4095) marked += fx.d.table_v4().drop_entry(fx.d.table_v4().index_groups());
        return fx.d.in(fx.m.tcp(fx.spoof.source(), fx.vip_tcp, tcp_flag::syn), fx.now);
    });
    (void)fx.d.poll(fx.now);
    check_bounded(fx, r);
    MESSAGE("drop_entry marked " << marked);
    CHECK(marked > 0);
    CHECK(fx.flows_alive() == fx.flows.size()); // ESTABLISHED used within 60 s: never try_drop'ped
}

TEST_CASE("defense: drop_packet drops one in every rate new connections (spec §3.8)") {
    // The director does not expose its defense modes (see the report); this pins the mode machine it
    // embeds against the spec's numbers.
    defense df;
    SUBCASE("mode 3: am_droprate") {
        df.drop_packet = 3;
        df.update(1 << 20);
        int dropped = 0;
        for (int i = 0; i < 1000; ++i) dropped += df.todrop();
        CHECK(dropped == 100); // 1 in 10
    }
    SUBCASE("mode 1: rate = amemthresh / (amemthresh - availmem) while short of memory") {
        df.drop_packet = 1;
        df.update(768); // 1024 / (1024 - 768) = 4
        CHECK(df.drop_packet == 2);
        CHECK(df.drop_rate() == 4);
        int dropped = 0;
        for (int i = 0; i < 400; ++i) dropped += df.todrop();
        CHECK(dropped == 100);
        df.update(4096);
        CHECK(df.drop_packet == 1);
        CHECK_FALSE(df.todrop());
    }
}
