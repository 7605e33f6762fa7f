// SPDX-License-Identifier: MIT
// Test support: configure a director from a vector line's `services` field (FORMAT.md "Configuration in the
// records").
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>

#include "build.hpp"
#include "oracle.hpp"
#include "proto/state_replay.hpp"

namespace ipvs::test {

inline std::uint8_t proto_number(const std::string& p) {
    if (p == "tcp" || p == "TCP") return ipproto::tcp;
    if (p == "udp" || p == "UDP") return ipproto::udp;
    return ipproto::sctp;
}

inline tun_info tun_from_json(const json& t) {
    tun_info ti;
    const std::string type = t.at("type");
    ti.type = type == "gue" ? tun_type::gue : type == "gre" ? tun_type::gre : tun_type::ipip;
    if (t.contains("port")) ti.port = t.at("port").get<std::uint16_t>();
    const std::string cs = t.value("csum", "none");
    ti.csum = cs == "csum";
    ti.remcsum = cs == "remcsum";
    return ti;
}

/// Adds every service of `services` (with its dests, in the order they were added) to `d`.
inline void configure(director& d, const json& services) {
    for (const auto& s : services) {
        service_config c;
        const auto vip = parse_endpoint(s.at("vip").get<std::string>());
        REQUIRE(vip);
        c.af = vip->addr.af;
        c.protocol = proto_number(s.at("proto"));
        c.vip = *vip;
        const std::string sched = s.at("sched");
        c.scheduler = sched;
        auto& svc = d.add_service(c);
        for (const auto& de : s.at("dests")) {
            dest_config dc;
            dc.ep = *parse_endpoint(de.at("dest").get<std::string>());
            dc.weight = de.at("weight").get<int>();
            const std::string fwd = de.at("fwd");
            dc.fwd = fwd == "dr" ? fwd_method::droute : fwd == "tun" ? fwd_method::tunnel : fwd_method::masq;
            if (de.contains("tun")) dc.tun = tun_from_json(de.at("tun"));
            d.add_dest(svc, dc);
        }
    }
}

/// The packet a vector token stands for (FORMAT.md: `cS`, `sFA`, `cPA` carrying 4 bytes, `c:INIT`,
/// `s:COOKIEACK`, `c:U`), sent `from` → `to`. Checksums are filled in as a sender would.
inline bytes token_packet(std::uint8_t proto, const std::string& token, const endpoint& from,
                          const endpoint& to) {
    const std::string body = token.size() > 1 && token[1] == ':' ? token.substr(2) : token.substr(1);
    bytes l4;
    if (proto == ipproto::tcp) {
        const auto f = replay::parse_tcp_letters(body).bits;
        l4 = tcp_segment(from.port, to.port, f, {}, (f & tcp_flag::psh) ? bytes{1, 2, 3, 4} : bytes{});
    } else if (proto == ipproto::udp) {
        l4 = udp_datagram(from.port, to.port, bytes{1, 2, 3, 4});
    } else {
        const auto type = replay::chunk_type(body);
        // Each chunk with a value of its minimum size (RFC 4960 §3.3); the state machine reads only types.
        const std::size_t value = type == sctp_chunk::init || type == sctp_chunk::init_ack           ? 16
                                  : type == sctp_chunk::data                                         ? 16
                                  : type == sctp_chunk::sack                                         ? 12
                                  : type == sctp_chunk::heartbeat || type == sctp_chunk::cookie_echo ? 8
                                  : type == sctp_chunk::shutdown                                     ? 4
                                                                                                     : 0;
        const std::uint32_t vtag = type == sctp_chunk::init ? 0 : 0xb1b2b3b4;
        l4 = sctp_packet(from.port, to.port, vtag, {sctp_chunk(type, bytes(value, 0))});
    }
    const auto f = to_string(from.addr), t = to_string(to.addr);
    return from.addr.is_v4() ? ipv4_packet(proto, f.c_str(), t.c_str(), l4)
                             : ipv6_packet(proto, f.c_str(), t.c_str(), l4, proto);
}

/// The state name /proc/net/ip_vs_conn would print for a connection or template.
template <std::size_t N>
std::string state_name(const basic_conn<N>& e) {
    if (e.is_template()) return (e.state & template_assured) ? "ASSURED" : "NONE";
    if (e.protocol == ipproto::tcp) return std::string(name(static_cast<tcp_state>(e.state)));
    if (e.protocol == ipproto::sctp) return std::string(name(static_cast<sctp_state>(e.state)));
    return "UDP";
}

// ---- decision files (sched, schedl4, fwmark, persist) through the whole director ----------------------
namespace decisions {

struct tally {
    int judged = 0, counters_differ = 0, stale = 0, events = 0;
};

inline std::string addr_text(const inet_addr& a) { return to_string(a); }

inline bytes first_packet(std::uint8_t proto, const endpoint& client, const endpoint& vip) {
    bytes l4 = proto == ipproto::tcp ? tcp_segment(client.port, vip.port, tcp_flag::syn)
               : proto == ipproto::udp
                   ? udp_datagram(client.port, vip.port, bytes(8, 1))
                   : sctp_packet(client.port, vip.port, 0, {sctp_chunk(sctp_chunk::init, bytes(16, 0))});
    const auto c = addr_text(client.addr), v = addr_text(vip.addr);
    return client.addr.is_v4() ? ipv4_packet(proto, c.c_str(), v.c_str(), l4)
                               : ipv6_packet(proto, c.c_str(), v.c_str(), l4, proto);
}

inline bytes packet(std::uint8_t proto, const endpoint& from, const endpoint& to, std::uint8_t tcp_flags,
                    std::uint8_t chunk) {
    bytes l4 = proto == ipproto::tcp ? tcp_segment(from.port, to.port, tcp_flags)
                                     : sctp_packet(from.port, to.port, 1, {sctp_chunk(chunk, bytes(8, 0))});
    const auto f = addr_text(from.addr), t = addr_text(to.addr);
    return from.addr.is_v4() ? ipv4_packet(proto, f.c_str(), t.c_str(), l4)
                             : ipv6_packet(proto, f.c_str(), t.c_str(), l4, proto);
}

struct flow {
    endpoint vip, rs;
};

// The test's follow-ups of a step (FORMAT.md `then`, `pre_close`), as packets through the director.
inline void follow_up(director& d, std::uint8_t proto, const endpoint& client, const flow& f,
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

// A recorded configuration change (FORMAT.md `event`): `ipvsadm -e EP -w W`, `ipvsadm -a EP -w W`,
// `ipvsadm -d EP` on the case's service, or `sysctl net.ipv4.vs.NAME=V`. `-e`/`-a` without -x/-y mean
// thresholds 0 (ipvsadm), the forwarding method stays the case's (NAT).
inline void apply_event(director& d, director::svc_entry& s, const std::string& op) {
    std::istringstream in(op);
    std::string tool, verb, ep_text, opt;
    in >> tool >> verb;
    if (tool == "sysctl") {
        const auto eq = verb.find('=');
        const std::string name = verb.substr(verb.rfind('.', eq) + 1, eq - verb.rfind('.', eq) - 1);
        const int v = std::stoi(verb.substr(eq + 1));
        REQUIRE_MESSAGE(name == "expire_quiescent_template", "unknown sysctl in event: " << op);
        d.sysctl().expire_quiescent_template = v != 0;
        return;
    }
    in >> ep_text;
    const auto ep = parse_endpoint(ep_text);
    REQUIRE_MESSAGE(ep, "bad endpoint in event: " << op);
    dest_config dc;
    dc.ep = *ep;
    while (in >> opt)
        if (opt == "-w") in >> dc.weight;
    if (verb == "-e")
        d.edit_dest(s, dc);
    else if (verb == "-a")
        d.add_dest(s, dc);
    else if (verb == "-d")
        d.del_dest(s, *ep);
    else
        FAIL("unknown event: " << op);
}

// Our dest counters equal the recorded `pre` for every dest: the scheduler saw what the kernel saw.
inline bool counters_match(director::svc_entry& s, const json& pre) {
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

/// Replays the decision lines of one file. With `extra`, only the persistent cases and the cases it names
/// (sched.jsonl: the scheduler test replays the others without a director).
inline void replay(const std::vector<json>& lines, const std::set<std::string>* extra,
                   std::map<std::string, tally>& by_sched) {
    std::unique_ptr<director> d;
    director::svc_entry* svc = nullptr;
    std::string sched, case_name;
    std::uint8_t proto = ipproto::tcp;
    bool skip_case = true;
    std::map<endpoint, flow> flows;
    bool counter_free = false;
    std::vector<std::pair<inet_addr, std::pair<unsigned, std::uint32_t>>> marks; // prefix, (length, mark)
    for (const auto& line : lines) {
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
            skip_case = extra && !persistent && !extra->count(case_name);
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
            proto = proto_number(line.value("proto", std::string("tcp")));
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
            flows.clear();
            counter_free = sched == "rr" || sched == "wrr" || sched == "sh" || sched == "dh" || sched == "mh";
            for (const auto& de : line.at("dests_added_in_order"))
                if (de.at("u_threshold").get<std::uint32_t>() != 0) counter_free = false;
            continue;
        }
        if (skip_case) continue;
        if (type == "event") {
            for (const auto& op : line.at("event")) apply_event(*d, *svc, op.get<std::string>());
            ++by_sched[sched].events;
            continue;
        }
        auto& t = by_sched[sched];
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

/// Prints the per-scheduler tallies of one vector set; returns the decisions judged.
inline int report(const std::filesystem::path& dir, const std::map<std::string, tally>& by_sched) {
    int judged = 0;
    for (const auto& entry : by_sched) {
        const std::string& s = entry.first; // no structured binding: MESSAGE's lambda captures it
        const tally& t = entry.second;
        MESSAGE(dir.filename().string() << " " << s << ": " << t.judged << " decisions judged; not judged: "
                                        << t.counters_differ << " (counters differ from the recording), "
                                        << t.stale << " pre_stale; " << t.events << " config events applied");
        judged += t.judged;
    }
    return judged;
}
} // namespace decisions

} // namespace ipvs::test
