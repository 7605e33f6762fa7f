// SPDX-License-Identifier: MIT
// Umbrella header: includes every public ipvs header, nothing else.
#pragma once

// Foundation: bytes, addresses, packet views, parsing, checksums
#include <ipvs/addr.hpp>
#include <ipvs/bytes.hpp>
#include <ipvs/checksum.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>
#include <ipvs/crc32c.hpp>
#include <ipvs/ethernet.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/packet_view.hpp>
#include <ipvs/parse.hpp>
#include <ipvs/verify.hpp>
#include <ipvs/version.hpp>

// Rewrite: NAT, DR/TUN, the ICMP errors a director sends
#include <ipvs/frag.hpp>
#include <ipvs/icmp.hpp>
#include <ipvs/nat.hpp>
#include <ipvs/tun.hpp>

// Services, dests and schedulers
#include <ipvs/dest.hpp>
#include <ipvs/sched/any.hpp>
#include <ipvs/sched/dh.hpp>
#include <ipvs/sched/fo.hpp>
#include <ipvs/sched/lblc.hpp>
#include <ipvs/sched/lblcr.hpp>
#include <ipvs/sched/lc.hpp>
#include <ipvs/sched/mh.hpp>
#include <ipvs/sched/nq.hpp>
#include <ipvs/sched/ovf.hpp>
#include <ipvs/sched/rr.hpp>
#include <ipvs/sched/scheduler.hpp>
#include <ipvs/sched/sed.hpp>
#include <ipvs/sched/sh.hpp>
#include <ipvs/sched/twos.hpp>
#include <ipvs/sched/wlc.hpp>
#include <ipvs/sched/wrr.hpp>
#include <ipvs/service.hpp>

// State machines: TCP (normal and secure_tcp), SCTP, UDP/ICMP, timeouts
#include <ipvs/proto/sctp_state.hpp>
#include <ipvs/proto/tcp_state.hpp>
#include <ipvs/proto/timeouts.hpp>
#include <ipvs/proto/udp.hpp>

// Beyond one box: LVS connection sync
#include <ipvs/sync.hpp>
#include <ipvs/sync_agent.hpp>

// Connections and the director: ip_vs_in / ip_vs_out as one call per packet; printing
#include <ipvs/conn.hpp>
#include <ipvs/conn_table.hpp>
#include <ipvs/director.hpp>
#include <ipvs/flow_hash.hpp>
#include <ipvs/io.hpp>
#include <ipvs/memory.hpp>
#include <ipvs/timer_wheel.hpp>
