// SPDX-License-Identifier: MIT
// Every per-state protocol timeout in one place, set the way `ipvsadm --set tcp tcpfin udp` sets them.
#pragma once

// Design
// ------
// Source: spec §4.1 (TCP), §5.1 (SCTP), §5.4 (UDP), §9 (the timeouts are per-netns copies of the static
// tables). `ipvsadm --set` (the kernel's IP_VS_SO_SET_TIMEOUT / IPVS_CMD_SET_CONFIG) changes exactly
// three of them — TCP ESTABLISHED, TCP FIN_WAIT and UDP — and a 0 leaves a value as it is.
// Invariant: every state of every protocol has a timeout; the defaults are the kernel's.
// Deviation: time is `time_ns`, not jiffies. ipvsadm sends seconds; `set_ipvsadm` takes any duration.

#include <chrono>
#include <stdexcept>

#include <ipvs/clock.hpp>
#include <ipvs/proto/sctp_state.hpp>
#include <ipvs/proto/tcp_state.hpp>
#include <ipvs/proto/udp.hpp>

namespace ipvs {

/// The three values `ipvsadm --set` writes and `ipvsadm -L --timeout` prints.
struct ipvsadm_timeouts {
    time_ns tcp{0};    ///< TCP ESTABLISHED
    time_ns tcpfin{0}; ///< TCP FIN_WAIT
    time_ns udp{0};    ///< UDP
    friend constexpr bool operator==(const ipvsadm_timeouts&, const ipvsadm_timeouts&) noexcept = default;
};

/// All per-state timeouts of one director (the kernel keeps one copy per netns).
struct proto_timeouts {
    tcp_timeouts tcp = default_tcp_timeouts();
    sctp_timeouts sctp = default_sctp_timeouts();
    time_ns udp = udp_default_timeout;

    [[nodiscard]] constexpr time_ns operator[](tcp_state s) const noexcept { return tcp[s]; }
    [[nodiscard]] constexpr time_ns operator[](sctp_state s) const noexcept { return sctp[s]; }
    [[nodiscard]] constexpr time_ns operator[](udp_state) const noexcept { return udp; }

    /// `ipvsadm --set tcp tcpfin udp`: a zero value leaves that timeout unchanged. A negative one is a
    /// configuration mistake (ipvsadm refuses it too) and throws std::invalid_argument, changing nothing.
    constexpr void set_ipvsadm(const ipvsadm_timeouts& t) {
        if (t.tcp < time_ns{0} || t.tcpfin < time_ns{0} || t.udp < time_ns{0}) {
            throw std::invalid_argument("ipvs: a timeout cannot be negative");
        }
        if (t.tcp != time_ns{0}) tcp.set(tcp_state::established, t.tcp);
        if (t.tcpfin != time_ns{0}) tcp.set(tcp_state::fin_wait, t.tcpfin);
        if (t.udp != time_ns{0}) udp = t.udp;
    }

    /// What `ipvsadm -L --timeout` prints.
    [[nodiscard]] constexpr ipvsadm_timeouts ipvsadm() const noexcept {
        return {tcp[tcp_state::established], tcp[tcp_state::fin_wait], udp};
    }
};

} // namespace ipvs
