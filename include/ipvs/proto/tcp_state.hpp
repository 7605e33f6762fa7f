// SPDX-License-Identifier: MIT
// The IPVS TCP connection state machine: states, flag classes, the normal and secure_tcp tables, timeouts.
#pragma once

// Design
// ------
// Source: spec §4 (the behaviour of the kernel's ip_vs_proto_tcp.c: its state tables, set_tcp_state and
// tcp_conn_schedule), §1.6 (active/inactive counters), §3.7 (which states conn_reuse_mode reuses) and
// §3.8 (secure_tcp selects the DoS table).
//
// Invariants:
// - A transition is a pure function of (table, direction, flag class, current state). The tables are
//   stored row = current state, column = flag class, exactly as the spec prints them, so each row can be
//   read against the spec line by line; the static_asserts below pin the spec's worked traces (§4.5).
// - A packet with none of RST/SYN/FIN/ACK goes to CLOSE without a table lookup (§4.2).
// - The timeout is re-read from the per-state table on *every* packet, also when the state does not
//   change (§3.6): callers store `timeouts[new_state]` after each transition.
// - Counters move only when the state changes and the conn has a dest (§1.6, move_conn_counts).
//
// Deviations: none in behaviour. The kernel's LAST sentinel ("BUG!") is not a state here: an
// out-of-range state (only reachable through a cast) transitions to CLOSE instead of indexing past the
// table. The shared pieces that the SCTP machine reuses (conn_dir, move_conn_counts, state_timeouts) live
// here because the spec defines SCTP's direction and counter rules as "identical to TCP" (§5.2).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <ipvs/clock.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/headers.hpp>

namespace ipvs {

// ---------------------------------------------------------------------------------------------------
// Shared by the TCP and SCTP state machines.

/// Which table column set a packet uses (spec §4.2). `input`: client → VIP through the in hook;
/// `output`: real server → client through the out hook (NAT, local node); `input_only`: a client packet
/// of a conn that has not seen any output yet (NOOUTPUT, every non-NAT method at creation).
enum class conn_dir : std::uint8_t { input = 0, output = 1, input_only = 2 };
inline constexpr std::size_t conn_dir_count = 3;

/// The direction of a packet: `from_client` for client → VIP, `nooutput` the conn's NOOUTPUT flag. The
/// first output packet clears NOOUTPUT for good; that is the caller's (the conn's) business.
[[nodiscard]] constexpr conn_dir conn_direction(bool from_client, bool nooutput) noexcept {
    if (!from_client) return conn_dir::output;
    return nooutput ? conn_dir::input_only : conn_dir::input;
}

/// The active/inactive counter move of a state change (spec §1.6), for any state type with an
/// `is_active(State)` overload (tcp_state, sctp_state).
///
/// `inactive` is the conn's INACTIVE flag (new conns start inactive: the bind counted them in
/// `inactive_conns`). Nothing moves when `from == to` — a synced conn may carry an INACTIVE bit that
/// disagrees with its state, and the kernel leaves it alone until the state really changes. Returns
/// whether the counters moved: the service then calls its scheduler's `counts_changed`. A conn without
/// a dest (bypass) simply does not call this. OVERLOAD is untouched: the total does not change (§1.5).
template <class State>
[[nodiscard]] constexpr bool move_conn_counts(dest& d, bool& inactive, State from, State to) noexcept {
    if (from == to) return false;
    const bool active_now = is_active(to);
    if (!inactive && !active_now) {
        --d.active_conns;
        ++d.inactive_conns;
        inactive = true;
        return true;
    }
    if (inactive && active_now) {
        ++d.active_conns;
        --d.inactive_conns;
        inactive = false;
        return true;
    }
    return false;
}

/// A per-state timeout table indexed by a state enum (the kernel's per-netns timeout_table copy). The
/// defaults come from the protocol header; `set` is what `ipvsadm --set` and the netlink timeout call do.
template <class State, std::size_t N>
class state_timeouts {
public:
    constexpr explicit state_timeouts(const std::array<time_ns, N>& defaults) noexcept
        : m_by_state(defaults) {}

    /// The timeout of `s`; an out-of-range state (a cast) reads the first entry, the NONE timeout.
    [[nodiscard]] constexpr time_ns operator[](State s) const noexcept { return m_by_state[index(s)]; }
    constexpr void set(State s, time_ns t) noexcept { m_by_state[index(s)] = t; }

    friend constexpr bool operator==(const state_timeouts&, const state_timeouts&) noexcept = default;

private:
    [[nodiscard]] static constexpr std::size_t index(State s) noexcept {
        const auto i = static_cast<std::size_t>(s);
        return i < N ? i : 0;
    }
    std::array<time_ns, N> m_by_state;
};

namespace detail {
// Name lookups over a state enum's /proc names, indexed by the enum's value.
template <class State, std::size_t N>
[[nodiscard]] constexpr std::string_view state_name(const std::array<std::string_view, N>& names,
                                                    State s) noexcept {
    const auto i = static_cast<std::size_t>(s);
    return i < N ? names[i] : std::string_view{"BUG!"};
}
template <class State, std::size_t N>
[[nodiscard]] constexpr std::optional<State> state_from_name(const std::array<std::string_view, N>& names,
                                                             std::string_view n) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == n) return static_cast<State>(i);
    }
    return std::nullopt;
}
} // namespace detail

// ---------------------------------------------------------------------------------------------------
// TCP.

/// TCP connection states in the kernel's numbering (IP_VS_TCP_S_*; the sync protocol carries the number).
enum class tcp_state : std::uint8_t {
    none = 0,
    established = 1,
    syn_sent = 2,
    syn_recv = 3,
    fin_wait = 4,
    time_wait = 5,
    close = 6,
    close_wait = 7,
    last_ack = 8,
    listen = 9, ///< only the FTP helper sets it
    synack = 10,
};
inline constexpr std::size_t tcp_state_count = 11;

namespace detail {
// The names /proc/net/ip_vs_conn and `ipvsadm -Lnc` print (spec §4.1).
inline constexpr std::array<std::string_view, tcp_state_count> tcp_state_names = {
    "NONE",  "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
    "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "SYNACK",
};
} // namespace detail

/// The state's name as /proc prints it ("SYN_RECV"); "BUG!" for an out-of-range value, as the kernel.
[[nodiscard]] constexpr std::string_view name(tcp_state s) noexcept {
    return detail::state_name(detail::tcp_state_names, s);
}

/// The state named `n` ("TIME_WAIT"), or nullopt.
[[nodiscard]] constexpr std::optional<tcp_state> tcp_state_from_name(std::string_view n) noexcept {
    return detail::state_from_name<tcp_state>(detail::tcp_state_names, n);
}

/// Counted in `active_conns` (spec §1.6, modern kernels: since ≈4.7 the pre-established states count
/// too, and the recorded 6.1 kernel counts SYN_RECV as active).
[[nodiscard]] constexpr bool is_active(tcp_state s) noexcept {
    return s == tcp_state::established || s == tcp_state::syn_sent || s == tcp_state::syn_recv ||
           s == tcp_state::synack;
}

/// A segment's flags: the header's flags byte (byte 13), as is; the bits are headers.hpp's `tcp_flag`.
struct tcp_flags {
    std::uint8_t bits = 0;

    [[nodiscard]] constexpr bool fin() const noexcept { return (bits & tcp_flag::fin) != 0; }
    [[nodiscard]] constexpr bool syn() const noexcept { return (bits & tcp_flag::syn) != 0; }
    [[nodiscard]] constexpr bool rst() const noexcept { return (bits & tcp_flag::rst) != 0; }
    [[nodiscard]] constexpr bool ack() const noexcept { return (bits & tcp_flag::ack) != 0; }
    friend constexpr bool operator==(tcp_flags, tcp_flags) noexcept = default;
};

/// The flag class a segment is looked up by; the order is the tables' column order.
enum class tcp_event : std::uint8_t { syn = 0, fin = 1, ack = 2, rst = 3, none = 4 };
inline constexpr std::size_t tcp_event_count = 4; ///< table columns (`none` has no column)

/// Flag class with the kernel's priority rst > syn > fin > ack (spec §4.2): SYN+ACK is `syn`, SYN+FIN is
/// `syn`, RST+anything is `rst`; a segment with none of the four (e.g. PSH alone) is `none`.
[[nodiscard]] constexpr tcp_event classify(tcp_flags f) noexcept {
    if (f.rst()) return tcp_event::rst;
    if (f.syn()) return tcp_event::syn;
    if (f.fin()) return tcp_event::fin;
    if (f.ack()) return tcp_event::ack;
    return tcp_event::none;
}

/// Which transition table is in force: the normal one, or the DoS one that secure_tcp selects.
enum class tcp_table : std::uint8_t { normal = 0, secure = 1 };

/// The table for a `secure_tcp` sysctl value (spec §3.8): 0 off and 1 auto-idle use the normal table; 2
/// (auto, low memory now) and 3 (always) the DoS table. The kernel itself flips 1 ↔ 2 as memory runs low.
[[nodiscard]] constexpr tcp_table tcp_table_for_secure_tcp(int secure_tcp) noexcept {
    return secure_tcp >= 2 ? tcp_table::secure : tcp_table::normal;
}

namespace detail::tcp_tab {
using grid = std::array<std::array<tcp_state, tcp_event_count>, tcp_state_count>; // [current][event]
inline constexpr tcp_state no = tcp_state::none, es = tcp_state::established, ss = tcp_state::syn_sent,
                           sr = tcp_state::syn_recv, fw = tcp_state::fin_wait, tw = tcp_state::time_wait,
                           cl = tcp_state::close, cw = tcp_state::close_wait, la = tcp_state::last_ack,
                           li = tcp_state::listen, sa = tcp_state::synack;

// Spec §4.3, row = current state, columns syn fin ack rst.
// clang-format off
inline constexpr grid normal_input = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{sr, cl, es, cl}},
    /* ESTABLISHED       */ {{es, cw, es, cl}},
    /* SYN_SENT          */ {{es, ss, ss, cl}},
    /* SYN_RECV          */ {{sr, tw, es, sr}},
    /* FIN_WAIT          */ {{sr, tw, fw, cl}},
    /* TIME_WAIT         */ {{sr, tw, tw, cl}},
    /* CLOSE             */ {{sr, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{sr, cw, cw, cl}},
    /* LAST_ACK          */ {{sr, la, cl, la}},
    /* LISTEN            */ {{sr, li, li, li}},
    /* SYNACK            */ {{sr, tw, es, sr}},
}};
inline constexpr grid normal_output = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{ss, tw, es, cl}},
    /* ESTABLISHED       */ {{es, fw, es, cl}},
    /* SYN_SENT          */ {{ss, ss, ss, ss}},
    /* SYN_RECV          */ {{sr, tw, es, cl}},
    /* FIN_WAIT          */ {{ss, fw, fw, cl}},
    /* TIME_WAIT         */ {{ss, tw, tw, tw}},
    /* CLOSE             */ {{ss, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{ss, tw, cw, cl}},
    /* LAST_ACK          */ {{ss, la, la, cl}},
    /* LISTEN            */ {{li, li, es, cl}},
    /* SYNACK            */ {{sr, tw, es, cl}},
}};
inline constexpr grid normal_input_only = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{sr, cl, es, cl}},
    /* ESTABLISHED       */ {{es, fw, es, cl}},
    /* SYN_SENT          */ {{es, ss, ss, cl}},
    /* SYN_RECV          */ {{sr, tw, es, sr}},
    /* FIN_WAIT          */ {{sr, fw, fw, cl}},
    /* TIME_WAIT         */ {{sr, tw, tw, cl}},
    /* CLOSE             */ {{sr, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{sr, cw, cw, cl}},
    /* LAST_ACK          */ {{sr, la, cl, la}},
    /* LISTEN            */ {{sr, li, li, li}},
    /* SYNACK            */ {{sr, tw, es, cl}},
}};
// The DoS table (secure_tcp): a SYN_RECV conn needs the server's answer before a client ACK can
// establish it, and a SYNACK conn moves on only on a server segment without SYN (spec §4.5).
inline constexpr grid secure_input = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{sr, cl, es, cl}},
    /* ESTABLISHED       */ {{es, cw, es, cl}},
    /* SYN_SENT          */ {{es, ss, ss, cl}},
    /* SYN_RECV          */ {{sr, tw, sr, sr}},
    /* FIN_WAIT          */ {{sr, tw, fw, cl}},
    /* TIME_WAIT         */ {{sr, tw, tw, cl}},
    /* CLOSE             */ {{sr, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{sr, cw, cw, cl}},
    /* LAST_ACK          */ {{sr, la, cl, la}},
    /* LISTEN            */ {{sr, li, li, li}},
    /* SYNACK            */ {{sa, sa, sa, cl}},
}};
inline constexpr grid secure_output = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{ss, tw, es, cl}},
    /* ESTABLISHED       */ {{es, fw, es, cl}},
    /* SYN_SENT          */ {{ss, ss, ss, ss}},
    /* SYN_RECV          */ {{sa, tw, es, cl}},
    /* FIN_WAIT          */ {{ss, fw, fw, cl}},
    /* TIME_WAIT         */ {{ss, tw, tw, tw}},
    /* CLOSE             */ {{ss, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{ss, tw, cw, cl}},
    /* LAST_ACK          */ {{ss, la, la, cl}},
    /* LISTEN            */ {{li, li, es, cl}},
    /* SYNACK            */ {{sa, tw, es, cl}},
}};
inline constexpr grid secure_input_only = {{
    /*                        syn fin ack rst */
    /* NONE              */ {{sa, cl, es, cl}},
    /* ESTABLISHED       */ {{es, fw, es, cl}},
    /* SYN_SENT          */ {{es, ss, ss, cl}},
    /* SYN_RECV          */ {{sr, tw, es, sr}},
    /* FIN_WAIT          */ {{sa, fw, fw, cl}},
    /* TIME_WAIT         */ {{sa, tw, tw, cl}},
    /* CLOSE             */ {{sa, cl, cl, cl}},
    /* CLOSE_WAIT        */ {{sa, cw, cw, cl}},
    /* LAST_ACK          */ {{sa, la, cl, la}},
    /* LISTEN            */ {{sa, li, li, li}},
    /* SYNACK            */ {{sa, tw, es, cl}},
}};
// clang-format on

// [table][direction]: the order of tcp_table and conn_dir.
inline constexpr std::array<std::array<const grid*, conn_dir_count>, 2> tables = {{
    {{&normal_input, &normal_output, &normal_input_only}},
    {{&secure_input, &secure_output, &secure_input_only}},
}};
} // namespace detail::tcp_tab

/// The state after a segment of class `ev` in direction `dir` (spec §4.2–§4.3).
[[nodiscard]] constexpr tcp_state tcp_next_state(tcp_state cur, conn_dir dir, tcp_event ev,
                                                 tcp_table table = tcp_table::normal) noexcept {
    const auto s = static_cast<std::size_t>(cur);
    const auto d = static_cast<std::size_t>(dir);
    const auto e = static_cast<std::size_t>(ev);
    const auto t = static_cast<std::size_t>(table);
    // `none` (no RST/SYN/FIN/ACK) closes without a lookup; out-of-range inputs (casts) close too.
    if (e >= tcp_event_count || s >= tcp_state_count || d >= conn_dir_count || t >= 2)
        return tcp_state::close;
    return (*detail::tcp_tab::tables[t][d])[s][e];
}

/// The state after a segment with flags `f`.
[[nodiscard]] constexpr tcp_state tcp_next_state(tcp_state cur, conn_dir dir, tcp_flags f,
                                                 tcp_table table = tcp_table::normal) noexcept {
    return tcp_next_state(cur, dir, classify(f), table);
}

// The spec's worked traces (§4.5), checked at compile time.
namespace detail::tcp_tab {
constexpr tcp_flags seg(std::uint8_t b) noexcept { return tcp_flags{b}; }
constexpr std::uint8_t syn_ack = tcp_flag::syn | tcp_flag::ack, fin_ack = tcp_flag::fin | tcp_flag::ack;
// NAT: SYN, SYN+ACK, ACK, client FIN+ACK, server FIN+ACK, ACK.
static_assert(tcp_next_state(no, conn_dir::input, seg(tcp_flag::syn)) == sr);
static_assert(tcp_next_state(sr, conn_dir::output, seg(syn_ack)) == sr);
static_assert(tcp_next_state(sr, conn_dir::input, seg(tcp_flag::ack)) == es);
static_assert(tcp_next_state(es, conn_dir::input, seg(fin_ack)) == cw);
static_assert(tcp_next_state(cw, conn_dir::output, seg(fin_ack)) == tw);
static_assert(tcp_next_state(tw, conn_dir::input, seg(tcp_flag::ack)) == tw);
// DR/TUN (INPUT_ONLY): SYN, ACK, FIN+ACK → FIN_WAIT, ACK stays, a new SYN reopens.
static_assert(tcp_next_state(no, conn_dir::input_only, seg(tcp_flag::syn)) == sr);
static_assert(tcp_next_state(sr, conn_dir::input_only, seg(tcp_flag::ack)) == es);
static_assert(tcp_next_state(es, conn_dir::input_only, seg(fin_ack)) == fw);
static_assert(tcp_next_state(fw, conn_dir::input_only, seg(tcp_flag::ack)) == fw);
static_assert(tcp_next_state(fw, conn_dir::input_only, seg(tcp_flag::syn)) == sr);
// secure_tcp: INPUT_ONLY SYN → SYNACK; client ACK leaves SYN_RECV alone; the NAT trace of §4.5.
constexpr auto dos = tcp_table::secure;
static_assert(tcp_next_state(no, conn_dir::input_only, seg(tcp_flag::syn), dos) == sa);
static_assert(tcp_next_state(sr, conn_dir::input, seg(tcp_flag::ack), dos) == sr);
static_assert(tcp_next_state(sr, conn_dir::output, seg(syn_ack), dos) == sa);
static_assert(tcp_next_state(sa, conn_dir::input, seg(fin_ack), dos) == sa);
static_assert(tcp_next_state(sa, conn_dir::output, seg(tcp_flag::ack), dos) == es);
static_assert(tcp_next_state(sa, conn_dir::output, seg(fin_ack), dos) == tw);
static_assert(tcp_next_state(sa, conn_dir::input, seg(tcp_flag::rst), dos) == cl);
// No flag of the four: CLOSE directly, whatever the state.
static_assert(tcp_next_state(es, conn_dir::input, seg(tcp_flag::psh)) == cl);
} // namespace detail::tcp_tab

/// The scheduling gate (spec §4.4): may a segment without a conn create one? Never with RST; with SYN
/// (SYN+ACK too: active FTP); anything else only under `sloppy_tcp` (a mid-stream ACK then creates an
/// ESTABLISHED conn, NONE + ack → ESTABLISHED).
[[nodiscard]] constexpr bool tcp_may_create_conn(tcp_flags f, bool sloppy_tcp) noexcept {
    return !f.rst() && (f.syn() || sloppy_tcp);
}

/// A "new-connection packet" for conn_reuse_mode and expire_nodest_conn (spec §3.7): SYN set.
[[nodiscard]] constexpr bool tcp_is_new_conn_packet(tcp_flags f) noexcept { return f.syn(); }

/// Whether an existing conn in `s` "expects a new connection", so that a new-connection packet expires
/// it and is scheduled afresh (spec §3.7): with `conn_reuse_mode` ≠ 0, TIME_WAIT and CLOSE; with bit 2
/// also FIN_WAIT of a conn that never saw output (NOOUTPUT: DR/TUN). The caller adds the other
/// conditions: the conn has no controller (not persistent) and the conntrack rule.
[[nodiscard]] constexpr bool tcp_conn_expects_new(tcp_state s, unsigned conn_reuse_mode,
                                                  bool nooutput) noexcept {
    if (conn_reuse_mode == 0) return false;
    if (s == tcp_state::time_wait || s == tcp_state::close) return true;
    return (conn_reuse_mode & 2U) != 0 && s == tcp_state::fin_wait && nooutput;
}

/// Per-state TCP timeouts.
using tcp_timeouts = state_timeouts<tcp_state, tcp_state_count>;

/// The kernel's default TCP timeouts (spec §4.1).
[[nodiscard]] constexpr tcp_timeouts default_tcp_timeouts() noexcept {
    using std::chrono::seconds;
    return tcp_timeouts{{
        seconds{2},   // NONE
        seconds{900}, // ESTABLISHED
        seconds{120}, // SYN_SENT
        seconds{60},  // SYN_RECV
        seconds{120}, // FIN_WAIT
        seconds{120}, // TIME_WAIT
        seconds{10},  // CLOSE
        seconds{60},  // CLOSE_WAIT
        seconds{30},  // LAST_ACK
        seconds{120}, // LISTEN
        seconds{120}, // SYNACK
    }};
}

} // namespace ipvs
