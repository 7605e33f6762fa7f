// SPDX-License-Identifier: MIT
// Tests of the TCP state machine (ipvs/proto/tcp_state.hpp) against the spec's tables and worked traces.

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <string_view>

#include <ipvs/proto/tcp_state.hpp>

#include "proto/state_replay.hpp"

using namespace ipvs;
using namespace std::chrono_literals;
using ipvs::test::replay::markdown_rows;

namespace {

// The spec's tables, pasted as the spec prints them (kernel-ipvs.md §4.1 and §4.3).
constexpr std::string_view spec_4_1 = R"(
| # | state | name | active | default timeout |
|---|---|---|---|---|
| 0 | NONE | NONE | no | 2 s |
| 1 | ESTABLISHED | ESTABLISHED | yes | 900 s |
| 2 | SYN_SENT | SYN_SENT | yes | 120 s |
| 3 | SYN_RECV | SYN_RECV | yes | 60 s |
| 4 | FIN_WAIT | FIN_WAIT | no | 120 s |
| 5 | TIME_WAIT | TIME_WAIT | no | 120 s |
| 6 | CLOSE | CLOSE | no | 10 s |
| 7 | CLOSE_WAIT | CLOSE_WAIT | no | 60 s |
| 8 | LAST_ACK | LAST_ACK | no | 30 s |
| 9 | LISTEN | LISTEN | no | 120 s |
| 10 | SYNACK | SYNACK | yes | 120 s |
| 11 | LAST (sentinel) | "BUG!" | – | 2 s |
)";

// **tcp_states (normal) — INPUT**
constexpr std::string_view spec_4_3_normal_input = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYN_RECV | CLOSE | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | CLOSE_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | ESTABLISHED | SYN_SENT | SYN_SENT | CLOSE |
| SYN_RECV | SYN_RECV | TIME_WAIT | ESTABLISHED | SYN_RECV |
| FIN_WAIT | SYN_RECV | TIME_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYN_RECV | TIME_WAIT | TIME_WAIT | CLOSE |
| CLOSE | SYN_RECV | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYN_RECV | CLOSE_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYN_RECV | LAST_ACK | CLOSE | LAST_ACK |
| LISTEN | SYN_RECV | LISTEN | LISTEN | LISTEN |
| SYNACK | SYN_RECV | TIME_WAIT | ESTABLISHED | SYN_RECV |
)";

// **tcp_states (normal) — OUTPUT**
constexpr std::string_view spec_4_3_normal_output = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYN_SENT | TIME_WAIT | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | FIN_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | SYN_SENT | SYN_SENT | SYN_SENT | SYN_SENT |
| SYN_RECV | SYN_RECV | TIME_WAIT | ESTABLISHED | CLOSE |
| FIN_WAIT | SYN_SENT | FIN_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYN_SENT | TIME_WAIT | TIME_WAIT | TIME_WAIT |
| CLOSE | SYN_SENT | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYN_SENT | TIME_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYN_SENT | LAST_ACK | LAST_ACK | CLOSE |
| LISTEN | LISTEN | LISTEN | ESTABLISHED | CLOSE |
| SYNACK | SYN_RECV | TIME_WAIT | ESTABLISHED | CLOSE |
)";

// **tcp_states (normal) — INPUT_ONLY**
constexpr std::string_view spec_4_3_normal_input_only = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYN_RECV | CLOSE | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | FIN_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | ESTABLISHED | SYN_SENT | SYN_SENT | CLOSE |
| SYN_RECV | SYN_RECV | TIME_WAIT | ESTABLISHED | SYN_RECV |
| FIN_WAIT | SYN_RECV | FIN_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYN_RECV | TIME_WAIT | TIME_WAIT | CLOSE |
| CLOSE | SYN_RECV | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYN_RECV | CLOSE_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYN_RECV | LAST_ACK | CLOSE | LAST_ACK |
| LISTEN | SYN_RECV | LISTEN | LISTEN | LISTEN |
| SYNACK | SYN_RECV | TIME_WAIT | ESTABLISHED | CLOSE |
)";

// **tcp_states_dos (secure_tcp) — INPUT**
constexpr std::string_view spec_4_3_secure_input = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYN_RECV | CLOSE | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | CLOSE_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | ESTABLISHED | SYN_SENT | SYN_SENT | CLOSE |
| SYN_RECV | SYN_RECV | TIME_WAIT | SYN_RECV | SYN_RECV |
| FIN_WAIT | SYN_RECV | TIME_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYN_RECV | TIME_WAIT | TIME_WAIT | CLOSE |
| CLOSE | SYN_RECV | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYN_RECV | CLOSE_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYN_RECV | LAST_ACK | CLOSE | LAST_ACK |
| LISTEN | SYN_RECV | LISTEN | LISTEN | LISTEN |
| SYNACK | SYNACK | SYNACK | SYNACK | CLOSE |
)";

// **tcp_states_dos (secure_tcp) — OUTPUT**
constexpr std::string_view spec_4_3_secure_output = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYN_SENT | TIME_WAIT | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | FIN_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | SYN_SENT | SYN_SENT | SYN_SENT | SYN_SENT |
| SYN_RECV | SYNACK | TIME_WAIT | ESTABLISHED | CLOSE |
| FIN_WAIT | SYN_SENT | FIN_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYN_SENT | TIME_WAIT | TIME_WAIT | TIME_WAIT |
| CLOSE | SYN_SENT | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYN_SENT | TIME_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYN_SENT | LAST_ACK | LAST_ACK | CLOSE |
| LISTEN | LISTEN | LISTEN | ESTABLISHED | CLOSE |
| SYNACK | SYNACK | TIME_WAIT | ESTABLISHED | CLOSE |
)";

// **tcp_states_dos (secure_tcp) — INPUT_ONLY**
constexpr std::string_view spec_4_3_secure_input_only = R"(
| current state | syn | fin | ack | rst |
|---|---|---|---|---|
| NONE | SYNACK | CLOSE | ESTABLISHED | CLOSE |
| ESTABLISHED | ESTABLISHED | FIN_WAIT | ESTABLISHED | CLOSE |
| SYN_SENT | ESTABLISHED | SYN_SENT | SYN_SENT | CLOSE |
| SYN_RECV | SYN_RECV | TIME_WAIT | ESTABLISHED | SYN_RECV |
| FIN_WAIT | SYNACK | FIN_WAIT | FIN_WAIT | CLOSE |
| TIME_WAIT | SYNACK | TIME_WAIT | TIME_WAIT | CLOSE |
| CLOSE | SYNACK | CLOSE | CLOSE | CLOSE |
| CLOSE_WAIT | SYNACK | CLOSE_WAIT | CLOSE_WAIT | CLOSE |
| LAST_ACK | SYNACK | LAST_ACK | CLOSE | LAST_ACK |
| LISTEN | SYNACK | LISTEN | LISTEN | LISTEN |
| SYNACK | SYNACK | TIME_WAIT | ESTABLISHED | CLOSE |
)";

tcp_state state_named(const std::string& n) {
    const auto s = tcp_state_from_name(n);
    REQUIRE_MESSAGE(s.has_value(), "the spec names a state the library lacks: " << n);
    return *s;
}

constexpr tcp_flags f(std::uint8_t b) { return tcp_flags{b}; }
constexpr std::uint8_t S = tcp_flag::syn, A = tcp_flag::ack, F = tcp_flag::fin, R = tcp_flag::rst,
                       P = tcp_flag::psh, U = tcp_flag::urg;

// One conn of the spec's worked traces: state, INACTIVE, its dest's counters, its timeout.
struct traced_conn {
    dest d{};
    tcp_state state = tcp_state::none;
    bool inactive = true;
    time_ns timeout{0};
    tcp_table table = tcp_table::normal;
    bool nooutput = false;

    traced_conn() { ++d.inactive_conns; } // bind: every new conn is first counted inactive (§1.6)
    bool packet(bool from_client, tcp_flags fl) {
        const tcp_state next = tcp_next_state(state, conn_direction(from_client, nooutput), fl, table);
        const bool moved = move_conn_counts(d, inactive, state, next);
        state = next;
        timeout = default_tcp_timeouts()[next];
        if (!from_client) nooutput = false;
        return moved;
    }
};

} // namespace

TEST_CASE("tcp_state: numbers, names, the active flag and default timeouts are the spec's §4.1 table") {
    const auto rows = markdown_rows(spec_4_1, "#");
    REQUIRE(rows.size() == tcp_state_count + 1); // + the LAST sentinel
    for (const auto& r : rows) {
        const int number = std::stoi(r[0]);
        CAPTURE(r[1]);
        if (r[1] == "LAST (sentinel)") {
            CHECK(static_cast<std::size_t>(number) == tcp_state_count);
            CHECK(name(static_cast<tcp_state>(number)) == "BUG!");
            continue;
        }
        const tcp_state s = static_cast<tcp_state>(number);
        CHECK(name(s) == r[2]);
        CHECK(state_named(r[1]) == s);
        CHECK(is_active(s) == (r[3] == "yes"));
        CHECK(default_tcp_timeouts()[s] == std::chrono::seconds{std::stoi(r[4])});
    }
    CHECK_FALSE(tcp_state_from_name("BUG!").has_value());
    CHECK_FALSE(tcp_state_from_name("syn_recv").has_value()); // /proc names are upper case
}

TEST_CASE("tcp_state: every cell of the six transition tables is the spec's §4.3") {
    struct table_case {
        std::string_view text;
        tcp_table table;
        conn_dir dir;
    };
    const table_case cases[] = {
        {spec_4_3_normal_input, tcp_table::normal, conn_dir::input},
        {spec_4_3_normal_output, tcp_table::normal, conn_dir::output},
        {spec_4_3_normal_input_only, tcp_table::normal, conn_dir::input_only},
        {spec_4_3_secure_input, tcp_table::secure, conn_dir::input},
        {spec_4_3_secure_output, tcp_table::secure, conn_dir::output},
        {spec_4_3_secure_input_only, tcp_table::secure, conn_dir::input_only},
    };
    const tcp_event columns[] = {tcp_event::syn, tcp_event::fin, tcp_event::ack, tcp_event::rst};
    std::size_t cells = 0;
    for (const auto& c : cases) {
        const auto rows = markdown_rows(c.text, "current state");
        REQUIRE(rows.size() == tcp_state_count);
        for (const auto& r : rows) {
            REQUIRE(r.size() == 5);
            for (std::size_t col = 0; col < 4; ++col) {
                CAPTURE(r[0]);
                CAPTURE(col);
                CHECK(tcp_next_state(state_named(r[0]), c.dir, columns[col], c.table) ==
                      state_named(r[col + 1]));
                ++cells;
            }
        }
    }
    CHECK(cells == 6 * tcp_state_count * 4);
}

TEST_CASE("tcp_state: the flag class priority is rst > syn > fin > ack") {
    SUBCASE("RST wins over everything") {
        CHECK(classify(f(R)) == tcp_event::rst);
        CHECK(classify(f(R | A)) == tcp_event::rst);
        CHECK(classify(f(R | S | F | A)) == tcp_event::rst);
    }
    SUBCASE("SYN wins over FIN and ACK: SYN+ACK and SYN+FIN are syn") {
        CHECK(classify(f(S)) == tcp_event::syn);
        CHECK(classify(f(S | A)) == tcp_event::syn);
        CHECK(classify(f(S | F)) == tcp_event::syn);
    }
    SUBCASE("FIN wins over ACK") {
        CHECK(classify(f(F)) == tcp_event::fin);
        CHECK(classify(f(F | A | P)) == tcp_event::fin);
    }
    SUBCASE("ACK alone, with PSH or URG") {
        CHECK(classify(f(A)) == tcp_event::ack);
        CHECK(classify(f(P | A)) == tcp_event::ack);
        CHECK(classify(f(U | A)) == tcp_event::ack);
    }
    SUBCASE("none of the four goes to CLOSE from every state, direction and table") {
        for (auto fl : {f(0), f(P), f(U), f(P | U)}) {
            CHECK(classify(fl) == tcp_event::none);
            for (std::size_t s = 0; s < tcp_state_count; ++s) {
                for (auto dir : {conn_dir::input, conn_dir::output, conn_dir::input_only}) {
                    for (auto t : {tcp_table::normal, tcp_table::secure}) {
                        CHECK(tcp_next_state(static_cast<tcp_state>(s), dir, fl, t) == tcp_state::close);
                    }
                }
            }
        }
    }
}

TEST_CASE("tcp_state: INPUT_ONLY is the direction of a client segment on a conn that saw no output") {
    CHECK(conn_direction(true, false) == conn_dir::input);
    CHECK(conn_direction(true, true) == conn_dir::input_only);
    CHECK(conn_direction(false, true) == conn_dir::output);
    CHECK(conn_direction(false, false) == conn_dir::output);
    // Where it matters (§4.5): a client FIN on an ESTABLISHED conn.
    CHECK(tcp_next_state(tcp_state::established, conn_dir::input, f(F | A)) == tcp_state::close_wait);
    CHECK(tcp_next_state(tcp_state::established, conn_dir::input_only, f(F | A)) == tcp_state::fin_wait);
}

TEST_CASE("tcp_state: the NAT worked trace of §4.5, with the dest's counters") {
    traced_conn c;
    CHECK(c.d.inactive_conns == 1);
    CHECK(c.packet(true, f(S))); // 1. client SYN: SYN_RECV counts active
    CHECK(c.state == tcp_state::syn_recv);
    CHECK((c.d.active_conns == 1 && c.d.inactive_conns == 0));
    CHECK(c.timeout == 60s);
    CHECK_FALSE(c.packet(false, f(S | A))); // 2. RS SYN+ACK: stays
    CHECK(c.state == tcp_state::syn_recv);
    CHECK(c.timeout == 60s);
    CHECK_FALSE(c.packet(true, f(A))); // 3. client ACK
    CHECK(c.state == tcp_state::established);
    CHECK(c.timeout == 900s);
    CHECK(c.packet(true, f(F | A))); // 4. client FIN+ACK: inactive again
    CHECK(c.state == tcp_state::close_wait);
    CHECK((c.d.active_conns == 0 && c.d.inactive_conns == 1));
    CHECK(c.timeout == 60s);
    CHECK_FALSE(c.packet(false, f(F | A))); // 5. RS FIN+ACK
    CHECK(c.state == tcp_state::time_wait);
    CHECK(c.timeout == 120s);
    CHECK_FALSE(c.packet(true, f(A))); // 6. client ACK: re-armed, same state
    CHECK(c.state == tcp_state::time_wait);
    CHECK(c.timeout == 120s);
    CHECK((c.d.active_conns == 0 && c.d.inactive_conns == 1));
}

TEST_CASE("tcp_state: the DR/TUN worked trace of §4.5 (INPUT_ONLY) and the FIN_WAIT reuse rule") {
    traced_conn c;
    c.nooutput = true;
    c.packet(true, f(S));
    CHECK(c.state == tcp_state::syn_recv);
    c.packet(true, f(A));
    CHECK(c.state == tcp_state::established);
    CHECK(c.packet(true, f(F | A)));
    CHECK(c.state == tcp_state::fin_wait);
    CHECK(c.timeout == 120s);
    CHECK((c.d.active_conns == 0 && c.d.inactive_conns == 1));
    c.packet(true, f(A));
    CHECK(c.state == tcp_state::fin_wait);
    // A later SYN from the same client port: conn_reuse_mode bit 2 expires it, otherwise it reopens.
    CHECK(tcp_is_new_conn_packet(f(S)));
    CHECK(tcp_conn_expects_new(c.state, 2, c.nooutput));
    CHECK_FALSE(tcp_conn_expects_new(c.state, 1, c.nooutput));
    CHECK(c.packet(true, f(S)));
    CHECK(c.state == tcp_state::syn_recv);
    CHECK((c.d.active_conns == 1 && c.d.inactive_conns == 0));
}

TEST_CASE("tcp_state: the secure_tcp worked trace of §4.5 (client_active_close under NAT)") {
    traced_conn c;
    c.table = tcp_table_for_secure_tcp(3);
    c.packet(true, f(S));
    CHECK(c.state == tcp_state::syn_recv);
    CHECK_FALSE(c.packet(false, f(S | A))); // SYNACK counts active, like SYN_RECV: no move
    CHECK(c.state == tcp_state::synack);
    CHECK(c.timeout == 120s);
    for (auto client : {f(A), f(P | A), f(F | A)}) {
        c.packet(true, client);
        CHECK(c.state == tcp_state::synack); // client ACK, data and FIN leave it in SYNACK
    }
    c.packet(false, f(A));
    CHECK(c.state == tcp_state::established);
    CHECK(c.packet(false, f(F | A)));
    CHECK(c.state == tcp_state::fin_wait);
    SUBCASE("a server FIN on SYNACK goes to TIME_WAIT; a RST from either side closes") {
        CHECK(tcp_next_state(tcp_state::synack, conn_dir::output, f(F | A), tcp_table::secure) ==
              tcp_state::time_wait);
        CHECK(tcp_next_state(tcp_state::synack, conn_dir::input, f(R), tcp_table::secure) ==
              tcp_state::close);
        CHECK(tcp_next_state(tcp_state::synack, conn_dir::output, f(R), tcp_table::secure) ==
              tcp_state::close);
    }
    SUBCASE("INPUT_ONLY SYN from NONE is SYNACK, and a client ACK leaves SYN_RECV alone") {
        CHECK(tcp_next_state(tcp_state::none, conn_dir::input_only, f(S), tcp_table::secure) ==
              tcp_state::synack);
        CHECK(tcp_next_state(tcp_state::syn_recv, conn_dir::input, f(A), tcp_table::secure) ==
              tcp_state::syn_recv);
    }
}

TEST_CASE("tcp_state: secure_tcp 2 and 3 select the DoS table, 0 and 1 the normal one") {
    CHECK(tcp_table_for_secure_tcp(0) == tcp_table::normal);
    CHECK(tcp_table_for_secure_tcp(1) == tcp_table::normal);
    CHECK(tcp_table_for_secure_tcp(2) == tcp_table::secure);
    CHECK(tcp_table_for_secure_tcp(3) == tcp_table::secure);
}

TEST_CASE("tcp_state: the scheduling gate lets SYN through, RST never, the rest only with sloppy_tcp") {
    SUBCASE("SYN and SYN+ACK (active FTP) create a conn either way") {
        CHECK(tcp_may_create_conn(f(S), false));
        CHECK(tcp_may_create_conn(f(S | A), false));
        CHECK(tcp_may_create_conn(f(S | F), false));
    }
    SUBCASE("a RST never does, SYN or not") {
        for (bool sloppy : {false, true}) {
            CHECK_FALSE(tcp_may_create_conn(f(R), sloppy));
            CHECK_FALSE(tcp_may_create_conn(f(R | S), sloppy));
            CHECK_FALSE(tcp_may_create_conn(f(R | A), sloppy));
        }
    }
    SUBCASE("mid-stream segments only under sloppy_tcp, and a sloppy ACK starts ESTABLISHED") {
        for (auto fl : {f(A), f(P | A), f(F | A), f(0)}) {
            CHECK_FALSE(tcp_may_create_conn(fl, false));
            CHECK(tcp_may_create_conn(fl, true));
        }
        CHECK(tcp_next_state(tcp_state::none, conn_dir::input, f(A)) == tcp_state::established);
        CHECK(tcp_next_state(tcp_state::none, conn_dir::input, f(F | A)) == tcp_state::close);
    }
}

TEST_CASE("tcp_state: conn_reuse_mode reuses TIME_WAIT and CLOSE, and with bit 2 a DR conn in FIN_WAIT") {
    for (std::size_t i = 0; i < tcp_state_count; ++i) {
        const auto s = static_cast<tcp_state>(i);
        CAPTURE(name(s));
        for (bool nooutput : {false, true}) {
            CHECK_FALSE(tcp_conn_expects_new(s, 0, nooutput));
            const bool closed = s == tcp_state::time_wait || s == tcp_state::close;
            CHECK(tcp_conn_expects_new(s, 1, nooutput) == closed);
            CHECK(tcp_conn_expects_new(s, 2, nooutput) == (closed || (s == tcp_state::fin_wait && nooutput)));
            CHECK(tcp_conn_expects_new(s, 3, nooutput) == tcp_conn_expects_new(s, 2, nooutput));
        }
    }
    CHECK(tcp_is_new_conn_packet(f(S | A)));
    CHECK_FALSE(tcp_is_new_conn_packet(f(A)));
}

TEST_CASE("tcp_state: a state change moves the conn between the dest's counters, both ways") {
    dest d{};
    d.active_conns = 5;
    d.inactive_conns = 7;
    bool inactive = true;
    SUBCASE("inactive → active and back") {
        CHECK(move_conn_counts(d, inactive, tcp_state::none, tcp_state::syn_recv));
        CHECK((d.active_conns == 6 && d.inactive_conns == 6 && !inactive));
        CHECK(move_conn_counts(d, inactive, tcp_state::established, tcp_state::fin_wait));
        CHECK((d.active_conns == 5 && d.inactive_conns == 7 && inactive));
    }
    SUBCASE("between two active or two inactive states nothing moves") {
        inactive = false;
        CHECK_FALSE(move_conn_counts(d, inactive, tcp_state::syn_recv, tcp_state::established));
        inactive = true;
        CHECK_FALSE(move_conn_counts(d, inactive, tcp_state::close_wait, tcp_state::time_wait));
        CHECK((d.active_conns == 5 && d.inactive_conns == 7));
    }
    SUBCASE("no state change, no move, even when INACTIVE disagrees with the state (a synced conn)") {
        CHECK_FALSE(move_conn_counts(d, inactive, tcp_state::established, tcp_state::established));
        CHECK(inactive);
        CHECK((d.active_conns == 5 && d.inactive_conns == 7));
    }
    SUBCASE("OVERLOAD is left alone: the total does not change") {
        d.flags = dest_flag::overload;
        CHECK(move_conn_counts(d, inactive, tcp_state::none, tcp_state::established));
        CHECK(d.overloaded());
    }
}

TEST_CASE("tcp_state: timeouts are per state and can be set one by one") {
    tcp_timeouts t = default_tcp_timeouts();
    t.set(tcp_state::established, 7200s);
    CHECK(t[tcp_state::established] == 7200s);
    CHECK(t[tcp_state::fin_wait] == default_tcp_timeouts()[tcp_state::fin_wait]);
    CHECK(t != default_tcp_timeouts());
    CHECK(t[static_cast<tcp_state>(200)] == t[tcp_state::none]); // a cast out of range reads NONE's
}
