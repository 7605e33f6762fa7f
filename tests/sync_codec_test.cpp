// SPDX-License-Identifier: MIT
// Tests of the sync codec, the master's decision and batching: recorded Linux 6.1 messages and spec rules.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/sync.hpp>
#include <support/oracle.hpp>

using namespace std::chrono_literals;
using ipvs::sync_encode_status;
using ipvs::sync_message_status;
using ipvs::sync_record_status;
namespace flag = ipvs::sync_flag;

namespace {

using bytes = std::vector<std::uint8_t>;
using ipvs::test::from_hex;
using ipvs::test::json;

// --- Independent truth from the spec: state names, active flags and default timeouts ---------------
// §4.1 (TCP), §5.1 (SCTP), §5.4 (UDP), §3.5 (template states NONE / ASSURED).
struct state_info {
    const char* name;
    bool active;
    int timeout_s;
};
constexpr state_info tcp_states[] = {
    {"NONE", false, 2},       {"ESTABLISHED", true, 900}, {"SYN_SENT", true, 120}, {"SYN_RECV", true, 60},
    {"FIN_WAIT", false, 120}, {"TIME_WAIT", false, 120},  {"CLOSE", false, 10},    {"CLOSE_WAIT", false, 60},
    {"LAST_ACK", false, 30},  {"LISTEN", false, 120},     {"SYNACK", true, 120},
};
constexpr state_info sctp_states[] = {
    {"NONE", false, 2},         {"INIT1", false, 4},   {"INIT", false, 61},       {"C-SENT", false, 61},
    {"C-REPLIED", false, 61},   {"C-WAIT", false, 61}, {"COOKIE", false, 61},     {"C-ECHOED", false, 61},
    {"ESTABLISHED", true, 900}, {"S-SENT", false, 61}, {"S-RECEIVED", false, 61}, {"S-ACK-SENT", false, 61},
    {"REJECTED", false, 4},     {"CLOSED", false, 61},
};
constexpr state_info udp_states[] = {{"UDP", false, 300}};

std::span<const state_info> states_of(std::uint8_t proto) {
    switch (proto) {
    case ipvs::ipproto::tcp:
        return tcp_states;
    case ipvs::ipproto::sctp:
        return sctp_states;
    case ipvs::ipproto::udp:
        return udp_states;
    default:
        return {};
    }
}
std::string state_name(std::uint8_t proto, bool tmpl, std::uint16_t st) {
    if (tmpl) return st == 0 ? "NONE" : st == 1 ? "ASSURED" : "?";
    const auto t = states_of(proto);
    return st < t.size() ? t[st].name : "?";
}
std::optional<std::uint8_t> state_number(std::uint8_t proto, bool tmpl, const std::string& name) {
    if (tmpl) {
        if (name == "NONE") return 0;
        if (name == "ASSURED") return 1;
        return std::nullopt;
    }
    const auto t = states_of(proto);
    for (std::size_t i = 0; i < t.size(); ++i)
        if (name == t[i].name) return static_cast<std::uint8_t>(i);
    return std::nullopt;
}
int default_timeout_s(std::uint8_t proto, std::uint16_t st) {
    const auto t = states_of(proto);
    return st < t.size() ? t[st].timeout_s : -1;
}
std::string proto_name(std::uint8_t p) { return p == 6 ? "TCP" : p == 17 ? "UDP" : p == 132 ? "SCTP" : "?"; }
std::uint8_t proto_number(const std::string& n) {
    return n == "tcp" || n == "TCP"     ? 6
           : n == "udp" || n == "UDP"   ? 17
           : n == "sctp" || n == "SCTP" ? 132
                                        : 0;
}

ipvs::inet_addr addr(const std::string& s) {
    auto a = ipvs::parse_addr(s);
    REQUIRE_MESSAGE(a.has_value(), "bad address " << s);
    return *a;
}
// "10.1.170.170:1025" or "[fd01::aa:af]:1030".
ipvs::endpoint endpoint_of(const std::string& s) {
    const auto colon = s.rfind(':');
    std::string host = s.substr(0, colon);
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    return {addr(host), static_cast<std::uint16_t>(std::stoul(s.substr(colon + 1)))};
}

std::span<const std::byte> as_span(const bytes& b) { return std::as_bytes(std::span(b)); }

// The UDP payload of a recorded Ethernet/IPv4/UDP sync frame (checked to be that).
bytes udp_payload(const bytes& f) {
    REQUIRE(f.size() >= 14 + 20 + 8);
    REQUIRE(f[12] == 0x08);
    REQUIRE(f[13] == 0x00);
    const std::size_t ihl = (f[14] & 0x0f) * 4U;
    REQUIRE(f[14 + 9] == 17);
    const std::size_t udp = 14 + ihl;
    REQUIRE(((f[udp + 2] << 8) | f[udp + 3]) == 8848);
    const std::size_t ulen = static_cast<std::size_t>((f[udp + 4] << 8) | f[udp + 5]);
    REQUIRE(udp + ulen <= f.size());
    return bytes(f.begin() + static_cast<std::ptrdiff_t>(udp + 8),
                 f.begin() + static_cast<std::ptrdiff_t>(udp + ulen));
}

struct decoded {
    ipvs::sync_decode_result res;
    std::vector<ipvs::sync_record> ok;
    std::vector<std::pair<ipvs::sync_record, sync_record_status>> all;
};
decoded decode(const bytes& msg, std::uint8_t syncid = 7) {
    decoded d;
    d.res = ipvs::decode_sync(as_span(msg), syncid, [&](const ipvs::sync_record& r, sync_record_status st) {
        d.all.emplace_back(r, st);
        if (st == sync_record_status::ok) d.ok.push_back(r);
    });
    return d;
}

bytes reencode(const std::vector<ipvs::sync_record>& recs, std::uint8_t syncid, std::uint8_t version,
               bool pad_end = false) {
    std::array<std::byte, ipvs::sync_wire::default_maxlen_v4> buf{};
    ipvs::sync_writer w(buf, syncid, version);
    for (const auto& r : recs) REQUIRE(w.add(r) == sync_encode_status::ok);
    const auto m = w.finish(pad_end);
    bytes out(m.size());
    for (std::size_t i = 0; i < m.size(); ++i) out[i] = std::to_integer<std::uint8_t>(m[i]);
    return out;
}

// Expected wire flags of a master record (spec §1.2, §3.1): forwarding method, NOOUTPUT for every
// method but NAT, INACTIVE unless the state is active, TEMPLATE for templates (never active).
std::uint32_t expected_flags(const std::string& fwd, std::uint8_t proto, bool tmpl, std::uint16_t st) {
    std::uint32_t f = fwd == "dr" ? (flag::fwd_droute | flag::nooutput) : flag::fwd_masq;
    const auto t = states_of(proto);
    const bool active = !tmpl && st < t.size() && t[st].active;
    if (!active) f |= flag::inactive;
    if (tmpl) f |= flag::template_;
    return f;
}

// /proc shows a timeout modulo 2^32 ms (spec §8.2).
long long proc_seconds(long long timeout_s) {
    return static_cast<long long>((timeout_s * 1000ULL) % (1ULL << 32) / 1000);
}

using conn_key = std::tuple<std::string, ipvs::inet_addr, int, ipvs::inet_addr, int>;
conn_key key_of(const json& c) {
    return {c["proto"].get<std::string>(), addr(c["caddr"]), c["cport"].get<int>(), addr(c["vaddr"]),
            c["vport"].get<int>()};
}
conn_key key_of(const ipvs::sync_record& r) {
    return {proto_name(r.protocol), r.caddr, r.cport, r.vaddr, r.vport};
}

// --- Hand-built messages for the unit tests (layout of spec §8.2, written independently of the codec).
std::string hex8(unsigned v) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", v & 0xff);
    return b;
}
std::string hex16(unsigned v) { return hex8(v >> 8) + hex8(v); }
std::string hex32(std::uint32_t v) { return hex16(v >> 16) + hex16(v & 0xffff); }

// An IPv4 v1 record: 10.1.180.1:40001 → 10.0.0.100:180 → 10.0.2.18:7180, fwmark 0, with `opts` (hex)
// appended and ver_size = 36 + options unless `ver_size` is given.
std::string v4_rec(std::uint8_t proto, std::uint32_t flags, std::uint16_t state, std::uint32_t timeout = 900,
                   const std::string& opts = "", int ver_size = -1, std::uint8_t type = 0) {
    const unsigned vs =
        ver_size >= 0 ? static_cast<unsigned>(ver_size) : 36 + static_cast<unsigned>(opts.size() / 2);
    return hex8(type) + hex8(proto) + hex16(vs) + hex32(flags) + hex16(state) + "9c41" + "00b4" + "1c0c" +
           "00000000" + hex32(timeout) + "0a01b401" + "0a000064" + "0a000212" + opts;
}
// An IPv6 v1 record: [fd01::b4:1]:40005 → [fd00::100]:180 → [fd00:2::12]:7180.
std::string v6_rec(std::uint32_t flags, std::uint16_t state, const std::string& opts = "", int ver_size = -1,
                   std::uint8_t type = 1) {
    const unsigned vs =
        ver_size >= 0 ? static_cast<unsigned>(ver_size) : 72 + static_cast<unsigned>(opts.size() / 2);
    return hex8(type) + "06" + hex16(vs) + hex32(flags) + hex16(state) + "9c45" + "00b4" + "1c0c" +
           "00000000" + "00000384" + "fd010000000000000000000000b40001" + "fd000000000000000000000000000100" +
           "fd000002000000000000000000000012" + opts;
}
std::string pad4(const std::string& h) { return h + std::string((4 - (h.size() / 2) % 4) % 4 * 2, '0'); }
bytes v1_msg(std::uint8_t syncid, unsigned nr, const std::string& body, int size = -1) {
    const unsigned n = size >= 0 ? static_cast<unsigned>(size) : 8 + static_cast<unsigned>(body.size() / 2);
    return from_hex("00" + hex8(syncid) + hex16(n) + hex8(nr) + "01" + "0000" + body);
}
// A v0 record 10.1.180.25:40027 → 10.0.0.100:180 → 10.0.2.18:7180.
std::string v0_rec(std::uint8_t proto, std::uint16_t flags, std::uint16_t state,
                   const std::string& seq = "") {
    return "00" + hex8(proto) + "9c5b" + "00b4" + "1c0c" + "0a01b419" + "0a000064" + "0a000212" +
           hex16(flags) + hex16(state) + seq;
}
bytes v0_msg(std::uint8_t syncid, unsigned nr, const std::string& body) {
    return from_hex(hex8(nr) + hex8(syncid) + hex16(4 + static_cast<unsigned>(body.size() / 2)) + body);
}
const std::string seq_opt = "0118"
                            "000003e8"
                            "00000005"
                            "00000003"
                            "000007d0"
                            "00000007"
                            "00000002";

std::vector<sync_record_status> statuses(const bytes& m, std::uint8_t syncid = 7) {
    ipvs::sync_reader rd(std::span<const std::uint8_t>(m), syncid);
    std::vector<sync_record_status> out;
    ipvs::sync_record r;
    for (auto st = rd.next(r);; st = rd.next(r)) {
        out.push_back(st);
        if (st == sync_record_status::end || ipvs::drops_rest(st)) break;
    }
    return out;
}

// Runs `f(set name, lines)` for every vector set that has sync.jsonl; fails if none has.
template <class F>
void for_each_sync_file(F&& f) {
    std::size_t files = 0;
    for (const auto& dir : ipvs::test::oracle_dirs()) {
        const auto path = ipvs::test::oracle_file(dir, "sync.jsonl");
        if (!path) continue;
        ++files;
        f(dir.filename().string(), ipvs::test::read_jsonl(*path));
    }
    CHECK(files > 0);
}

} // namespace

// =====================================================================================================
// Recorded kernel: master messages.

TEST_CASE("oracle: sync master messages decode to the flows' connections and re-encode byte for byte") {
    for_each_sync_file([](const std::string& set, const std::vector<json>& lines) {
        // Every template any flow showed, with its flow's forwarding method and persistence timeout:
        // a template's record may be sent by its timer inside a later flow's window (FORMAT.md).
        struct tmpl_info {
            json conn;
            std::string fwd;
            int persistent;
            std::string flow;
        };
        std::map<conn_key, tmpl_info> templates;
        for (const auto& l : lines) {
            if (l["type"] != "master") continue;
            for (const auto& c : l["conns"])
                if (c["cport"] == 0)
                    templates[key_of(c)] = {c, l["fwd"], l["persistent"].get<int>(), l["flow"]};
        }

        std::size_t messages = 0, records = 0, own = 0, foreign = 0, reencoded = 0;
        for (const auto& l : lines) {
            if (l["type"] != "master") continue;
            const auto version = static_cast<std::uint8_t>(l["sync_version"].get<int>());
            for (const auto& f : l["sync"]) {
                INFO(l["flow"].get<std::string>() << " v" << int(version) << " packet " << l["i"].get<int>());
                const auto msg = udp_payload(from_hex(f.get<std::string>()));
                const auto d = decode(msg);
                ++messages;
                REQUIRE(d.res.status == sync_message_status::ok);
                CHECK(d.res.header.version == version);
                CHECK(d.res.header.syncid == 7);
                CHECK(d.res.stop == sync_record_status::end);
                CHECK(d.res.records_skipped == 0);
                REQUIRE(d.ok.size() == d.res.header.nr_conns);
                for (const auto& r : d.ok) {
                    ++records;
                    INFO("record " << proto_name(r.protocol) << " cport " << r.cport << " vport " << r.vport);
                    const json* c = nullptr;
                    bool of_this_line = true;
                    std::string fwd = l["fwd"];
                    int persistent = l["persistent"].is_null() ? 0 : l["persistent"].get<int>();
                    for (const auto& e : l["conns"])
                        if (key_of(e) == key_of(r)) c = &e;
                    if (c) {
                        ++own;
                    } else {
                        // Not this flow's: must be a template of another flow, sent by its timer.
                        REQUIRE(r.is_template());
                        const auto it = templates.find(key_of(r));
                        REQUIRE(it != templates.end());
                        CHECK(it->second.flow != l["flow"].get<std::string>());
                        c = &it->second.conn;
                        of_this_line = false;
                        fwd = it->second.fwd;
                        persistent = it->second.persistent;
                        ++foreign;
                    }
                    CHECK(r.daddr == addr((*c)["daddr"]));
                    CHECK(r.dport == (*c)["dport"].get<int>());
                    CHECK(state_name(r.protocol, r.is_template(), r.state) ==
                          (*c)["state"].get<std::string>());
                    CHECK(r.flags == expected_flags(fwd, r.protocol, r.is_template(), r.state));
                    CHECK(r.fwmark == 0);
                    CHECK_FALSE(r.has_seq);
                    const int want = r.is_template() ? persistent : default_timeout_s(r.protocol, r.state);
                    // Version 0 records carry no timeout.
                    CHECK(r.timeout == (version == 1 ? static_cast<std::uint32_t>(want) : 0U));
                    if (of_this_line) {
                        // The snapshot was taken within 3.6 s of the packet.
                        CHECK((*c)["expires"].get<int>() <= want);
                        if (!r.is_template()) CHECK((*c)["expires"].get<int>() >= want - 5);
                    }
                }
                CHECK(reencode(d.ok, 7, version) == msg);
                ++reencoded;
            }
        }
        MESSAGE(set << ": " << messages << " master messages, " << records << " records (" << own
                    << " of the flow, " << foreign << " timer-sent templates), " << reencoded
                    << " re-encoded identically");
        CHECK(messages > 0);
        CHECK(records > 0);
        CHECK(foreign > 0);
    });
}

// =====================================================================================================
// Recorded kernel: backup messages.

TEST_CASE("oracle: sync backup applies exactly the records the decoder accepts") {
    for_each_sync_file([](const std::string& set, const std::vector<json>& lines) {
        std::map<conn_key, json> prev;
        std::size_t messages = 0, accepted = 0, skipped = 0, dropped = 0, rejected = 0, reencoded = 0;
        for (const auto& l : lines) {
            if (l["type"] == "backup_setup") {
                CHECK(l["daemon"].get<std::string>().find("syncid=7") != std::string::npos);
                continue;
            }
            if (l["type"] != "backup") continue;
            const std::string name = l["case"];
            const std::string note = l["note"];
            INFO("case " << name << ": " << note);
            ++messages;
            const auto msg = from_hex(l["message_hex"]);
            const auto d = decode(msg, 7);

            // What the kernel did: connections that are new, or changed state / real server, or whose
            // timer was restarted by the message.
            std::map<conn_key, json> cur;
            for (const auto& c : l["conns"]) cur[key_of(c)] = c;
            std::set<conn_key> touched;
            for (const auto& [k, c] : cur) {
                const auto it = prev.find(k);
                if (it == prev.end() || it->second["state"] != c["state"] ||
                    it->second["daddr"] != c["daddr"] || it->second["dport"] != c["dport"] ||
                    it->second["expires"].get<long long>() < c["expires"].get<long long>())
                    touched.insert(k);
            }
            std::set<conn_key> applied;
            for (const auto& r : d.ok) applied.insert(key_of(r));
            CHECK(applied == touched);
            CHECK(d.ok.size() == applied.size());

            // Each accepted record became the connection it describes.
            for (const auto& r : d.ok) {
                const auto it = cur.find(key_of(r));
                REQUIRE(it != cur.end());
                const auto& c = it->second;
                CHECK(r.daddr == addr(c["daddr"]));
                CHECK(r.dport == c["dport"].get<int>());
                CHECK(state_name(r.protocol, r.is_template(), r.state) == c["state"].get<std::string>());
                // Timeout from the message, else the state's default (a v0 template: 180 s).
                long long want = r.timeout;
                if (want == 0) want = r.is_template() ? 180 : default_timeout_s(r.protocol, r.state);
                const long long shown = proc_seconds(want);
                CHECK(c["expires"].get<long long>() <= shown);
                CHECK(c["expires"].get<long long>() >= shown - 2);
                CHECK((ipvs::sync_backup_flags(r.flags) & flag::sync) != 0);
            }

            // The note says what is special; when it says the kernel refused something, so must we.
            const bool kernel_refused =
                note.find("ignored") != std::string::npos || note.find("dropped") != std::string::npos ||
                (note.find("skipped") != std::string::npos && note.find("kept") == std::string::npos);
            const bool we_refused = d.res.status != sync_message_status::ok || d.res.records_skipped > 0 ||
                                    d.res.stop != sync_record_status::end;
            if (kernel_refused) CHECK(we_refused);
            if (note.find("syncid") != std::string::npos)
                CHECK(d.res.status == sync_message_status::other_syncid);
            if (note.find("size !=") != std::string::npos || note.find("cut inside") != std::string::npos)
                CHECK(d.res.status == sync_message_status::size_mismatch);
            if (note.find("version-0") != std::string::npos) CHECK(d.res.header.version == 0);

            if (d.res.status != sync_message_status::ok) {
                ++rejected;
            } else {
                skipped += d.res.records_skipped;
                dropped += d.res.stop != sync_record_status::end;
            }
            accepted += d.ok.size();
            std::string verdict = to_string(d.res.status);
            for (const auto& [r, st] : d.all) verdict += std::string(", ") + to_string(st);
            if (d.res.stop != sync_record_status::end)
                verdict += std::string(", then ") + to_string(d.res.stop);
            MESSAGE(name << ": " << verdict);

            // Re-encode what a master would send the same way: messages where every record was
            // accepted and carried no unknown option (the writer only writes the options it knows).
            // Crafted messages may pad their end to 4 bytes, which Linux does not.
            const bool clean = d.res.status == sync_message_status::ok &&
                               d.res.stop == sync_record_status::end && d.res.records_skipped == 0 &&
                               note.find("unknown OPTIONAL") == std::string::npos &&
                               d.ok.size() == d.res.header.nr_conns;
            if (clean) {
                const bool padded =
                    msg.size() % 4 == 0 && reencode(d.ok, 7, d.res.header.version).size() != msg.size();
                CHECK(reencode(d.ok, 7, d.res.header.version, padded) == msg);
                ++reencoded;
            }
            prev = cur;
        }
        MESSAGE(set << ": " << messages << " backup messages, " << accepted << " records applied, " << skipped
                    << " skipped, " << dropped << " messages cut short, " << rejected << " rejected whole, "
                    << reencoded << " re-encoded identically");
        CHECK(messages > 0);
        CHECK(accepted > 0);
        CHECK(skipped > 0);
        CHECK(dropped > 0);
        CHECK(rejected > 0);
    });
}

// =====================================================================================================
// Recorded kernel: the master's decision, replayed packet by packet.

TEST_CASE("oracle: sync master sends a record exactly after the packets the kernel sent one after") {
    for_each_sync_file([](const std::string& set, const std::vector<json>& lines) {
        std::map<std::pair<std::string, int>, std::vector<const json*>> flows;
        std::vector<std::pair<std::string, int>> order;
        for (const auto& l : lines) {
            if (l["type"] != "master") continue;
            const auto k = std::make_pair(l["flow"].get<std::string>(), l["sync_version"].get<int>());
            if (!flows.count(k)) order.push_back(k);
            flows[k].push_back(&l);
        }
        std::size_t packets = 0, records = 0, nflows = 0;
        for (const auto& k : order) {
            const auto& fl = flows[k];
            const json& first = *fl.front();
            INFO("flow " << k.first << " v" << k.second);
            ++nflows;
            const auto proto = proto_number(first["proto"]);
            const auto client = endpoint_of(first["client"]);
            const int persistent = first["persistent"].is_null() ? 0 : first["persistent"].get<int>();
            const auto& sc = first["sysctl"];
            ipvs::sync_sysctl s;
            {
                unsigned th = 0, pe = 0;
                REQUIRE(std::sscanf(sc["sync_threshold"].get<std::string>().c_str(), "%u %u", &th, &pe) == 2);
                s.sync_threshold = th;
                s.sync_period = pe;
                s.sync_refresh_period =
                    std::chrono::seconds{std::stoi(sc["sync_refresh_period"].get<std::string>())};
                s.sync_retries = static_cast<std::uint32_t>(std::stoi(sc["sync_retries"].get<std::string>()));
                s.sync_persist_mode = sc["sync_persist_mode"] == "1";
                s.sync_version = static_cast<std::uint8_t>(std::stoi(sc["sync_version"].get<std::string>()));
                REQUIRE(s.valid());
            }
            // CLARIFICATIONS "Sync master timing": packets ≈ 3.6 s apart, the first ≈ 0.5 s in.
            const auto t_of = [](int i) { return 500ms + i * 3600ms; };
            auto conn = ipvs::sync_fields_at_creation(proto, t_of(0), false, persistent != 0);
            auto tmpl = ipvs::sync_fields_at_creation(proto, t_of(0), true);
            tmpl.timeout = std::chrono::seconds{persistent};
            std::uint32_t in_pkts = 0;
            for (const json* lp : fl) {
                const json& l = *lp;
                const int i = l["i"];
                INFO("packet " << i << " " << l["pkt"].get<std::string>());
                for (const auto& c : l["conns"]) {
                    const bool is_tmpl = c["cport"] == 0;
                    const auto st = state_number(proto, is_tmpl, c["state"]);
                    REQUIRE(st.has_value());
                    if (is_tmpl) {
                        tmpl.state = *st;
                    } else {
                        conn.state = *st;
                        conn.timeout = std::chrono::seconds{default_timeout_s(proto, *st)};
                    }
                }
                std::string want;
                if (l["pkt"].get<std::string>()[0] == 'c') {
                    const auto a =
                        ipvs::sync_on_packet(conn, ++in_pkts, persistent ? &tmpl : nullptr, s, t_of(i));
                    if (a.conn) want += 'C';
                    if (a.controller) want += 'T';
                }
                // What the kernel sent for this flow's conn (C) and template (T), in order.
                std::string got;
                for (const auto& f : l["sync"]) {
                    const auto d = decode(udp_payload(from_hex(f.get<std::string>())));
                    for (const auto& r : d.ok) {
                        if (r.caddr != client.addr) continue;
                        if (!r.is_template() && r.cport == client.port) got += 'C';
                        if (r.is_template() && r.cport == 0) got += 'T';
                    }
                }
                CHECK(got == want);
                ++packets;
                records += got.size();
            }
        }
        MESSAGE(set << ": replayed the decision over " << nflows << " flows, " << packets << " packets, "
                    << records << " records sent");
        CHECK(packets > 0);
        CHECK(records > 0);
    });
}

// =====================================================================================================
// Decoding, unit by unit.

TEST_CASE("sync: a v1 IPv4 record decodes field by field") {
    // Recorded: one TCP ESTABLISHED NAT conn 10.1.180.1:40001 → 10.0.0.100:180 → 10.0.2.18:7180, 900 s.
    const auto m =
        from_hex("0007002c01010000000600240000000000019c4100b41c0c00000000000003840a01b4010a0000640a000212");
    ipvs::sync_reader rd(std::span<const std::uint8_t>(m), 7);
    REQUIRE(rd.status() == sync_message_status::ok);
    CHECK(rd.header().version == 1);
    CHECK(rd.header().syncid == 7);
    CHECK(rd.header().size == 44);
    CHECK(rd.header().nr_conns == 1);
    ipvs::sync_record r;
    REQUIRE(rd.next(r) == sync_record_status::ok);
    CHECK(r.af == ipvs::family::v4);
    CHECK(r.protocol == 6);
    CHECK(r.flags == 0);
    CHECK(r.state == 1);
    CHECK(r.cport == 40001);
    CHECK(r.vport == 180);
    CHECK(r.dport == 7180);
    CHECK(r.fwmark == 0);
    CHECK(r.timeout == 900);
    CHECK(r.caddr == addr("10.1.180.1"));
    CHECK(r.vaddr == addr("10.0.0.100"));
    CHECK(r.daddr == addr("10.0.2.18"));
    CHECK_FALSE(r.has_seq);
    CHECK(r.pe_data.empty());
    CHECK(rd.next(r) == sync_record_status::end);
    CHECK(rd.next(r) == sync_record_status::end);
}

TEST_CASE("sync: a v1 IPv6 record is 72 bytes; type bit 0 alone decides the family") {
    SUBCASE("type 1") {
        const auto m = v1_msg(7, 1, v6_rec(0, 1));
        ipvs::sync_reader rd(std::span<const std::uint8_t>(m), 7);
        ipvs::sync_record r;
        REQUIRE(rd.next(r) == sync_record_status::ok);
        CHECK(r.af == ipvs::family::v6);
        CHECK(r.caddr == addr("fd01::b4:1"));
        CHECK(r.vaddr == addr("fd00::100"));
        CHECK(r.daddr == addr("fd00:2::12"));
        CHECK(r.cport == 40005);
        CHECK(rd.offset() == 8 + 72);
    }
    SUBCASE("type 3 is IPv6 too") {
        CHECK(statuses(v1_msg(7, 1, v6_rec(0, 1, "", -1, 3)))[0] == sync_record_status::ok);
    }
    SUBCASE("type 2 drops the message") {
        CHECK(statuses(v1_msg(7, 2, v4_rec(6, 0, 1, 900, "", -1, 2) + v4_rec(6, 0, 1)))[0] ==
              sync_record_status::drop_bad_type);
    }
}

TEST_CASE("sync: v1 options — SEQ_DATA, PE_DATA + PE_NAME, the optional bit, padding") {
    SUBCASE("SEQ_DATA values and the padded next record") {
        // A 62-byte record (36 + 2 + 24), 2 bytes of padding, then a second record at offset 72.
        const auto body =
            pad4(v4_rec(6, flag::in_seq | flag::out_seq, 1, 900, seq_opt)) + v4_rec(17, 0x100, 0, 300);
        const auto m = v1_msg(7, 2, body);
        ipvs::sync_reader rd(std::span<const std::uint8_t>(m), 7);
        ipvs::sync_record r;
        REQUIRE(rd.next(r) == sync_record_status::ok);
        CHECK(r.has_seq);
        CHECK(r.in_seq == ipvs::sync_seq{1000, 5, 3});
        CHECK(r.out_seq == ipvs::sync_seq{2000, 7, 2});
        CHECK(rd.offset() == 8 + 64);
        REQUIRE(rd.next(r) == sync_record_status::ok);
        CHECK(r.protocol == 17);
        CHECK(rd.next(r) == sync_record_status::end);
    }
    SUBCASE("PE_DATA and PE_NAME are views into the message") {
        const std::string opts = "0204"
                                 "41424344"
                                 "0303"
                                 "736970"; // data "ABCD", name "sip"
        const auto m = v1_msg(7, 1, pad4(v4_rec(17, 0x100, 0, 300, opts)));
        const auto d = decode(m);
        REQUIRE(d.ok.size() == 1);
        const auto& r = d.ok[0];
        REQUIRE(r.pe_data.size() == 4);
        REQUIRE(r.pe_name.size() == 3);
        CHECK(std::to_integer<char>(r.pe_data[0]) == 'A');
        CHECK(std::to_integer<char>(r.pe_name[2]) == 'p');
        CHECK(reinterpret_cast<const std::uint8_t*>(r.pe_name.data()) == m.data() + 8 + 36 + 6 + 2);
    }
    SUBCASE("an unknown optional option (0x47) is stepped over") {
        const auto m = v1_msg(7, 1, v4_rec(6, 0, 1, 900, "47026162"));
        CHECK(statuses(m)[0] == sync_record_status::ok);
    }
    SUBCASE("a known option with the optional bit (0x41) is still SEQ_DATA") {
        std::string o = seq_opt;
        o[0] = '4';
        const auto d = decode(v1_msg(7, 1, pad4(v4_rec(6, flag::in_seq, 1, 900, o))));
        REQUIRE(d.ok.size() == 1);
        CHECK(d.ok[0].has_seq);
        CHECK(d.ok[0].in_seq.init_seq == 1000);
    }
}

TEST_CASE("sync: message-level rejections") {
    const auto good = v4_rec(6, 0, 1);
    SUBCASE("shorter than a v0 header") {
        const auto m = from_hex("000700");
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m), 7).status() ==
              sync_message_status::too_short);
    }
    SUBCASE("size field not the datagram length, either way") {
        auto m = v1_msg(7, 1, good, 48);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m), 7).status() ==
              sync_message_status::size_mismatch);
        m = v1_msg(7, 1, good);
        m.push_back(0);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m), 7).status() ==
              sync_message_status::size_mismatch);
    }
    SUBCASE("syncid: another one, and 0, are ignored by a backup with syncid 7; a backup with 0 takes all") {
        const auto m8 = v1_msg(8, 1, good), m0 = v1_msg(0, 1, good);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m8), 7).status() ==
              sync_message_status::other_syncid);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m0), 7).status() ==
              sync_message_status::other_syncid);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m8), 0).status() == sync_message_status::ok);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m0), 0).status() == sync_message_status::ok);
    }
    SUBCASE("v1 needs reserved 0, version 1 and spare 0; anything else is read as v0") {
        auto m = v1_msg(7, 1, good);
        CHECK(ipvs::sync_reader(std::span<const std::uint8_t>(m), 7).header().version == 1);
        for (const std::size_t at : {5U, 6U, 7U}) {
            auto x = m;
            x[at] = static_cast<std::uint8_t>(x[at] + 1);
            ipvs::sync_reader rd(std::span<const std::uint8_t>(x), 7);
            CHECK(rd.status() == sync_message_status::ok);
            CHECK(rd.header().version == 0);
            CHECK(rd.header().nr_conns == 0); // byte 0, the v0 nr_conns
        }
    }
    SUBCASE("a rejected message yields no record") {
        const auto m = v1_msg(8, 1, good);
        CHECK(statuses(m) == std::vector{sync_record_status::end});
    }
}

TEST_CASE("sync: records that are skipped, and the next one is still read") {
    const auto next = v4_rec(6, 0, 1);
    const auto check_skip = [&](const std::string& rec, sync_record_status want) {
        const auto st = statuses(v1_msg(7, 2, pad4(rec) + next));
        REQUIRE(st.size() == 3);
        CHECK(st[0] == want);
        CHECK(ipvs::is_skip(st[0]));
        CHECK_FALSE(ipvs::drops_rest(st[0]));
        CHECK(st[1] == sync_record_status::ok);
        CHECK(st[2] == sync_record_status::end);
    };
    SUBCASE("unknown protocol (GRE)") {
        check_skip(v4_rec(47, 0, 0), sync_record_status::skip_unknown_protocol);
    }
    SUBCASE("AH and ESP are known protocols with one state") {
        check_skip(v4_rec(50, 0, 1), sync_record_status::skip_bad_state);
        CHECK(statuses(v1_msg(7, 1, v4_rec(51, 0, 0)))[0] == sync_record_status::ok);
    }
    SUBCASE("state counts: TCP 11, UDP 1, SCTP 14") {
        CHECK(statuses(v1_msg(7, 1, v4_rec(6, 0, 10)))[0] == sync_record_status::ok);
        check_skip(v4_rec(6, 0, 11), sync_record_status::skip_bad_state);
        check_skip(v4_rec(6, 0, 12), sync_record_status::skip_bad_state);
        CHECK(statuses(v1_msg(7, 1, v4_rec(17, 0, 0)))[0] == sync_record_status::ok);
        check_skip(v4_rec(17, 0, 1), sync_record_status::skip_bad_state);
        CHECK(statuses(v1_msg(7, 1, v4_rec(132, 0, 13)))[0] == sync_record_status::ok);
        check_skip(v4_rec(132, 0, 14), sync_record_status::skip_bad_state);
    }
    SUBCASE("templates: state 0 and 1 only, protocol not looked up") {
        CHECK(statuses(v1_msg(7, 1, v4_rec(6, flag::template_, 1)))[0] == sync_record_status::ok);
        CHECK(statuses(v1_msg(7, 1, v4_rec(47, flag::template_, 0)))[0] == sync_record_status::ok);
        check_skip(v4_rec(6, flag::template_, 2), sync_record_status::skip_bad_template_state);
    }
    SUBCASE("TEMPLATE with NO_CPORT") {
        check_skip(v4_rec(6, flag::template_ | flag::no_cport, 0),
                   sync_record_status::skip_template_no_cport);
        CHECK(statuses(v1_msg(7, 1, v4_rec(6, flag::no_cport, 1)))[0] == sync_record_status::ok);
    }
    SUBCASE("ONE_PACKET") {
        check_skip(v4_rec(17, flag::one_packet, 0), sync_record_status::skip_one_packet);
    }
    SUBCASE("an unknown mandatory option, even followed by a malformed one") {
        check_skip(v4_rec(6, 0, 1, 900, "07026162"), sync_record_status::skip_unknown_mandatory_option);
        check_skip(v4_rec(6, 0, 1, 900, "070261620100"), sync_record_status::skip_unknown_mandatory_option);
    }
}

TEST_CASE("sync: records that drop the rest of the message") {
    const auto after = v4_rec(6, 0, 1);
    const auto check_drop = [&](const std::string& rec, sync_record_status want, unsigned nr = 2) {
        const auto m = v1_msg(7, nr, rec + (nr > 1 ? after : ""));
        const auto st = statuses(m);
        CHECK(st.back() == want);
        CHECK(ipvs::drops_rest(want));
        CHECK_FALSE(ipvs::is_skip(want));
        const auto d = decode(m);
        CHECK(d.res.stop == want);
        CHECK(d.ok.empty());
    };
    SUBCASE("nr_conns larger than the records: the first is applied, then the message ends") {
        const auto m = v1_msg(7, 5, after);
        CHECK(statuses(m) == std::vector{sync_record_status::ok, sync_record_status::drop_truncated});
    }
    SUBCASE("fewer than 36 bytes left") {
        check_drop(after.substr(0, 70), sync_record_status::drop_truncated, 1);
        const auto m = v1_msg(7, 2, after + after.substr(0, 40));
        CHECK(statuses(m) == std::vector{sync_record_status::ok, sync_record_status::drop_truncated});
    }
    SUBCASE("record size past the message") {
        check_drop(v4_rec(6, 0, 1, 900, "", 80), sync_record_status::drop_size_overrun, 1);
    }
    SUBCASE("record version nibble 1") {
        check_drop(v4_rec(6, 0, 1, 900, "", 0x1024), sync_record_status::drop_bad_version);
    }
    SUBCASE("bad type") { check_drop(v4_rec(6, 0, 1, 900, "", -1, 4), sync_record_status::drop_bad_type); }
    SUBCASE("record shorter than its fixed part") {
        check_drop(v4_rec(6, 0, 1, 900, "", 20), sync_record_status::drop_record_too_short);
        check_drop(v4_rec(6, 0, 1, 900, "", 0), sync_record_status::drop_record_too_short);
        // An IPv6 type with an IPv4-sized record.
        check_drop(v4_rec(6, 0, 1, 900, "", -1, 1), sync_record_status::drop_record_too_short);
    }
    SUBCASE("option header or data past the record") {
        check_drop(v4_rec(6, 0, 1, 900, "01"), sync_record_status::drop_option_truncated);
        check_drop(v4_rec(6, 0, 1, 900,
                          "0218"
                          "0000"),
                   sync_record_status::drop_option_truncated);
    }
    SUBCASE("zero option length") {
        check_drop(v4_rec(6, 0, 1, 900, "01000000"), sync_record_status::drop_zero_option_length);
    }
    SUBCASE("SEQ_DATA of the wrong length") {
        check_drop(v4_rec(6, flag::in_seq, 1, 900, "0114" + std::string(40, '0')),
                   sync_record_status::drop_bad_seq_length);
    }
    SUBCASE("PE_NAME longer than 16 bytes") {
        check_drop(v4_rec(17, 0, 0, 300,
                          "020141"
                          "0311" +
                              std::string(34, '1')),
                   sync_record_status::drop_pe_name_too_long);
    }
    SUBCASE("duplicate options") {
        check_drop(v4_rec(6, flag::in_seq, 1, 900, seq_opt + seq_opt),
                   sync_record_status::drop_duplicate_option);
        check_drop(v4_rec(17, 0, 0, 300,
                          "020141"
                          "020142"),
                   sync_record_status::drop_duplicate_option);
        check_drop(v4_rec(17, 0, 0, 300,
                          "020141"
                          "030141"
                          "030142"),
                   sync_record_status::drop_duplicate_option);
    }
    SUBCASE("a drop after a good record keeps the good one") {
        const auto m = v1_msg(7, 3, after + v4_rec(6, 0, 1, 900, "", -1, 2) + after);
        const auto d = decode(m);
        CHECK(d.ok.size() == 1);
        CHECK(d.res.stop == sync_record_status::drop_bad_type);
    }
}

TEST_CASE("sync: version 0 messages — 4-byte header, 24-byte records, seq data by flag") {
    SUBCASE("recorded v0 TCP ESTABLISHED") {
        const auto m = from_hex("0107001c00069c5b00b41c0c0a01b4190a0000640a00021200000001");
        const auto d = decode(m);
        CHECK(d.res.header.version == 0);
        CHECK(d.res.header.nr_conns == 1);
        REQUIRE(d.ok.size() == 1);
        const auto& r = d.ok[0];
        CHECK(r.protocol == 6);
        CHECK(r.cport == 40027);
        CHECK(r.vport == 180);
        CHECK(r.dport == 7180);
        CHECK(r.caddr == addr("10.1.180.25"));
        CHECK(r.daddr == addr("10.0.2.18"));
        CHECK(r.state == 1);
        CHECK(r.timeout == 0);
        CHECK(reencode(d.ok, 7, 0) == m);
    }
    SUBCASE("seq data follows the record when the flags say so") {
        const auto m = v0_msg(7, 2, v0_rec(6, 0x0600, 1, seq_opt.substr(4)) + v0_rec(17, 0x100, 0));
        const auto d = decode(m);
        REQUIRE(d.ok.size() == 2);
        CHECK(d.ok[0].has_seq);
        CHECK(d.ok[0].out_seq == ipvs::sync_seq{2000, 7, 2});
        CHECK(d.ok[1].protocol == 17);
        CHECK(reencode(d.ok, 7, 0) == m);
    }
    SUBCASE("truncated record or seq data drops the rest") {
        CHECK(statuses(v0_msg(7, 2, v0_rec(6, 0, 1)))[1] == sync_record_status::drop_truncated);
        CHECK(statuses(v0_msg(7, 1, v0_rec(6, 0x0400, 1, "0000")))[0] ==
              sync_record_status::drop_option_truncated);
    }
    SUBCASE("the same skip rules") {
        CHECK(statuses(v0_msg(7, 1, v0_rec(47, 0, 0)))[0] == sync_record_status::skip_unknown_protocol);
        CHECK(statuses(v0_msg(7, 1, v0_rec(6, 0, 11)))[0] == sync_record_status::skip_bad_state);
        CHECK(statuses(v0_msg(7, 1, v0_rec(6, 0x1800, 0)))[0] == sync_record_status::skip_template_no_cport);
    }
    SUBCASE("syncid and size rules as for v1") {
        const auto m = v0_msg(8, 1, v0_rec(6, 0, 1));
        CHECK(decode(m).res.status == sync_message_status::other_syncid);
        auto s = v0_msg(7, 1, v0_rec(6, 0, 1));
        s.pop_back();
        CHECK(decode(s).res.status == sync_message_status::size_mismatch);
    }
}

// =====================================================================================================
// Encoding.

TEST_CASE("sync: the writer lays a message out as the recorded master did") {
    // Recorded tcp_persist packet 3 (v1, syncid 7): the conn, then its template, 80 bytes.
    ipvs::sync_record c;
    c.protocol = 6;
    c.state = 1;
    c.cport = 1028;
    c.vport = 173;
    c.dport = 7173;
    c.timeout = 900;
    c.caddr = addr("10.1.170.173");
    c.vaddr = addr("10.0.0.100");
    c.daddr = addr("10.0.2.17");
    auto t = c;
    t.flags = flag::template_ | flag::inactive;
    t.cport = 0;
    t.timeout = 60;
    const auto got = reencode({c, t}, 7, 1);
    CHECK(ipvs::test::to_hex(got.data(), got.size()) == "0007005002010000"
                                                        "000600240000000000010404"
                                                        "00ad1c0500000000000003840a01aaad0a0000640a000211"
                                                        "000600240000110000010000"
                                                        "00ad1c05000000000000003c0a01aaad0a0000640a000211");
    CHECK(got ==
          from_hex("000700500201000000060024000000000001040400ad1c0500000000000003840a01aaad0a0000640a0002"
                   "1100060024000011000001000000ad1c05000000000000003c0a01aaad0a0000640a000211"));
    SUBCASE("HASHED is never sent") {
        auto h = c;
        h.flags |= flag::hashed;
        CHECK(reencode({h}, 7, 1) == reencode({c}, 7, 1));
    }
    SUBCASE("v0: the recorded 52-byte conn + template message") {
        // tcp_persist v0 packet 3.
        ipvs::sync_record c0 = c, t0 = t;
        c0.cport = 1038;
        t0.cport = 0;
        const auto m = reencode({c0, t0}, 7, 0);
        CHECK(ipvs::test::to_hex(m.data(), m.size()) == "02070034"
                                                        "0006040e00ad1c050a01aaad0a0000640a00021100000001"
                                                        "0006000000ad1c050a01aaad0a0000640a00021111000001");
    }
}

TEST_CASE("sync: writer padding, capacity and refusals") {
    ipvs::sync_record r;
    r.protocol = 6;
    r.state = 1;
    r.caddr = addr("10.1.180.1");
    r.vaddr = addr("10.0.0.100");
    r.daddr = addr("10.0.2.18");
    SUBCASE("padding goes before the next record, never after the last") {
        auto s = r;
        s.flags = flag::in_seq;
        s.in_seq = {1, 2, 3};
        std::array<std::byte, 1472> buf{};
        ipvs::sync_writer w(buf, 7);
        REQUIRE(w.add(s) == sync_encode_status::ok);
        CHECK(w.size() == 8 + 62);
        CHECK(w.finish().size() == 70);
        CHECK(w.finish(true).size() == 72);
        REQUIRE(w.add(r) == sync_encode_status::ok);
        CHECK(w.size() == 8 + 64 + 36);
        const auto m = w.finish();
        const auto st = statuses(bytes(reinterpret_cast<const std::uint8_t*>(m.data()),
                                       reinterpret_cast<const std::uint8_t*>(m.data()) + m.size()));
        CHECK(st == std::vector{sync_record_status::ok, sync_record_status::ok, sync_record_status::end});
    }
    SUBCASE("1472 bytes hold 40 IPv4, 20 IPv6 or 61 v0 records") {
        const auto count = [&](const ipvs::sync_record& x, std::uint8_t v) {
            std::array<std::byte, 1472> buf{};
            ipvs::sync_writer w(buf, 7, v);
            unsigned n = 0;
            while (w.add(x) == sync_encode_status::ok) ++n;
            CHECK(w.add(x) == sync_encode_status::no_room);
            CHECK(w.size() <= 1472);
            return n;
        };
        CHECK(count(r, 1) == 40);
        CHECK(count(r, 0) == 61);
        auto r6 = r;
        r6.af = ipvs::family::v6;
        r6.caddr = addr("fd01::1");
        r6.vaddr = addr("fd00::100");
        r6.daddr = addr("fd00:2::12");
        CHECK(count(r6, 1) == 20);
    }
    SUBCASE("at most 255 records") {
        std::vector<std::byte> buf(65535);
        ipvs::sync_writer w(buf, 7);
        CHECK(w.capacity() == 65535);
        for (int i = 0; i < 255; ++i) REQUIRE(w.add(r) == sync_encode_status::ok);
        CHECK(w.add(r) == sync_encode_status::too_many_records);
        CHECK(decode(reencode({}, 7, 1)).res.header.nr_conns == 0);
    }
    SUBCASE("v0 is IPv4 only; PE limits") {
        std::array<std::byte, 1472> buf{};
        ipvs::sync_writer w0(buf, 7, 0);
        auto r6 = r;
        r6.af = ipvs::family::v6;
        CHECK(w0.add(r6) == sync_encode_status::v0_needs_ipv4);
        ipvs::sync_writer w1(buf, 7, 1);
        std::array<std::byte, 17> name{};
        auto p = r;
        p.pe_data = std::span<const std::byte>(name).first(4);
        p.pe_name = name;
        CHECK(w1.add(p) == sync_encode_status::pe_name_too_long);
        std::vector<std::byte> data(256);
        p.pe_name = {};
        p.pe_data = data;
        CHECK(w1.add(p) == sync_encode_status::pe_data_too_long);
        CHECK(w1.empty());
    }
    SUBCASE("PE data and name round-trip") {
        const std::array<std::byte, 3> name{std::byte{'s'}, std::byte{'i'}, std::byte{'p'}};
        const std::array<std::byte, 5> data{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                            std::byte{5}};
        auto p = r;
        p.protocol = 17;
        p.state = 0;
        p.pe_data = data;
        p.pe_name = name;
        const auto m = reencode({p, r}, 7, 1);
        const auto d = decode(m);
        REQUIRE(d.ok.size() == 2);
        CHECK(d.ok[0] == p);
        CHECK(d.ok[1] == r);
    }
}

// =====================================================================================================
// The master's decision (spec §8.3).

namespace {
ipvs::sync_fields est_tcp() {
    auto f = ipvs::sync_fields_at_creation(6, 0s);
    f.state = 1;
    f.timeout = 900s;
    return f;
}
std::vector<std::uint32_t> sent_at(ipvs::sync_fields f, const ipvs::sync_sysctl& s, std::uint32_t upto) {
    std::vector<std::uint32_t> out;
    for (std::uint32_t p = 1; p <= upto; ++p) {
        const auto v = ipvs::sync_decide(f, s, p, std::chrono::seconds{p});
        f = v.fields;
        if (v.send) out.push_back(p);
    }
    return out;
}
} // namespace

TEST_CASE("sync: with the defaults an ESTABLISHED TCP conn and a UDP conn go out at 3, 53, 103, …") {
    const ipvs::sync_sysctl s;
    CHECK(sent_at(est_tcp(), s, 160) == std::vector<std::uint32_t>{3, 53, 103, 153});
    auto u = ipvs::sync_fields_at_creation(17, 0s);
    u.timeout = 300s;
    CHECK(sent_at(u, s, 160) == std::vector<std::uint32_t>{3, 53, 103, 153});
    ipvs::sync_sysctl p;
    p.sync_threshold = 2;
    p.sync_period = 4;
    CHECK(sent_at(est_tcp(), p, 12) == std::vector<std::uint32_t>{2, 6, 10});
    ipvs::sync_sysctl once;
    once.sync_period = 0;
    CHECK(sent_at(est_tcp(), once, 200) == std::vector<std::uint32_t>{3});
}

TEST_CASE("sync: TCP state rules — closing states forced at once, SYN_RECV never, ESTABLISHED waits") {
    const ipvs::sync_sysctl s;
    auto f = ipvs::sync_fields_at_creation(6, 0s);
    f.state = 3; // SYN_RECV
    auto v = ipvs::sync_decide(f, s, 3, 1s);
    CHECK_FALSE(v.send);
    CHECK(v.reason == ipvs::sync_reason::state_not_synced);
    CHECK(v.fields == f);
    f.state = 1; // ESTABLISHED: a change, but it still needs pkts % 50 == 3
    v = ipvs::sync_decide(f, s, 2, 2s);
    CHECK_FALSE(v.send);
    v = ipvs::sync_decide(f, s, 3, 2s);
    CHECK(v.send);
    CHECK(v.reason == ipvs::sync_reason::sent_forced);
    f = v.fields;
    CHECK(f.old_state == 1);
    for (const std::uint8_t st : {4, 7, 5, 6}) { // FIN_WAIT, CLOSE_WAIT, TIME_WAIT, CLOSE
        f.state = st;
        v = ipvs::sync_decide(f, s, 10, 3s);
        CHECK(v.send);
        CHECK(v.reason == ipvs::sync_reason::sent_forced);
        f = v.fields;
        // The same state again is no longer forced.
        CHECK_FALSE(ipvs::sync_decide(f, s, 11, 3s).send);
    }
    f.state = 8; // LAST_ACK is never sent
    CHECK(ipvs::sync_decide(f, s, 53, 4s).reason == ipvs::sync_reason::state_not_synced);
}

TEST_CASE("sync: SCTP sends ESTABLISHED and the shutdown states, not the handshake") {
    const ipvs::sync_sysctl s;
    auto f = ipvs::sync_fields_at_creation(132, 0s);
    for (std::uint8_t st = 1; st <= 7; ++st) {
        f.state = st;
        CHECK(ipvs::sync_decide(f, s, 3, 1s).reason == ipvs::sync_reason::state_not_synced);
    }
    f.state = 12; // REJECTED
    CHECK_FALSE(ipvs::sync_decide(f, s, 3, 1s).send);
    for (const std::uint8_t st : {9, 10, 11, 13}) {
        f.state = st;
        CHECK(ipvs::sync_decide(f, s, 7, 1s).reason == ipvs::sync_reason::sent_forced);
    }
}

TEST_CASE("sync: templates, controllers, persist mode, ONE_PACKET and version 0") {
    ipvs::sync_sysctl s;
    auto conn = est_tcp();
    conn.controlled_by_template = true;
    auto tmpl = ipvs::sync_fields_at_creation(6, 0s, true);
    tmpl.timeout = 60s;
    SUBCASE("v1: the template goes on every client packet, after its conn") {
        std::vector<std::pair<bool, bool>> seen;
        for (std::uint32_t p = 1; p <= 4; ++p) {
            const auto a = ipvs::sync_on_packet(conn, p, &tmpl, s, std::chrono::seconds{p});
            seen.emplace_back(a.conn, a.controller);
        }
        CHECK(seen ==
              std::vector<std::pair<bool, bool>>{{false, true}, {false, true}, {true, true}, {false, true}});
        CHECK(tmpl.in_pkts == 4);
    }
    SUBCASE("v0: the template only right after its conn") {
        s.sync_version = 0;
        std::vector<std::pair<bool, bool>> seen;
        for (std::uint32_t p = 1; p <= 4; ++p) {
            const auto a = ipvs::sync_on_packet(conn, p, &tmpl, s, std::chrono::seconds{p});
            seen.emplace_back(a.conn, a.controller);
            if (!a.conn) CHECK(a.controller_reason == ipvs::sync_reason::conn_not_sent);
        }
        CHECK(seen == std::vector<std::pair<bool, bool>>{
                          {false, false}, {false, false}, {true, true}, {false, false}});
        CHECK(tmpl.in_pkts == 1);
    }
    SUBCASE("sync_persist_mode and ONE_PACKET: the conn never, its template still") {
        auto want = ipvs::sync_reason::persist_mode;
        SUBCASE("persist mode") { s.sync_persist_mode = true; }
        SUBCASE("ONE_PACKET") {
            conn.one_packet = true;
            want = ipvs::sync_reason::one_packet;
        }
        const auto a = ipvs::sync_on_packet(conn, 3, &tmpl, s, 1s);
        CHECK_FALSE(a.conn);
        CHECK(a.conn_reason == want);
        CHECK(a.controller);
    }
    SUBCASE("a non-template controller is processed with pkts = sync_threshold") {
        auto ctl = est_tcp();
        ctl.old_state = 1;
        s.sync_period = 0;
        const auto a = ipvs::sync_on_packet(conn, 1, &ctl, s, 1s);
        CHECK(a.controller);
        CHECK(ctl.in_pkts == 0);
    }
    SUBCASE("period 0 and no refresh: a template too only at pkts == threshold") {
        s.sync_period = 0;
        unsigned n = 0;
        for (std::uint32_t p = 1; p <= 6; ++p) n += ipvs::sync_on_packet(conn, p, &tmpl, s, 1s).controller;
        CHECK(n == 1);
    }
}

TEST_CASE("sync: refresh period and retries") {
    ipvs::sync_sysctl s;
    s.sync_period = 0;
    s.sync_refresh_period = 5s;
    s.sync_retries = 1;
    auto f = est_tcp();
    f.old_state = 1;
    // First send: the expiry moves by far more than the refresh period.
    auto v = ipvs::sync_decide(f, s, 1, 10s);
    REQUIRE(v.send);
    CHECK(v.fields.sync_endtime == 910s);
    f = v.fields;
    // 3.6 s later the expiry moved by less than 5 s: one retry is allowed (retry bits become 1) …
    v = ipvs::sync_decide(f, s, 2, 13600ms);
    REQUIRE(v.send);
    CHECK((v.fields.sync_endtime.count() & 3) == 1);
    f = v.fields;
    // … and no second one.
    v = ipvs::sync_decide(f, s, 3, 17200ms);
    CHECK_FALSE(v.send);
    CHECK(v.reason == ipvs::sync_reason::retries_exhausted);
    // A retry needs refresh_period/8 since the announcement.
    auto g = est_tcp();
    g.old_state = 1;
    g = ipvs::sync_decide(g, s, 1, 10s).fields;
    v = ipvs::sync_decide(g, s, 2, 10s + 500ms);
    CHECK_FALSE(v.send);
    CHECK(v.reason == ipvs::sync_reason::refresh_too_early);
    // The limit is min(refresh, max(timeout/2, 10 s)): a 10 s conn with a 30 s refresh period is
    // re-sent only once its expiry has moved by 10 s.
    ipvs::sync_sysctl l = s;
    l.sync_refresh_period = 30s;
    l.sync_retries = 0;
    auto c = ipvs::sync_fields_at_creation(6, 0s);
    c.state = c.old_state = 6;
    c.timeout = 10s;
    c = ipvs::sync_decide(c, l, 1, 100s).fields;
    CHECK_FALSE(ipvs::sync_decide(c, l, 2, 109s).send);
    CHECK(ipvs::sync_decide(c, l, 2, 110s).send);
}

// =====================================================================================================
// Batching (spec §8.1).

namespace {
ipvs::sync_record rec(std::uint16_t cport) {
    ipvs::sync_record r;
    r.protocol = 6;
    r.state = 1;
    r.cport = cport;
    r.vport = 80;
    r.dport = 8080;
    r.caddr = addr("10.1.0.1");
    r.vaddr = addr("10.0.0.1");
    r.daddr = addr("10.0.2.1");
    return r;
}
std::vector<std::uint16_t> cports(std::span<const std::byte> m) {
    std::vector<std::uint16_t> out;
    (void)ipvs::decode_sync(m, 0,
                            [&](const ipvs::sync_record& r, sync_record_status) { out.push_back(r.cport); });
    return out;
}
} // namespace

TEST_CASE("sync: sync_buffer sends an open message 2 s after its first record") {
    ipvs::sync_buffer b({.syncid = 7});
    CHECK_FALSE(b.next_deadline());
    REQUIRE(b.add(rec(1), 100ms) == sync_encode_status::ok);
    REQUIRE(b.add(rec(2), 1s) == sync_encode_status::ok);
    CHECK(b.next_deadline() == 2100ms);
    CHECK_FALSE(b.poll(2099ms));
    const auto m = b.poll(2100ms);
    REQUIRE(m);
    CHECK(cports(*m) == std::vector<std::uint16_t>{1, 2});
    CHECK(decode(bytes(reinterpret_cast<const std::uint8_t*>(m->data()),
                       reinterpret_cast<const std::uint8_t*>(m->data()) + m->size()))
              .res.header.syncid == 7);
    CHECK_FALSE(b.poll(10s));
    CHECK_FALSE(b.next_deadline());
}

TEST_CASE("sync: sync_buffer closes a full message and sends it 20 ms later, at once with 8 waiting") {
    ipvs::sync_buffer b({.syncid = 7});
    for (std::uint16_t i = 0; i < 41; ++i) REQUIRE(b.add(rec(i), 1s) == sync_encode_status::ok);
    CHECK(b.queued() == 1);
    CHECK(b.has_open());
    CHECK(b.next_deadline() == 1020ms);
    CHECK_FALSE(b.poll(1019ms));
    auto m = b.poll(1020ms);
    REQUIRE(m);
    CHECK(m->size() == 8 + 40 * 36);
    CHECK(cports(*m).size() == 40);
    CHECK_FALSE(b.poll(1020ms)); // the open one (record 40) waits for its 2 s
    m = b.poll(3s);
    REQUIRE(m);
    CHECK(cports(*m) == std::vector<std::uint16_t>{40});

    // 8 full messages waiting wake the sender at once.
    ipvs::sync_buffer c({.syncid = 7});
    for (std::uint16_t i = 0; i < 8 * 40 + 1; ++i) REQUIRE(c.add(rec(i), 5s) == sync_encode_status::ok);
    CHECK(c.queued() == 8);
    CHECK(c.next_deadline() == 5s);
    std::vector<std::uint16_t> all;
    while (auto x = c.poll(5s)) {
        const auto v = cports(*x);
        all.insert(all.end(), v.begin(), v.end());
    }
    CHECK(all.size() == 8 * 40);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i] == i);
}

TEST_CASE("sync: sync_buffer drops a message that finds the queue full; flush and version switch") {
    ipvs::sync_buffer b({.syncid = 7, .version = 1, .maxlen = 128, .qlen_max = 2});
    // 128 bytes hold 3 IPv4 records; the 4th, 7th, 10th close a message.
    for (std::uint16_t i = 0; i < 10; ++i) REQUIRE(b.add(rec(i), 1s) == sync_encode_status::ok);
    CHECK(b.queued() == 2);
    CHECK(b.dropped_messages() == 1);
    CHECK(b.dropped_records() == 3);
    b.flush(2s);
    std::vector<std::vector<std::uint16_t>> got;
    while (auto m = b.poll(2s)) got.push_back(cports(*m));
    CHECK(got == std::vector<std::vector<std::uint16_t>>{{0, 1, 2}, {3, 4, 5}});
    CHECK_FALSE(b.has_open()); // the open message {9} found the queue full at flush: dropped too
    CHECK(b.dropped_messages() == 2);

    ipvs::sync_buffer v({.syncid = 7});
    REQUIRE(v.add(rec(1), 0s) == sync_encode_status::ok);
    v.set_version(0, 1s);
    REQUIRE(v.add(rec(2), 1s) == sync_encode_status::ok);
    auto m1 = v.poll(1020ms);
    REQUIRE(m1);
    CHECK(std::to_integer<int>((*m1)[5]) == 1); // v1 header
    auto m2 = v.poll(3s);
    REQUIRE(m2);
    CHECK(m2->size() == 4 + 24); // v0
    CHECK(cports(*m2) == std::vector<std::uint16_t>{2});
    CHECK_THROWS_AS(ipvs::sync_buffer({.maxlen = 64}), std::invalid_argument);
    CHECK_THROWS_AS(ipvs::sync_buffer({.version = 2}), std::invalid_argument);
}

TEST_CASE("sync: to_string names every status") {
    for (int i = 0; i <= static_cast<int>(sync_record_status::drop_duplicate_option); ++i)
        CHECK(std::string(ipvs::to_string(static_cast<sync_record_status>(i))) != "?");
    CHECK(std::string(ipvs::to_string(sync_message_status::other_syncid)) == "other syncid");
    CHECK(std::string(ipvs::to_string(sync_encode_status::no_room)) != "?");
    CHECK(std::string(ipvs::to_string(ipvs::sync_reason::retries_exhausted)) != "?");
}
