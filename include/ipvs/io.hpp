// SPDX-License-Identifier: MIT
// Printing: addresses as text, and a director's tables the way `ipvsadm -Ln --stats` and `ipvsadm -Lnc` show
// them.
#pragma once

// The core headers print nothing; everything that makes text lives here (STYLE: "printing lives in
// io.hpp"). These functions allocate (std::string) and are meant for the control path.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>

#include <ipvs/addr.hpp>
#include <ipvs/director.hpp>

namespace ipvs {

/// "10.0.0.100" / "fd00::100" (RFC 5952 §4: lower case, the longest run of two or more zero groups as "::").
[[nodiscard]] inline std::string to_string(const inet_addr& a) {
    char buf[64];
    if (a.is_v4()) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
        return buf;
    }
    unsigned g[8];
    for (int i = 0; i < 8; ++i) g[i] = (unsigned{a.bytes[2 * i]} << 8) | a.bytes[2 * i + 1];
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0) ++j;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j == i ? i + 1 : j;
    }
    std::string s;
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            s += "::";
            i += best_len - 1;
            continue;
        }
        if (!s.empty() && s.back() != ':') s += ':';
        std::snprintf(buf, sizeof buf, "%x", g[i]);
        s += buf;
    }
    return s;
}

/// "10.0.0.100:80" / "[fd00::100]:80", as ipvsadm -n prints endpoints.
[[nodiscard]] inline std::string to_string(const endpoint& e) {
    std::string s;
    if (e.addr.is_v6()) s += '[';
    s += to_string(e.addr);
    if (e.addr.is_v6()) s += ']';
    s += ':';
    s += std::to_string(e.port);
    return s;
}

namespace detail {
inline const char* proto_name(std::uint8_t p) noexcept {
    return p == ipproto::tcp ? "TCP" : p == ipproto::udp ? "UDP" : p == ipproto::sctp ? "SCTP" : "IP";
}
inline const char* fwd_name(fwd_method m) noexcept {
    switch (m) {
    case fwd_method::masq:
        return "Masq";
    case fwd_method::tunnel:
        return "Tunnel";
    case fwd_method::droute:
        return "Route";
    case fwd_method::localnode:
        return "Local";
    default:
        return "Bypass";
    }
}
inline std::string service_name(const service_config& c) {
    if (c.fwmark) return "FWM  " + std::to_string(c.fwmark) + (c.af == family::v6 ? " IPv6" : "");
    std::string s = proto_name(c.protocol);
    s.resize(5, ' ');
    return s + to_string(c.vip);
}
} // namespace detail

/// A counter as ipvsadm prints it without --exact: 9 columns, scaled to K / M / G / T past 10^8, 10^9,
/// 10^11, 10^14 (ipvsadm's print_largenum).
[[nodiscard]] inline std::string large_number(std::uint64_t i) {
    char buf[32];
    if (i < 100000000ULL)
        std::snprintf(buf, sizeof buf, "%9llu", static_cast<unsigned long long>(i));
    else if (i < 1000000000ULL)
        std::snprintf(buf, sizeof buf, "%8lluK", static_cast<unsigned long long>(i / 1000));
    else if (i < 100000000000ULL)
        std::snprintf(buf, sizeof buf, "%8lluM", static_cast<unsigned long long>(i / 1000000));
    else if (i < 100000000000000ULL)
        std::snprintf(buf, sizeof buf, "%8lluG", static_cast<unsigned long long>(i / 1000000000ULL));
    else
        std::snprintf(buf, sizeof buf, "%8lluT", static_cast<unsigned long long>(i / 1000000000000ULL));
    return buf;
}

/// `ipvsadm -Ln --stats`: per service and dest, connections, packets and bytes in and out. Columns as
/// ipvsadm prints them: the name in 33 columns (a dest's after "  -> " in 28), then each counter in 9.
[[nodiscard]] inline std::string list_stats(const director& d) {
    std::string out = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
                      "  -> RemoteAddress:Port\n";
    char name[256];
    auto row = [&](const traffic_stats& st) {
        out += name;
        for (const auto v : {st.conns, st.in_pkts, st.out_pkts, st.in_bytes, st.out_bytes})
            out += large_number(v);
        out += '\n';
    };
    for (const auto& s : d.services()) {
        std::snprintf(name, sizeof name, "%-33s", detail::service_name(s->cfg).c_str());
        row(s->stats);
        for (const dest* ds : s->svc.dests()) {
            std::snprintf(name, sizeof name, "  -> %-28s", to_string(ds->ep).c_str());
            row(ds->stats);
        }
    }
    return out;
}

/// `ipvsadm -Ln`: services, schedulers, dests with forwarding method, weight and connection counts.
[[nodiscard]] inline std::string list_services(const director& d) {
    std::string out = "Prot LocalAddress:Port Scheduler Flags\n"
                      "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    char line[256];
    for (const auto& s : d.services()) {
        std::string flags;
        if (s->cfg.persistent)
            flags = " persistent " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::seconds>(s->cfg.persist_timeout).count());
        std::snprintf(line, sizeof line, "%s %s%s\n", detail::service_name(s->cfg).c_str(),
                      s->svc.scheduler().name().data(), flags.c_str());
        out += line;
        for (const dest* ds : s->svc.dests()) {
            std::snprintf(line, sizeof line, "  -> %-28s %-7s %-6d %-10d %-10d\n", to_string(ds->ep).c_str(),
                          detail::fwd_name(ds->fwd), ds->weight, ds->active_conns, ds->inactive_conns);
            out += line;
        }
    }
    return out;
}

/// `ipvsadm -Lnc`: every connection and template with its protocol, time left (mm:ss, whole seconds
/// rounded down as /proc/net/ip_vs_conn has them), state, and client, virtual and real-server endpoints,
/// in ipvsadm's columns. With `title`, the "IPVS connection entries" line ipvsadm prints first.
[[nodiscard]] inline std::string list_conns(const director& d, time_ns now, bool title = false) {
    std::string out = title ? "IPVS connection entries\n" : "";
    out += "pro expire state       source             virtual            destination\n";
    char line[320];
    d.for_each_conn([&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        constexpr std::size_t N = E::addr_len;
        auto left = std::chrono::duration_cast<std::chrono::seconds>(d.deadline(e) - now).count();
        if (left < 0) left = 0; // due, not yet collected by poll()
        std::string state;
        if (e.is_template())
            state = (e.state & template_assured) ? "ASSURED" : "NONE";
        else if (e.protocol == ipproto::tcp)
            state = std::string(name(static_cast<tcp_state>(e.state)));
        else if (e.protocol == ipproto::sctp)
            state = std::string(name(static_cast<sctp_state>(e.state)));
        else
            state = "UDP";
        const endpoint src{to_inet<N>(e.caddr), e.cport}, vip{to_inet<N>(e.vaddr), e.vport};
        const endpoint dst{e.dest ? e.dest->ep.addr : inet_addr{}, e.dport()};
        char expire[48];
        std::snprintf(expire, sizeof expire, "%02lld:%02lld", static_cast<long long>(left / 60),
                      static_cast<long long>(left % 60));
        std::snprintf(line, sizeof line, "%-3s %-6s %-11s %-18s %-18s %s\n", detail::proto_name(e.protocol),
                      expire, state.c_str(), to_string(src).c_str(), to_string(vip).c_str(),
                      to_string(dst).c_str());
        out += line;
    });
    return out;
}

} // namespace ipvs
