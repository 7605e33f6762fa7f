// SPDX-License-Identifier: MIT
// Test support: replays the recorded per-packet state files through a model of the one conn a flow has.
#pragma once

// What the model is
// -----------------
// The files tcpstate / sctpstate / udpstate / sysctl.jsonl record, per packet, what a real director held
// for one flow (FORMAT.md). There are no input frames, only tokens (`cSA`, `s:COOKIEACK+SACK`, `c:U`,
// the events `DEL` / `W0`). Per flow (the run of lines from i = 0) this model keeps what IPVS keeps: at
// most one conn (state, INACTIVE, NOOUTPUT, dest, timeout, when it was armed), the service's dests with
// their counters, and rr's cursor (every sequence has a fresh rr service). The packet path is the
// spec's §7.1 / §7.2 reduced to what the records exercise:
//   client → VIP: conn reuse / quiescent-dest rescheduling for a new-connection packet (§3.7, §1.7);
//                 a conn whose dest was deleted: drop (timer not re-armed) or expire (expire_nodest_conn);
//                 no conn: the protocol's gate (§4.4, §5.2, §5.4), else rr picks a dest (§2.1) and the
//                 new conn is bound as inactive (§1.6); then the INPUT / INPUT_ONLY transition.
//   RS → client:  the conn's OUTPUT transition (it clears NOOUTPUT); no conn: not IPVS's packet.
// The state machines, gates, reuse predicates, counter moves and timeouts are the library's
// (ipvs/proto/*); the rest (rr, conn lifetime, the director's drop rules) is this model's.
//
// What is compared, per packet: the conn list (empty, or one entry: state name, dest, expires within 1 s
// of what is left of the timeout when the record was read), whether IPVS took the packet (a forwarded
// frame in `emitted`: to the server side for client packets, from the VIP for server packets; NAT: to
// the model's dest), and every listed dest's [weight, active, inactive]. The counters are compared as
// FORMAT.md says: the model starts each packet from the counts recorded before it (they include older
// flows' conns), so it predicts only its own flow's change; where the recorded value is lower (an older
// conn expired meanwhile) the comparison is skipped and counted as such, any other difference fails.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <ipvs/dest.hpp>
#include <ipvs/proto/sctp_state.hpp>
#include <ipvs/proto/tcp_state.hpp>
#include <ipvs/proto/timeouts.hpp>
#include <ipvs/proto/udp.hpp>

#include "support/oracle.hpp"

namespace ipvs::test::replay {

enum class l4 { tcp, sctp, udp };

/// The sysctls a sequence may change (all others at their defaults, spec §9).
struct sysctls {
    int sloppy_tcp = 0;
    int sloppy_sctp = 0;
    int secure_tcp = 0;
    int conn_reuse_mode = 1;
    int expire_nodest_conn = 0;

    void set(const std::string& k, int v) {
        if (k == "sloppy_tcp")
            sloppy_tcp = v;
        else if (k == "sloppy_sctp")
            sloppy_sctp = v;
        else if (k == "secure_tcp")
            secure_tcp = v;
        else if (k == "conn_reuse_mode")
            conn_reuse_mode = v;
        else if (k == "expire_nodest_conn")
            expire_nodest_conn = v;
        else
            FAIL("unknown sysctl in the records: " << k);
    }
};

/// The data rows of a markdown table pasted from the spec, each split into trimmed cells (the header
/// row, named by `header_first_cell`, and the |---| rule are dropped). The unit tests check every cell of
/// the spec's tables this way, against the spec's own text rather than a second transcription.
inline std::vector<std::vector<std::string>> markdown_rows(std::string_view table,
                                                           std::string_view header_first_cell) {
    std::vector<std::vector<std::string>> rows;
    std::size_t pos = 0;
    while (pos < table.size()) {
        auto end = table.find('\n', pos);
        if (end == std::string_view::npos) end = table.size();
        const std::string_view line = table.substr(pos, end - pos);
        pos = end + 1;
        if (line.size() < 2 || line.front() != '|' || line.substr(0, 4) == "|---") continue;
        std::vector<std::string> cells;
        std::size_t c = 1;
        while (c < line.size()) {
            auto bar = line.find('|', c);
            if (bar == std::string_view::npos) break;
            std::string cell(line.substr(c, bar - c));
            cell.erase(0, cell.find_first_not_of(' '));
            cell.erase(cell.find_last_not_of(' ') + 1);
            cells.push_back(cell);
            c = bar + 1;
        }
        if (!cells.empty() && cells.front() != header_first_cell) rows.push_back(std::move(cells));
    }
    return rows;
}

/// One line's input, built from its token.
struct packet {
    enum class kind { segment, del, weight0 } what = kind::segment;
    bool from_client = true;
    tcp_flags flags{};             // TCP
    std::vector<std::byte> chunks; // SCTP: the chunks after the common header
    std::uint8_t first_chunk = 0;  // SCTP
};

/// "10.0.0.100:90" / "[fd00::100]:90" → ("10.0.0.100", 90).
inline std::pair<std::string, int> split_hostport(const std::string& s) {
    const auto colon = s.rfind(':');
    REQUIRE_MESSAGE(colon != std::string::npos, "no port in " << s);
    std::string host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return {host, std::stoi(s.substr(colon + 1))};
}

/// TCP flag letters as the tokens spell them (S A F R P U).
inline tcp_flags parse_tcp_letters(const std::string& letters) {
    std::uint8_t b = 0;
    for (char c : letters) {
        switch (c) {
        case 'S':
            b |= tcp_flag::syn;
            break;
        case 'A':
            b |= tcp_flag::ack;
            break;
        case 'F':
            b |= tcp_flag::fin;
            break;
        case 'R':
            b |= tcp_flag::rst;
            break;
        case 'P':
            b |= tcp_flag::psh;
            break;
        case 'U':
            b |= tcp_flag::urg;
            break;
        default:
            FAIL("unknown TCP flag letter in token: " << letters);
        }
    }
    return tcp_flags{b};
}

/// An SCTP chunk name as the tokens spell it → its type (RFC 4960 §3.2).
inline std::uint8_t chunk_type(const std::string& n) {
    static const std::map<std::string, std::uint8_t> types = {
        {"DATA", sctp_chunk::data},
        {"INIT", sctp_chunk::init},
        {"INITACK", sctp_chunk::init_ack},
        {"SACK", sctp_chunk::sack},
        {"HEARTBEAT", sctp_chunk::heartbeat},
        {"HEARTBEATACK", sctp_chunk::heartbeat_ack},
        {"ABORT", sctp_chunk::abort},
        {"SHUTDOWN", sctp_chunk::shutdown},
        {"SHUTDOWNACK", sctp_chunk::shutdown_ack},
        {"ERROR", sctp_chunk::error},
        {"COOKIEECHO", sctp_chunk::cookie_echo},
        {"COOKIEACK", sctp_chunk::cookie_ack},
        {"SHUTDOWNCOMPLETE", sctp_chunk::shutdown_complete},
    };
    const auto it = types.find(n);
    REQUIRE_MESSAGE(it != types.end(), "unknown SCTP chunk in token: " << n);
    return it->second;
}

/// Builds the chunk bytes of `COOKIEECHO+DATA`: each chunk 4 header bytes + 5 value bytes (length 9),
/// padded to 12, so the classifier's walk to the second chunk has to honour the padding.
inline std::vector<std::byte> build_chunks(const std::string& names, std::uint8_t& first) {
    std::vector<std::byte> out;
    std::size_t start = 0;
    bool is_first = true;
    while (start <= names.size()) {
        const auto plus = names.find('+', start);
        const auto n = names.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
        const std::uint8_t t = chunk_type(n);
        if (is_first) first = t;
        is_first = false;
        constexpr std::uint16_t len = 9;
        const std::array<std::uint8_t, 12> c = {t, 0, 0, len, 0xab, 0xab, 0xab, 0xab, 0xab, 0, 0, 0};
        for (auto b : c) out.push_back(std::byte{b});
        if (plus == std::string::npos) break;
        start = plus + 1;
    }
    return out;
}

inline packet parse_packet(const json& line, l4 proto) {
    packet p;
    const std::string dir = line.value("dir", "");
    const std::string tok = line.value("pkt", "");
    if (tok == "DEL" || tok == "W0") {
        p.what = tok == "DEL" ? packet::kind::del : packet::kind::weight0;
        return p;
    }
    // udpstate lines have no token, only `dir` c / s.
    const char who = tok.empty() ? dir.at(0) : tok.at(0);
    REQUIRE_MESSAGE((who == 'c' || who == 's'), "token " << tok << " dir " << dir);
    p.from_client = who == 'c';
    if (proto == l4::tcp) {
        p.flags = parse_tcp_letters(tok.substr(1));
    } else if (proto == l4::sctp) {
        REQUIRE_MESSAGE(tok.size() > 2, "SCTP token " << tok);
        p.chunks = build_chunks(tok.substr(2), p.first_chunk);
    }
    return p;
}

/// Where a check failed: set set, sequence, variant, packet.
struct where {
    std::string text;
};
inline std::ostream& operator<<(std::ostream& os, const where& w) { return os << w.text; }

struct stats {
    std::size_t packets = 0;        ///< lines with a packet, all compared
    std::size_t events = 0;         ///< DEL / W0 lines
    std::size_t counts_checked = 0; ///< dest counter comparisons that had to match
    std::size_t counts_skipped = 0; ///< comparisons skipped: an older conn expired meanwhile
};

/// A flow's conn as IPVS keeps it.
struct conn_model {
    tcp_state tcp = tcp_state::none;
    sctp_state sctp = sctp_state::none;
    bool inactive = true;
    bool nooutput = false;
    bool expire_pending = false; ///< expire_nodest_conn's work item, queued by a dest delete
    std::string dest;
    time_ns timeout{0};
    double armed_at = 0; ///< seconds since the flow began
};

/// What a vector set's meta.json says about the recorded director: its sysctls (all at defaults
/// there) and `ipvsadm -L --timeout`. A set without meta.json gets the kernel's defaults.
struct set_config {
    sysctls defaults;
    proto_timeouts timeouts;
};

/// "Timeout (tcp tcpfin udp): 900 120 300" → the three values.
inline ipvsadm_timeouts parse_ipvsadm_timeout_line(const std::string& s) {
    const auto colon = s.find("):");
    REQUIRE_MESSAGE(colon != std::string::npos, "unexpected timeout line: " << s);
    std::istringstream in(s.substr(colon + 2));
    long tcp = 0, tcpfin = 0, udp = 0;
    in >> tcp >> tcpfin >> udp;
    REQUIRE_MESSAGE(!in.fail(), "unexpected timeout line: " << s);
    return {std::chrono::seconds{tcp}, std::chrono::seconds{tcpfin}, std::chrono::seconds{udp}};
}

inline set_config read_set_config(const std::filesystem::path& dir) {
    set_config c;
    const auto meta = dir / "meta.json";
    if (!std::filesystem::exists(meta)) return c;
    std::ifstream in(meta);
    const json m = json::parse(in);
    if (m.contains("sysctl_vs")) {
        for (const auto& [k, v] : m.at("sysctl_vs").items()) {
            const std::string n = k.substr(k.rfind('.') + 1);
            if (n == "sloppy_tcp" || n == "sloppy_sctp" || n == "secure_tcp" || n == "conn_reuse_mode" ||
                n == "expire_nodest_conn") {
                c.defaults.set(n, std::stoi(v.get<std::string>()));
            }
        }
    }
    if (m.contains("timeouts")) c.timeouts.set_ipvsadm(parse_ipvsadm_timeout_line(m.at("timeouts")));
    return c;
}

class flow_replayer {
public:
    flow_replayer(std::string label, const set_config& cfg)
        : m_label(std::move(label)), m_timeouts(cfg.timeouts), m_defaults(cfg.defaults) {}

    [[nodiscard]] const stats& totals() const noexcept { return m_stats; }

    void line(const json& l) {
        const int i = l.at("i").get<int>();
        if (i == 0) begin_flow(l);
        m_where.text = m_label + " seq=" + l.at("seq").get<std::string>() + " " + m_variant +
                       " af=" + std::to_string(l.at("af").get<int>()) + " i=" + std::to_string(i) +
                       " pkt=" + l.value("pkt", l.value("dir", ""));
        const packet p = parse_packet(l, m_proto);
        baseline_counts();
        expire_by_time();

        bool taken = false;
        if (p.what == packet::kind::segment) {
            taken = p.from_client ? client_packet(p) : server_packet(p);
            ++m_stats.packets;
        } else {
            event(p, l);
            ++m_stats.events;
        }

        const double dt = l.value("dt", 0.0);
        compare_conns(l, m_now + dt);
        if (p.what == packet::kind::segment) compare_verdict(l, p, taken);
        compare_counts(l);
        m_now += dt;
    }

private:
    // ---- configuration of a flow ----------------------------------------------------------------
    void begin_flow(const json& l) {
        const auto& svc = l.at("services").at(0);
        const std::string proto = svc.at("proto").get<std::string>();
        m_proto = proto == "tcp" ? l4::tcp : proto == "sctp" ? l4::sctp : l4::udp;
        REQUIRE_MESSAGE((proto == "tcp" || proto == "sctp" || proto == "udp"), "proto " << proto);
        m_vip = split_hostport(svc.at("vip").get<std::string>()).first;
        // A dest belongs to its service: the same addr:port under another service is another dest.
        m_svc = proto + " " + svc.at("vip").get<std::string>();
        m_sys = m_defaults;
        m_variant = l.value("variant", "");
        if (const auto eq = m_variant.find('='); eq != std::string::npos) {
            m_sys.set(m_variant.substr(0, eq), std::stoi(m_variant.substr(eq + 1)));
        }
        if (l.contains("sysctl")) {
            for (const auto& [k, v] : l.at("sysctl").items()) {
                m_sys.set(k, v.get<int>());
                m_variant += " " + k + "=" + std::to_string(v.get<int>());
            }
        }
        // A new dest goes to the list head: list order is the reverse of the order of addition.
        m_list.clear();
        m_fwd_nat.clear();
        for (const auto& d : svc.at("dests")) {
            const auto key = d.at("dest").get<std::string>();
            m_list.insert(m_list.begin(), key);
            m_fwd_nat[key] = d.at("fwd").get<std::string>() == "nat";
            m_dests[m_svc + " " + key].weight = d.at("weight").get<int>();
            m_deleted.erase(m_svc + " " + key); // re-added: back from the trash, available again
        }
        m_rr_cursor = -1;
        m_conn.reset();
        m_now = 0;
    }

    // The counters recorded before this line, or zero for a dest not seen yet (a fresh dest).
    void baseline_counts() {
        for (auto& [key, d] : m_dests) {
            const auto it = m_recorded.find(key);
            d.active_conns = it == m_recorded.end() ? 0 : it->second[1];
            d.inactive_conns = it == m_recorded.end() ? 0 : it->second[2];
        }
    }

    // ---- conn lifetime ---------------------------------------------------------------------------
    void bind_new_conn(const std::string& key) {
        m_conn = conn_model{};
        m_conn->dest = key;
        m_conn->nooutput = !m_fwd_nat.at(key); // every non-NAT method starts with NOOUTPUT (spec §1.2)
        ++dst(key).inactive_conns;             // every new conn is first counted inactive (spec §1.6)
    }
    void unbind_conn() {
        dest& d = dst(m_conn->dest);
        (m_conn->inactive ? d.inactive_conns : d.active_conns) -= 1;
        m_conn.reset();
    }
    void expire_by_time() {
        if (!m_conn) return;
        const double left = m_conn->armed_at + seconds(m_conn->timeout) - m_now;
        if (m_conn->expire_pending || left <= 0) unbind_conn();
    }
    [[nodiscard]] bool dest_deleted(const std::string& key) const {
        return m_deleted.count(m_svc + " " + key) != 0;
    }
    [[nodiscard]] dest& dst(const std::string& key) { return m_dests.at(m_svc + " " + key); }
    [[nodiscard]] const dest& dst(const std::string& key) const { return m_dests.at(m_svc + " " + key); }

    // ---- rr (spec §2.1), over the model's list -------------------------------------------------
    [[nodiscard]] bool eligible(const std::string& key) const { return dst(key).weight > 0; }
    std::optional<std::string> rr_pick() {
        const int n = static_cast<int>(m_list.size());
        for (int j = m_rr_cursor + 1; j < n; ++j) {
            if (eligible(m_list[static_cast<std::size_t>(j)]))
                return m_list[static_cast<std::size_t>(m_rr_cursor = j)];
        }
        if (m_rr_cursor < 0) return std::nullopt;
        for (int j = 0; j <= m_rr_cursor; ++j) {
            if (eligible(m_list[static_cast<std::size_t>(j)]))
                return m_list[static_cast<std::size_t>(m_rr_cursor = j)];
        }
        return std::nullopt;
    }
    void rr_del(const std::string& key) {
        const auto it = std::find(m_list.begin(), m_list.end(), key);
        REQUIRE(it != m_list.end());
        const int k = static_cast<int>(it - m_list.begin());
        if (m_rr_cursor >= k) --m_rr_cursor; // the cursor on `key` moves to its predecessor
        m_list.erase(it);
    }

    // ---- the packet path -------------------------------------------------------------------------
    [[nodiscard]] bool new_conn_packet(const packet& p) const {
        if (m_proto == l4::tcp) return tcp_is_new_conn_packet(p.flags);
        if (m_proto == l4::sctp) return sctp_is_new_conn_packet(p.first_chunk);
        return false; // UDP has no new-connection packet: nothing is ever reused
    }
    [[nodiscard]] bool expects_new(const conn_model& c) const {
        const auto mode = static_cast<unsigned>(m_sys.conn_reuse_mode);
        if (m_proto == l4::tcp) return tcp_conn_expects_new(c.tcp, mode, c.nooutput);
        if (m_proto == l4::sctp) return sctp_conn_expects_new(c.sctp, mode);
        return false;
    }
    [[nodiscard]] bool may_create(const packet& p) const {
        if (m_proto == l4::tcp) return tcp_may_create_conn(p.flags, m_sys.sloppy_tcp != 0);
        if (m_proto == l4::sctp) return sctp_may_create_conn(p.first_chunk, m_sys.sloppy_sctp != 0);
        return udp_may_create_conn();
    }

    // Client → VIP (spec §7.1 steps 7–15). Returns whether IPVS forwarded the packet.
    bool client_packet(const packet& p) {
        if (m_conn && new_conn_packet(p)) {
            const bool quiescent = m_sys.expire_nodest_conn != 0 && dst(m_conn->dest).weight == 0;
            if (quiescent || expects_new(*m_conn)) unbind_conn(); // expired now, scheduled afresh
        }
        if (m_conn && dest_deleted(m_conn->dest)) {
            if (m_sys.expire_nodest_conn == 0) return false; // dropped; the timer is not re-armed
            unbind_conn();
        }
        if (!m_conn) {
            if (!may_create(p)) return false; // the director's own stack answers (RST / ICMP) or not
            const auto key = rr_pick();
            if (!key) return false; // ip_vs_leave: ICMP port unreachable
            bind_new_conn(*key);
        }
        transition(p, conn_direction(true, m_conn->nooutput));
        return true;
    }

    // RS → client (spec §7.2): a conn's reply is NATed whatever its dest's state.
    bool server_packet(const packet& p) {
        if (!m_conn) return false;
        transition(p, conn_dir::output);
        m_conn->nooutput = false;
        return true;
    }

    void transition(const packet& p, conn_dir dir) {
        dest& d = dst(m_conn->dest);
        if (m_proto == l4::tcp) {
            const tcp_state next =
                tcp_next_state(m_conn->tcp, dir, p.flags, tcp_table_for_secure_tcp(m_sys.secure_tcp));
            (void)move_conn_counts(d, m_conn->inactive, m_conn->tcp, next);
            m_conn->tcp = next;
            m_conn->timeout = m_timeouts[next];
        } else if (m_proto == l4::sctp) {
            const auto ev = sctp_classify(std::span<const std::byte>(p.chunks));
            REQUIRE(ev.has_value());
            const sctp_state next = sctp_next_state(m_conn->sctp, dir, *ev);
            (void)move_conn_counts(d, m_conn->inactive, m_conn->sctp, next);
            m_conn->sctp = next;
            m_conn->timeout = m_timeouts[next];
        } else {
            m_conn->timeout = m_timeouts[udp_next_state(udp_state::normal)];
        }
        m_conn->armed_at = m_now;
    }

    void event(const packet& p, const json& l) {
        REQUIRE_MESSAGE(m_conn.has_value(), m_where << ": an event on a flow without a conn");
        const std::string key = m_conn->dest;
        if (p.what == packet::kind::weight0) {
            dst(key).weight = 0;
            return;
        }
        m_deleted.insert(m_svc + " " + key);
        rr_del(key);
        // expire_nodest_conn queues a walk that expires the dest's conns one jiffy later (spec §1.8).
        if (m_sys.expire_nodest_conn != 0) m_conn->expire_pending = true;
        CHECK_MESSAGE(!l.at("dest_counts").contains(key), m_where << ": deleted dest still listed");
    }

    // ---- comparisons -----------------------------------------------------------------------------
    [[nodiscard]] std::string state_name() const {
        if (m_proto == l4::tcp) return std::string(name(m_conn->tcp));
        if (m_proto == l4::sctp) return std::string(name(m_conn->sctp));
        return std::string(name(udp_state::normal));
    }
    static double seconds(time_ns t) { return std::chrono::duration<double>(t).count(); }

    void compare_conns(const json& l, double read_at) {
        const auto& conns = l.at("conns");
        if (!m_conn) {
            CHECK_MESSAGE(conns.empty(), m_where << ": expected no conn, got " << conns.dump());
            return;
        }
        REQUIRE_MESSAGE(conns.size() == 1,
                        m_where << ": expected one conn (" << state_name() << "), got " << conns.dump());
        const auto& c = conns.at(0);
        CHECK_MESSAGE(c.at("state").get<std::string>() == state_name(),
                      m_where << ": expected " << state_name() << ", got " << c.at("state"));
        if (c.contains("dest")) {
            CHECK_MESSAGE(c.at("dest").get<std::string>() == m_conn->dest,
                          m_where << ": expected dest " << m_conn->dest << ", got " << c.at("dest"));
        }
        // /proc prints whole seconds left: the timeout − 1 right after a packet, less when it was not
        // re-armed (a dropped packet).
        const double left = m_conn->armed_at + seconds(m_conn->timeout) - read_at;
        const double got = c.at("expires").get<double>();
        CHECK_MESSAGE(std::fabs(got - left) <= 1.0,
                      m_where << ": expected expires ≈ " << left << ", got " << got);
    }

    void compare_verdict(const json& l, const packet& p, bool taken) {
        bool forwarded = false;
        for (const auto& e : l.at("emitted")) {
            const auto ifc = e.at("if").get<std::string>();
            if (p.from_client && ifc == "sx") {
                forwarded = true;
                if (m_conn && m_fwd_nat.at(m_conn->dest)) {
                    const auto hp = split_hostport(m_conn->dest);
                    const std::string& host = hp.first;
                    const int port = hp.second;
                    CHECK_MESSAGE(
                        (e.at("dst").get<std::string>() == host && e.at("dport").get<int>() == port),
                        m_where << ": forwarded to " << e.at("dst") << ":" << e.at("dport")
                                << ", the model's dest is " << m_conn->dest);
                }
            }
            if (!p.from_client && ifc == "cx" && e.at("src").get<std::string>() == m_vip) forwarded = true;
        }
        CHECK_MESSAGE(forwarded == taken, m_where << ": expected IPVS " << (taken ? "to take" : "not to take")
                                                  << " the packet, emitted " << l.at("emitted").size()
                                                  << " frame(s)");
    }

    void compare_counts(const json& l) {
        const auto& dc = l.at("dest_counts");
        std::map<std::string, std::array<int, 3>> rec;
        if (dc.is_array()) {
            // tcpstate & co: one dest, the service's only one.
            rec[l.at("services").at(0).at("dests").at(0).at("dest").get<std::string>()] =
                dc.get<std::array<int, 3>>();
        } else {
            for (const auto& [k, v] : dc.items()) rec[k] = v.get<std::array<int, 3>>();
        }
        for (const auto& entry : rec) {
            const std::string& key = entry.first; // no structured binding: clang 14 cannot capture one
            const std::array<int, 3>& r = entry.second;
            auto it = m_dests.find(m_svc + " " + key);
            REQUIRE_MESSAGE(it != m_dests.end(), m_where << ": unknown dest " << key);
            const dest& d = it->second;
            CHECK_MESSAGE(r[0] == d.weight,
                          m_where << ": " << key << " weight " << r[0] << ", model " << d.weight);
            if (r[1] == d.active_conns && r[2] == d.inactive_conns) {
                ++m_stats.counts_checked;
            } else if (r[1] <= d.active_conns && r[2] <= d.inactive_conns) {
                ++m_stats.counts_skipped; // an older conn of this dest expired meanwhile
            } else {
                FAIL_CHECK(m_where << ": " << key << " [active, inactive] expected [" << d.active_conns
                                   << ", " << d.inactive_conns << "], got [" << r[1] << ", " << r[2] << "]");
            }
            m_recorded[m_svc + " " + key] = r;
        }
    }

    std::string m_label;
    where m_where;
    stats m_stats;
    proto_timeouts m_timeouts; // as the set's meta.json says the recorded director had them
    sysctls m_defaults;

    // per flow
    l4 m_proto = l4::tcp;
    sysctls m_sys;
    std::string m_variant;
    std::string m_vip;
    std::string m_svc;               // "proto vip:port": the service a dest key belongs to
    std::vector<std::string> m_list; // the service's dests, list order (head first)
    std::map<std::string, bool> m_fwd_nat;
    int m_rr_cursor = -1; // index into m_list; -1 = the list head
    std::optional<conn_model> m_conn;
    double m_now = 0;

    // per file, keyed "proto vip:port dest": dests outlive sequences (a re-added dest comes back from
    // the trash with its counters)
    std::map<std::string, dest> m_dests;
    std::set<std::string> m_deleted;
    std::map<std::string, std::array<int, 3>> m_recorded;
};

/// Replays one file; returns what was compared.
inline stats replay_file(const std::filesystem::path& file, const std::string& label, const set_config& cfg) {
    flow_replayer r(label, cfg);
    for (const auto& l : read_jsonl(file)) r.line(l);
    return r.totals();
}

/// Replays `name` in every vector set. A set that lacks the file is skipped with a message (6.12 has no
/// sysctl.jsonl); a set directory holding no vector file at all, or a file that yields no packet, fails.
inline void replay_everywhere(const std::string& name) {
    for (const auto& dir : oracle_dirs()) {
        bool any_vectors = false;
        if (std::filesystem::is_directory(dir)) {
            for (const auto& e : std::filesystem::directory_iterator(dir)) {
                any_vectors = any_vectors || e.path().extension() == ".jsonl";
            }
        }
        CHECK_MESSAGE(any_vectors, dir.string() << " holds no vector file");
        const auto f = oracle_file(dir, name);
        if (!f) continue;
        const std::string label = dir.filename().string() + "/" + name;
        const stats s = replay_file(*f, label, read_set_config(dir));
        MESSAGE(label << ": " << s.packets << " packets checked (state, timeout, verdict), " << s.events
                      << " events, dest counters " << s.counts_checked << " compared / " << s.counts_skipped
                      << " skipped (older conns expired)");
        CHECK_MESSAGE(s.packets > 0, label << ": no packet checked");
    }
}

} // namespace ipvs::test::replay
