// SPDX-License-Identifier: MIT
// Reads director rules in the format `ipvsadm-save -n` prints (and `ipvsadm-restore` accepts), plus the
// demo's `--mark` rules, into a plain struct; prints them back with to_text().
#pragma once

// Design
// ------
// One rule a line, tokens split on blanks; `#` at the start of a token comments out the rest of the
// line; blank lines are skipped; a line may begin with the word `ipvsadm` (ipvsadm(8), -R). The first
// token is the command, as in ipvsadm (its popt loop reads the command first):
//
//   -A|--add-service  SVC [-s|--scheduler NAME] [-p|--persistent [SECONDS]] [-M|--netmask MASK]
//                         [-b|--sched-flags FLAGS] [-o|--ops]
//   -a|--add-server   SVC -r|--real-server ADDR[:PORT] [-m|--masquerading | -g|--gatewaying | -i|--ipip]
//                         [-w|--weight N] [-x|--u-threshold N] [-y|--l-threshold N]
//                         [--tun-type ipip|gue|gre] [--tun-port N] [--tun-nocsum|--tun-csum|--tun-remcsum]
//   --mark            [tcp|udp|sctp] PREFIX[:PORT]=MARK            (the demo's own, see below)
//
//   SVC = -t|--tcp-service ADDR[:PORT] | -u|--udp-service ADDR[:PORT] | --sctp-service ADDR[:PORT]
//       | -f|--fwmark-service MARK [-6|--ipv6]
//   ADDR = a.b.c.d | [v6] | v6 (bare only without a port). Numbers only: names are not resolved.
//
// A long option takes its value as the next token or after `=` (`--weight=3`); a short one as the next
// token or glued (`-w3`). `-p` takes a value only when the next token does not start with `-`.
//
// What ipvsadm 1.31 (Debian 12) and the kernel do, and so what this reader does (spec §1.1, §1.2):
// - defaults: scheduler wlc, weight 1, forwarding -g (direct routing), -p 300 s, netmask /32 or /128;
// - a dest without a port takes the service's port (0 for fwmark services); with -g or -i on a
//   non-fwmark service its port is forced to the service's, as ipvsadm does silently;
// - -p 1..2678400 s (ipvsadm's MAX_TIMEOUT, 31 days); -w, -x, -y 0..2147483647 (ipvsadm 1.31 parses
//   them against INT_MAX; its man page's 65535 for -x/-y is stale); -y > -x is refused (the kernel's
//   ERANGE, also when -x is 0); -M is a dotted mask for IPv4, a prefix length 1..128 for IPv6;
// - port 0 needs -p ("Zero port specified for non-persistent service"); -o only for UDP or fwmark
//   services; -b takes sh-fallback, sh-port (with -s sh) or mh-fallback, mh-port (with -s mh);
// - a dest of another family than its service only with -i (ipvsadm: "Different address family is
//   allowed only for tunneling servers"); GUE needs --tun-port; --tun-port only with GUE; the checksum
//   options only with GUE or GRE, --tun-remcsum only with GUE; tunnel options only with -i;
// - every option at most once per line (ipvsadm: "multiple '...' options specified").
// On top of ipvsadm, refused because a file that does this is a mistake: a dest before its service, a
// service or a dest given twice, an option of -a on an -A line and vice versa.
//
// ipvsadm-save -n prints (1.31, format strings read from the binary):
//   -A SVC -s SCHED[ -p T[ -M MASK]][ --pe PE][ -o][ -b FLAGS]
//   -a SVC -r DEST -m|-g|-i -w W[ --tun-type ipip | --tun-type gue --tun-port P CSUM | --tun-type gre CSUM]
// where SVC is `-t|-u|--sctp-service ADDR:PORT`, `-f MARK` or `-f MARK -6`, IPv6 in brackets, and CSUM
// is --tun-nocsum, --tun-csum or --tun-remcsum. to_text() prints exactly this, services in file order
// each followed by its dests, and additionally ` -x U`/` -y L` after -w when set (ipvsadm-save omits the
// thresholds, which restore would then lose; ipvsadm-restore accepts them), then the mark rules.
//
// The demo's fwmark rules (CLARIFICATIONS "fwmark without netfilter"): the director marks packets
// itself, the way LVS users write `iptables -t mangle -A PREROUTING -d 10.0.3.0/24 -j MARK --set-mark
// 16`, and then looks `-f` services up by (family, mark):
//
//   --mark [PROTO] PREFIX[:PORT]=MARK
//   PROTO  = tcp | udp | sctp; without it any protocol matches. A PORT needs a PROTO (as --dport does).
//   PREFIX = a.b.c.d[/0..32] | v6[/0..128] | [v6[/0..128]]; with a PORT an IPv6 prefix is bracketed:
//            `[fd00:3::/64]:80`. Without /LEN the prefix is the whole address. Bits past the prefix
//            must be zero (a typo otherwise).
//   PORT   = 1..65535, the destination port; MARK = 1..4294967295.
//   e.g.  --mark 10.0.3.0/24=16    --mark tcp 10.0.3.0/24:80=16    --mark udp [fd00:3::/64]:53=22
// A rule matches a packet's destination address (and protocol, destination port). Every rule is
// applied in file order and the last match wins, as a chain of mangle MARK rules (which do not stop
// the chain) would leave it. Each mark must name a `-f MARK` service of the same family.
//
// Errors: the first problem found, as line number + offending text + what is wrong (rules_error). No
// exception escapes the parser (bad_alloc included: it becomes an error too).
//
// Deviations from ipvsadm: host and port names are not resolved; an IPv4 -M must be a contiguous mask
// (the library keeps a prefix length); `--pe` (persistence engines) is refused; -6 may come before -f;
// commands other than -A/-a (-E, -D, -C, …) are refused: a rules file describes one configuration.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/sched/scheduler.hpp>

namespace ipvs::examples {

inline constexpr std::uint8_t proto_tcp = 6, proto_udp = 17, proto_sctp = 132;
inline constexpr std::uint32_t default_persist_timeout = 300;    ///< ipvsadm's -p default, seconds
inline constexpr std::uint32_t max_persist_timeout = 86400 * 31; ///< ipvsadm's MAX_TIMEOUT
inline constexpr std::uint32_t max_weight = 2147483647;          ///< INT_MAX, ipvsadm 1.31's bound

/// The schedulers the library implements, by ipvsadm name (the kernel's ip_vs_*.c modules).
inline constexpr std::array<std::string_view, 14> scheduler_names = {
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"};

/// A real server line (`-a`).
struct dest_rule {
    endpoint ep{};                       ///< port 0 on a fwmark service: keep the packet's port
    fwd_method fwd = fwd_method::droute; ///< ipvsadm's default is -g
    std::uint32_t weight = 1;
    std::uint32_t u_threshold = 0;
    std::uint32_t l_threshold = 0;
    tun_info tun{}; ///< meaningful with fwd_method::tunnel only
    std::size_t line = 0;
};

/// A virtual service line (`-A`) and its dests in file order (the order `ipvsadm -a` added them).
struct service_rule {
    family af = family::v4;
    std::uint8_t protocol = proto_tcp; ///< fwmark services: TCP, as the kernel stores them (spec §1.1)
    endpoint vip{};                    ///< zero for fwmark services
    std::uint32_t fwmark = 0;          ///< non-zero: a `-f` service
    std::string scheduler = "wlc";
    sched::sched_flags flags{};
    bool persistent = false;
    std::uint32_t persist_timeout = 0; ///< seconds (-p), 0 unless persistent
    unsigned netmask_prefix = 32;      ///< -M as a prefix length: /32 or /128 by default
    bool one_packet = false;           ///< -o
    std::vector<dest_rule> dests;
    std::size_t line = 0;
};

/// A `--mark` rule: packets to `prefix/prefix_len` (and `protocol`, `port` when non-zero) get `mark`.
struct mark_rule {
    inet_addr prefix{};
    unsigned prefix_len = 32;
    std::uint8_t protocol = 0; ///< 0 = any protocol
    std::uint16_t port = 0;    ///< 0 = any port (only with a protocol)
    std::uint32_t mark = 0;
    std::size_t line = 0;

    [[nodiscard]] bool matches(const inet_addr& daddr, std::uint8_t proto,
                               std::uint16_t dport) const noexcept {
        if (daddr.af != prefix.af || daddr.masked(prefix_len) != prefix) return false;
        if (protocol != 0 && proto != protocol) return false;
        return port == 0 || dport == port;
    }
};

struct rule_set {
    std::vector<service_rule> services;
    std::vector<mark_rule> marks;
};

/// Where and why a rules file was refused.
struct rules_error {
    std::size_t line = 0; ///< 1-based; 0 when no line is at fault (the file cannot be read)
    std::string text;     ///< the offending text: an option with its value, or the line
    std::string message;  ///< what is wrong

    /// "line 7: `-w 70000x`: weight must be a number 0..2147483647".
    [[nodiscard]] std::string what() const {
        std::string s = line != 0 ? "line " + std::to_string(line) + ": " : std::string{};
        if (!text.empty()) s += "`" + text + "`: ";
        return s + message;
    }
};

/// Either the rules or the first error (then `rules` is empty).
struct rules_result {
    rule_set rules;
    std::optional<rules_error> error;
    [[nodiscard]] bool ok() const noexcept { return !error; }
    explicit operator bool() const noexcept { return ok(); }
};

/// The mark the rules give a packet to `daddr` (`proto`, `dport`), or 0 when none matches. The last
/// matching rule wins (see the design block).
[[nodiscard]] inline std::uint32_t match_mark(std::span<const mark_rule> marks, const inet_addr& daddr,
                                              std::uint8_t proto, std::uint16_t dport) noexcept {
    std::uint32_t mark = 0;
    for (const auto& m : marks)
        if (m.matches(daddr, proto, dport)) mark = m.mark;
    return mark;
}

// ---------------------------------------------------------------------------------------------------
// Text forms of addresses (what inet_ntop and ipvsadm print)

/// "10.0.0.1", or an IPv6 address in RFC 5952 form as glibc's inet_ntop prints it (longest run of two
/// or more zero groups compressed, the first on a tie; ::a.b.c.d and ::ffff:a.b.c.d for the
/// IPv4-compatible and -mapped forms).
[[nodiscard]] inline std::string format_addr(const inet_addr& a) {
    auto quad = [](const std::uint8_t* b) {
        return std::to_string(b[0]) + '.' + std::to_string(b[1]) + '.' + std::to_string(b[2]) + '.' +
               std::to_string(b[3]);
    };
    if (a.is_v4()) return quad(a.bytes.data());
    std::array<unsigned, 8> w{};
    for (std::size_t i = 0; i < 8; ++i) w[i] = (unsigned{a.bytes[2 * i]} << 8) | a.bytes[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && w[static_cast<std::size_t>(j)] == 0) ++j;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j == i ? i + 1 : j;
    }
    if (best_len < 2) best = -1;
    static constexpr char hex[] = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            s += "::";
            i += best_len - 1;
            continue;
        }
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
            return s + (s.back() == ':' ? "" : ":") + quad(a.bytes.data() + 12);
        if (!s.empty() && s.back() != ':') s += ':';
        const unsigned v = w[static_cast<std::size_t>(i)];
        bool lead = true;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const unsigned nib = (v >> static_cast<unsigned>(shift)) & 0xf;
            if (lead && nib == 0 && shift != 0) continue;
            lead = false;
            s += hex[nib];
        }
    }
    return s;
}

/// "10.0.0.1:80" or "[fd00::1]:80" (ipvsadm -n).
[[nodiscard]] inline std::string format_endpoint(const endpoint& e) {
    const std::string a = format_addr(e.addr);
    return (e.addr.is_v4() ? a : "[" + a + "]") + ':' + std::to_string(e.port);
}

namespace detail {

/// Decimal digits only, no sign, value ≤ max.
[[nodiscard]] constexpr std::optional<std::uint64_t> parse_uint(std::string_view s,
                                                                std::uint64_t max) noexcept {
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
        if (v > max) return std::nullopt;
    }
    return v;
}

/// ipvsadm's host[:port]: "a.b.c.d[:port]", "[v6][:port]" or a bare "v6" (no port). A missing port is
/// reported as nullopt in `port`.
struct host_port {
    inet_addr addr{};
    std::optional<std::uint16_t> port;
};
[[nodiscard]] inline std::optional<host_port> parse_host_port(std::string_view s, std::string& why) {
    if (auto ep = parse_endpoint(s)) return host_port{ep->addr, ep->port};
    std::string_view host = s, port;
    bool has_port = false;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return why = "missing `]` after the IPv6 address", std::nullopt;
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') return why = "expected `:PORT` after `]`", std::nullopt;
            port = s.substr(close + 2);
            has_port = true;
        }
        if (auto a = parse_addr(host); !a || !a->is_v6())
            return why = "not a numeric IPv6 address in brackets", std::nullopt;
    } else if (std::count(s.begin(), s.end(), ':') == 1) {
        const auto colon = s.find(':');
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        has_port = true;
    }
    const auto a = parse_addr(host);
    if (!a) return why = "not a numeric IPv4 or IPv6 address (names are not resolved)", std::nullopt;
    host_port hp{*a, std::nullopt};
    if (has_port) {
        const auto p = parse_uint(port, 65535);
        if (!p) return why = "port must be a number 0..65535 (names are not resolved)", std::nullopt;
        hp.port = static_cast<std::uint16_t>(*p);
    }
    return hp;
}

/// A dotted IPv4 mask as a prefix length; nullopt unless the mask is contiguous.
[[nodiscard]] constexpr std::optional<unsigned> mask_prefix(std::uint32_t mask) noexcept {
    unsigned n = 0;
    while (n < 32 && (mask & (0x80000000U >> n)) != 0) ++n;
    if (n < 32 && (mask << n) != 0) return std::nullopt; // a one after the first zero
    return n;
}

[[nodiscard]] inline std::string prefix_mask(unsigned prefix) {
    const std::uint32_t m = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    return format_addr(inet_addr::v4(m));
}

/// A mark rule's text after `--mark`: "[PROTO ]PREFIX/LEN[:PORT]=MARK".
[[nodiscard]] inline std::string mark_text(const mark_rule& m) {
    std::string out;
    if (m.protocol != 0) out += m.protocol == proto_tcp ? "tcp " : m.protocol == proto_udp ? "udp " : "sctp ";
    const std::string pfx = format_addr(m.prefix) + "/" + std::to_string(m.prefix_len);
    if (m.port != 0)
        out += (m.prefix.is_v6() ? "[" + pfx + "]" : pfx) + ":" + std::to_string(m.port);
    else
        out += pfx;
    return out + "=" + std::to_string(m.mark);
}

[[nodiscard]] inline std::string service_selector(const service_rule& s) {
    if (s.fwmark != 0) return "-f " + std::to_string(s.fwmark) + (s.af == family::v6 ? " -6" : "");
    const char* p = s.protocol == proto_tcp ? "-t " : s.protocol == proto_udp ? "-u " : "--sctp-service ";
    return p + format_endpoint(s.vip);
}

// Option table. `slot` groups options that ipvsadm counts as one (a service selector, a forwarding
// method, a tunnel checksum mode): each slot may be given once per line.
// clang-format off
enum class opt : std::uint8_t {
    tcp, udp, sctp, fwmark, ipv6, sched, persistent, netmask, sched_flags, ops, pe,
    real, masq, gate, ipip, weight, u_thresh, l_thresh, tun_type, tun_port, tun_nocsum, tun_csum, tun_remcsum
};
enum class arg : std::uint8_t { none, required, optional };
enum class cmd : std::uint8_t { add_service, add_server };
enum class slot : std::uint8_t {
    service, ipv6, sched, persistent, netmask, sched_flags, ops, pe, real, fwd, weight, u_thresh, l_thresh,
    tun_type, tun_port, tun_csum, count
};
// clang-format on
struct opt_spec {
    char short_name; ///< '\0' when the option has no short form
    std::string_view long_name;
    opt id;
    arg takes;
    slot group;
    bool on_service, on_server; ///< which commands accept it
};
// clang-format off
inline constexpr std::array<opt_spec, 23> opt_table = {{
    {'t',  "tcp-service",    opt::tcp,         arg::required, slot::service,     true,  true},
    {'u',  "udp-service",    opt::udp,         arg::required, slot::service,     true,  true},
    {'\0', "sctp-service",   opt::sctp,        arg::required, slot::service,     true,  true},
    {'f',  "fwmark-service", opt::fwmark,      arg::required, slot::service,     true,  true},
    {'6',  "ipv6",           opt::ipv6,        arg::none,     slot::ipv6,        true,  true},
    {'s',  "scheduler",      opt::sched,       arg::required, slot::sched,       true,  false},
    {'p',  "persistent",     opt::persistent,  arg::optional, slot::persistent,  true,  false},
    {'M',  "netmask",        opt::netmask,     arg::required, slot::netmask,     true,  false},
    {'b',  "sched-flags",    opt::sched_flags, arg::required, slot::sched_flags, true,  false},
    {'o',  "ops",            opt::ops,         arg::none,     slot::ops,         true,  false},
    {'\0', "pe",             opt::pe,          arg::required, slot::pe,          true,  false},
    {'r',  "real-server",    opt::real,        arg::required, slot::real,        false, true},
    {'m',  "masquerading",   opt::masq,        arg::none,     slot::fwd,         false, true},
    {'g',  "gatewaying",     opt::gate,        arg::none,     slot::fwd,         false, true},
    {'i',  "ipip",           opt::ipip,        arg::none,     slot::fwd,         false, true},
    {'w',  "weight",         opt::weight,      arg::required, slot::weight,      false, true},
    {'x',  "u-threshold",    opt::u_thresh,    arg::required, slot::u_thresh,    false, true},
    {'y',  "l-threshold",    opt::l_thresh,    arg::required, slot::l_thresh,    false, true},
    {'\0', "tun-type",       opt::tun_type,    arg::required, slot::tun_type,    false, true},
    {'\0', "tun-port",       opt::tun_port,    arg::required, slot::tun_port,    false, true},
    {'\0', "tun-nocsum",     opt::tun_nocsum,  arg::none,     slot::tun_csum,    false, true},
    {'\0', "tun-csum",       opt::tun_csum,    arg::none,     slot::tun_csum,    false, true},
    {'\0', "tun-remcsum",    opt::tun_remcsum, arg::none,     slot::tun_csum,    false, true},
}};
// clang-format on

/// One option as written on the line, with its value.
struct given {
    const opt_spec* spec = nullptr;
    std::string text;  ///< e.g. "-w 3" or "--weight=3": quoted in errors
    std::string value; ///< empty when none
    bool has_value = false;
};

/// Parses one rules file; the first error stops it.
class parser {
public:
    std::optional<rules_error> line(std::size_t lineno, std::string_view text) {
        m_lineno = lineno;
        m_line = text;
        m_tokens.clear();
        for (std::size_t i = 0; i < text.size();) {
            while (i < text.size() && is_blank(text[i])) ++i;
            if (i >= text.size() || text[i] == '#') break;
            std::size_t j = i;
            while (j < text.size() && !is_blank(text[j])) ++j;
            m_tokens.push_back(text.substr(i, j - i));
            i = j;
        }
        std::size_t first = 0;
        if (!m_tokens.empty() && m_tokens[0] == "ipvsadm") first = 1; // ipvsadm(8): restore lines may say so
        if (first == m_tokens.size()) return std::nullopt;
        const std::string_view c = m_tokens[first];
        const std::span<const std::string_view> rest(m_tokens.data() + first + 1,
                                                     m_tokens.size() - first - 1);
        if (c == "-A" || c == "--add-service") return command(cmd::add_service, rest);
        if (c == "-a" || c == "--add-server") return command(cmd::add_server, rest);
        if (c == "--mark") return mark(rest);
        return fail(std::string(c), "unsupported command: a rules line starts with -A (--add-service), "
                                    "-a (--add-server) or --mark");
    }

    /// Checks what needs the whole file (every mark names a `-f` service of its family).
    std::optional<rules_error> finish() {
        for (const auto& m : m_rules.marks) {
            bool found = false;
            for (const auto& s : m_rules.services) found |= s.fwmark == m.mark && s.af == m.prefix.af;
            if (!found) {
                m_lineno = m.line;
                return fail(mark_text(m), "no `-f " + std::to_string(m.mark) +
                                              (m.prefix.is_v6() ? " -6" : "") +
                                              "` service of this family for the mark");
            }
        }
        return std::nullopt;
    }

    rule_set take() { return std::move(m_rules); }

private:
    static bool is_blank(char c) noexcept {
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
    }

    std::optional<rules_error> fail(std::string text, std::string message) const {
        return rules_error{m_lineno, std::move(text), std::move(message)};
    }

    static const opt_spec* find_long(std::string_view name) noexcept {
        for (const auto& o : opt_table)
            if (o.long_name == name) return &o;
        return nullptr;
    }
    static const opt_spec* find_short(char c) noexcept {
        for (const auto& o : opt_table)
            if (o.short_name != '\0' && o.short_name == c) return &o;
        return nullptr;
    }

    /// Splits the tokens after the command into options with values, checking that each is known,
    /// allowed for the command and given once.
    std::optional<rules_error> options(cmd c, std::span<const std::string_view> toks,
                                       std::vector<given>& out) {
        std::array<const given*, static_cast<std::size_t>(slot::count)> seen{};
        out.reserve(toks.size());
        for (std::size_t i = 0; i < toks.size(); ++i) {
            const std::string_view t = toks[i];
            given g;
            std::optional<std::string_view> glued;
            if (t.size() > 2 && t.substr(0, 2) == "--") {
                const auto eq = t.find('=');
                g.spec =
                    find_long(t.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2));
                if (eq != std::string_view::npos) glued = t.substr(eq + 1);
            } else if (t.size() >= 2 && t[0] == '-') {
                g.spec = find_short(t[1]);
                if (t.size() > 2) glued = t.substr(2);
            } else {
                return fail(std::string(t), "unexpected argument (an option was expected)");
            }
            if (g.spec == nullptr) return fail(std::string(t), "unknown option");
            g.text = std::string(t);
            if (glued) {
                if (g.spec->takes == arg::none) return fail(g.text, "this option takes no value");
                g.value = std::string(*glued);
                g.has_value = true;
            } else if (g.spec->takes == arg::required) {
                if (i + 1 >= toks.size()) return fail(g.text, "missing value");
                g.value = std::string(toks[++i]);
                g.has_value = true;
                g.text += " " + g.value;
            } else if (g.spec->takes == arg::optional && i + 1 < toks.size() &&
                       !toks[i + 1].starts_with("-")) {
                g.value = std::string(toks[++i]);
                g.has_value = true;
                g.text += " " + g.value;
            }
            if (!(c == cmd::add_service ? g.spec->on_service : g.spec->on_server))
                return fail(g.text, c == cmd::add_service ? "not an option of -A (--add-service)"
                                                          : "not an option of -a (--add-server)");
            auto& prev = seen[static_cast<std::size_t>(g.spec->group)];
            if (prev != nullptr) return fail(g.text, "conflicts with `" + prev->text + "` given before");
            out.push_back(std::move(g));
            prev = &out.back(); // reserve() above keeps the address stable
        }
        return std::nullopt;
    }

    /// The virtual service a line names, as far as -t/-u/--sctp-service/-f and -6 say.
    std::optional<rules_error> selector(const std::vector<given>& opts, service_rule& s,
                                        const given*& where) {
        where = nullptr;
        bool v6_flag = false;
        const given* v6_opt = nullptr;
        for (const auto& g : opts) {
            if (g.spec->group == slot::ipv6) v6_flag = true, v6_opt = &g;
            if (g.spec->group != slot::service) continue;
            where = &g;
            if (g.spec->id == opt::fwmark) {
                const auto m = parse_uint(g.value, 0xffffffffULL);
                if (!m || *m == 0) return fail(g.text, "fwmark must be a number 1..4294967295");
                s.fwmark = static_cast<std::uint32_t>(*m);
                continue;
            }
            std::string why;
            const auto hp = parse_host_port(g.value, why);
            if (!hp) return fail(g.text, why);
            s.protocol = g.spec->id == opt::tcp ? proto_tcp : g.spec->id == opt::udp ? proto_udp : proto_sctp;
            s.vip = endpoint{hp->addr, hp->port.value_or(0)};
            s.af = hp->addr.af;
        }
        if (where == nullptr)
            return fail(m_line, "missing the virtual service (-t, -u, --sctp-service or -f)");
        if (v6_flag && s.fwmark == 0) return fail(v6_opt->text, "-6 is only for -f (fwmark) services");
        if (s.fwmark != 0) s.af = v6_flag ? family::v6 : family::v4;
        s.netmask_prefix = s.af == family::v4 ? 32 : 128;
        return std::nullopt;
    }

    static bool same_service(const service_rule& a, const service_rule& b) noexcept {
        if (a.fwmark != 0 || b.fwmark != 0) return a.fwmark == b.fwmark && a.af == b.af;
        return a.protocol == b.protocol && a.vip == b.vip;
    }

    std::optional<rules_error> command(cmd c, std::span<const std::string_view> toks) {
        std::vector<given> opts;
        if (auto e = options(c, toks, opts)) return e;
        service_rule s;
        const given* svc_opt = nullptr;
        if (auto e = selector(opts, s, svc_opt)) return e;
        s.line = m_lineno;
        return c == cmd::add_service ? add_service(opts, std::move(s), *svc_opt)
                                     : add_server(opts, s, *svc_opt);
    }

    std::optional<rules_error> add_service(const std::vector<given>& opts, service_rule s,
                                           const given& svc_opt) {
        const given* flags_opt = nullptr;
        const given* ops_opt = nullptr;
        for (const auto& g : opts) {
            switch (g.spec->id) {
            case opt::sched: {
                bool known = false;
                for (auto n : scheduler_names) known |= n == g.value;
                if (!known)
                    return fail(g.text,
                                "unknown scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)");
                s.scheduler = g.value;
                break;
            }
            case opt::persistent: {
                s.persistent = true;
                s.persist_timeout = default_persist_timeout;
                if (g.has_value) {
                    const auto t = parse_uint(g.value, max_persist_timeout);
                    if (!t || *t == 0) return fail(g.text, "persistence timeout must be 1..2678400 seconds");
                    s.persist_timeout = static_cast<std::uint32_t>(*t);
                }
                break;
            }
            case opt::netmask:
                if (auto e = netmask(g, s)) return e;
                break;
            case opt::sched_flags:
                flags_opt = &g;
                break;
            case opt::ops:
                s.one_packet = true;
                ops_opt = &g;
                break;
            case opt::pe:
                return fail(g.text, "persistence engines (--pe) are not supported");
            default:
                break;
            }
        }
        if (flags_opt != nullptr)
            if (auto e = sched_flags(*flags_opt, s)) return e;
        if (s.fwmark == 0 && s.vip.port == 0 && !s.persistent)
            return fail(svc_opt.text, "port 0 (any port) needs a persistent service (-p)");
        if (s.one_packet && s.fwmark == 0 && s.protocol != proto_udp)
            return fail(ops_opt->text, "one-packet scheduling (-o) is only for UDP and fwmark services");
        for (const auto& o : m_rules.services)
            if (same_service(o, s))
                return fail(svc_opt.text, "service already defined on line " + std::to_string(o.line));
        m_rules.services.push_back(std::move(s));
        return std::nullopt;
    }

    std::optional<rules_error> netmask(const given& g, service_rule& s) {
        if (s.af == family::v6) {
            const auto p = parse_uint(g.value, 128);
            if (!p || *p == 0) return fail(g.text, "an IPv6 netmask is a prefix length 1..128");
            s.netmask_prefix = static_cast<unsigned>(*p);
            return std::nullopt;
        }
        const auto a = parse_addr(g.value);
        if (!a || !a->is_v4()) return fail(g.text, "an IPv4 netmask is a dotted mask such as 255.255.255.0");
        const auto p = mask_prefix(a->v4_host());
        if (!p) return fail(g.text, "the netmask is not contiguous (ones, then zeros)");
        s.netmask_prefix = *p;
        return std::nullopt;
    }

    std::optional<rules_error> sched_flags(const given& g, service_rule& s) {
        std::string_view rest = g.value;
        while (true) {
            const auto comma = rest.find(',');
            const std::string_view f = rest.substr(0, comma);
            const bool sh = s.scheduler == "sh", mh = s.scheduler == "mh";
            if ((f == "sh-fallback" && sh) || (f == "mh-fallback" && mh)) {
                s.flags.fallback = true;
            } else if ((f == "sh-port" && sh) || (f == "mh-port" && mh)) {
                s.flags.port = true;
            } else if (f == "sh-fallback" || f == "sh-port" || f == "mh-fallback" || f == "mh-port") {
                return fail(g.text,
                            "scheduler flag `" + std::string(f) + "` does not go with -s " + s.scheduler);
            } else {
                return fail(g.text, "unknown scheduler flag `" + std::string(f) +
                                        "` (sh-fallback, sh-port, mh-fallback, mh-port)");
            }
            if (comma == std::string_view::npos) return std::nullopt;
            rest = rest.substr(comma + 1);
        }
    }

    std::optional<rules_error> add_server(const std::vector<given>& opts, const service_rule& key,
                                          const given& svc_opt) {
        service_rule* svc = nullptr;
        for (auto& o : m_rules.services)
            if (same_service(o, key)) svc = &o;
        if (svc == nullptr) return fail(svc_opt.text, "no such service defined before this line (-A first)");
        dest_rule d;
        d.line = m_lineno;
        const given* real = nullptr;
        const given* tun_opt = nullptr;
        const given* lower = nullptr;
        std::optional<std::uint16_t> real_port;
        bool tun_port_given = false, csum_given = false;
        for (const auto& g : opts) {
            switch (g.spec->id) {
            case opt::real: {
                std::string why;
                const auto hp = parse_host_port(g.value, why);
                if (!hp) return fail(g.text, why);
                d.ep.addr = hp->addr;
                real_port = hp->port;
                real = &g;
                break;
            }
            case opt::masq:
                d.fwd = fwd_method::masq;
                break;
            case opt::gate:
                d.fwd = fwd_method::droute;
                break;
            case opt::ipip:
                d.fwd = fwd_method::tunnel;
                break;
            case opt::weight:
            case opt::u_thresh:
            case opt::l_thresh: {
                const auto v = parse_uint(g.value, max_weight);
                const char* what = g.spec->id == opt::weight     ? "weight"
                                   : g.spec->id == opt::u_thresh ? "upper threshold"
                                                                 : "lower threshold";
                if (!v) return fail(g.text, std::string(what) + " must be a number 0..2147483647");
                auto& field = g.spec->id == opt::weight     ? d.weight
                              : g.spec->id == opt::u_thresh ? d.u_threshold
                                                            : d.l_threshold;
                field = static_cast<std::uint32_t>(*v);
                if (g.spec->id == opt::l_thresh) lower = &g;
                break;
            }
            case opt::tun_type:
                if (g.value == "ipip")
                    d.tun.type = tun_type::ipip;
                else if (g.value == "gue")
                    d.tun.type = tun_type::gue;
                else if (g.value == "gre")
                    d.tun.type = tun_type::gre;
                else
                    return fail(g.text, "tunnel type must be ipip, gue or gre");
                tun_opt = &g;
                break;
            case opt::tun_port: {
                const auto p = parse_uint(g.value, 65535);
                if (!p || *p == 0) return fail(g.text, "tunnel port must be a number 1..65535");
                d.tun.port = static_cast<std::uint16_t>(*p);
                tun_port_given = true;
                tun_opt = &g;
                break;
            }
            case opt::tun_nocsum:
            case opt::tun_csum:
            case opt::tun_remcsum:
                d.tun.csum = g.spec->id == opt::tun_csum;
                d.tun.remcsum = g.spec->id == opt::tun_remcsum;
                csum_given = true;
                tun_opt = &g;
                break;
            default:
                break;
            }
        }
        if (real == nullptr) return fail(m_line, "missing the real server (-r ADDR[:PORT])");
        if (tun_opt != nullptr && d.fwd != fwd_method::tunnel)
            return fail(tun_opt->text, "tunnel options need -i (--ipip)");
        if (d.fwd == fwd_method::tunnel) {
            const bool gue = d.tun.type == tun_type::gue;
            if (gue && !tun_port_given) return fail(tun_opt->text, "a GUE tunnel needs --tun-port");
            if (!gue && tun_port_given) return fail(tun_opt->text, "--tun-port is only for --tun-type gue");
            if (d.tun.type == tun_type::ipip && csum_given)
                return fail(tun_opt->text, "tunnel checksum options are only for gue and gre");
            if (d.tun.type == tun_type::gre && d.tun.remcsum)
                return fail(tun_opt->text, "--tun-remcsum is only for --tun-type gue");
        }
        if (d.ep.addr.af != svc->af && d.fwd != fwd_method::tunnel)
            return fail(real->text, std::string("an IPv") + (d.ep.addr.is_v4() ? "4" : "6") +
                                        " real server in an IPv" + (svc->af == family::v4 ? "4" : "6") +
                                        " service (another family is allowed only for tunneling, -i)");
        if (d.l_threshold > d.u_threshold)
            return fail(lower->text, "lower threshold (-y) above the upper threshold (-x " +
                                         std::to_string(d.u_threshold) + ")");
        // ipvsadm: a missing port is the service's; DR and TUN keep the service's port (no rewrite).
        d.ep.port = real_port.value_or(svc->vip.port);
        if (svc->fwmark == 0 && (d.fwd == fwd_method::droute || d.fwd == fwd_method::tunnel))
            d.ep.port = svc->vip.port;
        for (const auto& o : svc->dests)
            if (o.ep == d.ep)
                return fail(real->text,
                            "real server already in this service (line " + std::to_string(o.line) + ")");
        svc->dests.push_back(d);
        return std::nullopt;
    }

    std::optional<rules_error> mark(std::span<const std::string_view> toks) {
        if (toks.empty() || toks.size() > 2)
            return fail(m_line, "expected `--mark [tcp|udp|sctp] PREFIX[:PORT]=MARK`");
        mark_rule m;
        m.line = m_lineno;
        if (toks.size() == 2) {
            if (toks[0] == "tcp")
                m.protocol = proto_tcp;
            else if (toks[0] == "udp")
                m.protocol = proto_udp;
            else if (toks[0] == "sctp")
                m.protocol = proto_sctp;
            else
                return fail(std::string(toks[0]), "protocol must be tcp, udp or sctp");
        }
        const std::string_view t = toks.back();
        const std::string text(t);
        const auto eq = t.rfind('=');
        if (eq == std::string_view::npos) return fail(text, "expected PREFIX[:PORT]=MARK");
        const auto mk = parse_uint(t.substr(eq + 1), 0xffffffffULL);
        if (!mk || *mk == 0) return fail(text, "mark must be a number 1..4294967295");
        m.mark = static_cast<std::uint32_t>(*mk);
        std::string_view lhs = t.substr(0, eq), pfx = lhs, port;
        bool has_port = false;
        if (!lhs.empty() && lhs[0] == '[') {
            const auto close = lhs.find(']');
            if (close == std::string_view::npos) return fail(text, "missing `]`");
            pfx = lhs.substr(1, close - 1);
            if (close + 1 < lhs.size()) {
                if (lhs[close + 1] != ':') return fail(text, "expected `:PORT` after `]`");
                port = lhs.substr(close + 2);
                has_port = true;
            }
        } else if (std::count(lhs.begin(), lhs.end(), ':') == 1) {
            pfx = lhs.substr(0, lhs.find(':'));
            port = lhs.substr(lhs.find(':') + 1);
            has_port = true;
        }
        const auto slash = pfx.find('/');
        const auto a = parse_addr(pfx.substr(0, slash));
        if (!a) return fail(text, "not a numeric IPv4 or IPv6 prefix");
        if (!lhs.empty() && lhs[0] == '[' && !a->is_v6()) return fail(text, "brackets are for IPv6 prefixes");
        m.prefix = *a;
        m.prefix_len = a->is_v4() ? 32 : 128;
        if (slash != std::string_view::npos) {
            const auto len = parse_uint(pfx.substr(slash + 1), m.prefix_len);
            if (!len)
                return fail(text,
                            a->is_v4() ? "prefix length must be 0..32" : "prefix length must be 0..128");
            m.prefix_len = static_cast<unsigned>(*len);
        }
        if (a->masked(m.prefix_len) != *a)
            return fail(text, "address bits set past the prefix length (did you mean " +
                                  format_addr(a->masked(m.prefix_len)) + "/" + std::to_string(m.prefix_len) +
                                  "?)");
        if (has_port) {
            const auto p = parse_uint(port, 65535);
            if (!p || *p == 0) return fail(text, "port must be a number 1..65535");
            if (m.protocol == 0)
                return fail(text, "a port needs a protocol (tcp, udp or sctp) before the prefix");
            m.port = static_cast<std::uint16_t>(*p);
        }
        for (const auto& o : m_rules.marks)
            if (o.prefix == m.prefix && o.prefix_len == m.prefix_len && o.protocol == m.protocol &&
                o.port == m.port)
                return fail(text, "same match as the mark rule on line " + std::to_string(o.line));
        m_rules.marks.push_back(m);
        return std::nullopt;
    }

    rule_set m_rules;
    std::size_t m_lineno = 0;
    std::string m_line;
    std::vector<std::string_view> m_tokens;
};

} // namespace detail

/// Parses a whole rules text. Never throws.
[[nodiscard]] inline rules_result parse_rules(std::string_view text) noexcept {
    rules_result r;
    try {
        detail::parser p;
        std::size_t lineno = 0;
        while (!text.empty() || lineno == 0) {
            ++lineno;
            const auto nl = text.find('\n');
            const std::string_view line = text.substr(0, nl);
            text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
            if (auto e = p.line(lineno, line)) {
                r.error = std::move(e);
                return r;
            }
        }
        if (auto e = p.finish()) {
            r.error = std::move(e);
            return r;
        }
        r.rules = p.take();
    } catch (const std::exception& e) {
        r.rules = {};
        r.error = rules_error{0, {}, std::string("out of memory reading the rules: ") + e.what()};
    }
    return r;
}

/// Reads and parses a rules file. Never throws; a file that cannot be read is an error with line 0.
[[nodiscard]] inline rules_result read_rules_file(const std::filesystem::path& path) noexcept {
    try {
        std::ifstream in(path, std::ios::binary);
        if (!in) return {{}, rules_error{0, path.string(), "cannot open the rules file"}};
        std::ostringstream ss;
        ss << in.rdbuf();
        if (in.bad()) return {{}, rules_error{0, path.string(), "cannot read the rules file"}};
        return parse_rules(ss.str());
    } catch (const std::exception& e) {
        return {{}, rules_error{0, path.string(), std::string("cannot read the rules file: ") + e.what()}};
    }
}

/// The rules in ipvsadm-save -n form (see the design block), then the mark rules. parse_rules() of
/// the result gives the same rule_set (line numbers aside).
[[nodiscard]] inline std::string to_text(const rule_set& rs) {
    std::string out;
    for (const auto& s : rs.services) {
        const std::string sel = detail::service_selector(s);
        out += "-A " + sel + " -s " + s.scheduler;
        if (s.persistent) {
            out += " -p " + std::to_string(s.persist_timeout);
            if (s.af == family::v4 && s.netmask_prefix < 32)
                out += " -M " + detail::prefix_mask(s.netmask_prefix);
            if (s.af == family::v6 && s.netmask_prefix < 128)
                out += " -M " + std::to_string(s.netmask_prefix);
        }
        if (s.one_packet) out += " -o";
        if (s.flags.fallback || s.flags.port) {
            const std::string pre = s.scheduler == "mh" ? "mh-" : "sh-";
            out += " -b ";
            if (s.flags.fallback) out += pre + "fallback" + (s.flags.port ? "," : "");
            if (s.flags.port) out += pre + "port";
        }
        out += '\n';
        for (const auto& d : s.dests) {
            const char* fwd = d.fwd == fwd_method::masq ? "-m" : d.fwd == fwd_method::tunnel ? "-i" : "-g";
            out +=
                "-a " + sel + " -r " + format_endpoint(d.ep) + " " + fwd + " -w " + std::to_string(d.weight);
            if (d.u_threshold != 0) out += " -x " + std::to_string(d.u_threshold);
            if (d.l_threshold != 0) out += " -y " + std::to_string(d.l_threshold);
            if (d.fwd == fwd_method::tunnel) {
                const char* csum = d.tun.remcsum ? " --tun-remcsum"
                                   : d.tun.csum  ? " --tun-csum"
                                                 : " --tun-nocsum";
                switch (d.tun.type) {
                case tun_type::ipip:
                    out += " --tun-type ipip";
                    break;
                case tun_type::gue:
                    out += " --tun-type gue --tun-port " + std::to_string(d.tun.port) + csum;
                    break;
                case tun_type::gre:
                    out += std::string(" --tun-type gre") + csum;
                    break;
                }
            }
            out += '\n';
        }
    }
    for (const auto& m : rs.marks) out += "--mark " + detail::mark_text(m) + '\n';
    return out;
}

} // namespace ipvs::examples
