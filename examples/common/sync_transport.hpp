// SPDX-License-Identifier: MIT
// The sync daemon's transport for the examples: UDP multicast sockets on a named interface, the
// ipvsadm --start-daemon options, and a `sync_node` that ties a sync_agent to its sockets.
#pragma once

// Design
// ------
// Source: spec §8.1 (group 224.0.0.81, port 8848, TTL 1, no multicast loopback, DF not set) and
// ipvsadm(8) (--start-daemon master|backup, --mcast-interface, --syncid, --sync-maxlen, --mcast-group,
// --mcast-port, --mcast-ttl). The kernel's master connects a UDP socket to group:port with the
// outgoing interface set by index; its backup binds group:port and joins the group on that interface.
// Here the same, in user space:
//
//   sender    socket(UDP) → IP_MULTICAST_IF (ip_mreqn by ifindex) → IP_MULTICAST_TTL → IP_MULTICAST_LOOP
//             → IP_PMTUDISC_DONT (DF not set) → connect(group:port); send() one message per datagram.
//   receiver  socket(UDP) → SO_REUSEADDR → bind(group:port) → IP_ADD_MEMBERSHIP on ifindex →
//             IP_MULTICAST_ALL 0 (only this socket's own memberships, not another program's).
//   (IPv6 groups: IPV6_MULTICAST_IF / _HOPS / _LOOP, IPV6_JOIN_GROUP, IPV6_MULTICAST_ALL.)
//
// Both are nonblocking; fd() is for the caller's poll()/epoll. Nothing here runs a thread: the
// caller's loop calls sync_node::on_tick(now) when next_deadline() passes and on_readable(now) when
// the receive fd is readable. Opening errors (no such interface, not a multicast group, a socket call
// refused) throw std::system_error / std::invalid_argument with the step and the interface named:
// they are configuration mistakes. send/receive never throw.
//
// Deviations: one sync thread and port (the kernel's sync_ports > 1 spreads connections over ports
// 8848 + i by pointer bits, which is not reproducible anyway); the default message size is the spec's
// 1472 / 1452 bytes (MTU 1500) whatever the interface's MTU; a receiver reads datagrams up to 64 KiB.

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/sync.hpp>
#include <ipvs/sync_agent.hpp>

namespace ipvs::examples {

// ---------------------------------------------------------------------------------------------------
// Options.

/// What `--start-daemon master|backup …` asked for. One command may start both roles (the kernel
/// runs a master and a backup thread side by side); they then share the other options.
struct sync_daemon_options {
    bool master = false;
    bool backup = false;
    std::string mcast_interface;            ///< required: the interface to send / join on
    std::uint8_t syncid = 0;                ///< 0: a backup accepts every syncid
    std::optional<std::size_t> sync_maxlen; ///< bytes of one message; default by group family
    inet_addr mcast_group = sync_wire::default_group;
    std::uint16_t mcast_port = sync_wire::default_port;
    std::uint8_t mcast_ttl = 1;
    bool mcast_loop = false; ///< the demo's --mcast-loop (tests on one host); the kernel never loops

    /// The message size a master uses: --sync-maxlen, or MTU 1500 less the IP and UDP headers.
    [[nodiscard]] std::size_t maxlen() const noexcept {
        if (sync_maxlen) return *sync_maxlen;
        return mcast_group.is_v6() ? sync_wire::default_maxlen_v6 : sync_wire::default_maxlen_v4;
    }
};

/// True for the option names parse_sync_daemon_options() knows (with or without `=value`), so a
/// program with options of its own can pick these out of its command line.
[[nodiscard]] inline bool is_sync_daemon_option(std::string_view arg) noexcept {
    const auto eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    for (std::string_view o : {"--start-daemon", "--mcast-interface", "--syncid", "--sync-maxlen",
                               "--mcast-group", "--mcast-port", "--mcast-ttl", "--mcast-loop"})
        if (name == o) return true;
    return false;
}

/// Whether option `arg` (already known to is_sync_daemon_option) takes a value.
[[nodiscard]] inline bool sync_daemon_option_takes_value(std::string_view arg) noexcept {
    return arg.substr(0, arg.find('=')) != "--mcast-loop";
}

namespace detail {
/// An unsigned decimal in [lo, hi], or an error naming the option and the range.
inline std::uint64_t parse_number(std::string_view opt, std::string_view v, std::uint64_t lo,
                                  std::uint64_t hi) {
    std::uint64_t n = 0;
    const auto* end = v.data() + v.size();
    const auto [p, ec] = std::from_chars(v.data(), end, n);
    if (v.empty() || ec != std::errc{} || p != end || n < lo || n > hi)
        throw std::invalid_argument(std::string(opt) + ": '" + std::string(v) + "' is not a number in " +
                                    std::to_string(lo) + ".." + std::to_string(hi));
    return n;
}
} // namespace detail

/// Parses ipvsadm's sync daemon options (each at most once, except --start-daemon which may name
/// both roles once each):
///
///     --start-daemon master|backup  --mcast-interface IF  [--syncid 0..255]  [--sync-maxlen 128..65507]
///     [--mcast-group ADDR]  [--mcast-port 1..65535]  [--mcast-ttl 1..255]  [--mcast-loop]
///
/// A value is the next argument or follows `=`. ipvsadm's defaults: syncid 0, group 224.0.0.81,
/// port 8848, TTL 1. Throws std::invalid_argument with a message naming the option on an unknown
/// option, a missing or bad value, a repeated option, no --start-daemon or no --mcast-interface.
[[nodiscard]] inline sync_daemon_options parse_sync_daemon_options(std::span<const std::string_view> args) {
    sync_daemon_options o;
    std::vector<std::string_view> seen;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (!is_sync_daemon_option(arg))
            throw std::invalid_argument("unknown sync daemon option '" + std::string(arg) + "'");
        const auto eq = arg.find('=');
        const std::string_view name = arg.substr(0, eq);
        std::string_view value;
        if (!sync_daemon_option_takes_value(name)) {
            if (eq != std::string_view::npos)
                throw std::invalid_argument(std::string(name) + " takes no value");
        } else if (eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
        } else {
            if (i + 1 >= args.size()) throw std::invalid_argument(std::string(name) + " needs a value");
            value = args[++i];
        }
        // Repeats are mistakes (ipvsadm: "multiple '...' options specified"); --start-daemon is checked
        // per role below.
        if (name != "--start-daemon") {
            for (auto s : seen)
                if (s == name)
                    throw std::invalid_argument("multiple '" + std::string(name) + "' options specified");
            seen.push_back(name);
        }
        if (name == "--start-daemon") {
            bool* role = value == "master" ? &o.master : value == "backup" ? &o.backup : nullptr;
            if (role == nullptr)
                throw std::invalid_argument("--start-daemon: '" + std::string(value) +
                                            "' is neither master nor backup");
            if (*role) throw std::invalid_argument("--start-daemon " + std::string(value) + " given twice");
            *role = true;
        } else if (name == "--mcast-interface") {
            if (value.empty() || value.size() >= IF_NAMESIZE)
                throw std::invalid_argument("--mcast-interface: '" + std::string(value) +
                                            "' is not an interface name (1.." +
                                            std::to_string(IF_NAMESIZE - 1) + " characters)");
            o.mcast_interface = std::string(value);
        } else if (name == "--syncid") {
            o.syncid = static_cast<std::uint8_t>(detail::parse_number(name, value, 0, 255));
        } else if (name == "--sync-maxlen") {
            // 128: room for the longest record without PE data (sync_buffer::min_maxlen); 65507: the
            // largest UDP payload over IPv4.
            o.sync_maxlen =
                static_cast<std::size_t>(detail::parse_number(name, value, sync_buffer::min_maxlen, 65507));
        } else if (name == "--mcast-group") {
            const auto a = parse_addr(value);
            if (!a)
                throw std::invalid_argument("--mcast-group: '" + std::string(value) +
                                            "' is not an IP address");
            const bool mc = a->is_v4() ? (a->v4_host() >> 28) == 0xe : a->word(0) >> 24 == 0xff;
            if (!mc)
                throw std::invalid_argument("--mcast-group: " + std::string(value) +
                                            " is not a multicast address");
            o.mcast_group = *a;
        } else if (name == "--mcast-port") {
            o.mcast_port = static_cast<std::uint16_t>(detail::parse_number(name, value, 1, 65535));
        } else if (name == "--mcast-ttl") {
            o.mcast_ttl = static_cast<std::uint8_t>(detail::parse_number(name, value, 1, 255));
        } else { // --mcast-loop
            o.mcast_loop = true;
        }
    }
    if (!o.master && !o.backup)
        throw std::invalid_argument("sync daemon: --start-daemon master|backup is required");
    if (o.mcast_interface.empty())
        throw std::invalid_argument("sync daemon: --mcast-interface IF is required");
    return o;
}

/// The same from a main()-style argument vector (argv[0] is *not* skipped: pass argv + 1).
[[nodiscard]] inline sync_daemon_options parse_sync_daemon_options(int argc, const char* const* argv) {
    std::vector<std::string_view> v(argv, argv + argc);
    return parse_sync_daemon_options(std::span<const std::string_view>(v));
}

// ---------------------------------------------------------------------------------------------------
// Sockets.

/// One nonblocking UDP multicast socket, either the master's sender or the backup's receiver.
/// Move-only; closes its fd.
class sync_socket {
public:
    enum class role : std::uint8_t { sender, receiver };

    struct config {
        std::string interface;                      ///< e.g. "eth0", "lo"
        inet_addr group = sync_wire::default_group; ///< IPv4 or IPv6 multicast group
        std::uint16_t port = sync_wire::default_port;
        std::uint8_t ttl = 1;
        bool loopback = false; ///< deliver our own messages to receivers on this host (tests)
    };

    /// Opens the master's socket: outgoing interface `c.interface`, TTL, loopback, DF not set,
    /// connected to group:port. Throws on any failure, naming the step.
    [[nodiscard]] static sync_socket open_sender(const config& c) { return sync_socket(c, role::sender); }
    /// Opens the backup's socket: bound to group:port, the group joined on `c.interface`.
    [[nodiscard]] static sync_socket open_receiver(const config& c) { return sync_socket(c, role::receiver); }

    sync_socket(sync_socket&& o) noexcept
        : m_fd(std::exchange(o.m_fd, -1)), m_role(o.m_role), m_ifindex(o.m_ifindex),
          m_buf(std::move(o.m_buf)) {}
    sync_socket& operator=(sync_socket&& o) noexcept {
        if (this != &o) {
            close_fd();
            m_fd = std::exchange(o.m_fd, -1);
            m_role = o.m_role;
            m_ifindex = o.m_ifindex;
            m_buf = std::move(o.m_buf);
        }
        return *this;
    }
    sync_socket(const sync_socket&) = delete;
    sync_socket& operator=(const sync_socket&) = delete;
    ~sync_socket() { close_fd(); }

    [[nodiscard]] int fd() const noexcept { return m_fd; }
    [[nodiscard]] role kind() const noexcept { return m_role; }
    [[nodiscard]] unsigned ifindex() const noexcept { return m_ifindex; }

    /// Sends one message as one datagram. Empty error code on success; EAGAIN when the socket
    /// buffer is full (the kernel's master then drops the message too).
    [[nodiscard]] std::error_code send(std::span<const std::byte> msg) noexcept {
        const ssize_t n = ::send(m_fd, msg.data(), msg.size(), MSG_DONTWAIT);
        if (n < 0) return {errno, std::system_category()};
        if (static_cast<std::size_t>(n) != msg.size()) return std::make_error_code(std::errc::message_size);
        return {};
    }

    /// The next datagram, or nullopt when none is waiting (or on an error, see last_error()). The
    /// bytes stay valid until the next receive(). A datagram longer than the buffer comes back cut
    /// to 64 KiB, which the decoder then rejects by its header size, as the kernel's backup would.
    [[nodiscard]] std::optional<std::span<const std::byte>> receive() noexcept {
        const ssize_t n = ::recv(m_fd, m_buf.data(), m_buf.size(), MSG_DONTWAIT);
        if (n < 0) {
            m_last_error = (errno == EAGAIN || errno == EWOULDBLOCK)
                               ? std::error_code{}
                               : std::error_code{errno, std::system_category()};
            return std::nullopt;
        }
        return std::span<const std::byte>(m_buf.data(), static_cast<std::size_t>(n));
    }
    [[nodiscard]] std::error_code last_error() const noexcept { return m_last_error; }

private:
    static constexpr std::size_t receive_buffer = 65536;

    sync_socket(const config& c, role r) : m_role(r) {
        m_ifindex = ::if_nametoindex(c.interface.c_str());
        if (m_ifindex == 0)
            throw std::system_error(errno, std::system_category(), "sync: interface '" + c.interface + "'");
        const bool v6 = c.group.is_v6();
        m_fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (m_fd < 0) fail("socket", c);
        try {
            if (r == role::sender)
                setup_sender(c, v6);
            else
                setup_receiver(c, v6);
        } catch (...) {
            close_fd();
            throw;
        }
    }

    [[noreturn]] void fail(const char* step, const config& c) const {
        throw std::system_error(errno, std::system_category(),
                                std::string("sync ") + (m_role == role::sender ? "sender" : "receiver") +
                                    " on " + c.interface + ": " + step);
    }

    template <class T>
    void set(int level, int name, const T& v, const char* step, const config& c) const {
        if (::setsockopt(m_fd, level, name, &v, sizeof v) != 0) fail(step, c);
    }

    /// group:port as a sockaddr, filled in `ss`; returns its length. IPv6 groups carry the interface
    /// as scope (needed for link-local groups such as ff02::81).
    socklen_t group_sockaddr(const config& c, sockaddr_storage& ss) const noexcept {
        std::memset(&ss, 0, sizeof ss);
        if (c.group.is_v6()) {
            auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(c.port);
            std::memcpy(&s6->sin6_addr, c.group.bytes.data(), 16);
            s6->sin6_scope_id = m_ifindex;
            return sizeof(sockaddr_in6);
        }
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(c.port);
        std::memcpy(&s4->sin_addr, c.group.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }

    void setup_sender(const config& c, bool v6) {
        const int loop = c.loopback ? 1 : 0;
        const int ttl = c.ttl;
        if (v6) {
            const int idx = static_cast<int>(m_ifindex);
            set(IPPROTO_IPV6, IPV6_MULTICAST_IF, idx, "IPV6_MULTICAST_IF", c);
            set(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS", c);
            set(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, loop, "IPV6_MULTICAST_LOOP", c);
            const int pmtu = IPV6_PMTUDISC_DONT;
            set(IPPROTO_IPV6, IPV6_MTU_DISCOVER, pmtu, "IPV6_MTU_DISCOVER", c);
        } else {
            ip_mreqn m{};
            m.imr_ifindex = static_cast<int>(m_ifindex);
            set(IPPROTO_IP, IP_MULTICAST_IF, m, "IP_MULTICAST_IF", c);
            set(IPPROTO_IP, IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL", c);
            set(IPPROTO_IP, IP_MULTICAST_LOOP, loop, "IP_MULTICAST_LOOP", c);
            const int pmtu = IP_PMTUDISC_DONT; // spec §8.1: DF not set
            set(IPPROTO_IP, IP_MTU_DISCOVER, pmtu, "IP_MTU_DISCOVER", c);
        }
        sockaddr_storage ss;
        const socklen_t len = group_sockaddr(c, ss);
        if (::connect(m_fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0)
            fail("connect to the group", c);
    }

    void setup_receiver(const config& c, bool v6) {
        const int one = 1, zero = 0;
        set(SOL_SOCKET, SO_REUSEADDR, one, "SO_REUSEADDR", c);
        sockaddr_storage ss;
        const socklen_t len = group_sockaddr(c, ss);
        // Bound to the group address: unicast datagrams to the port on this host are not ours.
        if (::bind(m_fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0)
            fail("bind to the group and port", c);
        if (v6) {
            ipv6_mreq m{};
            std::memcpy(&m.ipv6mr_multiaddr, c.group.bytes.data(), 16);
            m.ipv6mr_interface = m_ifindex;
            set(IPPROTO_IPV6, IPV6_JOIN_GROUP, m, "IPV6_JOIN_GROUP", c);
            set(IPPROTO_IPV6, IPV6_MULTICAST_ALL, zero, "IPV6_MULTICAST_ALL", c);
        } else {
            ip_mreqn m{};
            std::memcpy(&m.imr_multiaddr, c.group.bytes.data(), 4);
            m.imr_ifindex = static_cast<int>(m_ifindex);
            set(IPPROTO_IP, IP_ADD_MEMBERSHIP, m, "IP_ADD_MEMBERSHIP", c);
            // Without this a socket bound to the group hears it on every interface some other socket
            // of the host joined it on; the kernel's backup hears only its own interface.
            set(IPPROTO_IP, IP_MULTICAST_ALL, zero, "IP_MULTICAST_ALL", c);
        }
        m_buf.resize(receive_buffer);
    }

    void close_fd() noexcept {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = -1;
    }

    int m_fd = -1;
    role m_role = role::sender;
    unsigned m_ifindex = 0;
    std::vector<std::byte> m_buf;
    std::error_code m_last_error{};
};

// ---------------------------------------------------------------------------------------------------
// A director's sync daemon: agent + sockets.

/// A director's sync daemon as one object: a sync_agent on the director, the master's sender and/or
/// the backup's receiver, as `--start-daemon` options describe them. The caller's event loop:
///
///     ipvs::examples::sync_node node(dir, ipvs::examples::parse_sync_daemon_options(argc - 1, argv + 1));
///     pollfd p{node.receive_fd(), POLLIN, 0};           // -1 when not a backup: poll() ignores it
///     for (;;) {
///         ::poll(&p, 1, node.poll_timeout_ms(clock.now()));
///         if (p.revents & POLLIN) node.on_readable(clock.now());
///         node.on_tick(clock.now());
///         ... dir.in(pkt, clock.now()) ...           // the agent sees each packet through the observer
///         dir.poll(clock.now());                    // the agent syncs templates still in use
///     }
///
/// The director must outlive the node; the node registers the agent as the director's observer
/// (master) and unregisters it when destroyed.
class sync_node {
public:
    struct counters {
        std::uint64_t sent_messages = 0;
        std::uint64_t send_errors = 0;
        std::uint64_t received_messages = 0;
        std::uint64_t applied_records = 0;  ///< records that created or updated a connection
        std::uint64_t ignored_messages = 0; ///< wrong size, another syncid, too short
    };

    sync_node(director& d, const sync_daemon_options& o, const sync_sysctl& sys = {})
        : m_agent(d, agent_config(o, sys)) {
        sync_socket::config c{o.mcast_interface, o.mcast_group, o.mcast_port, o.mcast_ttl, o.mcast_loop};
        if (o.master) m_tx.emplace(sync_socket::open_sender(c));
        if (o.backup) m_rx.emplace(sync_socket::open_receiver(c));
    }

    [[nodiscard]] sync_agent& agent() noexcept { return m_agent; }
    [[nodiscard]] const counters& stats() const noexcept { return m_stats; }
    /// The backup's socket, for poll(); -1 when this node is no backup.
    [[nodiscard]] int receive_fd() const noexcept { return m_rx ? m_rx->fd() : -1; }
    /// The master's socket; -1 when this node is no master.
    [[nodiscard]] int send_fd() const noexcept { return m_tx ? m_tx->fd() : -1; }

    /// When on_tick() has a message to send next, or nullopt.
    [[nodiscard]] std::optional<time_ns> next_deadline() const noexcept { return m_agent.next_deadline(); }
    /// Milliseconds until next_deadline() (rounded up), -1 (wait forever) when nothing waits.
    [[nodiscard]] int poll_timeout_ms(time_ns now) const noexcept {
        const auto t = next_deadline();
        if (!t) return -1;
        if (*t <= now) return 0;
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*t - now).count();
        return ms > 1000000 ? 1000000 : static_cast<int>(ms);
    }

    /// Master: sends every message due at `now`. Returns how many went out.
    std::size_t on_tick(time_ns now) noexcept {
        if (!m_tx) return 0;
        return m_agent.poll(now, [this](std::span<const std::byte> msg) { transmit(msg); });
    }

    /// The director's expiry (director::poll) plus the master's sync of entries still in use when
    /// their timer fires (sync_agent::expire). Returns the entries removed.
    std::size_t expire(time_ns now, std::size_t budget = 4096) noexcept {
        return m_agent.expire(now, budget);
    }

    /// Master going down (or a test): sends everything buffered now.
    std::size_t flush(time_ns now) noexcept {
        if (!m_tx) return 0;
        m_agent.flush(now);
        return on_tick(now);
    }

    /// Backup: reads every waiting datagram and applies it to the director. Returns the number read.
    std::size_t on_readable(time_ns now) noexcept {
        if (!m_rx) return 0;
        std::size_t n = 0;
        while (auto msg = m_rx->receive()) {
            ++n;
            ++m_stats.received_messages;
            const auto r = m_agent.apply(*msg, now);
            if (r.message != sync_message_status::ok) ++m_stats.ignored_messages;
            m_stats.applied_records += r.created + r.updated;
        }
        return n;
    }

private:
    static sync_agent::config agent_config(const sync_daemon_options& o, const sync_sysctl& sys) {
        sync_agent::config c;
        c.sysctl = sys;
        c.master = o.master;
        c.backup = o.backup;
        c.syncid = o.syncid;
        c.backup_syncid = o.syncid;
        c.maxlen = o.maxlen();
        return c;
    }

    void transmit(std::span<const std::byte> msg) noexcept {
        if (m_tx->send(msg))
            ++m_stats.send_errors;
        else
            ++m_stats.sent_messages;
    }

    sync_agent m_agent;
    std::optional<sync_socket> m_tx;
    std::optional<sync_socket> m_rx;
    counters m_stats{};
};

} // namespace ipvs::examples
