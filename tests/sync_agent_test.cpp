// SPDX-License-Identifier: MIT
// Tests of sync_agent: a real director as the recorded Linux master and backup, and master → backup round
// trips.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>
#include <ipvs/sync_agent.hpp>
#include <support/director_config.hpp>
#include <support/oracle.hpp>

using namespace std::chrono_literals;
using namespace ipvs;
using ipvs::test::bytes;
using ipvs::test::from_hex;
using ipvs::test::json;

namespace {

// The UDP payload of a recorded Ethernet / IPv4 / UDP sync frame, checked to be one (FORMAT.md).
bytes udp_payload(const bytes& f) {
    REQUIRE(f.size() >= 14 + 20 + 8);
    REQUIRE(((f[12] << 8) | f[13]) == 0x0800);
    const std::size_t udp = 14 + (f[14] & 0x0fU) * 4U;
    REQUIRE(f[14 + 9] == ipproto::udp);
    REQUIRE(((f[udp + 2] << 8) | f[udp + 3]) == 8848);
    const std::size_t ulen = static_cast<std::size_t>((f[udp + 4] << 8) | f[udp + 5]);
    REQUIRE(udp + ulen <= f.size());
    return bytes(f.begin() + static_cast<std::ptrdiff_t>(udp + 8),
                 f.begin() + static_cast<std::ptrdiff_t>(udp + ulen));
}

bytes to_bytes(std::span<const std::byte> s) {
    bytes b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) b[i] = std::to_integer<std::uint8_t>(s[i]);
    return b;
}
std::string hex(const bytes& b) { return ipvs::test::to_hex(b.data(), b.size()); }

// "-t 10.0.0.100:170" / "-u …" / "--sctp-service …" / "-t [fd00::100]:175".
std::pair<std::uint8_t, endpoint> service_of(const std::string& sel) {
    std::istringstream in(sel);
    std::string opt, ep;
    in >> opt >> ep;
    const std::uint8_t proto = opt == "-t" ? ipproto::tcp : opt == "-u" ? ipproto::udp : ipproto::sctp;
    const auto e = parse_endpoint(ep);
    REQUIRE_MESSAGE(e.has_value(), "bad service " << sel);
    return {proto, *e};
}

director::svc_entry& ensure_service(director& d, std::uint8_t proto, const endpoint& vip, int persistent) {
    if (auto* s = d.find_service(vip.addr.af, proto, vip)) return *s;
    service_config c;
    c.af = vip.addr.af;
    c.protocol = proto;
    c.vip = vip;
    c.scheduler = "rr";
    c.persistent = persistent > 0;
    if (persistent > 0) c.persist_timeout = std::chrono::seconds{persistent};
    return d.add_service(c);
}

void ensure_dest(director& d, director::svc_entry& s, const endpoint& ep, fwd_method fwd, int weight = 1) {
    for (const dest* x : s.svc.dests())
        if (x->ep == ep) return;
    dest_config dc;
    dc.ep = ep;
    dc.fwd = fwd;
    dc.weight = weight;
    d.add_dest(s, dc);
}

// The `ipvsadm -Sn` lines of a backup_setup record: -A SVC -s SCHED [-p T], -a SVC -r DEST -m|-g|-i -w W.
void configure_from_save(director& d, const std::string& save) {
    std::istringstream lines(save);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream in(line);
        std::vector<std::string> tok;
        for (std::string t; in >> t;) tok.push_back(t);
        if (tok.size() < 3) continue;
        const auto [proto, vip] = service_of(tok[1] + " " + tok[2]);
        int persistent = 0, weight = 1;
        std::optional<endpoint> rs;
        fwd_method fwd = fwd_method::droute;
        for (std::size_t i = 3; i < tok.size(); ++i) {
            if (tok[i] == "-p") persistent = std::stoi(tok[++i]);
            if (tok[i] == "-r") rs = parse_endpoint(tok[++i]);
            if (tok[i] == "-w") weight = std::stoi(tok[++i]);
            if (tok[i] == "-m") fwd = fwd_method::masq;
            if (tok[i] == "-i") fwd = fwd_method::tunnel;
        }
        auto& s = ensure_service(d, proto, vip, persistent);
        if (tok[0] == "-a") {
            REQUIRE(rs.has_value());
            ensure_dest(d, s, *rs, fwd, weight);
        }
    }
}

sync_sysctl sysctl_of(const json& sc) {
    sync_sysctl s;
    unsigned th = 0, pe = 0;
    REQUIRE(std::sscanf(sc["sync_threshold"].get<std::string>().c_str(), "%u %u", &th, &pe) == 2);
    s.sync_threshold = th;
    s.sync_period = pe;
    s.sync_refresh_period = std::chrono::seconds{std::stoi(sc["sync_refresh_period"].get<std::string>())};
    s.sync_retries = static_cast<std::uint32_t>(std::stoi(sc["sync_retries"].get<std::string>()));
    s.sync_persist_mode = sc["sync_persist_mode"] == "1";
    s.sync_version = static_cast<std::uint8_t>(std::stoi(sc["sync_version"].get<std::string>()));
    REQUIRE(s.valid());
    return s;
}

// Every vector set that has sync.jsonl, as (set name, lines); a set without it is skipped with a
// message, none at all is a failure.
std::vector<std::pair<std::string, std::vector<json>>> sync_sets() {
    std::vector<std::pair<std::string, std::vector<json>>> out;
    for (const auto& dir : ipvs::test::oracle_dirs())
        if (const auto path = ipvs::test::oracle_file(dir, "sync.jsonl"))
            out.emplace_back(dir.filename().string(), ipvs::test::read_jsonl(*path));
    REQUIRE_MESSAGE(!out.empty(), "no vector set has sync.jsonl");
    return out;
}

// One connection or template as a listing shows it: the identity, the real server and the state name.
struct row {
    std::string proto;
    inet_addr caddr;
    int cport;
    inet_addr vaddr;
    int vport;
    inet_addr daddr;
    int dport;
    std::string state;
    friend auto operator<=>(const row&, const row&) = default;
};
std::string proto_text(std::uint8_t p) {
    return p == ipproto::tcp ? "TCP" : p == ipproto::udp ? "UDP" : "SCTP";
}

template <std::size_t N>
row row_of(const basic_conn<N>& e) {
    return {proto_text(e.protocol),
            to_inet(e.caddr),
            e.cport,
            to_inet(e.vaddr),
            e.vport,
            to_inet(e.daddr()),
            e.dport(),
            ipvs::test::state_name(e)};
}
row row_of(const json& c) {
    return {c["proto"],
            *parse_addr(c["caddr"].get<std::string>()),
            c["cport"].get<int>(),
            *parse_addr(c["vaddr"].get<std::string>()),
            c["vport"].get<int>(),
            *parse_addr(c["daddr"].get<std::string>()),
            c["dport"].get<int>(),
            c["state"]};
}

// Every entry of a director, with its remaining time (whole seconds, as /proc prints it).
std::map<row, long long> table_of(director& d, time_ns now) {
    std::map<row, long long> out;
    d.for_each_conn([&](const auto& e) {
        out[row_of(e)] = std::chrono::duration_cast<std::chrono::seconds>(d.deadline(e) - now).count();
    });
    return out;
}

// /proc shows a timeout modulo 2^32 ms (spec §8.2); ours is capped at 2^32 − 1 ms (sync_agent.hpp).
long long proc_seconds(long long s) { return static_cast<long long>((s * 1000ULL) % (1ULL << 32) / 1000); }

} // namespace

// =====================================================================================================
// Master: a real director with a sync_agent replays the recorded flows.

TEST_CASE("oracle: sync master — a director with a sync_agent sends the recorded messages byte for byte") {
    for (const auto& entry : sync_sets()) {
        const std::string& set = entry.first;
        const std::vector<json>& lines = entry.second;
        director dir;
        sync_agent agent(dir, {.master = true, .syncid = 7});
        // CLARIFICATIONS "Sync master timing": each packet is watched for 3.6 s; a flow's first packet
        // comes 0.5 s after its service was set up, right after the previous flow's last window.
        time_ns t = 1000s;
        std::string cur_flow;
        int cur_version = -1;
        std::size_t packets = 0, messages = 0, records = 0, timer_sent = 0, identical = 0, flows = 0;
        for (const auto& l : lines) {
            if (l["type"] != "master") continue;
            const std::string flow = l["flow"];
            const int version = l["sync_version"];
            INFO(flow << " v" << version << " packet " << l["i"].get<int>() << " "
                      << l["pkt"].get<std::string>());
            const auto [proto, vip] = service_of(l["service"]);
            const auto client = *parse_endpoint(l["client"].get<std::string>());
            const auto rs = *parse_endpoint(l["dest"].get<std::string>());
            if (flow != cur_flow || version != cur_version) {
                cur_flow = flow;
                cur_version = version;
                ++flows;
                agent.set_sysctl(sysctl_of(l["sysctl"]), t);
                const int persistent = l["persistent"].is_null() ? 0 : l["persistent"].get<int>();
                auto& s = ensure_service(dir, proto, vip, persistent);
                ensure_dest(dir, s, rs, l["fwd"] == "dr" ? fwd_method::droute : fwd_method::masq);
                t += 500ms;
            }
            const std::string tok = l["pkt"];
            const bool from_client = tok[0] == 'c';
            auto pkt = from_client ? ipvs::test::token_packet(proto, tok, client, vip)
                                   : ipvs::test::token_packet(proto, tok, rs, client);
            (void)agent.expire(t);
            const verdict v = from_client ? dir.in(pkt, t) : dir.out(pkt, t);
            CHECK(v.act == action::forward);
            ++packets;
            // The 3.6 s window: expiry and message flushes as the clock runs (20 ms steps).
            std::vector<bytes> got;
            const time_ns end = t + 3600ms;
            for (; t < end; t += 20ms) {
                (void)agent.expire(t);
                agent.poll(t, [&](std::span<const std::byte> m) { got.push_back(to_bytes(m)); });
            }
            t = end;
            std::vector<bytes> want;
            for (const auto& f : l["sync"]) want.push_back(udp_payload(from_hex(f.get<std::string>())));
            REQUIRE(got.size() == want.size());
            for (std::size_t k = 0; k < want.size(); ++k) {
                CHECK_MESSAGE(hex(got[k]) == hex(want[k]), "message " << k);
                identical += got[k] == want[k];
                ++messages;
                const sync_reader rd{std::span<const std::uint8_t>{want[k]}, 7};
                records += rd.header().nr_conns;
            }
        }
        timer_sent = agent.master_stats().timer_records;
        MESSAGE(set << ": " << flows << " flows, " << packets << " packets through a director; " << messages
                    << " messages (" << records << " records, " << timer_sent
                    << " sent by the expiry timer), " << identical << " byte-identical");
        CHECK(packets > 0);
        CHECK(messages > 0);
        CHECK(identical == messages);
        CHECK(timer_sent > 0);
    }
}

// =====================================================================================================
// Backup: the recorded crafted messages applied one after another to a director.

TEST_CASE(
    "oracle: sync backup — each recorded message builds the kernel's connections, timeouts and counters") {
    for (const auto& entry : sync_sets()) {
        const std::string& set = entry.first;
        const std::vector<json>& lines = entry.second;
        director dir;
        std::optional<sync_agent> agent;
        // The recorded backup saw about 0.65 s pass between messages (its timers ran down ~15 s over
        // 23 messages); the comparison allows 3 s either way.
        time_ns t = 1000s;
        std::map<std::tuple<std::string, inet_addr, int, inet_addr, int>, long long> capped;
        std::size_t messages = 0, compared = 0, created = 0, updated = 0, refused = 0, counter_checks = 0;
        for (const auto& l : lines) {
            if (l["type"] == "backup_setup") {
                configure_from_save(dir, l["ipvsadm_save"]);
                REQUIRE(l["daemon"].get<std::string>().find("syncid=7") != std::string::npos);
                agent.emplace(dir, sync_agent::config{.backup = true, .backup_syncid = 7});
                continue;
            }
            if (l["type"] != "backup") continue;
            REQUIRE(agent.has_value());
            const std::string name = l["case"];
            INFO("case " << name << ": " << l["note"].get<std::string>());
            ++messages;
            t += 650ms;
            const auto msg = from_hex(l["message_hex"]);
            const auto before = table_of(dir, t);
            const auto res = agent->apply(std::as_bytes(std::span(msg)), t);
            created += res.created;
            updated += res.updated;
            const bool we_refused = res.message != sync_message_status::ok || res.skipped > 0 ||
                                    res.stop != sync_record_status::end;
            refused += we_refused;

            // The table: every recorded entry, with its real server and state, and no other.
            const auto ours = table_of(dir, t);
            std::map<row, long long> theirs;
            for (const auto& c : l["conns"]) theirs[row_of(c)] = c["expires"].get<long long>();
            std::set<row> our_rows, their_rows;
            for (const auto& [r, s] : ours) our_rows.insert(r);
            for (const auto& [r, s] : theirs) their_rows.insert(r);
            CHECK(our_rows == their_rows);
            if (our_rows != their_rows) {
                for (const auto& r : their_rows)
                    if (!our_rows.count(r))
                        MESSAGE("missing: " << r.proto << " " << to_string(r.caddr) << ":" << r.cport << " → "
                                            << to_string(r.vaddr) << ":" << r.vport << " → "
                                            << to_string(r.daddr) << ":" << r.dport << " " << r.state);
                for (const auto& r : our_rows)
                    if (!their_rows.count(r))
                        MESSAGE("extra: " << r.proto << " " << to_string(r.caddr) << ":" << r.cport << " → "
                                          << to_string(r.vaddr) << ":" << r.vport << " → "
                                          << to_string(r.daddr) << ":" << r.dport << " " << r.state);
            }
            // Records whose timeout is past our 2^32 − 1 ms cap (sync_agent.hpp): the kernel shows
            // them modulo 2^32 ms, we at the cap; compare the time run down since instead.
            sync_reader rd(std::as_bytes(std::span(msg)), 7);
            sync_record rec;
            for (auto st = rd.next(rec); st != sync_record_status::end && !drops_rest(st); st = rd.next(rec))
                if (st == sync_record_status::ok && rec.timeout * 1000ULL >= (1ULL << 32)) {
                    const std::uint8_t pr = rec.protocol;
                    capped[{proto_text(pr), rec.caddr, rec.cport, rec.vaddr, rec.vport}] = rec.timeout;
                }
            for (const auto& kv : theirs) {
                const row& r = kv.first;
                const long long shown = kv.second;
                const auto it = ours.find(r);
                if (it == ours.end()) continue;
                const auto cap = capped.find({r.proto, r.caddr, r.cport, r.vaddr, r.vport});
                if (cap != capped.end()) {
                    const long long kernel_ran = proc_seconds(cap->second) - shown;
                    const long long we_ran = 4294967 - it->second;
                    CHECK(std::llabs(kernel_ran - we_ran) <= 3);
                    ++compared;
                    continue;
                }
                CHECK_MESSAGE(std::llabs(it->second - shown) <= 3,
                              to_string(r.caddr)
                                  << ":" << r.cport << " ours " << it->second << " s, kernel " << shown);
                ++compared;
            }
            // An entry the message did not touch keeps running down (nothing else restarted it).
            for (const auto& [r, s] : before) {
                const auto it = ours.find(r);
                if (it != ours.end()) CHECK(it->second <= s + 900);
            }
            // Dest counters [weight, active, inactive], every dest.
            for (const auto& item : l["dests"].items()) {
                const std::string ep_text = item.key();
                const json& w = item.value();
                const auto ep = *parse_endpoint(ep_text);
                const dest* found = nullptr;
                for (const auto& s : dir.services())
                    for (const dest* d : s->svc.dests())
                        if (d->ep == ep) found = d;
                REQUIRE_MESSAGE(found != nullptr, ep_text);
                CHECK_MESSAGE(found->weight == w[0].get<int>(), ep_text);
                CHECK_MESSAGE(found->active_conns == w[1].get<int>(), ep_text);
                CHECK_MESSAGE(found->inactive_conns == w[2].get<int>(), ep_text);
                ++counter_checks;
            }
            MESSAGE(name << ": " << std::string(to_string(res.message)) << ", created " << res.created
                         << ", updated " << res.updated << ", replaced " << res.replaced << ", unbound "
                         << res.unbound << ", skipped " << res.skipped
                         << (res.skipped ? std::string(" (") + to_string(res.first_skip) + ")" : "")
                         << ", stop: " << std::string(to_string(res.stop)));
            CHECK(l["emitted"].empty());
        }
        MESSAGE(set << ": " << messages << " backup messages applied; " << created << " entries created, "
                    << updated << " updated, " << refused << " messages refused in part or whole; "
                    << compared << " entries compared with the kernel's table, " << counter_checks
                    << " dest counter triples");
        CHECK(messages > 0);
        CHECK(compared > 0);
        CHECK(created > 0);
        CHECK(refused > 0);
        CHECK(counter_checks > 0);
    }
}

// =====================================================================================================
// Round trip: a master director's messages applied to a backup director.

namespace {

struct rt_service {
    std::uint8_t proto;
    const char* vip;
    std::vector<const char*> dests;
    fwd_method fwd;
    int persistent;
    std::vector<std::string> tokens; ///< one flow; the client packets bring it into a synced state
    const char* client_net;          ///< clients are client_net + k
};

const std::vector<rt_service>& rt_services() {
    static const std::vector<rt_service> s = {
        {ipproto::tcp,
         "10.0.0.100:80",
         {"10.0.2.11:8080", "10.0.2.12:8080"},
         fwd_method::masq,
         0,
         {"cS", "sSA", "cA", "cPA", "sPA", "cPA"},
         "10.1.1."},
        {ipproto::udp,
         "10.0.0.100:53",
         {"10.0.2.11:5353", "10.0.2.12:5353"},
         fwd_method::masq,
         0,
         {"c:U", "s:U", "c:U", "c:U"},
         "10.1.2."},
        {ipproto::sctp,
         "10.0.0.100:9",
         {"10.0.2.11:9009"},
         fwd_method::masq,
         0,
         {"c:INIT", "s:INITACK", "c:COOKIEECHO", "s:COOKIEACK", "c:DATA"},
         "10.1.3."},
        {ipproto::tcp,
         "10.0.0.100:443",
         {"10.0.2.13:443", "10.0.2.14:443"},
         fwd_method::droute,
         120,
         {"cS", "cA", "cPA"},
         "10.1.4."},
        {ipproto::tcp,
         "[fd00::100]:80",
         {"[fd00:2::b]:8080"},
         fwd_method::masq,
         0,
         {"cS", "sSA", "cA", "cPA", "cPA"},
         "fd01::1:"},
    };
    return s;
}

void configure_rt(director& d) {
    for (const auto& s : rt_services()) {
        const auto vip = *parse_endpoint(s.vip);
        auto& svc = ensure_service(d, s.proto, vip, s.persistent);
        for (const char* de : s.dests) ensure_dest(d, svc, *parse_endpoint(de), s.fwd);
    }
}

endpoint rt_client(const rt_service& s, int k) {
    return {*parse_addr(std::string(s.client_net) + std::to_string(k + 1)),
            static_cast<std::uint16_t>(30000 + k)};
}

// Every dest's (active, inactive, persist), by service VIP and dest endpoint.
std::map<std::string, std::array<int, 3>> counters_of(director& d) {
    std::map<std::string, std::array<int, 3>> out;
    for (const auto& s : d.services())
        for (const dest* x : s->svc.dests())
            out[to_string(s->cfg.vip) + " " + to_string(x->ep)] = {x->active_conns, x->inactive_conns,
                                                                   x->persist_conns};
    return out;
}

} // namespace

TEST_CASE("sync: a master director's messages applied to a backup director give the same connection set") {
    for (const std::uint8_t version : {std::uint8_t{1}, std::uint8_t{0}}) {
        INFO("sync_version " << int(version));
        director master_dir, backup_dir;
        configure_rt(master_dir);
        configure_rt(backup_dir);
        sync_sysctl sys;
        sys.sync_version = version;
        sync_agent master(master_dir, {.sysctl = sys, .master = true, .syncid = 3});
        sync_agent backup(backup_dir, {.backup = true, .backup_syncid = 3});
        time_ns t = 50s;
        std::size_t messages = 0, applied = 0;
        const auto step = [&](time_ns dt) {
            for (const time_ns end = t + dt; t < end; t += 10ms) {
                (void)master.expire(t);
                (void)backup.expire(t);
                master.poll(t, [&](std::span<const std::byte> m) {
                    ++messages;
                    const auto r = backup.apply(m, t);
                    CHECK(r.message == sync_message_status::ok);
                    CHECK(r.stop == sync_record_status::end);
                    CHECK(r.unbound == 0);
                    applied += r.created + r.updated;
                });
            }
        };
        const auto send = [&](const rt_service& s, int k, const std::string& tok) {
            const auto vip = *parse_endpoint(s.vip);
            const auto c = rt_client(s, k);
            if (tok[0] == 'c') {
                auto pkt = ipvs::test::token_packet(s.proto, tok, c, vip);
                CHECK(master_dir.in(pkt, t).act == action::forward);
            } else {
                // The real server that the master chose answers.
                std::optional<endpoint> rs;
                master_dir.for_each_conn([&](const auto& e) {
                    if (!e.is_template() && e.client() == c && e.vip() == vip) rs = e.real_server();
                });
                REQUIRE(rs.has_value());
                auto pkt = ipvs::test::token_packet(s.proto, tok, *rs, c);
                CHECK(master_dir.out(pkt, t).act == action::forward);
            }
            step(50ms);
        };
        constexpr int clients = 30;
        for (const auto& s : rt_services())
            for (int k = 0; k < clients; ++k)
                for (const auto& tok : s.tokens) send(s, k, tok);
        step(3s);

        // Everything the master has is on the backup, as the same rows, with the same counters —
        // except IPv6 under version 0, which carries IPv4 only.
        const auto compare = [&](const std::string& when) {
            INFO(when);
            std::set<row> want, got;
            std::map<row, long long> left;
            master_dir.for_each_conn([&](const auto& e) {
                if (version == 0 && e.af == family::v6) return;
                want.insert(row_of(e));
                left[row_of(e)] =
                    std::chrono::duration_cast<std::chrono::seconds>(master_dir.deadline(e) - t).count();
            });
            std::size_t v6 = 0;
            backup_dir.for_each_conn([&](const auto& e) {
                got.insert(row_of(e));
                v6 += e.af == family::v6;
                CHECK((e.flags & conn_flag::sync) != 0);
                // The record carries the master's timeout; the backup restarted it on arrival.
                const auto it = left.find(row_of(e));
                if (version == 0 && e.is_template()) {
                    CHECK(e.timeout() == 180s); // v0 carries no timeout: a template gets 180 s (spec §8.2)
                } else if (it != left.end()) {
                    const auto mine =
                        std::chrono::duration_cast<std::chrono::seconds>(backup_dir.deadline(e) - t).count();
                    CHECK(std::llabs(mine - it->second) <= 4);
                }
            });
            CHECK(want.size() > 100);
            CHECK(got == want);
            if (version == 0) CHECK(v6 == 0);
            auto mc = counters_of(master_dir), bc = counters_of(backup_dir);
            if (version == 0) {
                for (auto* m : {&mc, &bc})
                    std::erase_if(*m, [](const auto& kv) { return kv.first.find('[') != std::string::npos; });
            }
            CHECK(mc == bc);
            MESSAGE("v" << int(version) << " " << when << ": " << want.size() << " entries on both, "
                        << messages << " messages, " << applied << " records applied");
        };
        compare("after the flows got established");

        // Closing half of the TCP flows: the forced sync of the state change moves the backup's counters.
        for (int k = 0; k < clients; k += 2) send(rt_services()[0], k, "cFA");
        step(3s);
        compare("after half the TCP clients sent FIN");
    }
}

// =====================================================================================================
// Backup rules, one by one (records built with the codec, checked against spec §8.2 / §8.3).

namespace {

struct backup_fixture {
    director dir;
    std::optional<sync_agent> agent;
    dest* d80 = nullptr;
    time_ns t = 100s;

    explicit backup_fixture(std::uint8_t syncid = 7, std::size_t capacity = 1 << 12)
        : dir(director_config{.capacity_v4 = capacity, .capacity_v6 = 64}) {
        auto& s = ensure_service(dir, ipproto::tcp, *parse_endpoint("10.0.0.100:80"), 0);
        ensure_dest(dir, s, *parse_endpoint("10.0.2.11:8080"), fwd_method::masq);
        d80 = s.svc.dests()[0];
        agent.emplace(dir, sync_agent::config{.backup = true, .backup_syncid = syncid});
    }

    static sync_record rec(std::uint16_t cport, std::uint16_t state, std::uint32_t flags,
                           const char* daddr = "10.0.2.11", std::uint16_t dport = 8080) {
        sync_record r;
        r.protocol = ipproto::tcp;
        r.flags = flags;
        r.state = state;
        r.cport = cport;
        r.vport = 80;
        r.dport = dport;
        r.timeout = state == 1 ? 900 : 120;
        r.caddr = *parse_addr("10.1.0.1");
        r.vaddr = *parse_addr("10.0.0.100");
        r.daddr = *parse_addr(daddr);
        return r;
    }

    sync_apply_result apply(std::initializer_list<sync_record> recs, std::uint8_t syncid = 7,
                            std::uint8_t version = 1) {
        std::array<std::byte, 1472> buf{};
        sync_writer w(buf, syncid, version);
        for (const auto& r : recs) REQUIRE(w.add(r) == sync_encode_status::ok);
        t += 1s;
        return agent->apply(w.finish(), t);
    }

    const conn4* find(std::uint16_t cport) {
        const conn4* out = nullptr;
        dir.for_each_conn([&](const auto& e) {
            if constexpr (std::is_same_v<std::decay_t<decltype(e)>, conn4>)
                if (e.cport == cport) out = &e;
        });
        return out;
    }
};

constexpr std::uint32_t established = 1, fin_wait = 4;

} // namespace

TEST_CASE("sync: a backup's syncid filters messages; syncid 0 takes them all") {
    backup_fixture f(7);
    CHECK(f.apply({backup_fixture::rec(1000, established, 0)}, 8).message ==
          sync_message_status::other_syncid);
    CHECK(f.apply({backup_fixture::rec(1000, established, 0)}, 0).message ==
          sync_message_status::other_syncid);
    CHECK(f.dir.connections() == 0);
    CHECK(f.apply({backup_fixture::rec(1000, established, 0)}, 7).created == 1);

    backup_fixture any(0);
    CHECK(any.apply({backup_fixture::rec(1000, established, 0)}, 8).created == 1);
    CHECK(any.apply({backup_fixture::rec(1001, established, 0)}, 0).created == 1);
}

TEST_CASE("sync: an existing connection is updated, not duplicated; INACTIVE moves the dest's counters") {
    backup_fixture f;
    CHECK(f.apply({backup_fixture::rec(1000, established, 0)}).created == 1);
    CHECK(f.d80->active_conns == 1);
    CHECK(f.d80->inactive_conns == 0);
    const auto r = f.apply({backup_fixture::rec(1000, fin_wait, sync_flag::inactive)});
    CHECK(r.created == 0);
    CHECK(r.updated == 1);
    CHECK(f.dir.connections() == 1);
    CHECK(f.d80->active_conns == 0);
    CHECK(f.d80->inactive_conns == 1);
    const auto* e = f.find(1000);
    REQUIRE(e != nullptr);
    CHECK(e->state == fin_wait);
    CHECK(e->old_state == fin_wait);
    CHECK(e->in_pkts == 3); // sync_threshold (spec §8.3)
    CHECK(e->timeout() == 120s);
    CHECK(e->flags == (sync_flag::sync | sync_flag::inactive)); // the local dest's MASQ
}

TEST_CASE("sync: a record naming another real server replaces the connection, unless it is INACTIVE") {
    backup_fixture f;
    auto& s = *f.dir.find_service(family::v4, ipproto::tcp, *parse_endpoint("10.0.0.100:80"));
    ensure_dest(f.dir, s, *parse_endpoint("10.0.2.12:8080"), fwd_method::masq);
    dest* d12 = s.svc.dests()[0]; // a new dest goes to the head
    REQUIRE(d12->ep == *parse_endpoint("10.0.2.12:8080"));
    CHECK(f.apply({backup_fixture::rec(1000, established, 0)}).created == 1);
    // The old connection's farewell, naming the new real server as INACTIVE: ignored.
    auto r = f.apply({backup_fixture::rec(1000, fin_wait, sync_flag::inactive, "10.0.2.12")});
    CHECK(r.stale == 1);
    CHECK(f.find(1000)->real_server() == *parse_endpoint("10.0.2.11:8080"));
    CHECK(f.find(1000)->state == established);
    // An active one: the old goes (its counter too), the new is bound to the other dest.
    r = f.apply({backup_fixture::rec(1000, established, 0, "10.0.2.12")});
    CHECK(r.replaced == 1);
    CHECK(r.created == 1);
    CHECK(f.dir.connections() == 1);
    CHECK(f.find(1000)->real_server() == *parse_endpoint("10.0.2.12:8080"));
    CHECK(f.d80->active_conns == 0);
    CHECK(d12->active_conns == 1);
}

TEST_CASE("sync: the local dest's forwarding method wins; a dest found later takes over a placeholder") {
    backup_fixture f;
    // A DR record for the NAT dest: bound as NAT, NOOUTPUT dropped (spec §3.4).
    CHECK(f.apply({backup_fixture::rec(1000, established, sync_flag::fwd_droute | sync_flag::nooutput)})
              .created == 1);
    CHECK(f.find(1000)->fwd() == fwd_method::masq);
    CHECK((f.find(1000)->flags & sync_flag::nooutput) == 0);

    // No local dest 10.0.2.99: a placeholder with the record's address, port and method.
    auto r = f.apply({backup_fixture::rec(1001, established, sync_flag::fwd_droute, "10.0.2.99", 99)});
    CHECK(r.unbound == 1);
    const auto* e = f.find(1001);
    REQUIRE(e != nullptr);
    CHECK(e->real_server() == *parse_endpoint("10.0.2.99:99"));
    CHECK(e->fwd() == fwd_method::droute);
    CHECK(f.agent->is_placeholder(e->dest));
    CHECK(f.agent->placeholders() == 1);
    CHECK(f.d80->active_conns == 1); // the placeholder's connection counts on no real dest

    // The dest is configured; the next record for the connection binds it there.
    auto& s = *f.dir.find_service(family::v4, ipproto::tcp, *parse_endpoint("10.0.0.100:80"));
    ensure_dest(f.dir, s, *parse_endpoint("10.0.2.99:99"), fwd_method::masq);
    r = f.apply(
        {backup_fixture::rec(1001, fin_wait, sync_flag::inactive | sync_flag::fwd_droute, "10.0.2.99", 99)});
    CHECK(r.updated == 1);
    e = f.find(1001);
    CHECK_FALSE(f.agent->is_placeholder(e->dest));
    CHECK(e->dest->ep == *parse_endpoint("10.0.2.99:99"));
    CHECK(e->fwd() == fwd_method::masq);
    CHECK(e->dest->inactive_conns == 1);

    // A second unbound one, then the agent goes: its connections go with it, the rest stay.
    CHECK(f.apply({backup_fixture::rec(1002, established, 0, "10.0.2.98", 98)}).unbound == 1);
    CHECK(f.dir.connections() == 3);
    f.agent.reset();
    CHECK(f.dir.connections() == 2);
    CHECK(f.find(1002) == nullptr);
}

TEST_CASE("sync: timeouts from the record, else the state's; templates 180 s; v0 messages carry none") {
    backup_fixture f;
    auto r0 = backup_fixture::rec(1000, fin_wait, sync_flag::inactive);
    r0.timeout = 0;
    CHECK(f.apply({r0}).created == 1);
    CHECK(f.find(1000)->timeout() == 120s); // FIN_WAIT's default (spec §4.1)
    auto r1 = backup_fixture::rec(1001, established, 0);
    r1.timeout = 7;
    CHECK(f.apply({r1}).created == 1);
    CHECK(f.find(1001)->timeout() == 7s);
    CHECK(f.apply({backup_fixture::rec(1002, established, 0)}, 7, 0).created == 1);
    CHECK(f.find(1002)->timeout() == 900s);
    auto tpl = backup_fixture::rec(0, 0, sync_flag::template_);
    tpl.dport = 8080;
    CHECK(f.apply({tpl}, 7, 0).created == 1);
    const conn4* te = nullptr;
    f.dir.for_each_conn([&](const auto& e) {
        if constexpr (std::is_same_v<std::decay_t<decltype(e)>, conn4>)
            if (e.is_template()) te = &e;
    });
    REQUIRE(te != nullptr);
    CHECK(te->timeout() == 180s);
    CHECK(f.d80->persist_conns == 1);
    CHECK((te->flags & sync_flag::inactive) != 0); // a template takes the dest's INACTIVE
}

TEST_CASE("sync: a full backup table refuses records and says so") {
    backup_fixture f(7, 4);
    std::size_t failed = 0, created = 0;
    for (std::uint16_t p = 1000; p < 1010; ++p) {
        const auto r = f.apply({backup_fixture::rec(p, established, 0)});
        failed += r.failed;
        created += r.created;
    }
    CHECK(created == f.dir.connections());
    CHECK(failed == 10 - created);
    CHECK(failed > 0);
    CHECK(f.d80->active_conns == static_cast<int>(created));
}

TEST_CASE("sync: a master splits records into messages of at most sync_maxlen bytes") {
    director dir;
    configure_rt(dir);
    sync_agent agent(dir, {.master = true, .syncid = 1, .maxlen = 128});
    time_ns t = 10s;
    const auto& s = rt_services()[1]; // UDP: the third datagram syncs
    for (int k = 0; k < 10; ++k)
        for (int i = 0; i < 3; ++i) {
            auto pkt = ipvs::test::token_packet(s.proto, "c:U", rt_client(s, k), *parse_endpoint(s.vip));
            (void)dir.in(pkt, t);
        }
    CHECK(agent.master_stats().records == 10);
    std::vector<bytes> msgs;
    agent.flush(t);
    agent.poll(t, [&](std::span<const std::byte> m) { msgs.push_back(to_bytes(m)); });
    // 8-byte header + 36-byte records, 4-aligned: 3 records fit 128 bytes (spec §8.2).
    REQUIRE(msgs.size() == 4);
    std::size_t recs = 0;
    for (const auto& m : msgs) {
        CHECK(m.size() <= 128);
        const sync_reader rd{std::span<const std::uint8_t>{m}, 1};
        recs += rd.header().nr_conns;
    }
    CHECK(recs == 10);
    CHECK(agent.master_stats().messages == 4);
}

TEST_CASE("sync: version 0 never sends IPv6 connections") {
    director dir;
    configure_rt(dir);
    sync_sysctl v0;
    v0.sync_version = 0;
    sync_agent agent(dir, {.sysctl = v0, .master = true});
    const auto& s = rt_services()[4];
    time_ns t = 10s;
    for (const auto& tok : s.tokens) {
        if (tok[0] != 'c') continue;
        auto pkt = ipvs::test::token_packet(s.proto, tok, rt_client(s, 0), *parse_endpoint(s.vip));
        (void)dir.in(pkt, t);
        t += 1s;
    }
    CHECK(agent.master_stats().packets == 4);
    CHECK(agent.master_stats().records == 0);
    agent.set_sysctl({}, t); // back to version 1: the next due packet goes out
    for (int i = 0; i < 50; ++i) {
        auto pkt = ipvs::test::token_packet(s.proto, "cPA", rt_client(s, 0), *parse_endpoint(s.vip));
        (void)dir.in(pkt, t);
    }
    CHECK(agent.master_stats().records == 1); // in_pkts 53 = 3 + 50 (spec §8.3)
}

TEST_CASE("sync: a crafted template with a client port does not take a connection's counters") {
    // Found by fuzz/sync_fuzz.cpp: find_in matches a template whose cport is not 0; updating it as the
    // connection moved the dest's active count under a template that counts as persistent.
    backup_fixture f;
    auto tpl = backup_fixture::rec(1000, 0, sync_flag::template_ | sync_flag::inactive);
    CHECK(f.apply({tpl}).created == 1);
    CHECK(f.d80->persist_conns == 1);
    for (int i = 0; i < 2; ++i) {
        (void)f.apply({backup_fixture::rec(1000, fin_wait, sync_flag::inactive)});
        (void)f.apply({backup_fixture::rec(1000, established, 0)});
    }
    int active = 0, inactive = 0, persist = 0;
    f.dir.for_each_conn([&](const auto& e) {
        if (e.dest != f.d80) return;
        ++(e.is_template() ? persist : e.is_inactive() ? inactive : active);
    });
    CHECK(f.d80->active_conns == active);
    CHECK(f.d80->inactive_conns == inactive);
    CHECK(f.d80->persist_conns == persist);
    CHECK(persist == 1);
}
