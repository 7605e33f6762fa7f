// SPDX-License-Identifier: MIT
// The IPVS SCTP association state machine: states, chunk classification, transition tables, timeouts.
#pragma once

// Design
// ------
// Source: spec §5.1–§5.3 (the behaviour of the kernel's ip_vs_proto_sctp.c: its state table,
// set_sctp_state and sctp_conn_schedule), §1.6 for the counters (only ESTABLISHED is active) and §3.7
// (a CLOSED association is reused by a new INIT). RFC 4960 §3.2 for the chunk layout.
//
// Invariants:
// - The event is decided by the first chunk alone, except that a COOKIE_ECHO or COOKIE_ACK followed by
//   an ABORT counts as ABORT (§5.2). `sctp_classify(bytes)` does that walk; `sctp_classify(first, next)`
//   takes the chunk types from a caller that already parsed them.
// - Tables are stored row = current state, column = event, exactly as the spec prints them.
// - Directions, the counter move and the timeout table type are TCP's (tcp_state.hpp): the spec defines
//   SCTP's direction handling as identical to TCP's.
//
// Deviations: a packet too short to hold a first chunk header has no event (nullopt): the kernel
// returns before touching the state in that case, and so must the caller.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <ipvs/bytes.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/headers.hpp>
#include <ipvs/proto/tcp_state.hpp>

namespace ipvs {

/// SCTP association states in the kernel's numbering (IP_VS_SCTP_S_*).
enum class sctp_state : std::uint8_t {
    none = 0,
    init1 = 1,
    init = 2,
    cookie_sent = 3,
    cookie_replied = 4,
    cookie_wait = 5,
    cookie = 6,
    cookie_echoed = 7,
    established = 8,
    shutdown_sent = 9,
    shutdown_received = 10,
    shutdown_ack_sent = 11,
    rejected = 12,
    closed = 13,
};
inline constexpr std::size_t sctp_state_count = 14;

namespace detail {
// The names /proc/net/ip_vs_conn prints (spec §5.1).
inline constexpr std::array<std::string_view, sctp_state_count> sctp_state_names = {
    "NONE",     "INIT1",       "INIT",   "C-SENT",     "C-REPLIED",  "C-WAIT",   "COOKIE",
    "C-ECHOED", "ESTABLISHED", "S-SENT", "S-RECEIVED", "S-ACK-SENT", "REJECTED", "CLOSED",
};
} // namespace detail

/// The state's name as /proc prints it ("C-SENT"); "BUG!" for an out-of-range value.
[[nodiscard]] constexpr std::string_view name(sctp_state s) noexcept {
    return detail::state_name(detail::sctp_state_names, s);
}

/// The state named `n` ("S-ACK-SENT"), or nullopt.
[[nodiscard]] constexpr std::optional<sctp_state> sctp_state_from_name(std::string_view n) noexcept {
    return detail::state_from_name<sctp_state>(detail::sctp_state_names, n);
}

/// Counted in `active_conns`: only ESTABLISHED (spec §1.6).
[[nodiscard]] constexpr bool is_active(sctp_state s) noexcept { return s == sctp_state::established; }

/// The event a packet is looked up by (chunk types: headers.hpp's `sctp_chunk`); the order is the
/// tables' column order.
enum class sctp_event : std::uint8_t {
    data = 0,
    init = 1,
    init_ack = 2,
    cookie_echo = 3,
    cookie_ack = 4,
    shutdown = 5,
    shutdown_ack = 6,
    shutdown_complete = 7,
    error = 8,
    abort = 9,
};
inline constexpr std::size_t sctp_event_count = 10;

/// The event of one chunk type (spec §5.2): SACK, HEARTBEAT(-ACK), ECNE, CWR and every type ≥ 15
/// count as DATA.
[[nodiscard]] constexpr sctp_event sctp_chunk_event(std::uint8_t type) noexcept {
    switch (type) {
    case sctp_chunk::init:
        return sctp_event::init;
    case sctp_chunk::init_ack:
        return sctp_event::init_ack;
    case sctp_chunk::abort:
        return sctp_event::abort;
    case sctp_chunk::shutdown:
        return sctp_event::shutdown;
    case sctp_chunk::shutdown_ack:
        return sctp_event::shutdown_ack;
    case sctp_chunk::error:
        return sctp_event::error;
    case sctp_chunk::cookie_echo:
        return sctp_event::cookie_echo;
    case sctp_chunk::cookie_ack:
        return sctp_event::cookie_ack;
    case sctp_chunk::shutdown_complete:
        return sctp_event::shutdown_complete;
    default:
        return sctp_event::data;
    }
}

/// The packet's event from its first chunk type and, when the packet holds one, the type of the chunk
/// after it (`next`; only looked at behind COOKIE_ECHO / COOKIE_ACK, where an ABORT wins).
[[nodiscard]] constexpr sctp_event sctp_classify(std::uint8_t first,
                                                 std::optional<std::uint8_t> next = std::nullopt) noexcept {
    if ((first == sctp_chunk::cookie_echo || first == sctp_chunk::cookie_ack) && next == sctp_chunk::abort) {
        return sctp_event::abort;
    }
    return sctp_chunk_event(first);
}

/// The packet's event from its chunks: the bytes after the 12-byte common header. nullopt when not even
/// the first chunk header (4 bytes) is there. The second chunk is peeked at only behind a COOKIE_ECHO /
/// COOKIE_ACK whose length field is at least 4, at that length rounded up to 4 (RFC 4960 §3.2 padding).
[[nodiscard]] inline std::optional<sctp_event> sctp_classify(std::span<const std::byte> chunks) noexcept {
    constexpr std::size_t chunk_header = sctp_hdr::chunk_hdr_len; // type, flags, length (RFC 4960 §3.2)
    if (chunks.size() < chunk_header) return std::nullopt;
    const std::uint8_t first = load_u8(chunks.data());
    std::optional<std::uint8_t> next;
    if (first == sctp_chunk::cookie_echo || first == sctp_chunk::cookie_ack) {
        const std::size_t len = load_be16(chunks.data() + 2);
        const std::size_t off = (len + 3) & ~std::size_t{3};
        if (len >= chunk_header && off < chunks.size()) next = load_u8(chunks.data() + off);
    }
    return sctp_classify(first, next);
}

namespace detail::sctp_tab {
using grid = std::array<std::array<sctp_state, sctp_event_count>, sctp_state_count>; // [current][event]
inline constexpr sctp_state no = sctp_state::none, i1 = sctp_state::init1, in = sctp_state::init,
                            cs = sctp_state::cookie_sent, cr = sctp_state::cookie_replied,
                            cw = sctp_state::cookie_wait, co = sctp_state::cookie,
                            ce = sctp_state::cookie_echoed, es = sctp_state::established,
                            ss = sctp_state::shutdown_sent, sr = sctp_state::shutdown_received,
                            sa = sctp_state::shutdown_ack_sent, rj = sctp_state::rejected,
                            cl = sctp_state::closed;

// Spec §5.3, row = current state; columns DATA INIT INIT_ACK COOKIE_ECHO COOKIE_ACK SHUTDOWN
// SHUTDOWN_ACK SHUTDOWN_COMPLETE ERROR ABORT.
// clang-format off
inline constexpr grid input = {{
    /*                        DA  IN  IA  CE  CA  SH  SA  SC  ER  AB */
    /* NONE              */ {{es, i1, cw, cr, es, sr, cl, cl, cl, cl}},
    /* INIT1             */ {{i1, in, cw, in, i1, i1, in, cl, i1, cl}},
    /* INIT              */ {{in, in, cw, in, in, in, in, cl, in, cl}},
    /* COOKIE_SENT       */ {{cs, cs, cs, cr, cs, cs, cs, cs, cs, cl}},
    /* COOKIE_REPLIED    */ {{cr, cr, cr, cr, cr, cr, cr, cr, cr, cl}},
    /* COOKIE_WAIT       */ {{cw, cw, co, cw, cw, cw, cw, cw, cw, rj}},
    /* COOKIE            */ {{co, co, co, co, co, co, co, co, co, cl}},
    /* COOKIE_ECHOED     */ {{ce, ce, ce, ce, es, ce, ce, ce, cl, cl}},
    /* ESTABLISHED       */ {{es, es, es, es, es, sr, es, es, es, cl}},
    /* SHUTDOWN_SENT     */ {{ss, ss, ss, ss, ss, ss, cl, ss, ss, cl}},
    /* SHUTDOWN_RECEIVED */ {{sr, sr, sr, sr, sr, sr, sr, sr, sr, cl}},
    /* SHUTDOWN_ACK_SENT */ {{sa, sa, sa, sa, sa, sa, cl, cl, sa, cl}},
    /* REJECTED          */ {{rj, in, rj, rj, rj, rj, rj, rj, rj, cl}},
    /* CLOSED            */ {{cl, in, cl, cl, cl, cl, cl, cl, cl, cl}},
}};
inline constexpr grid output = {{
    /*                        DA  IN  IA  CE  CA  SH  SA  SC  ER  AB */
    /* NONE              */ {{es, cw, cs, ce, es, ss, sa, cl, cl, cl}},
    /* INIT1             */ {{i1, cw, cs, ce, es, ss, sa, i1, cl, rj}},
    /* INIT              */ {{in, cw, cs, ce, es, ss, sa, in, cl, cl}},
    /* COOKIE_SENT       */ {{cs, cw, cs, ce, es, ss, sa, cs, cl, cl}},
    /* COOKIE_REPLIED    */ {{cr, cw, cr, ce, es, ss, sa, cr, cl, cl}},
    /* COOKIE_WAIT       */ {{cw, cw, cw, ce, es, ss, cw, cw, cw, cl}},
    /* COOKIE            */ {{co, cw, co, ce, es, ss, co, co, co, cl}},
    /* COOKIE_ECHOED     */ {{ce, cw, ce, ce, es, ss, ce, ce, ce, cl}},
    /* ESTABLISHED       */ {{es, es, es, es, es, ss, es, es, es, cl}},
    /* SHUTDOWN_SENT     */ {{ss, cw, ss, ss, ss, ss, sa, ss, ss, cl}},
    /* SHUTDOWN_RECEIVED */ {{sr, cw, sr, sr, sr, sr, sa, sr, sr, cl}},
    /* SHUTDOWN_ACK_SENT */ {{sa, cw, sa, sa, sa, sa, sa, sa, sa, cl}},
    /* REJECTED          */ {{rj, cw, rj, rj, rj, rj, rj, rj, rj, cl}},
    /* CLOSED            */ {{cl, cw, cl, cl, cl, cl, cl, cl, cl, cl}},
}};
inline constexpr grid input_only = {{
    /*                        DA  IN  IA  CE  CA  SH  SA  SC  ER  AB */
    /* NONE              */ {{es, i1, ce, es, es, sr, cl, cl, cl, cl}},
    /* INIT1             */ {{i1, in, ce, es, i1, i1, in, cl, i1, cl}},
    /* INIT              */ {{in, in, ce, es, in, in, in, cl, in, cl}},
    /* COOKIE_SENT       */ {{cs, in, ce, es, es, cs, cs, cl, cs, cl}},
    /* COOKIE_REPLIED    */ {{cr, in, ce, es, es, cr, cr, cl, cr, cl}},
    /* COOKIE_WAIT       */ {{es, in, ce, es, cw, cw, cw, cw, cw, rj}},
    /* COOKIE            */ {{co, co, co, co, es, co, co, co, co, cl}},
    /* COOKIE_ECHOED     */ {{ce, ce, ce, ce, es, ce, ce, ce, ce, cl}},
    /* ESTABLISHED       */ {{es, es, es, es, es, sr, cl, es, es, cl}},
    /* SHUTDOWN_SENT     */ {{ss, ss, ss, ss, ss, ss, cl, ss, ss, cl}},
    /* SHUTDOWN_RECEIVED */ {{sr, sr, sr, sr, sr, sr, sr, cl, sr, cl}},
    /* SHUTDOWN_ACK_SENT */ {{sa, sa, sa, sa, sa, sa, cl, cl, sa, cl}},
    /* REJECTED          */ {{rj, in, rj, rj, rj, rj, rj, rj, rj, cl}},
    /* CLOSED            */ {{cl, in, cl, cl, cl, cl, cl, cl, cl, cl}},
}};
// clang-format on

inline constexpr std::array<const grid*, conn_dir_count> tables = {{&input, &output, &input_only}};
} // namespace detail::sctp_tab

/// The state after a packet with event `ev` in direction `dir` (spec §5.3). Out-of-range inputs (casts)
/// leave the state as it is.
[[nodiscard]] constexpr sctp_state sctp_next_state(sctp_state cur, conn_dir dir, sctp_event ev) noexcept {
    const auto s = static_cast<std::size_t>(cur);
    const auto d = static_cast<std::size_t>(dir);
    const auto e = static_cast<std::size_t>(ev);
    if (s >= sctp_state_count || d >= conn_dir_count || e >= sctp_event_count) return cur;
    return (*detail::sctp_tab::tables[d])[s][e];
}

// A full client-initiated handshake and shutdown through NAT (the recorded `full_client_shutdown`
// order), at compile time.
namespace detail::sctp_tab {
static_assert(sctp_next_state(no, conn_dir::input, sctp_event::init) == i1);
static_assert(sctp_next_state(i1, conn_dir::output, sctp_event::init_ack) == cs);
static_assert(sctp_next_state(cs, conn_dir::input, sctp_event::cookie_echo) == cr);
static_assert(sctp_next_state(cr, conn_dir::output, sctp_event::cookie_ack) == es);
static_assert(sctp_next_state(es, conn_dir::input, sctp_event::shutdown) == sr);
static_assert(sctp_next_state(sr, conn_dir::output, sctp_event::shutdown_ack) == sa);
static_assert(sctp_next_state(sa, conn_dir::input, sctp_event::shutdown_complete) == cl);
static_assert(sctp_next_state(cl, conn_dir::input, sctp_event::init) == in); // reuse_mode 0: same conn
static_assert(sctp_classify(sctp_chunk::cookie_echo, sctp_chunk::abort) == sctp_event::abort);
static_assert(sctp_classify(sctp_chunk::cookie_echo, sctp_chunk::data) == sctp_event::cookie_echo);
static_assert(sctp_classify(sctp_chunk::data, sctp_chunk::abort) == sctp_event::data);
static_assert(sctp_classify(200) == sctp_event::data);
} // namespace detail::sctp_tab

/// The scheduling gate (spec §5.2): a packet without a conn may create one only if its first chunk is
/// not ABORT and is INIT, or anything under `sloppy_sctp`. It looks at the first chunk *type*, not the
/// event: a COOKIE_ECHO followed by an ABORT passes the sloppy gate.
[[nodiscard]] constexpr bool sctp_may_create_conn(std::uint8_t first_chunk_type, bool sloppy_sctp) noexcept {
    return first_chunk_type != sctp_chunk::abort && (first_chunk_type == sctp_chunk::init || sloppy_sctp);
}

/// A "new-connection packet" for conn_reuse_mode and expire_nodest_conn (spec §3.7): first chunk INIT.
[[nodiscard]] constexpr bool sctp_is_new_conn_packet(std::uint8_t first_chunk_type) noexcept {
    return first_chunk_type == sctp_chunk::init;
}

/// Whether an existing association in `s` "expects a new connection" (spec §3.7): CLOSED, with
/// `conn_reuse_mode` ≠ 0. The caller adds the no-controller and conntrack conditions, as for TCP.
[[nodiscard]] constexpr bool sctp_conn_expects_new(sctp_state s, unsigned conn_reuse_mode) noexcept {
    return conn_reuse_mode != 0 && s == sctp_state::closed;
}

/// Per-state SCTP timeouts.
using sctp_timeouts = state_timeouts<sctp_state, sctp_state_count>;

/// The kernel's default SCTP timeouts (spec §5.1): 61 s is IP_VS_SCTP_MAX_RTO, (60 + 1) s; INIT1 and
/// REJECTED get 0 + 3 + 1 s.
[[nodiscard]] constexpr sctp_timeouts default_sctp_timeouts() noexcept {
    using std::chrono::seconds;
    constexpr seconds max_rto{61};
    return sctp_timeouts{{
        seconds{2},   // NONE
        seconds{4},   // INIT1
        max_rto,      // INIT
        max_rto,      // COOKIE_SENT
        max_rto,      // COOKIE_REPLIED
        max_rto,      // COOKIE_WAIT
        max_rto,      // COOKIE
        max_rto,      // COOKIE_ECHOED
        seconds{900}, // ESTABLISHED
        max_rto,      // SHUTDOWN_SENT
        max_rto,      // SHUTDOWN_RECEIVED
        max_rto,      // SHUTDOWN_ACK_SENT
        seconds{4},   // REJECTED
        max_rto,      // CLOSED
    }};
}

} // namespace ipvs
