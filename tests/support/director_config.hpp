// SPDX-License-Identifier: MIT
// Test support: configure a director from a vector line's `services` field (FORMAT.md "Configuration in the
// records").
#pragma once

#include <string>

#include <ipvs/director.hpp>

#include "oracle.hpp"

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

/// The state name /proc/net/ip_vs_conn would print for a connection or template.
template <std::size_t N>
std::string state_name(const basic_conn<N>& e) {
    if (e.is_template()) return (e.state & template_assured) ? "ASSURED" : "NONE";
    if (e.protocol == ipproto::tcp) return std::string(name(static_cast<tcp_state>(e.state)));
    if (e.protocol == ipproto::sctp) return std::string(name(static_cast<sctp_state>(e.state)));
    return "UDP";
}

} // namespace ipvs::test
