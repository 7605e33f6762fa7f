// SPDX-License-Identifier: MIT
// A real server ("dest") as the schedulers and the connection bookkeeping see it (spec §1.2–§1.7).
#pragma once

#include <cstdint>

#include <ipvs/addr.hpp>

namespace ipvs {

/// Forwarding method, the kernel's IP_VS_CONN_F_FWD_MASK values (spec §1.2).
enum class fwd_method : std::uint8_t { masq = 0, localnode = 1, tunnel = 2, droute = 3, bypass = 4 };

/// Tunnel encapsulation for fwd_method::tunnel (ipvsadm --tun-type / --tun-port / --tun-*csum).
enum class tun_type : std::uint8_t { ipip = 0, gue = 1, gre = 2 };
struct tun_info {
    tun_type type = tun_type::ipip;
    std::uint16_t port = 0; ///< GUE destination port (host order); required for GUE
    bool csum = false;      ///< IP_VS_TUNNEL_ENCAP_FLAG_CSUM
    bool remcsum = false;   ///< IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM
};

/// Dest flag bits (IP_VS_DEST_F_*).
namespace dest_flag {
inline constexpr std::uint32_t available = 0x1;
inline constexpr std::uint32_t overload = 0x2;
} // namespace dest_flag

/// Traffic counters of a dest or service, as `ipvsadm -Ln --stats` prints them.
struct traffic_stats {
    std::uint64_t conns = 0;
    std::uint64_t in_pkts = 0, out_pkts = 0;
    std::uint64_t in_bytes = 0, out_bytes = 0;
};

/// A real server of one service.
///
/// Invariants kept by whoever owns the dest (the service, the connection bookkeeping):
/// - `active_conns`, `inactive_conns`, `persist_conns` count the connections / templates bound to it;
/// - `overload` follows the hysteresis of spec §1.5 (set on bind, cleared on unbind, re-evaluated on
///   a configuration change) — use the helpers below so every path applies the same rule;
/// - `last_weight` is the latest non-zero weight (set to the weight on add even if 0); only mh reads it;
/// - `list_seq` orders dests as the kernel's list does: a larger value is nearer the head (a new dest
///   is inserted at the head). Schedulers that keep an index use it for the kernel's tie-breaks.
struct dest {
    endpoint ep{};  ///< real server address and port (port 0: keep the packet's port)
    int weight = 0; ///< 0 = quiescent: no new connections
    int last_weight = 0;
    int active_conns = 0;
    int inactive_conns = 0;
    int persist_conns = 0;
    std::uint32_t u_threshold = 0; ///< 0 = no upper limit
    std::uint32_t l_threshold = 0; ///< 0 = 3/4 of u_threshold
    std::uint32_t flags = 0;       ///< dest_flag bits
    fwd_method fwd = fwd_method::masq;
    tun_info tun{};
    std::uint64_t list_seq = 0;
    /// Free for the scheduler that owns an index over the dests (e.g. a heap position); the service
    /// never touches it. Reset to 0 when the dest is added.
    std::uint64_t sched_slot = 0;
    traffic_stats stats{}; ///< kept by the director (spec §7.1 step 11)
    /// Free for the container that owns the dest (the director points it at the dest's service);
    /// schedulers never touch it.
    void* owner = nullptr;

    [[nodiscard]] bool overloaded() const noexcept { return (flags & dest_flag::overload) != 0; }
    [[nodiscard]] bool available() const noexcept { return (flags & dest_flag::available) != 0; }
};

/// Connection overhead used by lc, wlc, lblc, lblcr and twos: active × 256 + inactive (spec §1.3).
[[nodiscard]] inline int overhead(const dest& d) noexcept { return (d.active_conns << 8) + d.inactive_conns; }

/// The common "can take a new connection" predicate of spec §2: not OVERLOAD and weight > 0.
[[nodiscard]] inline bool eligible(const dest& d) noexcept { return !d.overloaded() && d.weight > 0; }

/// OVERLOAD set rule, applied after a connection or template was bound (spec §1.5).
inline void overload_after_bind(dest& d) noexcept {
    const auto total = static_cast<std::int64_t>(d.active_conns) + d.inactive_conns;
    if (d.u_threshold != 0 && total >= static_cast<std::int64_t>(d.u_threshold))
        d.flags |= dest_flag::overload;
}

/// OVERLOAD clear rule, applied after a connection or template was unbound (spec §1.5).
inline void overload_after_unbind(dest& d) noexcept {
    const auto total = static_cast<std::int64_t>(d.active_conns) + d.inactive_conns;
    bool clear;
    if (d.l_threshold != 0) {
        clear = total < static_cast<std::int64_t>(d.l_threshold);
    } else if (d.u_threshold != 0) {
        clear = total * 4 < static_cast<std::int64_t>(d.u_threshold) * 3;
    } else {
        clear = true;
    }
    if (clear) d.flags &= ~dest_flag::overload;
}

/// OVERLOAD re-evaluation on a configuration add/edit (spec §1.5, the 6.1.183 stable behaviour the
/// recorded kernels carry).
inline void overload_after_config(dest& d) noexcept {
    const auto total = static_cast<std::int64_t>(d.active_conns) + d.inactive_conns;
    if (d.u_threshold == 0) {
        d.flags &= ~dest_flag::overload;
    } else if (total >= static_cast<std::int64_t>(d.u_threshold)) {
        d.flags |= dest_flag::overload;
    } else if (d.overloaded()) {
        const std::int64_t lower = d.l_threshold != 0 ? d.l_threshold : d.u_threshold - d.u_threshold / 4;
        if (total < lower) d.flags &= ~dest_flag::overload;
    }
}

} // namespace ipvs
