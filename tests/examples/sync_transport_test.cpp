// SPDX-License-Identifier: MIT
// Tests for examples/common/sync_transport.hpp: the --start-daemon options, multicast on lo, a master and a
// backup node.
#include <doctest/doctest.h>

#include <poll.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../examples/common/sync_transport.hpp"
#include "support/build.hpp"

using namespace std::chrono_literals;
using namespace ipvs;
using namespace ipvs::examples;

namespace {

sync_daemon_options parse(std::vector<std::string_view> args) {
    return parse_sync_daemon_options(std::span<const std::string_view>(args));
}

// The message parse() throws for `args`, or "" when it does not throw.
std::string error_of(std::vector<std::string_view> args) {
    try {
        (void)parse(std::move(args));
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

// A port of our own so that concurrent runs on one host (and a real sync daemon) do not mix.
std::uint16_t test_port(unsigned k) { return static_cast<std::uint16_t>(20000 + (::getpid() % 20000) + k); }

// Waits (bounded) until `fd` is readable.
bool wait_readable(int fd, int ms = 1000) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

std::vector<std::byte> bytes_of(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

} // namespace

TEST_CASE("sync transport: ipvsadm's --start-daemon options with their defaults") {
    SUBCASE("the three options users know, defaults for the rest") {
        const auto o = parse({"--start-daemon", "master", "--mcast-interface", "eth1", "--syncid", "7"});
        CHECK(o.master);
        CHECK_FALSE(o.backup);
        CHECK(o.mcast_interface == "eth1");
        CHECK(o.syncid == 7);
        CHECK(o.mcast_group == *parse_addr("224.0.0.81")); // spec §8.1
        CHECK(o.mcast_port == 8848);
        CHECK(o.mcast_ttl == 1);
        CHECK_FALSE(o.mcast_loop);
        CHECK(o.maxlen() == 1472); // 1500 − 20 − 8
    }
    SUBCASE("every option, values after '=' or as the next argument") {
        const auto o =
            parse({"--start-daemon=backup", "--mcast-interface=ds", "--syncid=0", "--sync-maxlen", "1400",
                   "--mcast-group", "239.1.2.3", "--mcast-port=9000", "--mcast-ttl", "4", "--mcast-loop"});
        CHECK(o.backup);
        CHECK_FALSE(o.master);
        CHECK(o.mcast_interface == "ds");
        CHECK(o.syncid == 0);
        CHECK(o.maxlen() == 1400);
        CHECK(o.mcast_group == *parse_addr("239.1.2.3"));
        CHECK(o.mcast_port == 9000);
        CHECK(o.mcast_ttl == 4);
        CHECK(o.mcast_loop);
    }
    SUBCASE("both roles at once; an IPv6 group gives the IPv6 default size") {
        const auto o = parse({"--start-daemon", "master", "--start-daemon", "backup", "--mcast-interface",
                              "lo", "--mcast-group", "ff02::81"});
        CHECK(o.master);
        CHECK(o.backup);
        CHECK(o.maxlen() == 1452); // 1500 − 40 − 8
    }
    SUBCASE("argv form") {
        const char* argv[] = {"--start-daemon", "master", "--mcast-interface", "lo"};
        const auto o = parse_sync_daemon_options(4, argv);
        CHECK(o.master);
        CHECK(o.mcast_interface == "lo");
    }
    SUBCASE("a program's own options can be told apart") {
        CHECK(is_sync_daemon_option("--syncid"));
        CHECK(is_sync_daemon_option("--syncid=3"));
        CHECK(is_sync_daemon_option("--mcast-loop"));
        CHECK_FALSE(is_sync_daemon_option("--rules"));
        CHECK_FALSE(is_sync_daemon_option("--sync"));
        CHECK(sync_daemon_option_takes_value("--mcast-ttl"));
        CHECK_FALSE(sync_daemon_option_takes_value("--mcast-loop"));
    }
}

TEST_CASE("sync transport: bad options give errors that name the option") {
    const std::vector<std::string_view> base = {"--start-daemon", "master", "--mcast-interface", "lo"};
    const auto with = [&](std::vector<std::string_view> more) {
        auto v = base;
        v.insert(v.end(), more.begin(), more.end());
        return error_of(v);
    };
    CHECK(error_of(base).empty());
    CHECK(error_of({"--mcast-interface", "lo"}).find("--start-daemon") != std::string::npos);
    CHECK(error_of({"--start-daemon", "master"}).find("--mcast-interface") != std::string::npos);
    CHECK(error_of({"--start-daemon", "primary", "--mcast-interface", "lo"})
              .find("neither master nor backup") != std::string::npos);
    CHECK(with({"--start-daemon", "master"}).find("given twice") != std::string::npos);
    CHECK(with({"--syncid", "256"}).find("--syncid") != std::string::npos);
    CHECK(with({"--syncid", "7x"}).find("--syncid") != std::string::npos);
    CHECK(with({"--syncid", "-1"}).find("0..255") != std::string::npos);
    CHECK(with({"--syncid"}).find("needs a value") != std::string::npos);
    CHECK(with({"--syncid", "1", "--syncid", "2"}).find("multiple '--syncid'") != std::string::npos);
    CHECK(with({"--mcast-port", "0"}).find("--mcast-port") != std::string::npos);
    CHECK(with({"--mcast-port", "65536"}).find("1..65535") != std::string::npos);
    CHECK(with({"--mcast-ttl", "0"}).find("--mcast-ttl") != std::string::npos);
    CHECK(with({"--sync-maxlen", "100"}).find("--sync-maxlen") != std::string::npos);
    CHECK(with({"--mcast-group", "10.0.0.1"}).find("not a multicast address") != std::string::npos);
    CHECK(with({"--mcast-group", "fd00::1"}).find("not a multicast address") != std::string::npos);
    CHECK(with({"--mcast-group", "224.0.0"}).find("not an IP address") != std::string::npos);
    CHECK(with({"--mcast-loop=1"}).find("takes no value") != std::string::npos);
    CHECK(with({"--rules", "x"}).find("unknown sync daemon option '--rules'") != std::string::npos);
    CHECK(error_of({"--start-daemon", "master", "--mcast-interface", "an-interface-name-too-long"})
              .find("--mcast-interface") != std::string::npos);
}

TEST_CASE("sync transport: a message multicast on lo arrives byte for byte") {
    sync_socket::config c{"lo", sync_wire::default_group, test_port(0), 1, true};
    auto rx = sync_socket::open_receiver(c);
    auto tx = sync_socket::open_sender(c);
    CHECK(rx.fd() >= 0);
    CHECK(tx.fd() >= 0);
    CHECK(rx.ifindex() == tx.ifindex());
    CHECK(rx.kind() == sync_socket::role::receiver);

    // Nothing waits yet: a nonblocking receive says so at once.
    CHECK_FALSE(rx.receive().has_value());
    CHECK_FALSE(rx.last_error());

    // A real sync message (one IPv4 TCP record, spec §8.2) and a maximum-size one.
    std::array<std::byte, sync_wire::default_maxlen_v4> buf{};
    sync_writer w(buf, 7);
    sync_record r;
    r.protocol = ipproto::tcp;
    r.state = 1;
    r.cport = 40000;
    r.vport = 80;
    r.dport = 8080;
    r.timeout = 900;
    r.caddr = *parse_addr("10.1.0.1");
    r.vaddr = *parse_addr("10.0.0.100");
    r.daddr = *parse_addr("10.0.2.11");
    REQUIRE(w.add(r) == sync_encode_status::ok);
    const auto one = bytes_of(w.finish());
    while (w.add(r) == sync_encode_status::ok) ++r.cport;
    const auto full = bytes_of(w.finish());
    CHECK(full.size() > 1400);

    for (const auto& msg : {one, full}) {
        CHECK_FALSE(tx.send(msg));
        REQUIRE(wait_readable(rx.fd()));
        const auto got = rx.receive();
        REQUIRE(got.has_value());
        CHECK(bytes_of(*got) == msg);
        CHECK(sync_reader(*got, 7).status() == sync_message_status::ok);
    }
    CHECK_FALSE(rx.receive().has_value());
}

TEST_CASE(
    "sync transport: the sender's socket options are the kernel master's (TTL 1, no loop, DF not set)") {
    // (On lo every datagram comes back in, loop or not, so the options are read back instead.)
    const auto opt = [](int fd, int level, int name) {
        int v = -1;
        socklen_t len = sizeof v;
        REQUIRE(::getsockopt(fd, level, name, &v, &len) == 0);
        return v;
    };
    SUBCASE("defaults") {
        auto tx = sync_socket::open_sender({"lo", sync_wire::default_group, test_port(1), 1, false});
        CHECK(opt(tx.fd(), IPPROTO_IP, IP_MULTICAST_TTL) == 1);
        CHECK(opt(tx.fd(), IPPROTO_IP, IP_MULTICAST_LOOP) == 0);
        CHECK(opt(tx.fd(), IPPROTO_IP, IP_MTU_DISCOVER) == IP_PMTUDISC_DONT);
        CHECK((::fcntl(tx.fd(), F_GETFL) & O_NONBLOCK) != 0);
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        REQUIRE(::getpeername(tx.fd(), reinterpret_cast<sockaddr*>(&peer), &len) == 0);
        CHECK(ntohl(peer.sin_addr.s_addr) == 0xe0000051U); // 224.0.0.81
        CHECK(ntohs(peer.sin_port) == test_port(1));
    }
    SUBCASE("--mcast-ttl and --mcast-loop") {
        auto tx = sync_socket::open_sender({"lo", sync_wire::default_group, test_port(1), 5, true});
        CHECK(opt(tx.fd(), IPPROTO_IP, IP_MULTICAST_TTL) == 5);
        CHECK(opt(tx.fd(), IPPROTO_IP, IP_MULTICAST_LOOP) == 1);
    }
    SUBCASE("the receiver hears only its own memberships") {
        auto rx = sync_socket::open_receiver({"lo", sync_wire::default_group, test_port(1), 1, false});
        CHECK(opt(rx.fd(), IPPROTO_IP, IP_MULTICAST_ALL) == 0);
        CHECK((::fcntl(rx.fd(), F_GETFL) & O_NONBLOCK) != 0);
    }
}

TEST_CASE("sync transport: a receiver joins an IPv6 group on an interface") {
    // lo has no IPv6 multicast route, so only the receiving side can be checked here: bound to the
    // link-local group with lo as its scope, joined, only its own memberships.
    auto rx = sync_socket::open_receiver({"lo", *parse_addr("ff02::81"), test_port(4), 1, false});
    int v = -1;
    socklen_t len = sizeof v;
    REQUIRE(::getsockopt(rx.fd(), IPPROTO_IPV6, IPV6_MULTICAST_ALL, &v, &len) == 0);
    CHECK(v == 0);
    sockaddr_in6 self{};
    len = sizeof self;
    REQUIRE(::getsockname(rx.fd(), reinterpret_cast<sockaddr*>(&self), &len) == 0);
    CHECK(self.sin6_scope_id == rx.ifindex());
    CHECK(ntohs(self.sin6_port) == test_port(4));
    CHECK_FALSE(rx.receive().has_value());
}

TEST_CASE("sync transport: opening on an interface that does not exist names it") {
    sync_socket::config c{"nosuch0", sync_wire::default_group, test_port(2), 1, true};
    try {
        (void)sync_socket::open_sender(c);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("nosuch0") != std::string::npos);
    }
    CHECK_THROWS_AS((void)sync_socket::open_receiver(c), std::system_error);
}

TEST_CASE("sync transport: a master node's connection appears on a backup node over lo") {
    // Two directors with the same service, one master and one backup, one multicast group on lo.
    const auto port = std::to_string(test_port(3));
    const std::vector<std::string_view> master_args = {"--start-daemon", "master", "--mcast-interface", "lo",
                                                       "--syncid",       "7",      "--mcast-port",      port,
                                                       "--mcast-loop"};
    const std::vector<std::string_view> backup_args = {"--start-daemon", "backup", "--mcast-interface", "lo",
                                                       "--syncid",       "7",      "--mcast-port",      port};
    const auto configure = [](director& d) {
        service_config sc;
        sc.protocol = ipproto::tcp;
        sc.vip = *parse_endpoint("10.0.0.100:80");
        sc.scheduler = "rr";
        auto& s = d.add_service(sc);
        dest_config dc;
        dc.ep = *parse_endpoint("10.0.2.11:8080");
        dc.weight = 1;
        d.add_dest(s, dc);
    };
    director master_dir, backup_dir;
    configure(master_dir);
    configure(backup_dir);
    sync_node master(master_dir, parse(master_args));
    sync_node backup(backup_dir, parse(backup_args));
    CHECK(master.send_fd() >= 0);
    CHECK(master.receive_fd() == -1);
    CHECK(backup.receive_fd() >= 0);
    CHECK(master.poll_timeout_ms(0s) == -1); // nothing buffered

    // SYN, ACK, data: the third client packet of an ESTABLISHED connection is synced (spec §8.3).
    const endpoint client = *parse_endpoint("10.1.0.1:40000"), vip = *parse_endpoint("10.0.0.100:80");
    time_ns now = 1s;
    for (const char* tok : {"cS", "cA", "cPA"}) {
        const std::string t = tok;
        const auto body = t.substr(1);
        std::uint8_t f = 0;
        for (char ch : body)
            f |= ch == 'S' ? tcp_flag::syn : ch == 'A' ? tcp_flag::ack : ch == 'P' ? tcp_flag::psh : 0;
        auto pkt =
            test::ipv4_packet(ipproto::tcp, "10.1.0.1", "10.0.0.100",
                              test::tcp_segment(client.port, vip.port, f, {}, test::bytes{1, 2, 3, 4}));
        (void)master_dir.in(pkt, now);
        now += 100ms;
    }
    REQUIRE(master.next_deadline().has_value());
    CHECK(master.poll_timeout_ms(now) > 0);
    CHECK(master.on_tick(now) == 0);                     // not yet: 2 s after the record
    CHECK(master.on_tick(*master.next_deadline()) == 1); // then exactly one message
    CHECK(master.stats().sent_messages == 1);

    REQUIRE(wait_readable(backup.receive_fd()));
    CHECK(backup.on_readable(now) == 1);
    CHECK(backup.stats().applied_records == 1);
    std::size_t found = 0;
    backup_dir.for_each_conn([&](const auto& e) {
        if (e.client() == client && e.vip() == vip) {
            ++found;
            CHECK(e.real_server() == *parse_endpoint("10.0.2.11:8080"));
            CHECK((e.flags & conn_flag::sync) != 0);
            CHECK(e.state == 1); // ESTABLISHED
        }
    });
    CHECK(found == 1);
    CHECK(backup_dir.services()[0]->svc.dests()[0]->active_conns == 1);
    MESSAGE("master sent " << master.stats().sent_messages << " message(s); backup applied "
                           << backup.stats().applied_records << " record(s)");
}
