// SPDX-License-Identifier: MIT
// Tests of the SCTP state machine (ipvs/proto/sctp_state.hpp) against the spec's tables.

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <ipvs/proto/sctp_state.hpp>

#include "proto/state_replay.hpp"

using namespace ipvs;
using namespace std::chrono_literals;
using ipvs::test::replay::markdown_rows;

namespace {

// The spec's tables, pasted as the spec prints them (kernel-ipvs.md §5.1, §5.2, §5.3).
constexpr std::string_view spec_5_1 = R"(
| # | state | name | timeout |
|---|---|---|---|
| 0 | NONE | NONE | 2 s |
| 1 | INIT1 | INIT1 | 4 s (0+3+1) |
| 2 | INIT | INIT | 61 s |
| 3 | COOKIE_SENT | C-SENT | 61 s |
| 4 | COOKIE_REPLIED | C-REPLIED | 61 s |
| 5 | COOKIE_WAIT | C-WAIT | 61 s |
| 6 | COOKIE | COOKIE | 61 s |
| 7 | COOKIE_ECHOED | C-ECHOED | 61 s |
| 8 | ESTABLISHED | ESTABLISHED | 900 s |
| 9 | SHUTDOWN_SENT | S-SENT | 61 s |
| 10 | SHUTDOWN_RECEIVED | S-RECEIVED | 61 s |
| 11 | SHUTDOWN_ACK_SENT | S-ACK-SENT | 61 s |
| 12 | REJECTED | REJECTED | 4 s |
| 13 | CLOSED | CLOSED | 61 s |
)";

constexpr std::string_view spec_5_2 = R"(
| chunk type | event |
|---|---|
| 0 DATA, 3 SACK, 4 HEARTBEAT, 5 HEARTBEAT_ACK, 12 ECNE, 13 CWR, and any type ≥ 15 | DATA |
| 1 INIT | INIT |
| 2 INIT_ACK | INIT_ACK |
| 10 COOKIE_ECHO | COOKIE_ECHO |
| 11 COOKIE_ACK | COOKIE_ACK |
| 7 SHUTDOWN | SHUTDOWN |
| 8 SHUTDOWN_ACK | SHUTDOWN_ACK |
| 14 SHUTDOWN_COMPLETE | SHUTDOWN_COMPLETE |
| 9 ERROR | ERROR |
| 6 ABORT | ABORT |
)";

// **SCTP — INPUT**
constexpr std::string_view spec_5_3_input = R"(
| current | DATA | INIT | INIT_ACK | COOKIE_ECHO | COOKIE_ACK | SHUTDOWN | SHUTDOWN_ACK | SHUTDOWN_COMPLETE | ERROR | ABORT |
|---|---|---|---|---|---|---|---|---|---|---|
| NONE | ESTABLISHED | INIT1 | COOKIE_WAIT | COOKIE_REPLIED | ESTABLISHED | SHUTDOWN_RECEIVED | CLOSED | CLOSED | CLOSED | CLOSED |
| INIT1 | INIT1 | INIT | COOKIE_WAIT | INIT | INIT1 | INIT1 | INIT | CLOSED | INIT1 | CLOSED |
| INIT | INIT | INIT | COOKIE_WAIT | INIT | INIT | INIT | INIT | CLOSED | INIT | CLOSED |
| COOKIE_SENT | COOKIE_SENT | COOKIE_SENT | COOKIE_SENT | COOKIE_REPLIED | COOKIE_SENT | COOKIE_SENT | COOKIE_SENT | COOKIE_SENT | COOKIE_SENT | CLOSED |
| COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_REPLIED | CLOSED |
| COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | REJECTED |
| COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | CLOSED |
| COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | ESTABLISHED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | CLOSED | CLOSED |
| ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | SHUTDOWN_RECEIVED | ESTABLISHED | ESTABLISHED | ESTABLISHED | CLOSED |
| SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | CLOSED | SHUTDOWN_SENT | SHUTDOWN_SENT | CLOSED |
| SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | CLOSED |
| SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | CLOSED | CLOSED | SHUTDOWN_ACK_SENT | CLOSED |
| REJECTED | REJECTED | INIT | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | CLOSED |
| CLOSED | CLOSED | INIT | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED |
)";

// **SCTP — OUTPUT**
constexpr std::string_view spec_5_3_output = R"(
| current | DATA | INIT | INIT_ACK | COOKIE_ECHO | COOKIE_ACK | SHUTDOWN | SHUTDOWN_ACK | SHUTDOWN_COMPLETE | ERROR | ABORT |
|---|---|---|---|---|---|---|---|---|---|---|
| NONE | ESTABLISHED | COOKIE_WAIT | COOKIE_SENT | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | CLOSED | CLOSED | CLOSED |
| INIT1 | INIT1 | COOKIE_WAIT | COOKIE_SENT | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | INIT1 | CLOSED | REJECTED |
| INIT | INIT | COOKIE_WAIT | COOKIE_SENT | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | INIT | CLOSED | CLOSED |
| COOKIE_SENT | COOKIE_SENT | COOKIE_WAIT | COOKIE_SENT | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | COOKIE_SENT | CLOSED | CLOSED |
| COOKIE_REPLIED | COOKIE_REPLIED | COOKIE_WAIT | COOKIE_REPLIED | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | COOKIE_REPLIED | CLOSED | CLOSED |
| COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | CLOSED |
| COOKIE | COOKIE | COOKIE_WAIT | COOKIE | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | COOKIE | COOKIE | COOKIE | CLOSED |
| COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_WAIT | COOKIE_ECHOED | COOKIE_ECHOED | ESTABLISHED | SHUTDOWN_SENT | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | CLOSED |
| ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | SHUTDOWN_SENT | ESTABLISHED | ESTABLISHED | ESTABLISHED | CLOSED |
| SHUTDOWN_SENT | SHUTDOWN_SENT | COOKIE_WAIT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | CLOSED |
| SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | COOKIE_WAIT | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_ACK_SENT | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | CLOSED |
| SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | COOKIE_WAIT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | CLOSED |
| REJECTED | REJECTED | COOKIE_WAIT | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | CLOSED |
| CLOSED | CLOSED | COOKIE_WAIT | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED |
)";

// **SCTP — INPUT_ONLY**
constexpr std::string_view spec_5_3_input_only = R"(
| current | DATA | INIT | INIT_ACK | COOKIE_ECHO | COOKIE_ACK | SHUTDOWN | SHUTDOWN_ACK | SHUTDOWN_COMPLETE | ERROR | ABORT |
|---|---|---|---|---|---|---|---|---|---|---|
| NONE | ESTABLISHED | INIT1 | COOKIE_ECHOED | ESTABLISHED | ESTABLISHED | SHUTDOWN_RECEIVED | CLOSED | CLOSED | CLOSED | CLOSED |
| INIT1 | INIT1 | INIT | COOKIE_ECHOED | ESTABLISHED | INIT1 | INIT1 | INIT | CLOSED | INIT1 | CLOSED |
| INIT | INIT | INIT | COOKIE_ECHOED | ESTABLISHED | INIT | INIT | INIT | CLOSED | INIT | CLOSED |
| COOKIE_SENT | COOKIE_SENT | INIT | COOKIE_ECHOED | ESTABLISHED | ESTABLISHED | COOKIE_SENT | COOKIE_SENT | CLOSED | COOKIE_SENT | CLOSED |
| COOKIE_REPLIED | COOKIE_REPLIED | INIT | COOKIE_ECHOED | ESTABLISHED | ESTABLISHED | COOKIE_REPLIED | COOKIE_REPLIED | CLOSED | COOKIE_REPLIED | CLOSED |
| COOKIE_WAIT | ESTABLISHED | INIT | COOKIE_ECHOED | ESTABLISHED | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | COOKIE_WAIT | REJECTED |
| COOKIE | COOKIE | COOKIE | COOKIE | COOKIE | ESTABLISHED | COOKIE | COOKIE | COOKIE | COOKIE | CLOSED |
| COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | ESTABLISHED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | COOKIE_ECHOED | CLOSED |
| ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | ESTABLISHED | SHUTDOWN_RECEIVED | CLOSED | ESTABLISHED | ESTABLISHED | CLOSED |
| SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | SHUTDOWN_SENT | CLOSED | SHUTDOWN_SENT | SHUTDOWN_SENT | CLOSED |
| SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | SHUTDOWN_RECEIVED | CLOSED | SHUTDOWN_RECEIVED | CLOSED |
| SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | SHUTDOWN_ACK_SENT | CLOSED | CLOSED | SHUTDOWN_ACK_SENT | CLOSED |
| REJECTED | REJECTED | INIT | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | REJECTED | CLOSED |
| CLOSED | CLOSED | INIT | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED | CLOSED |
)";

// The spec's tables name states by their enum names (COOKIE_SENT), /proc by short names (C-SENT): the
// §5.1 table gives both, so it provides the mapping.
sctp_state state_named(const std::string& enum_name) {
    for (const auto& r : markdown_rows(spec_5_1, "#")) {
        if (r[1] == enum_name) return static_cast<sctp_state>(std::stoi(r[0]));
    }
    FAIL("the spec names a state §5.1 lacks: " << enum_name);
    return sctp_state::none;
}

// Event names as the spec writes them, in the tables' column order.
constexpr std::array<std::string_view, sctp_event_count> event_names = {
    "DATA",     "INIT",         "INIT_ACK",          "COOKIE_ECHO", "COOKIE_ACK",
    "SHUTDOWN", "SHUTDOWN_ACK", "SHUTDOWN_COMPLETE", "ERROR",       "ABORT"};
sctp_event event_named(std::string_view n) {
    for (std::size_t i = 0; i < event_names.size(); ++i) {
        if (event_names[i] == n) return static_cast<sctp_event>(i);
    }
    FAIL("unknown event " << n);
    return sctp_event::data;
}

// Chunks after the common header: {type, length} each, the value bytes filled, padded to 4.
std::vector<std::byte> chunks(std::initializer_list<std::pair<std::uint8_t, std::uint16_t>> list,
                              std::size_t leading_pad = 0) {
    std::vector<std::byte> out(leading_pad, std::byte{0xee});
    for (const auto& [type, len] : list) {
        const std::size_t at = out.size();
        const std::size_t padded = std::max<std::size_t>(4, (len + 3U) & ~3U);
        out.resize(at + padded, std::byte{0x5a});
        out[at] = std::byte{type};
        out[at + 1] = std::byte{0};
        out[at + 2] = std::byte{static_cast<std::uint8_t>(len >> 8)};
        out[at + 3] = std::byte{static_cast<std::uint8_t>(len & 0xff)};
    }
    return out;
}

} // namespace

TEST_CASE(
    "sctp_state: numbers, names and default timeouts are the spec's §5.1 table; only ESTABLISHED is active") {
    const auto rows = markdown_rows(spec_5_1, "#");
    REQUIRE(rows.size() == sctp_state_count);
    for (const auto& r : rows) {
        const auto s = static_cast<sctp_state>(std::stoi(r[0]));
        CAPTURE(r[1]);
        CHECK(name(s) == r[2]);
        CHECK(sctp_state_from_name(r[2]) == s);
        CHECK(default_sctp_timeouts()[s] == std::chrono::seconds{std::stoi(r[3])});
        CHECK(is_active(s) == (r[1] == "ESTABLISHED"));
    }
    CHECK(name(static_cast<sctp_state>(sctp_state_count)) == "BUG!");
    CHECK_FALSE(sctp_state_from_name("COOKIE_SENT").has_value()); // /proc says C-SENT
}

TEST_CASE("sctp_state: every cell of the three transition tables is the spec's §5.3") {
    const std::pair<std::string_view, conn_dir> cases[] = {
        {spec_5_3_input, conn_dir::input},
        {spec_5_3_output, conn_dir::output},
        {spec_5_3_input_only, conn_dir::input_only},
    };
    std::size_t cells = 0;
    for (const auto& c : cases) {
        const conn_dir dir = c.second; // no structured binding: clang 14 cannot capture one in CHECK
        const auto rows = markdown_rows(c.first, "current");
        REQUIRE(rows.size() == sctp_state_count);
        for (const auto& r : rows) {
            REQUIRE(r.size() == 1 + sctp_event_count);
            for (std::size_t col = 0; col < sctp_event_count; ++col) {
                CAPTURE(r[0]);
                CAPTURE(event_names[col]);
                CHECK(sctp_next_state(state_named(r[0]), dir, static_cast<sctp_event>(col)) ==
                      state_named(r[col + 1]));
                ++cells;
            }
        }
    }
    CHECK(cells == 3 * sctp_state_count * sctp_event_count);
}

TEST_CASE("sctp_state: each chunk type maps to the spec's §5.2 event; unknown types are DATA") {
    std::array<bool, 256> seen{};
    for (const auto& r : markdown_rows(spec_5_2, "chunk type")) {
        const sctp_event ev = event_named(r[1]);
        std::istringstream in(r[0]); // "0 DATA, 3 SACK, …, and any type ≥ 15"
        std::string word;
        while (in >> word) {
            if (word.find_first_not_of("0123456789") != std::string::npos) continue;
            const int t = std::stoi(word);
            if (r[0].find("any type ≥ " + word) != std::string::npos) {
                for (int u = t; u < 256; ++u) {
                    CHECK(sctp_chunk_event(static_cast<std::uint8_t>(u)) == ev);
                    seen[static_cast<std::size_t>(u)] = true;
                }
            } else {
                CAPTURE(t);
                CHECK(sctp_chunk_event(static_cast<std::uint8_t>(t)) == ev);
                seen[static_cast<std::size_t>(t)] = true;
            }
        }
    }
    for (std::size_t t = 0; t < 256; ++t) CHECK_MESSAGE(seen[t], "the spec's table skips chunk type " << t);
}

// The classifier on the chunks of `l`, laid out at offset `pad` of a buffer (0 and 1: the classifier
// must read through the load helpers, at any alignment); the results at both offsets must agree.
namespace {
std::optional<sctp_event> classify_chunks(std::initializer_list<std::pair<std::uint8_t, std::uint16_t>> l) {
    const auto aligned = chunks(l, 0);
    const auto odd = chunks(l, 1);
    const auto a = sctp_classify(std::span<const std::byte>(aligned));
    const auto b = sctp_classify(std::span<const std::byte>(odd).subspan(1));
    CHECK(a == b);
    return a;
}
} // namespace

TEST_CASE("sctp_state: a COOKIE_ECHO or COOKIE_ACK followed by an ABORT is an ABORT") {
    SUBCASE("behind COOKIE_ECHO and COOKIE_ACK, ABORT wins; DATA does not") {
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 16}, {sctp_chunk::abort, 4}}) == sctp_event::abort);
        CHECK(classify_chunks({{sctp_chunk::cookie_ack, 4}, {sctp_chunk::abort, 4}}) == sctp_event::abort);
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 16}, {sctp_chunk::data, 20}}) ==
              sctp_event::cookie_echo);
    }
    SUBCASE("the second chunk starts at the first one's length rounded up to 4") {
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 9}, {sctp_chunk::abort, 4}}) == sctp_event::abort);
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 11}, {sctp_chunk::abort, 4}}) == sctp_event::abort);
    }
    SUBCASE("behind any other first chunk the second is not looked at") {
        CHECK(classify_chunks({{sctp_chunk::data, 20}, {sctp_chunk::abort, 4}}) == sctp_event::data);
        CHECK(classify_chunks({{sctp_chunk::shutdown, 8}, {sctp_chunk::abort, 4}}) == sctp_event::shutdown);
    }
    SUBCASE("a first chunk alone, or a length below 4, gives the first chunk's event") {
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 16}}) == sctp_event::cookie_echo);
        CHECK(classify_chunks({{sctp_chunk::init, 20}}) == sctp_event::init);
        // length 2: no walk, even though an ABORT header follows
        CHECK(classify_chunks({{sctp_chunk::cookie_echo, 2}, {sctp_chunk::abort, 4}}) ==
              sctp_event::cookie_echo);
    }
    SUBCASE("fewer than 4 bytes have no event: the state must not move") {
        const auto buf = chunks({{sctp_chunk::init, 20}}, 1);
        CHECK_FALSE(sctp_classify(std::span<const std::byte>(buf).subspan(1, 3)).has_value());
        CHECK_FALSE(sctp_classify(std::span<const std::byte>{}).has_value());
    }
    SUBCASE("from chunk types a caller already parsed") {
        CHECK(sctp_classify(sctp_chunk::cookie_ack, sctp_chunk::abort) == sctp_event::abort);
        CHECK(sctp_classify(sctp_chunk::abort) == sctp_event::abort);
        CHECK(sctp_classify(sctp_chunk::init, sctp_chunk::abort) == sctp_event::init);
    }
}

TEST_CASE("sctp_state: the scheduling gate lets INIT through, ABORT never, the rest only with sloppy_sctp") {
    CHECK(sctp_may_create_conn(sctp_chunk::init, false));
    CHECK(sctp_may_create_conn(sctp_chunk::init, true));
    for (bool sloppy : {false, true}) CHECK_FALSE(sctp_may_create_conn(sctp_chunk::abort, sloppy));
    for (auto t : {sctp_chunk::data, sctp_chunk::heartbeat, sctp_chunk::cookie_echo, sctp_chunk::sack}) {
        CHECK_FALSE(sctp_may_create_conn(t, false));
        CHECK(sctp_may_create_conn(t, true));
    }
    // A sloppy DATA or HEARTBEAT starts ESTABLISHED (recorded sloppy_sctp_data / sloppy_sctp_hb).
    CHECK(sctp_next_state(sctp_state::none, conn_dir::input, sctp_chunk_event(sctp_chunk::heartbeat)) ==
          sctp_state::established);
    CHECK(sctp_is_new_conn_packet(sctp_chunk::init));
    CHECK_FALSE(sctp_is_new_conn_packet(sctp_chunk::init_ack));
}

TEST_CASE("sctp_state: conn_reuse_mode reuses a CLOSED association only") {
    for (std::size_t i = 0; i < sctp_state_count; ++i) {
        const auto s = static_cast<sctp_state>(i);
        CAPTURE(name(s));
        CHECK_FALSE(sctp_conn_expects_new(s, 0));
        CHECK(sctp_conn_expects_new(s, 1) == (s == sctp_state::closed));
        CHECK(sctp_conn_expects_new(s, 2) == (s == sctp_state::closed));
    }
}

TEST_CASE("sctp_state: an association is active only while ESTABLISHED; the counters follow both ways") {
    dest d{};
    d.inactive_conns = 1; // bound: new conns start inactive
    bool inactive = true;
    sctp_state s = sctp_state::none;
    auto step = [&](conn_dir dir, sctp_event ev) {
        const sctp_state next = sctp_next_state(s, dir, ev);
        const bool moved = move_conn_counts(d, inactive, s, next);
        s = next;
        return moved;
    };
    CHECK_FALSE(step(conn_dir::input, sctp_event::init)); // INIT1
    CHECK_FALSE(step(conn_dir::output, sctp_event::init_ack));
    CHECK_FALSE(step(conn_dir::input, sctp_event::cookie_echo));
    CHECK(s == sctp_state::cookie_replied);
    CHECK(step(conn_dir::output, sctp_event::cookie_ack));
    CHECK(s == sctp_state::established);
    CHECK((d.active_conns == 1 && d.inactive_conns == 0));
    CHECK_FALSE(step(conn_dir::input, sctp_event::data));
    CHECK(step(conn_dir::input, sctp_event::shutdown));
    CHECK(s == sctp_state::shutdown_received);
    CHECK((d.active_conns == 0 && d.inactive_conns == 1));
    CHECK(default_sctp_timeouts()[s] == 61s);
}

TEST_CASE("sctp_state: an INPUT_ONLY (DR) client sees its association established by the cookie exchange") {
    // No server packet passes the director: COOKIE_ECHO from the client establishes it directly.
    sctp_state s = sctp_next_state(sctp_state::none, conn_dir::input_only, sctp_event::init);
    CHECK(s == sctp_state::init1);
    s = sctp_next_state(s, conn_dir::input_only, sctp_event::cookie_echo);
    CHECK(s == sctp_state::established);
    CHECK(sctp_next_state(s, conn_dir::input_only, sctp_event::shutdown_ack) == sctp_state::closed);
    CHECK(sctp_next_state(s, conn_dir::input, sctp_event::shutdown_ack) == sctp_state::established);
}
