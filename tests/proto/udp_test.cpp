// SPDX-License-Identifier: MIT
// Tests of UDP/ICMP (ipvs/proto/udp.hpp) and of the timeouts as `ipvsadm --set` sets them (timeouts.hpp).

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>

#include <ipvs/proto/timeouts.hpp>
#include <ipvs/proto/udp.hpp>

#include "proto/state_replay.hpp"

using namespace ipvs;
using namespace std::chrono_literals;

TEST_CASE("udp: one state, printed UDP, never active, no gate, 300 s (spec §5.4)") {
    CHECK(name(udp_state::normal) == "UDP");
    CHECK_FALSE(is_active(udp_state::normal));
    CHECK(udp_next_state(udp_state::normal) == udp_state::normal);
    CHECK(udp_may_create_conn());
    CHECK(udp_default_timeout == 300s);
    CHECK(icmp_default_timeout == 60s); // the historic ICMP protocol's value (spec §5.5)
}

TEST_CASE("timeouts: the defaults are what the recorded kernels' `ipvsadm -L --timeout` printed") {
    std::size_t sets = 0;
    for (const auto& dir : ipvs::test::oracle_dirs()) {
        const auto meta = ipvs::test::oracle_file(dir, "meta.json");
        if (!meta) continue;
        std::ifstream in(*meta);
        const auto m = ipvs::test::json::parse(in);
        if (!m.contains("timeouts")) continue;
        CAPTURE(dir.string());
        const auto recorded = ipvs::test::replay::parse_ipvsadm_timeout_line(m.at("timeouts"));
        CHECK(proto_timeouts{}.ipvsadm() == recorded);
        ++sets;
    }
    CHECK(sets > 0);
}

TEST_CASE("timeouts: `ipvsadm --set tcp tcpfin udp` changes ESTABLISHED, FIN_WAIT and UDP only") {
    proto_timeouts t;
    SUBCASE("all three") {
        t.set_ipvsadm({3600s, 30s, 60s});
        CHECK(t[tcp_state::established] == 3600s);
        CHECK(t[tcp_state::fin_wait] == 30s);
        CHECK(t[udp_state::normal] == 60s);
        CHECK(t.ipvsadm() == ipvsadm_timeouts{3600s, 30s, 60s});
        // nothing else moved
        const proto_timeouts d;
        for (std::size_t i = 0; i < tcp_state_count; ++i) {
            const auto s = static_cast<tcp_state>(i);
            if (s != tcp_state::established && s != tcp_state::fin_wait) CHECK(t[s] == d[s]);
        }
        CHECK(t.sctp == d.sctp);
    }
    SUBCASE("a zero leaves that value as it is") {
        t.set_ipvsadm({0s, 45s, 0s});
        CHECK(t.ipvsadm() == ipvsadm_timeouts{900s, 45s, 300s});
    }
    SUBCASE("a negative value is a configuration mistake and changes nothing") {
        CHECK_THROWS_AS(t.set_ipvsadm({100s, -1s, 0s}), std::invalid_argument);
        CHECK(t.ipvsadm() == ipvsadm_timeouts{900s, 120s, 300s});
    }
    SUBCASE("per-protocol lookups") {
        CHECK(t[sctp_state::established] == 900s);
        CHECK(t[sctp_state::init1] == 4s);
        CHECK(t[tcp_state::syn_recv] == 60s);
    }
}
