// SPDX-License-Identifier: MIT
// Replays the recorded TCP, SCTP and UDP state traces (tcpstate / sctpstate / udpstate.jsonl).

#include <doctest/doctest.h>

#include "proto/state_replay.hpp"

// Each packet's resulting conn (state, dest, expires), whether IPVS took it, and the dest's counters
// must be the recorded kernel's; see state_replay.hpp for the model and the comparison rules.

TEST_CASE("oracle: tcp state — every recorded segment gives the kernel's state, timeout and counters") {
    ipvs::test::replay::replay_everywhere("tcpstate.jsonl");
}

TEST_CASE("oracle: sctp state — every recorded packet gives the kernel's state, timeout and counters") {
    ipvs::test::replay::replay_everywhere("sctpstate.jsonl");
}

TEST_CASE("oracle: udp state — every recorded datagram gives the kernel's conn and timeout") {
    ipvs::test::replay::replay_everywhere("udpstate.jsonl");
}
