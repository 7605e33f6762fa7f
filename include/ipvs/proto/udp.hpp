// SPDX-License-Identifier: MIT
// UDP and ICMP as IPVS tracks them: one state, one timeout, no gate, never active.
#pragma once

// Design
// ------
// Source: spec §5.4 (UDP), §5.5 (ICMP), §1.6 (UDP conns stay in inactconns).
//
// Invariants: a UDP conn has the single state NORMAL, printed "UDP"; every packet, in either direction,
// re-arms it with the UDP timeout; any datagram without a conn may be scheduled (no gate); a UDP conn
// never moves between the counters, so it stays counted as inactive unless a sync master sent it active.
// Deviation: modern IPVS keeps no ICMP conns (ICMP is only handled as related to a TCP/UDP/SCTP conn);
// `icmp_default_timeout` is the historic value of the 2.4-era ICMP protocol, kept for completeness and
// flagged unverified in the spec.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ipvs/clock.hpp>

namespace ipvs {

/// The single UDP state (IP_VS_UDP_S_NORMAL).
enum class udp_state : std::uint8_t { normal = 0 };
inline constexpr std::size_t udp_state_count = 1;

/// The state's name as /proc prints it.
[[nodiscard]] constexpr std::string_view name(udp_state) noexcept { return "UDP"; }

/// UDP conns are never active (spec §1.6).
[[nodiscard]] constexpr bool is_active(udp_state) noexcept { return false; }

/// The UDP state after any packet: there is only one.
[[nodiscard]] constexpr udp_state udp_next_state(udp_state) noexcept { return udp_state::normal; }

/// A datagram without a conn may always create one (spec §5.4: UDP has no scheduling gate).
[[nodiscard]] constexpr bool udp_may_create_conn() noexcept { return true; }

/// The kernel's default UDP timeout (spec §5.4); `ipvsadm --set`'s third value changes it.
inline constexpr time_ns udp_default_timeout = std::chrono::seconds{300};

/// The historic ICMP "protocol" timeout (spec §5.5; modern IPVS has no ICMP conns, unverified).
inline constexpr time_ns icmp_default_timeout = std::chrono::seconds{60};

} // namespace ipvs
