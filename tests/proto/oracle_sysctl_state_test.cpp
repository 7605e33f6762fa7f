// SPDX-License-Identifier: MIT
// Replays sysctl.jsonl at the state-machine level: sloppy_tcp, sloppy_sctp, secure_tcp, conn_reuse_mode,
// expire_nodest_conn.

#include <doctest/doctest.h>

#include "proto/state_replay.hpp"

// Every sequence of the file needs no more than the one conn a flow has, the service's dests and rr:
// the sloppy gates (a mid-stream ACK / DATA creates a conn, RST / ABORT never), the DoS table with
// sloppy_tcp, conn reuse after TIME_WAIT / CLOSE / FIN_WAIT (NAT and DR) / SCTP CLOSED in modes 0, 1, 2
// (a rescheduled flow lands on the other dest), and expire_nodest_conn after a dest delete (`DEL`:
// drop without re-arming, or expire and reschedule) or a weight-0 edit (`W0`: a SYN reschedules).

TEST_CASE("oracle: sysctl state — sloppy, secure_tcp, conn_reuse_mode and expire_nodest_conn sequences") {
    ipvs::test::replay::replay_everywhere("sysctl.jsonl");
}
