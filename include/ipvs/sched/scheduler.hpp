// SPDX-License-Identifier: MIT
// The scheduler concept: the kernel's ip_vs_scheduler ops (schedule, add/del/upd_dest) as a C++20 concept.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>

#include <ipvs/addr.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/dest.hpp>

namespace ipvs::sched {

/// A service's dests in the kernel's list order, head first (a new dest is inserted at index 0).
/// The service owns the dests and this ordering; a scheduler only reads it.
using dest_list = std::span<dest* const>;

/// What a scheduler may read of the packet that opens a new connection.
///
/// For an ICMP error quoting a flow ("inverse" header), the caller fills these from the quoted header
/// turned around, so `saddr`/`sport` are always the client's and `daddr`/`dport` the virtual side's.
struct sched_input {
    inet_addr saddr{};
    inet_addr daddr{};
    std::uint16_t sport = 0;   ///< host order
    std::uint16_t dport = 0;   ///< host order
    std::uint8_t protocol = 6; ///< IPPROTO_TCP / UDP / SCTP / ...
    time_ns now{0};            ///< the injected clock (lblc / lblcr expiry)
};

/// Protocols whose ports sh-port / mh-port hash (the kernel: TCP, UDP, SCTP).
[[nodiscard]] constexpr bool has_ports(std::uint8_t protocol) noexcept {
    return protocol == 6 || protocol == 17 || protocol == 132;
}

/// A scheduler, mirroring the kernel's ops table (spec §1.9):
/// - `schedule(list, in)` picks a dest for a new connection or returns nullptr (→ ip_vs_leave);
/// - `add_dest(list, d)` runs after `d` was inserted at the head of `list`;
/// - `del_dest(list, d)` runs after `d` was unlinked (`list` no longer holds it; `d` is still alive);
/// - `upd_dest(list, d)` runs after `d`'s weight or thresholds were edited;
/// - `counts_changed(list, d)` runs after `d`'s counters or OVERLOAD flag changed (connection bind,
///   unbind, active↔inactive move). The kernel has no such hook because it rescans on every pick; an
///   O(log n) scheduler keeps its index current through it. Hot path: noexcept, no allocation.
///
/// Configuration hooks may allocate (they run on the control path) and are allowed to be O(n).
template <class S>
concept scheduler = requires(S& s, dest_list l, dest& d, const sched_input& in) {
    { s.schedule(l, in) }
    noexcept->std::same_as<dest*>;
    s.add_dest(l, d);
    s.del_dest(l, d);
    s.upd_dest(l, d);
    { s.counts_changed(l, d) }
    noexcept;
};

/// Flags a service passes to its scheduler (IP_VS_SVC_F_SCHED1 / SCHED2, spec §1.1).
struct sched_flags {
    bool fallback = false; ///< sh-fallback / mh-fallback (SCHED1)
    bool port = false;     ///< sh-port / mh-port (SCHED2)
};

} // namespace ipvs::sched
