// SPDX-License-Identifier: MIT
// Kernel oracle: scheduling decisions (schedl4.jsonl, the persistent cases of sched.jsonl) through the whole
// director.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>

#include "support/build.hpp"
#include "support/director_config.hpp"
#include "support/oracle.hpp"

using namespace ipvs;
using test::bytes;

namespace {

struct tally {
    int judged = 0, counters_differ = 0, stale = 0, after_event = 0;
};

std::string addr_text(const inet_addr& a) { return to_string(a); }

bytes first_packet(std::uint8_t proto, const endpoint& client, const endpoint& vip) {
    bytes l4 =
        proto == ipproto::tcp ? test::tcp_segment(client.port, vip.port, tcp_flag::syn)
        : proto == ipproto::udp
            ? test::udp_datagram(client.port, vip.port, bytes(8, 1))
            : test::sctp_packet(client.port, vip.port, 0, {test::sctp_chunk(sctp_chunk::init, bytes(16, 0))});
    const auto c = addr_text(client.addr), v = addr_text(vip.addr);
    return client.addr.is_v4() ? test::ipv4_packet(proto, c.c_str(), v.c_str(), l4)
                               : test::ipv6_packet(proto, c.c_str(), v.c_str(), l4, proto);
}

bytes packet(std::uint8_t proto, const endpoint& from, const endpoint& to, std::uint8_t tcp_flags,
             std::uint8_t chunk) {
    bytes l4 = proto == ipproto::tcp
                   ? test::tcp_segment(from.port, to.port, tcp_flags)
                   : test::sctp_packet(from.port, to.port, 1, {test::sctp_chunk(chunk, bytes(8, 0))});
    const auto f = addr_text(from.addr), t = addr_text(to.addr);
    return from.addr.is_v4() ? test::ipv4_packet(proto, f.c_str(), t.c_str(), l4)
                             : test::ipv6_packet(proto, f.c_str(), t.c_str(), l4, proto);
}

struct flow {
    endpoint vip, rs;
};

// The test's follow-ups of a step (FORMAT.md `then`, `pre_close`), as packets through the director.
void follow_up(director& d, std::uint8_t proto, const endpoint& client, const flow& f,
               const std::string& what, time_ns now) {
    auto in = [&](std::uint8_t fl, std::uint8_t ch) {
        auto p = packet(proto, client, f.vip, fl, ch);
        (void)d.in(p, now);
    };
    auto out = [&](std::uint8_t fl, std::uint8_t ch) {
        auto p = packet(proto, f.rs, client, fl, ch);
        (void)d.out(p, now);
    };
    if (what.rfind("establish", 0) == 0) {
        if (proto == ipproto::tcp) {
            out(tcp_flag::syn | tcp_flag::ack, 0);
            in(tcp_flag::ack, 0);
        } else if (proto == ipproto::sctp) {
            out(0, sctp_chunk::init_ack);
            in(0, sctp_chunk::cookie_echo);
            out(0, sctp_chunk::cookie_ack);
        }
    }
    if (what == "establish_rst" || what == "rst") in(tcp_flag::rst, 0);
    if (what == "establish_fin" || what == "fin") in(tcp_flag::fin | tcp_flag::ack, 0);
    if (what == "abort") in(0, sctp_chunk::abort);
}

// Our dest counters equal the recorded `pre` for every dest: the scheduler saw what the kernel saw.
bool counters_match(director::svc_entry& s, const test::json& pre) {
    for (const dest* d : s.svc.dests()) {
        const auto key = to_string(d->ep);
        if (!pre.contains(key)) return false;
        const auto& w = pre.at(key);
        if (w[0].get<int>() != d->weight || w[1].get<int>() != d->active_conns ||
            w[2].get<int>() != d->inactive_conns)
            return false;
    }
    return true;
}

void replay(const std::filesystem::path& file, bool persistent_only, std::map<std::string, tally>& by_sched) {
    std::unique_ptr<director> d;
    director::svc_entry* svc = nullptr;
    std::string sched, case_name;
    std::uint8_t proto = ipproto::tcp;
    bool skip_case = true, had_event = false;
    std::map<endpoint, flow> flows;
    bool counter_free = false;
    std::vector<std::pair<inet_addr, std::pair<unsigned, std::uint32_t>>> marks; // prefix, (length, mark)
    for (const auto& line : test::read_jsonl(file)) {
        const std::string type = line.at("type");
        if (type == "setup") { // fwmark.jsonl: the nftables marks the recorded director had
            for (const char* af : {"v4", "v6"}) {
                const std::string range = line.at(std::string("range_") + af);
                const auto slash = range.find('/');
                marks.push_back({*parse_addr(range.substr(0, slash)),
                                 {static_cast<unsigned>(std::stoi(range.substr(slash + 1))),
                                  line.at(std::string("fwmark_") + af).get<std::uint32_t>()}});
            }
            continue;
        }
        if (type == "case") {
            case_name = line.at("case");
            const bool persistent = !line.at("persistent").is_null();
            skip_case = persistent_only && !persistent;
            if (skip_case) continue;
            d = std::make_unique<director>();
            service_config c;
            const bool fwm = line.contains("fwmark") && !line.at("fwmark").is_null();
            if (fwm) {
                c.fwmark = line.at("fwmark").get<std::uint32_t>();
                c.af = line.at("af").get<int>() == 4 ? family::v4 : family::v6;
            } else {
                c.vip = *parse_endpoint(line.at("vip").get<std::string>());
                c.af = c.vip.addr.af;
            }
            if (line.contains("netmask") && !line.at("netmask").is_null()) {
                const auto& nm = line.at("netmask");
                if (nm.is_string())
                    c.netmask_prefix = static_cast<unsigned>(
                        __builtin_popcount(parse_addr(nm.get<std::string>())->v4_host()));
                else
                    c.netmask_prefix = nm.get<unsigned>();
            }
            proto = test::proto_number(line.value("proto", std::string("tcp")));
            c.protocol = proto;
            sched = line.at("sched");
            c.scheduler = sched;
            const std::string flags = line.at("flags");
            c.sched_flags.port = flags.find("port") != std::string::npos;
            c.sched_flags.fallback = flags.find("fallback") != std::string::npos;
            c.persistent = persistent;
            if (persistent) c.persist_timeout = std::chrono::seconds(line.at("persistent").get<int>());
            c.one_packet = line.value("ops", false);
            svc = &d->add_service(c);
            for (const auto& de : line.at("dests_added_in_order")) {
                dest_config dc;
                dc.ep = endpoint{*parse_addr(de.at("addr").get<std::string>()),
                                 de.at("port").get<std::uint16_t>()};
                dc.weight = de.at("weight").get<int>();
                dc.u_threshold = de.at("u_threshold").get<std::uint32_t>();
                dc.l_threshold = de.at("l_threshold").get<std::uint32_t>();
                d->add_dest(*svc, dc);
            }
            had_event = false;
            flows.clear();
            counter_free = sched == "rr" || sched == "wrr" || sched == "sh" || sched == "dh" || sched == "mh";
            for (const auto& de : line.at("dests_added_in_order"))
                if (de.at("u_threshold").get<std::uint32_t>() != 0) counter_free = false;
            continue;
        }
        if (skip_case) continue;
        if (type == "event") {
            had_event = true; // configuration edits are replayed by the scheduler test; stop judging here
            continue;
        }
        auto& t = by_sched[sched];
        if (had_event) {
            ++t.after_event;
            continue;
        }
        const endpoint client{*parse_addr(line.at("client").get<std::string>()),
                              line.at("cport").get<std::uint16_t>()};
        const endpoint vip = *parse_endpoint(line.value("vip", to_string(svc->cfg.vip)));
        std::uint32_t mark = 0;
        for (const auto& [prefix, lm] : marks)
            if (vip.addr.af == prefix.af && vip.addr.masked(lm.first) == prefix) mark = lm.second;
        const time_ns now = std::chrono::milliseconds(static_cast<long>(line.at("t").get<double>() * 1000)) +
                            std::chrono::seconds(1);
        if (line.contains("pre_close") && line.at("pre_close").is_string()) {
            const std::string pc = line.at("pre_close");
            const auto sp = pc.find(' ');
            const auto who = parse_endpoint(pc.substr(sp + 1));
            if (who && flows.count(*who)) follow_up(*d, proto, *who, flows[*who], pc.substr(0, sp), now);
        }
        const bool judge =
            !line.value("pre_stale", false) && (counter_free || counters_match(*svc, line.at("pre")));
        auto pkt = first_packet(proto, client, vip);
        const verdict v = d->in(pkt, now, mark);
        const std::string got = v.act == action::forward && v.to ? to_string(v.to->ep) : "null";
        const std::string want = line.at("chosen").is_null() ? "null" : line.at("chosen").get<std::string>();
        if (v.act == action::forward && v.to) {
            flows[client] = flow{vip, endpoint{v.to->ep.addr, v.to->ep.port ? v.to->ep.port : vip.port}};
            if (line.contains("then") && line.at("then").is_string())
                follow_up(*d, proto, client, flows[client], line.at("then").get<std::string>(), now);
        }
        if (line.value("pre_stale", false)) {
            ++t.stale;
        } else if (!judge) {
            if (std::getenv("IPVS_DEBUG_REPLAY") && t.counters_differ == 0) {
                std::string ours;
                for (const dest* x : svc->svc.dests())
                    ours += to_string(x->ep) + "=[" + std::to_string(x->weight) + "," +
                            std::to_string(x->active_conns) + "," + std::to_string(x->inactive_conns) + "] ";
                MESSAGE(case_name << " step " << line.at("step") << " pre " << line.at("pre").dump()
                                  << " ours " << ours);
            }
            ++t.counters_differ;
        } else {
            CHECK_MESSAGE(got == want,
                          case_name << " step " << line.at("step") << ": got " << got << ", kernel " << want);
            ++t.judged;
        }
    }
}
} // namespace

TEST_CASE("oracle: director decisions (schedl4, fwmark, persist, persistent sched cases) through in()") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        std::map<std::string, tally> by_sched;
        int files = 0;
        if (auto f = test::oracle_file(dir, "schedl4.jsonl")) replay(*f, false, by_sched), ++files;
        if (auto f = test::oracle_file(dir, "sched.jsonl")) replay(*f, true, by_sched), ++files;
        if (auto f = test::oracle_file(dir, "fwmark.jsonl")) replay(*f, false, by_sched), ++files;
        if (auto f = test::oracle_file(dir, "persist.jsonl")) replay(*f, false, by_sched), ++files;
        if (!files) continue;
        int judged = 0;
        for (const auto& [s, t] : by_sched) {
            MESSAGE(dir.filename().string()
                    << " " << s << ": " << t.judged << " decisions judged; not judged: " << t.counters_differ
                    << " (counters differ from the recording), " << t.stale << " pre_stale, " << t.after_event
                    << " after a config event");
            judged += t.judged;
        }
        CHECK(judged > 0);
        ++sets;
    }
    CHECK(sets > 0);
}
