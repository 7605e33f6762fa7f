// SPDX-License-Identifier: MIT
// conn_table: both lookups, templates and masks, batches, a std::unordered_map differential, expiry,
// the kernel's persistence templates replayed, flood defense, drop_entry and the defense modes.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/conn_table.hpp>
#include <support/oracle.hpp>

using namespace std::chrono_literals;
using ipvs::time_ns;

namespace {

template <class Entry>
using table_t = ipvs::conn_table<Entry, ipvs::flow_hasher, ipvs::manual_clock>;

constexpr std::uint8_t tcp = 6, udp = 17;

template <std::size_t N>
ipvs::addr_bytes<N> A(const char* s) {
    auto a = ipvs::parse_addr(s);
    REQUIRE(a.has_value());
    REQUIRE(a->size() == N);
    return ipvs::to_bytes<N>(*a);
}

/// Addresses of each family used by the typed tests.
template <class Entry>
struct fam;
template <>
struct fam<ipvs::conn4> {
    static constexpr const char* client = "10.1.0.5";
    static constexpr const char* client2 = "10.1.0.6";
    static constexpr const char* vip = "10.0.0.100";
    static constexpr const char* rs = "10.0.2.11";
};
template <>
struct fam<ipvs::conn6> {
    static constexpr const char* client = "fd01::5";
    static constexpr const char* client2 = "fd01::6";
    static constexpr const char* vip = "fd00::100";
    static constexpr const char* rs = "fd00:2::b";
};

ipvs::dest make_dest(const char* addr, std::uint16_t port, ipvs::fwd_method fwd = ipvs::fwd_method::masq) {
    ipvs::dest d;
    d.ep = {*ipvs::parse_addr(addr), port};
    d.fwd = fwd;
    d.weight = 1;
    d.flags = ipvs::dest_flag::available;
    return d;
}

constexpr auto noop = [](auto&) {};

/// Random addresses of either family.
template <std::size_t N>
ipvs::addr_bytes<N> random_addr(std::mt19937_64& rng) {
    ipvs::addr_bytes<N> a{};
    for (auto& b : a) b = static_cast<std::uint8_t>(rng());
    return a;
}

} // namespace

TEST_CASE_TEMPLATE("conn_table: insert, lookup in both directions, erase, iterate", Entry, ipvs::conn4,
                   ipvs::conn6) {
    constexpr std::size_t N = Entry::addr_len;
    using F = fam<Entry>;
    table_t<Entry> t(ipvs::conn_table_config{.capacity = 64});
    auto rs = make_dest(F::rs, 8080);
    auto rs_dr = make_dest(F::rs, 80, ipvs::fwd_method::droute);
    const auto C = A<N>(F::client), C2 = A<N>(F::client2), V = A<N>(F::vip), D = A<N>(F::rs);

    const ipvs::in_tuple<N> in{C, V, 40000, 80, tcp};
    auto r = t.insert(ipvs::make_conn<Entry>(in, &rs, 8080, 0, 60s), ipvs::admit::established, noop);
    REQUIRE(r.status == ipvs::insert_status::inserted);
    Entry* e = r.entry;
    CHECK(t.size() == 1);
    CHECK(e->dport() == 8080);
    CHECK(e->daddr() == D);

    SUBCASE("in-lookup needs the whole client → VIP tuple") {
        CHECK(t.find_in(in) == e);
        CHECK(t.find_in({C, V, 40001, 80, tcp}) == nullptr);
        CHECK(t.find_in({C, V, 40000, 81, tcp}) == nullptr);
        CHECK(t.find_in({C, V, 40000, 80, udp}) == nullptr);
        CHECK(t.find_in({C2, V, 40000, 80, tcp}) == nullptr);
        CHECK(t.find_in({C, C2, 40000, 80, tcp}) == nullptr);
    }
    SUBCASE("out-lookup: a NAT reply from the real server's address and port") {
        CHECK(t.find_out({D, C, 8080, 40000, tcp}) == e);
        CHECK(t.find_out({D, C, 80, 40000, tcp}) == nullptr); // not the RS port
        CHECK(t.find_out({V, C, 80, 40000, tcp}) == nullptr); // NAT replies come from the RS, not the VIP
        CHECK(t.find_out({D, C, 8080, 40001, tcp}) == nullptr);
        CHECK(t.find_out({D, C2, 8080, 40000, tcp}) == nullptr);
    }
    SUBCASE("out-lookup: a non-NAT connection's replies come from the VIP (spec §3.3)") {
        auto r2 = t.insert(ipvs::make_conn<Entry>({C2, V, 40000, 80, tcp}, &rs_dr, 80, 3, 60s),
                           ipvs::admit::established, noop);
        REQUIRE(r2);
        CHECK(t.find_out({V, C2, 80, 40000, tcp}) == r2.entry);
        CHECK(t.find_out({D, C2, 80, 40000, tcp}) == nullptr);
    }
    SUBCASE("a port-less dest keeps the virtual port as dport") {
        auto any_port = make_dest(F::rs, 0);
        auto r2 = t.insert(ipvs::make_conn<Entry>({C2, V, 5555, 443, tcp}, &any_port, 443, 0, 60s),
                           ipvs::admit::established, noop);
        REQUIRE(r2);
        CHECK(r2.entry->dport() == 443);
        CHECK(t.find_out({D, C2, 443, 5555, tcp}) == r2.entry);
    }
    SUBCASE("a second insert of the same tuple returns the existing entry") {
        auto again = t.insert(ipvs::make_conn<Entry>(in, &rs, 8080, 0, 60s), ipvs::admit::established, noop);
        CHECK(again.status == ipvs::insert_status::exists);
        CHECK(again.entry == e);
        CHECK(t.size() == 1);
    }
    SUBCASE("iterate visits every entry once; erase removes from both lookups") {
        for (std::uint16_t p = 1; p <= 20; ++p)
            REQUIRE(t.insert(ipvs::make_conn<Entry>({C2, V, p, 80, tcp}, &rs, 8080, 0, 60s),
                             ipvs::admit::established, noop));
        std::map<std::uint16_t, int> seen;
        t.for_each([&](const Entry& x) { ++seen[x.cport]; });
        CHECK(seen.size() == 21);
        for (auto& [p, n] : seen) CHECK(n == 1);
        CHECK(t.erase(*e));
        CHECK(t.find_in(in) == nullptr);
        CHECK(t.find_out({D, C, 8080, 40000, tcp}) == nullptr);
        CHECK(t.size() == 20);
        for (std::uint16_t p = 1; p <= 20; ++p) CHECK(t.find_in({C2, V, p, 80, tcp}) != nullptr);
    }
    SUBCASE("NO_CPORT: found by any client port until the port is filled in") {
        auto r2 =
            t.insert(ipvs::make_conn<Entry>({C2, V, 0, 20, tcp}, &rs, 20, ipvs::conn_flag::no_cport, 60s),
                     ipvs::admit::established, noop);
        REQUIRE(r2);
        CHECK(t.find_in({C2, V, 33333, 20, tcp}) == r2.entry); // retried with cport 0
        CHECK(t.find_in({C2, V, 0, 20, tcp}) == r2.entry);
        Entry* moved = t.fill_cport(*r2.entry, 33333); // re-hashed: may live in another slot now
        REQUIRE(moved != nullptr);
        CHECK(moved->cport == 33333);
        CHECK(t.find_in({C2, V, 33333, 20, tcp}) == moved);
        CHECK(t.size() == 2);
        CHECK(t.find_in({C2, V, 33334, 20, tcp}) == nullptr);
        CHECK(t.find_in({C2, V, 0, 20, tcp}) == nullptr);
    }
}

TEST_CASE("conn_table: a reused client endpoint's reply goes to the newest connection, as the kernel's "
          "head-of-bucket hashing does") {
    // The client reuses port 40000 towards two virtual services that the scheduler sent to the same real
    // server: both connections have the out tuple RS:8080 → client:40000. Linux finds the newer first.
    auto rs = make_dest("10.0.2.11", 8080);
    table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = 64});
    const auto C = A<4>("10.1.0.1"), V = A<4>("10.0.0.100"), D = A<4>("10.0.2.11");
    auto* old_conn =
        t.insert(ipvs::make_conn({C, V, 40000, 80, tcp}, &rs, 8080, 0, 60s), ipvs::admit::established, noop)
            .entry;
    REQUIRE(old_conn);
    CHECK(t.find_out({D, C, 8080, 40000, tcp}) == old_conn);
    auto* new_conn =
        t.insert(ipvs::make_conn({C, V, 40000, 82, tcp}, &rs, 8080, 0, 60s), ipvs::admit::established, noop)
            .entry;
    REQUIRE(new_conn);
    CHECK(t.find_out({D, C, 8080, 40000, tcp}) == new_conn);
    // Both still answer their own client-side packets.
    CHECK(t.find_in({C, V, 40000, 80, tcp}) == old_conn);
    CHECK(t.find_in({C, V, 40000, 82, tcp}) == new_conn);
    // A third connection of the same client endpoint to another real server shadows nobody.
    auto rs2 = make_dest("10.0.2.12", 8080);
    auto* other =
        t.insert(ipvs::make_conn({C, V, 40000, 81, tcp}, &rs2, 8080, 0, 60s), ipvs::admit::established, noop)
            .entry;
    REQUIRE(other);
    CHECK(t.find_out({D, C, 8080, 40000, tcp}) == new_conn);
    CHECK(t.find_out({A<4>("10.0.2.12"), C, 8080, 40000, tcp}) == other);
    // When the newer one goes (say its SYN timed out), the older established one answers again.
    REQUIRE(t.erase(*new_conn));
    CHECK(t.find_out({D, C, 8080, 40000, tcp}) == old_conn);
}

TEST_CASE("conn_table: a full table says so and does not grow") {
    auto rs = make_dest("10.0.2.11", 80);
    for (std::size_t cap : {std::size_t{1}, std::size_t{100}, std::size_t{1000}}) {
        table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = cap});
        const std::size_t bytes = t.memory_bytes();
        for (std::size_t i = 0; i < cap; ++i) {
            auto r = t.insert(ipvs::make_conn({A<4>("10.1.0.1"), A<4>("10.0.0.100"),
                                               static_cast<std::uint16_t>(i + 1), 80, tcp},
                                              &rs, 80, 0, 60s),
                              ipvs::admit::established, noop);
            REQUIRE(r.status == ipvs::insert_status::inserted);
        }
        // Nothing embryonic to evict: both kinds of insert are refused.
        const ipvs::in_tuple4 extra{A<4>("10.1.0.2"), A<4>("10.0.0.100"), 1, 80, tcp};
        CHECK(t.insert(ipvs::make_conn(extra, &rs, 80, 0, 60s), ipvs::admit::established, noop).status ==
              ipvs::insert_status::full);
        CHECK(t.insert(ipvs::make_conn(extra, &rs, 80, 0, 60s), ipvs::admit::embryonic, noop).status !=
              ipvs::insert_status::inserted);
        CHECK(t.size() == cap);
        CHECK(t.memory_bytes() == bytes);
        t.erase(*t.find_in({A<4>("10.1.0.1"), A<4>("10.0.0.100"), 1, 80, tcp}));
        CHECK(t.insert(ipvs::make_conn(extra, &rs, 80, 0, 60s), ipvs::admit::established, noop));
    }
    CHECK_THROWS_AS(table_t<ipvs::conn4>(ipvs::conn_table_config{.capacity = 0}), std::invalid_argument);
}

TEST_CASE("conn_table: memory per connection is within budget") {
    table_t<ipvs::conn4> t4(ipvs::conn_table_config{.capacity = 1000000});
    table_t<ipvs::conn6> t6(ipvs::conn_table_config{.capacity = 1000000});
    const double b4 = double(t4.memory_bytes()) / double(t4.capacity());
    const double b6 = double(t6.memory_bytes()) / double(t6.capacity());
    MESSAGE("bytes per connection, index included: IPv4 "
            << b4 << ", IPv6 " << b6 << "; with the wheel: IPv4 " << double(t4.total_memory_bytes()) / 1e6);
    CHECK(b4 <= 64.0);
    CHECK(b6 <= 96.0);
    CHECK(double(t4.total_memory_bytes()) / 1e6 <= 64.0);
    CHECK(double(t6.total_memory_bytes()) / 1e6 <= 96.0);
}

TEST_CASE("conn_table: persistence templates by masked client, fwmark and port 0") {
    table_t<ipvs::conn4> t4(ipvs::conn_table_config{.capacity = 256});
    table_t<ipvs::conn6> t6(ipvs::conn_table_config{.capacity = 256});
    auto rs4 = make_dest("10.0.2.11", 8080), rs6 = make_dest("fd00:2::b", 8080);
    const auto V4 = A<4>("10.0.0.100");
    const auto V6 = A<16>("fd00::100");

    auto tpl4 = [&](const ipvs::in_tuple4& k) {
        auto r = t4.insert(ipvs::make_template(k, &rs4, k.vport ? 8080 : 0, 0, 300s),
                           ipvs::admit::established, noop);
        REQUIRE(r);
        return r.entry;
    };
    auto tpl6 = [&](const ipvs::in_tuple6& k) {
        auto r = t6.insert(ipvs::make_template<ipvs::conn6>(k, &rs6, k.vport ? 8080 : 0, 0, 300s),
                           ipvs::admit::established, noop);
        REQUIRE(r);
        return r.entry;
    };
    SUBCASE("IPv4 /24 and /16") {
        auto* a = tpl4(ipvs::make_template_key(tcp, ipvs::mask_client(A<4>("10.1.7.9"), 0xffffff00), V4, 80));
        auto* b =
            tpl4(ipvs::make_template_key(tcp, ipvs::mask_client(A<4>("10.2.7.9"), 0xffff0000), V4, 443));
        auto find = [&](const char* c, std::uint32_t mask, std::uint16_t vport) {
            return t4.find_template(
                ipvs::make_template_key(tcp, ipvs::mask_client(A<4>(c), mask), V4, vport));
        };
        CHECK(find("10.1.7.200", 0xffffff00, 80) == a);
        CHECK(find("10.1.7.0", 0xffffff00, 80) == a);
        CHECK(find("10.1.8.1", 0xffffff00, 80) == nullptr);
        CHECK(find("10.1.7.1", 0xffffff00, 81) == nullptr);
        CHECK(find("10.2.255.1", 0xffff0000, 443) == b);
        CHECK(find("10.2.0.0", 0xffff0000, 443) == b);
        CHECK(find("10.3.0.1", 0xffff0000, 443) == nullptr);
        CHECK(ipvs::mask_prefix(A<4>("10.2.255.1"), 16) == A<4>("10.2.0.0"));
        // Templates are invisible to connection lookups and vice versa.
        CHECK(t4.find_in({A<4>("10.1.7.0"), V4, 0, 80, tcp}) == nullptr);
        auto c = t4.insert(
            ipvs::make_conn({A<4>("10.1.7.0"), V4, 0, 80, tcp}, &rs4, 8080, ipvs::conn_flag::no_cport, 60s),
            ipvs::admit::established, noop);
        REQUIRE(c);
        CHECK(find("10.1.7.0", 0xffffff00, 80) == a);
    }
    SUBCASE("IPv6 /64 and /48") {
        auto* a = tpl6(ipvs::make_template_key(tcp, ipvs::mask_prefix(A<16>("fd01:0:0:7::9"), 64), V6, 80));
        auto* b = tpl6(ipvs::make_template_key(tcp, ipvs::mask_prefix(A<16>("fd01:2:3:4::5"), 48), V6, 80));
        auto find = [&](const char* c, unsigned p) {
            return t6.find_template(ipvs::make_template_key(tcp, ipvs::mask_prefix(A<16>(c), p), V6, 80));
        };
        CHECK(find("fd01:0:0:7:ffff:1:2:3", 64) == a);
        CHECK(find("fd01:0:0:8::9", 64) == nullptr);
        CHECK(find("fd01:2:3:ffff::1", 48) == b);
        CHECK(find("fd01:2:4::1", 48) == nullptr);
        CHECK(ipvs::mask_prefix(A<16>("fd01:2:3:ffff::1"), 48) == A<16>("fd01:2:3::"));
        CHECK(ipvs::mask_prefix(A<16>("fd01:2:3:ffff::1"), 50) == A<16>("fd01:2:3:c000::"));
    }
    SUBCASE("fwmark templates: protocol IP, the mark in vaddr, port 0; per mark") {
        auto* m16 = tpl4(ipvs::make_fwmark_template_key(A<4>("10.1.2.3"), 16));
        auto* m22 = tpl6(ipvs::make_fwmark_template_key(A<16>("fd01::1"), 22));
        CHECK(m16->vaddr == A<4>("0.0.0.16"));
        CHECK(m16->protocol == 0);
        CHECK(m16->dport() == 0);
        CHECK(t4.find_template(ipvs::make_fwmark_template_key(A<4>("10.1.2.3"), 16)) == m16);
        CHECK(t4.find_template(ipvs::make_fwmark_template_key(A<4>("10.1.2.3"), 17)) == nullptr);
        CHECK(t4.find_template(ipvs::make_template_key(tcp, A<4>("10.1.2.3"), A<4>("0.0.0.16"), 0)) ==
              nullptr);
        CHECK(t6.find_template(ipvs::make_fwmark_template_key(A<16>("fd01::1"), 22)) == m22);
        CHECK(t6.find_template(ipvs::make_fwmark_template_key(A<16>("fd01::1"), 16)) == nullptr);
    }
    SUBCASE("port 0: one template for every port of a port-0 service") {
        auto* any = tpl4(ipvs::make_template_key(tcp, A<4>("10.1.2.3"), V4, 0));
        CHECK(any->dport() == 0);
        for (std::uint16_t vp : {1, 80, 443, 65535}) {
            // The director builds the key with vport 0 whatever the packet's port (spec §3.5 step 2).
            CHECK(t4.find_template(ipvs::make_template_key(tcp, A<4>("10.1.2.3"), V4, 0)) == any);
            CHECK(t4.find_template(ipvs::make_template_key(tcp, A<4>("10.1.2.3"), V4, vp)) == nullptr);
        }
    }
    SUBCASE("an invalidated template never matches again and keeps its timer") {
        const auto k = ipvs::make_template_key(tcp, A<4>("10.1.2.0"), V4, 80);
        auto* a = tpl4(k);
        const time_ns dl = t4.deadline(*a);
        t4.invalidate_template(*a);
        CHECK(a->vport == 0xffff);
        CHECK(a->dport() == 0xffff);
        CHECK(t4.find_template(k) == nullptr);
        CHECK(t4.deadline(*a) == dl);
        auto* b = tpl4(k); // a fresh template for the same key
        CHECK(t4.find_template(k) == b);
        CHECK(t4.size() == 2);
    }
}

TEST_CASE(
    "conn_table: expiry runs the callback, defers templates in use, drops controllers with their last conn") {
    table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = 64});
    auto rs = make_dest("10.0.2.11", 80);
    const auto V = A<4>("10.0.0.100");
    std::vector<std::pair<std::uint16_t, ipvs::expire_reason>> log;
    auto cb = [&](ipvs::conn4& e, ipvs::expire_reason why) {
        log.emplace_back(e.is_template() ? 0 : e.cport, why);
    };
    const auto key = ipvs::make_template_key(tcp, A<4>("10.1.0.0"), V, 80);
    auto* tpl = t.insert(ipvs::make_template(key, &rs, 80, 0, 300s), ipvs::admit::established, cb).entry;
    REQUIRE(tpl);
    auto* c1 = t.insert(ipvs::make_conn({A<4>("10.1.0.1"), V, 1000, 80, tcp}, &rs, 80, 0, 120s),
                        ipvs::admit::established, cb, tpl)
                   .entry;
    REQUIRE(c1);
    CHECK(tpl->n_control == 1);
    CHECK(t.controller(*c1) == tpl);

    SUBCASE("a template that fires while it controls a connection is re-armed with 60 s") {
        t.clock().set(120s);
        t.expire(100, cb); // c1 goes
        CHECK(log == decltype(log){{1000, ipvs::expire_reason::timed_out}});
        CHECK(tpl->n_control == 0);
        auto* c2 = t.insert(ipvs::make_conn({A<4>("10.1.0.2"), V, 1001, 80, tcp}, &rs, 80, 0, 900s),
                            ipvs::admit::established, cb, tpl)
                       .entry;
        REQUIRE(c2);
        t.clock().set(300s);
        t.expire(100, cb);
        CHECK(log.back() == std::pair<std::uint16_t, ipvs::expire_reason>{0, ipvs::expire_reason::deferred});
        CHECK(tpl->timeout() == 60s);
        CHECK(t.deadline(*tpl) == 360s);
        t.clock().set(360s);
        t.expire(100, cb);
        CHECK(log.back().second == ipvs::expire_reason::deferred);
        CHECK(t.deadline(*tpl) == 420s);
        t.clock().set(1020s); // c2 expires at 120 + 900
        t.expire(100, cb);
        CHECK(t.size() == 0);
        CHECK(log.back() == std::pair<std::uint16_t, ipvs::expire_reason>{0, ipvs::expire_reason::timed_out});
    }
    SUBCASE("a connection expired now takes its non-assured template along") {
        c1->set_timeout(0s);
        t.expire_now(*c1);
        t.expire(100, cb);
        CHECK(t.size() == 0);
        CHECK(log.size() == 2);
    }
    SUBCASE("but not an assured one") {
        tpl->state = ipvs::template_assured;
        c1->set_timeout(0s);
        t.expire_now(*c1);
        t.expire(100, cb);
        CHECK(t.size() == 1);
        CHECK(t.find_template(key) == tpl);
    }
    SUBCASE("touch postpones expiry, a one-argument callback sees only removals") {
        int removed = 0;
        auto cb1 = [&](ipvs::conn4&) { ++removed; };
        for (int s = 1; s <= 1119; ++s) { // a director polls often; c1 sends every 100 s until 1000 s
            t.clock().set(std::chrono::seconds(s));
            if (s % 100 == 0 && s <= 1000) t.touch(*c1);
            t.expire(100, cb1);
        }
        CHECK(removed == 0);
        t.clock().set(1000s + 120s);
        t.expire(100, cb1);
        CHECK(removed == 1); // c1; the template kept firing every 60 s since 300 s while in use: deferred
        CHECK(t.size() == 1);
        CHECK(t.find_template(key) == tpl);
    }
}

TEST_CASE_TEMPLATE("conn_table: batched lookups give the one-at-a-time answers", Entry, ipvs::conn4,
                   ipvs::conn6) {
    constexpr std::size_t N = Entry::addr_len;
    table_t<Entry> t(ipvs::conn_table_config{.capacity = 20000});
    std::mt19937_64 rng(77);
    std::deque<ipvs::dest> dests;
    for (int i = 0; i < 8; ++i) {
        ipvs::inet_addr a = ipvs::to_inet(random_addr<N>(rng));
        dests.push_back(make_dest("10.0.0.1", static_cast<std::uint16_t>(8000 + i),
                                  i % 3 == 0 ? ipvs::fwd_method::droute : ipvs::fwd_method::masq));
        dests.back().ep.addr = a;
    }
    std::vector<ipvs::in_tuple<N>> ins;
    std::vector<ipvs::out_tuple<N>> outs;
    const auto V = random_addr<N>(rng);
    for (int i = 0; i < 18000; ++i) {
        ipvs::in_tuple<N> k{random_addr<N>(rng), V, static_cast<std::uint16_t>(rng()),
                            static_cast<std::uint16_t>(rng() % 4), tcp};
        if (i % 10 == 0 && !ins.empty()) { // same client endpoint, other VIP port: same hash, other entry
            k.caddr = ins.back().caddr;
            k.cport = ins.back().cport;
        }
        std::uint32_t flags = 0;
        if (i % 500 == 0) {
            k.cport = 0;
            flags = ipvs::conn_flag::no_cport;
        }
        ipvs::dest& d = dests[rng() % dests.size()];
        flags |= static_cast<std::uint32_t>(d.fwd);
        auto r =
            t.insert(ipvs::make_conn<Entry>(k, &d, d.ep.port, flags, 60s), ipvs::admit::established, noop);
        if (!r) continue;
        ins.push_back(k);
        const bool nat = d.fwd == ipvs::fwd_method::masq;
        outs.push_back(
            {nat ? ipvs::to_bytes<N>(d.ep.addr) : V, k.caddr, nat ? d.ep.port : k.vport, k.cport, tcp});
    }
    // Half hits, half misses (random tuples; NO_CPORT entries answer any port).
    std::vector<ipvs::in_tuple<N>> qin;
    std::vector<ipvs::out_tuple<N>> qout;
    for (int i = 0; i < 20000; ++i) {
        if (rng() % 2) {
            const auto j = rng() % ins.size();
            auto k = ins[j];
            if (k.cport == 0) k.cport = static_cast<std::uint16_t>(rng());
            qin.push_back(k);
            qout.push_back(outs[j]);
        } else {
            qin.push_back({random_addr<N>(rng), V, static_cast<std::uint16_t>(rng()), 1, tcp});
            qout.push_back(
                {random_addr<N>(rng), random_addr<N>(rng), 8000, static_cast<std::uint16_t>(rng()), tcp});
        }
    }
    for (std::size_t len :
         {std::size_t{1}, std::size_t{7}, std::size_t{32}, std::size_t{33}, std::size_t{20000}}) {
        std::vector<Entry*> got(len);
        t.find_in_batch(std::span(qin).first(len), got);
        std::size_t hits = 0;
        for (std::size_t i = 0; i < len; ++i) {
            REQUIRE(got[i] == t.find_in(qin[i]));
            hits += got[i] != nullptr;
        }
        t.find_out_batch(std::span(qout).first(len), got);
        for (std::size_t i = 0; i < len; ++i) REQUIRE(got[i] == t.find_out(qout[i]));
        if (len == 20000) {
            CHECK(hits > 9000);
            CHECK(hits < 11000);
        }
    }
}

TEST_CASE("conn_table: 200k random operations agree with std::unordered_map") {
    // Small key space (collisions, duplicates, same-client chains) and a small table (full states).
    constexpr std::size_t cap = 3000;
    table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = cap, .max_per_client = 1000});
    auto rs = make_dest("10.0.2.11", 8080);
    struct model_entry {
        time_ns deadline;
        bool tpl;
    };
    struct key_hash {
        std::size_t operator()(const ipvs::in_tuple4& k) const {
            std::uint64_t v;
            std::memcpy(&v, &k, 8);
            return std::hash<std::uint64_t>()(v * 31 + k.cport * 7 + k.vport);
        }
    };
    std::unordered_map<ipvs::in_tuple4, model_entry, key_hash> model;
    std::mt19937_64 rng(99);
    const auto V = A<4>("10.0.0.100");
    auto rand_key = [&] {
        ipvs::in_tuple4 k{A<4>("10.1.0.0"), V, static_cast<std::uint16_t>(1 + rng() % 1500),
                          static_cast<std::uint16_t>(80 + rng() % 3), tcp};
        k.caddr[3] = static_cast<std::uint8_t>(rng() % 4);
        return k;
    };
    std::size_t ops[6] = {};
    time_ns now = 0s;
    for (int op = 0; op < 200000; ++op) {
        const auto k = rand_key();
        const auto what = rng() % 100;
        auto it = model.find(k);
        if (what < 40) {
            const time_ns to = std::chrono::seconds(1 + rng() % 30);
            auto r = t.insert(ipvs::make_conn(k, &rs, 8080, 0, to), ipvs::admit::established, noop);
            if (it != model.end()) {
                REQUIRE(r.status == ipvs::insert_status::exists);
                CHECK(r.entry->key() == k);
            } else if (model.size() == cap) {
                REQUIRE(r.status == ipvs::insert_status::full);
            } else {
                REQUIRE(r.status == ipvs::insert_status::inserted);
                model[k] = {now + to, false};
            }
            ++ops[0];
        } else if (what < 60) {
            auto* e = t.find_in(k);
            REQUIRE((e != nullptr) == (it != model.end()));
            if (e) {
                CHECK(e->key() == k);
                ipvs::out_tuple4 o{A<4>("10.0.2.11"), k.caddr, 8080, k.cport, tcp};
                auto* f = t.find_out(o);
                REQUIRE(f != nullptr); // some entry of this client endpoint (there may be several VIP ports)
                CHECK(f->caddr == k.caddr);
                CHECK(f->cport == k.cport);
            }
            ++ops[1];
        } else if (what < 75) {
            if (it != model.end()) {
                REQUIRE(t.erase(*t.find_in(k)));
                model.erase(it);
            }
            ++ops[2];
        } else if (what < 90) {
            if (it != model.end()) {
                auto* e = t.find_in(k);
                REQUIRE(e);
                t.touch(*e);
                it->second.deadline = now + e->timeout();
            }
            ++ops[3];
        } else {
            now += std::chrono::milliseconds(rng() % 500);
            t.clock().set(now);
            for (;;) {
                auto r = t.expire(1000000, [&](ipvs::conn4& e) {
                    auto m = model.find(e.key());
                    REQUIRE(m != model.end());
                    CHECK(m->second.deadline <= now);
                    model.erase(m);
                    ++ops[4];
                });
                if (r.caught_up) break;
            }
            if (ops[5] % 20 == 0) // nothing overdue by a whole tick survived the poll
                for (auto& [mk, me] : model) REQUIRE(me.deadline + 4ms > now);
            ++ops[5];
        }
        REQUIRE(t.size() == model.size());
    }
    std::size_t listed = 0;
    t.for_each([&](const ipvs::conn4& e) {
        CHECK(model.count(e.key()) == 1);
        ++listed;
    });
    CHECK(listed == model.size());
    MESSAGE("inserts " << ops[0] << ", lookups " << ops[1] << ", erases " << ops[2] << ", touches " << ops[3]
                       << ", expirations " << ops[4] << ", polls " << ops[5]);
    CHECK(ops[4] > 1000);
}

namespace {

/// One service of a persist.jsonl / fwmark.jsonl case.
struct persist_case {
    std::string name;
    int af = 4;
    std::uint8_t proto = tcp;
    std::uint32_t fwmark = 0;
    std::uint32_t netmask4 = 0xffffffff;
    unsigned prefix6 = 128;
    time_ns timeout{};
    bool eqt = false;
};

template <std::size_t N>
struct persist_replay {
    using Entry = ipvs::basic_conn<N>;
    persist_case pc;
    table_t<Entry> table{ipvs::conn_table_config{.capacity = 4096}};
    std::deque<ipvs::dest> dests;
    std::map<std::string, ipvs::dest*> by_name;
    std::size_t picks = 0, templates_checked = 0, created = 0;

    static std::string name(const ipvs::endpoint& ep) {
        std::ostringstream o;
        if (ep.addr.is_v6()) {
            o << '[';
            for (int i = 0; i < 8; ++i)
                o << (i ? ":" : "") << std::hex << ((ep.addr.bytes[2 * i] << 8) | ep.addr.bytes[2 * i + 1]);
            o << ']';
        } else {
            o << int(ep.addr.bytes[0]) << '.' << int(ep.addr.bytes[1]) << '.' << int(ep.addr.bytes[2]) << '.'
              << int(ep.addr.bytes[3]);
        }
        o << std::dec << ':' << ep.port;
        return o.str();
    }
    ipvs::dest* find_dest(const std::string& s) {
        auto ep = ipvs::parse_endpoint(s);
        REQUIRE(ep.has_value());
        const auto key = name(*ep);
        auto it = by_name.find(key);
        if (it != by_name.end()) return it->second;
        dests.emplace_back();
        dests.back().ep = *ep;
        by_name[key] = &dests.back();
        return &dests.back();
    }
    void event(const std::string& ev) {
        std::istringstream in(ev);
        std::string tool, op, ep;
        in >> tool >> op >> ep;
        if (tool != "ipvsadm") return; // the sysctl is on the case line already
        ipvs::dest* d = find_dest(ep);
        std::string w;
        int weight = d->weight;
        if (in >> w && w == "-w") in >> weight;
        if (op == "-d")
            d->flags &= ~ipvs::dest_flag::available;
        else {
            d->flags |= ipvs::dest_flag::available; // -a revives the same dest from the trash (spec §1.8)
            d->weight = weight;
        }
    }
    ipvs::in_tuple<N> key_for(const ipvs::inet_addr& client, const ipvs::endpoint& vip) const {
        const auto c = ipvs::to_bytes<N>(client);
        ipvs::addr_bytes<N> snet;
        if constexpr (N == 4)
            snet = ipvs::mask_client(c, pc.netmask4);
        else
            snet = ipvs::mask_prefix(c, pc.prefix6);
        if (pc.fwmark) return ipvs::make_fwmark_template_key(snet, pc.fwmark);
        return ipvs::make_template_key(pc.proto, snet, ipvs::to_bytes<N>(vip.addr), vip.port);
    }
    void step(const ipvs::test::json& s) {
        const time_ns now =
            1000s + std::chrono::duration_cast<time_ns>(std::chrono::duration<double>(s["t"].get<double>()));
        table.clock().set(now);
        table.expire(100000, [](Entry&) {});
        const auto client = *ipvs::parse_addr(s["client"].get<std::string>());
        const auto vip = *ipvs::parse_endpoint(s["vip"].get<std::string>());
        const auto cport = s["cport"].get<std::uint16_t>();
        const auto k = key_for(client, vip);
        Entry* tpl = table.find_template(k);
        // check_template (spec §3.5 step 3): the dest must be available, and not quiescent with
        // expire_quiescent_template.
        if (tpl && (!tpl->dest->available() || (pc.eqt && tpl->dest->weight == 0))) {
            table.invalidate_template(*tpl);
            tpl = nullptr;
        }
        if (tpl) {
            CHECK_MESSAGE(name(*ipvs::parse_endpoint(s["chosen"].get<std::string>())) == name(tpl->dest->ep),
                          pc.name << " step " << s["step"]);
            ++picks;
            table.touch(*tpl);
        } else if (!s["chosen"].is_null()) {
            ipvs::dest* d = find_dest(s["chosen"].get<std::string>());
            auto r = table.insert(ipvs::make_template<Entry>(k, d, k.vport ? d->ep.port : 0, 0, pc.timeout),
                                  ipvs::admit::established, [](Entry&) {});
            REQUIRE(r);
            tpl = r.entry;
            ++created;
        }
        if (tpl) {
            const ipvs::in_tuple<N> ck{ipvs::to_bytes<N>(client), ipvs::to_bytes<N>(vip.addr), cport,
                                       vip.port, pc.proto};
            auto r = table.insert(
                ipvs::make_conn<Entry>(ck, tpl->dest, vip.port, 0, 60s), ipvs::admit::established,
                [](Entry&) {}, tpl);
            CHECK(r.status != ipvs::insert_status::full);
        }
        // The service's templates as `ipvsadm -Lnc` lists them (invalidated ones no longer match it).
        using row = std::tuple<std::string, std::string, int, std::string, int>;
        std::vector<row> mine, rec;
        std::map<row, time_ns> left;
        table.for_each([&](const Entry& e) {
            if (!e.is_template() || e.is_invalidated()) return;
            row r{name({ipvs::to_inet(e.caddr), 0}), name({ipvs::to_inet(e.vaddr), 0}), e.vport,
                  name({ipvs::to_inet(e.daddr()), 0}), e.dport()};
            if (pc.fwmark) std::get<1>(r) = name({ipvs::inet_addr::v4(pc.fwmark), 0});
            mine.push_back(r);
            left[r] = table.deadline(e) - now;
        });
        for (const auto& jt : s["templates"]) {
            auto ca = *ipvs::parse_addr(jt["caddr"].get<std::string>());
            auto va = *ipvs::parse_addr(jt["vaddr"].get<std::string>());
            auto da = *ipvs::parse_addr(jt["daddr"].get<std::string>());
            row r{name({ca, 0}), name({va, 0}), jt["vport"].get<int>(), name({da, 0}),
                  jt["dport"].get<int>()};
            rec.push_back(r);
            // The kernel listed `expires` (whole seconds) a moment after the step:
            // left − expires ∈ [0, 1.25 s).
            auto it = left.find(r);
            if (it != left.end()) {
                const double l = std::chrono::duration<double>(it->second).count();
                const double ex = jt["expires"].get<double>();
                CHECK_MESSAGE((ex <= l + 1e-9 && ex > l - 1.25),
                              pc.name << " step " << s["step"] << ": " << ex << " vs " << l);
                ++templates_checked;
            }
        }
        std::sort(mine.begin(), mine.end());
        std::sort(rec.begin(), rec.end());
        CHECK_MESSAGE(mine == rec, pc.name << " step " << s["step"]);
    }
};

} // namespace

TEST_CASE("conn_table: persistence templates replay the recorded kernel (persist, fwmark)") {
    std::size_t picks = 0, templates = 0, created = 0, cases = 0, steps = 0;
    std::unique_ptr<persist_replay<4>> r4;
    std::unique_ptr<persist_replay<16>> r6;
    auto finish = [&] {
        if (r4) picks += r4->picks, templates += r4->templates_checked, created += r4->created;
        if (r6) picks += r6->picks, templates += r6->templates_checked, created += r6->created;
        r4.reset();
        r6.reset();
    };
    for (const auto& dir : ipvs::test::oracle_dirs()) {
        for (const char* file : {"persist.jsonl", "fwmark.jsonl"}) {
            auto path = ipvs::test::oracle_file(dir, file);
            if (!path) continue;
            for (const auto& j : ipvs::test::read_jsonl(*path)) {
                if (j["type"] == "case") {
                    finish();
                    if (j["persistent"].is_null()) continue;
                    persist_case pc;
                    pc.name = j["case"].get<std::string>();
                    pc.af = j["af"].get<int>();
                    pc.proto = j["proto"] == "udp" ? udp : j["proto"] == "sctp" ? std::uint8_t{132} : tcp;
                    pc.fwmark = j["fwmark"].is_null() ? 0 : j["fwmark"].get<std::uint32_t>();
                    pc.timeout = std::chrono::seconds(j["persistent"].get<int>());
                    if (j.contains("sysctl") && j["sysctl"].is_object() &&
                        j["sysctl"].contains("net.ipv4.vs.expire_quiescent_template"))
                        pc.eqt = j["sysctl"]["net.ipv4.vs.expire_quiescent_template"].get<int>() != 0;
                    if (!j["netmask"].is_null()) {
                        if (pc.af == 4)
                            pc.netmask4 = ipvs::parse_addr(j["netmask"].get<std::string>())->v4_host();
                        else
                            pc.prefix6 =
                                j["netmask"].is_string()
                                    ? static_cast<unsigned>(std::stoul(j["netmask"].get<std::string>()))
                                    : j["netmask"].get<unsigned>();
                    }
                    ++cases;
                    auto setup = [&](auto& r) {
                        r->pc = pc;
                        for (const auto& d : j["dests_added_in_order"]) {
                            std::string ep = d["addr"].get<std::string>();
                            ep = (pc.af == 6 ? "[" + ep + "]" : ep) + ":" +
                                 std::to_string(d["port"].get<int>());
                            ipvs::dest* x = r->find_dest(ep);
                            x->weight = d["weight"].get<int>();
                            x->flags = ipvs::dest_flag::available;
                        }
                    };
                    if (pc.af == 4)
                        setup(r4 = std::make_unique<persist_replay<4>>());
                    else
                        setup(r6 = std::make_unique<persist_replay<16>>());
                    continue;
                }
                auto run = [&](auto& r) {
                    if (j["type"] == "event") {
                        for (const auto& ev : j["event"]) r->event(ev.get<std::string>());
                    } else if (j["type"] == "step") {
                        r->step(j);
                        ++steps;
                    }
                };
                if (r4)
                    run(r4);
                else if (r6)
                    run(r6);
            }
            finish();
        }
    }
    MESSAGE("persistence cases " << cases << ", steps " << steps << ", picks decided by a template " << picks
                                 << ", templates created " << created << ", template timers checked "
                                 << templates);
    if (cases > 0) {
        CHECK(picks > 100);
        CHECK(templates > 1000);
    }
}

TEST_CASE("conn_table: a spoofed SYN flood cannot evict established flows or overfill the table") {
    constexpr std::size_t cap = 100000, established = 10000, flood = 1000000;
    table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = cap});
    auto rs = make_dest("10.0.2.11", 8080);
    const auto V = A<4>("10.0.0.100");
    std::mt19937_64 rng(1);
    std::size_t evicted = 0, expired = 0, bad_evictions = 0;
    auto on_remove = [&](ipvs::conn4& e, ipvs::expire_reason why) {
        if (why == ipvs::expire_reason::evicted) {
            ++evicted;
            if (!e.is_embryonic()) ++bad_evictions;
        } else if (why == ipvs::expire_reason::timed_out) {
            ++expired;
            if (!e.is_embryonic()) ++bad_evictions; // an established flow that keeps sending must not expire
        }
    };
    // Established flows: handshake done (confirm), 900 s timeout, from 172.16.0.0/16.
    std::vector<ipvs::in_tuple4> flows;
    for (std::size_t i = 0; i < established; ++i) {
        ipvs::in_tuple4 k{A<4>("172.16.0.0"), V, static_cast<std::uint16_t>(1024 + i % 50000), 80, tcp};
        k.caddr[2] = static_cast<std::uint8_t>(i / 256);
        k.caddr[3] = static_cast<std::uint8_t>(i);
        auto r = t.insert(ipvs::make_conn(k, &rs, 8080, 0, 900s), ipvs::admit::embryonic, on_remove);
        REQUIRE(r);
        t.confirm(*r.entry);
        flows.push_back(k);
    }
    CHECK(t.embryonic() == 0);
    // 1M spoofed SYNs in 10 s (60 s SYN_RECV timeout: 600k would be alive without a bound), the
    // established flows each sending once a second, and a legitimate new connection every 10 ms whose
    // handshake completes 50 ms later.
    std::vector<std::pair<ipvs::in_tuple4, std::size_t>> pending; // legit handshakes in flight
    std::size_t legit_ok = 0, legit_lost = 0, refused = 0, max_size = 0, max_embryonic = 0;
    time_ns now = 0s;
    std::size_t next_touch = 0;
    for (std::size_t i = 0; i < flood; ++i) {
        ipvs::in_tuple4 k{{}, V, static_cast<std::uint16_t>(rng()), 80, tcp};
        const auto a = static_cast<std::uint32_t>(rng());
        k.caddr = {static_cast<std::uint8_t>(a >> 24 | 0x80), static_cast<std::uint8_t>(a >> 16),
                   static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a)};
        auto r = t.insert(ipvs::make_conn(k, &rs, 8080, 0, 60s), ipvs::admit::embryonic, on_remove);
        if (!r) ++refused;
        max_size = std::max(max_size, t.size());
        max_embryonic = std::max(max_embryonic, t.embryonic());
        if (i % 1000 == 999) {
            now += 10ms;
            t.clock().set(now);
            for (int n = 0; n < 100; ++n) {
                auto* e = t.find_in(flows[next_touch]);
                REQUIRE(e != nullptr);
                t.touch(*e);
                next_touch = (next_touch + 1) % established;
            }
            // Legit handshakes: the one started 50 ms ago completes now.
            if (!pending.empty() && pending.front().second + 5 <= i / 1000) {
                if (auto* e = t.find_in(pending.front().first)) {
                    t.confirm(*e);
                    t.touch(*e);
                    ++legit_ok;
                } else {
                    ++legit_lost;
                }
                pending.erase(pending.begin());
            }
            ipvs::in_tuple4 lk{A<4>("192.0.2.0"), V, static_cast<std::uint16_t>(2000 + i / 1000), 80, tcp};
            lk.caddr[3] = static_cast<std::uint8_t>(i / 1000);
            if (t.insert(ipvs::make_conn(lk, &rs, 8080, 0, 60s), ipvs::admit::embryonic, on_remove))
                pending.emplace_back(lk, i / 1000);
            t.expire(20000, on_remove);
        }
    }
    MESSAGE("flood: evicted " << evicted << ", expired " << expired << ", refused " << refused
                              << ", max size " << max_size << ", max embryonic " << max_embryonic
                              << ", legit handshakes ok " << legit_ok << " lost " << legit_lost);
    CHECK(max_size <= cap);
    CHECK(max_embryonic <= t.embryonic_limit());
    CHECK(bad_evictions == 0);
    CHECK(evicted > flood / 2);
    CHECK(legit_ok >= 0.99 * double(legit_ok + legit_lost));
    CHECK(legit_ok > 900);
    for (const auto& k : flows) {
        auto* e = t.find_in(k);
        REQUIRE(e != nullptr);
        CHECK_FALSE(e->is_embryonic());
        CHECK(t.find_out({A<4>("10.0.2.11"), k.caddr, 8080, k.cport, tcp}) == e);
    }
}

TEST_CASE("conn_table: drop_entry applies the kernel's rules (spec §3.8)") {
    // Capacity 10 → one index group, so one scan visits every entry exactly once.
    table_t<ipvs::conn4> t(ipvs::conn_table_config{.capacity = 10});
    REQUIRE(t.index_groups() == 1);
    auto rs = make_dest("10.0.2.11", 80);
    const auto V = A<4>("10.0.0.100");
    auto add = [&](std::uint16_t cport, std::uint8_t proto, std::uint8_t state, std::uint32_t in_pkts,
                   std::uint32_t flags = 0) {
        auto r = t.insert(ipvs::make_conn({A<4>("10.1.0.1"), V, cport, 80, proto}, &rs, 80, flags, 900s),
                          ipvs::admit::established, noop);
        REQUIRE(r);
        r.entry->state = state;
        r.entry->in_pkts = in_pkts;
        return r.entry;
    };
    add(1, tcp, 3, 1);              // SYN_RECV → drop
    add(2, tcp, 10, 1);             // SYNACK → drop
    add(3, tcp, 4, 1);              // FIN_WAIT → keep
    add(4, tcp, 1, 1);              // ESTABLISHED, idle, in_pkts 1 → try_drop, dropped
    add(5, tcp, 1, 0);              // in_pkts 0 → never
    add(6, tcp, 1, 9);              // in_pkts > 8 → never
    auto* busy = add(7, tcp, 1, 1); // ESTABLISHED but active recently → kept
    auto* tpl = add(0, tcp, 0, 0, ipvs::conn_flag::template_); // non-assured template → drop
    auto* assured = add(0, udp, ipvs::template_assured, 0, ipvs::conn_flag::template_); // assured → keep
    auto* ctl = add(8, 132, 0, 0, ipvs::conn_flag::template_); // controls a conn → skipped
    (void)tpl;
    (void)assured;
    t.clock().set(100s); // everything else has been idle 100 s ≥ 60 s
    t.touch(*busy);
    REQUIRE(t.size() == 10);
    CHECK(ipvs::kernel_drop_rule{}(*ctl) == ipvs::drop_verdict::drop);
    ctl->n_control = 1; // (a fake controlled count: drop_entry must skip it)
    CHECK(t.drop_entry(1) == 4);
    std::vector<std::uint16_t> gone;
    ctl->n_control = 0;
    t.expire(100, [&](ipvs::conn4& e) {
        gone.push_back(e.is_template() ? std::uint16_t(1000 + e.protocol) : e.cport);
    });
    std::sort(gone.begin(), gone.end());
    CHECK(gone == std::vector<std::uint16_t>{1, 2, 4, 1006});

    SUBCASE("try_drop: an entry with in_pkts = i goes every i-th time") {
        table_t<ipvs::conn4> u(ipvs::conn_table_config{.capacity = 10});
        auto* e2 = u.insert(ipvs::make_conn({A<4>("10.1.0.2"), V, 1, 53, udp}, &rs, 53, 0, 300s),
                            ipvs::admit::established, noop)
                       .entry;
        e2->in_pkts = 2;
        u.clock().set(61s);
        std::vector<std::size_t> pattern;
        for (int i = 0; i < 6; ++i) pattern.push_back(u.drop_entry(1));
        CHECK(pattern == std::vector<std::size_t>{1, 0, 1, 0, 1, 0});
        e2->in_pkts = 3;
        pattern.clear();
        for (int i = 0; i < 6; ++i) pattern.push_back(u.drop_entry(1));
        CHECK(pattern == std::vector<std::size_t>{1, 0, 0, 1, 0, 0});
    }
    SUBCASE("the SCTP rules") {
        ipvs::conn4 c;
        c.protocol = 132;
        for (std::uint8_t s : {1, 2}) {
            c.state = s;
            CHECK(ipvs::kernel_drop_rule{}(c) == ipvs::drop_verdict::drop);
        }
        c.state = 8;
        CHECK(ipvs::kernel_drop_rule{}(c) == ipvs::drop_verdict::try_drop);
        c.state = 3;
        CHECK(ipvs::kernel_drop_rule{}(c) == ipvs::drop_verdict::keep);
        c.flags = ipvs::conn_flag::template_ | ipvs::conn_flag::one_packet;
        CHECK(ipvs::kernel_drop_rule{}(c) == ipvs::drop_verdict::try_drop);
    }
}

TEST_CASE("conn_table: the defense modes follow update_defense_level (spec §3.8)") {
    SUBCASE("drop_entry and secure_tcp: 1 auto ↔ 2 active, 3 always, 0 never") {
        ipvs::defense d;
        d.amemthresh = 1000;
        d.drop_entry = 1;
        d.secure_tcp = 3;
        d.update(5000);
        CHECK_FALSE(d.drop_entry_active());
        CHECK(d.drop_entry == 1);
        CHECK(d.secure_tcp_active());
        d.update(999);
        CHECK(d.drop_entry_active());
        CHECK(d.drop_entry == 2);
        d.update(999);
        CHECK(d.drop_entry == 2);
        d.update(1000); // not below the threshold
        CHECK_FALSE(d.drop_entry_active());
        CHECK(d.drop_entry == 1);
        d.secure_tcp = 0;
        d.update(0);
        CHECK_FALSE(d.secure_tcp_active());
    }
    SUBCASE("drop_packet auto: rate = amemthresh / (amemthresh − availmem)") {
        ipvs::defense d;
        d.amemthresh = 1000;
        d.drop_packet = 1;
        d.update(750);
        CHECK(d.drop_packet == 2);
        CHECK(d.drop_rate() == 4);
        std::vector<int> drops;
        for (int i = 1; i <= 12; ++i)
            if (d.todrop()) drops.push_back(i);
        CHECK(drops == std::vector<int>{4, 8, 12});
        d.update(2000);
        CHECK(d.drop_packet == 1);
        CHECK(d.drop_rate() == 0);
        for (int i = 0; i < 100; ++i) CHECK_FALSE(d.todrop());
    }
    SUBCASE("drop_packet 3: am_droprate, one of every 10") {
        ipvs::defense d;
        d.drop_packet = 3;
        d.update(1 << 30);
        int n = 0;
        for (int i = 0; i < 100; ++i) n += d.todrop();
        CHECK(n == 10);
    }
}

TEST_CASE("conn_table: tag matching, SSE2 and portable, agree") {
    std::mt19937_64 rng(4);
    alignas(64) std::uint8_t g[64];
    for (int n = 0; n < 10000; ++n) {
        for (auto& b : g) b = static_cast<std::uint8_t>(rng() % 5);
        const auto t = static_cast<std::uint8_t>(rng() % 5);
        REQUIRE(ipvs::detail::match_tag(g, t) == ipvs::detail::match_tag_portable(g, t));
    }
}
