// SPDX-License-Identifier: MIT
// flow_hash: both directions of a NATed flow give the same hash and shard; spread; the kernel's jhash.
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/flow_hash.hpp>

namespace {

struct packet4 {
    std::uint8_t proto;
    std::array<std::uint8_t, 4> saddr, daddr;
    std::uint16_t sport, dport;
};

std::array<std::uint8_t, 4> a4(std::uint32_t v) {
    return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
            static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

} // namespace

TEST_CASE("flow_hash: a client packet and the NATed reply hash alike and land on the same shard") {
    const ipvs::flow_hasher h{0x1234, 0x5678};
    std::mt19937_64 rng(5);
    for (int i = 0; i < 10000; ++i) {
        // client C:c → VIP V:v, DNAT to RS D:d; the reply is D:d → C:c (spec §6.2, §6.3).
        const auto C = a4(static_cast<std::uint32_t>(rng())), V = a4(0x0a000064), D = a4(0x0a02000b + i % 7);
        const auto c = static_cast<std::uint16_t>(rng()), v = std::uint16_t{80}, d = std::uint16_t{8080};
        const std::uint8_t proto = (i & 1) ? 6 : 17;
        const packet4 in{proto, C, V, c, v};
        const packet4 out{proto, D, C, d, c};
        const auto hin = h.hash_inbound(in.proto, in.saddr, in.sport, in.daddr, in.dport);
        const auto hout = h.hash_outbound(out.proto, out.saddr, out.sport, out.daddr, out.dport);
        REQUIRE(hin == hout);
        for (std::uint32_t n : {2U, 3U, 8U, 64U}) CHECK(ipvs::shard_of(hin, n) == ipvs::shard_of(hout, n));
        // The un-NATed 5-tuple would not be symmetric: the reply's source is the RS, not the VIP.
        CHECK(h.hash_inbound(out.proto, out.saddr, out.sport, out.daddr, out.dport) != hin);
    }
    // IPv6, through inet_addr.
    const auto C6 = *ipvs::parse_addr("fd01::1:2"), V6 = *ipvs::parse_addr("fd00::100"),
               D6 = *ipvs::parse_addr("fd00:2::b");
    CHECK(h.hash_inbound(std::uint8_t{6}, C6, 40000, V6, 80) ==
          h.hash_outbound(std::uint8_t{6}, D6, 8080, C6, 40000));
    CHECK(h(6, C6, 40000) == h(6, C6.bytes, 40000));
    const auto C4 = *ipvs::parse_addr("10.1.2.3");
    CHECK(h(17, C4, 53) == h(17, a4(0x0a010203), 53));
}

TEST_CASE("flow_hash: every input bit changes the hash (avalanche)") {
    const ipvs::flow_hasher h;
    std::mt19937_64 rng(9);
    double flipped = 0;
    int trials = 0;
    for (int t = 0; t < 200; ++t) {
        std::array<std::uint8_t, 16> a{};
        for (auto& b : a) b = static_cast<std::uint8_t>(rng());
        const auto port = static_cast<std::uint16_t>(rng());
        const std::uint8_t proto = static_cast<std::uint8_t>(rng());
        const auto base = h(proto, a, port);
        for (int bit = 0; bit < 128 + 16 + 8; ++bit) {
            auto a2 = a;
            auto p2 = port;
            auto pr2 = proto;
            if (bit < 128)
                a2[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
            else if (bit < 144)
                p2 ^= static_cast<std::uint16_t>(1U << (bit - 128));
            else
                pr2 ^= static_cast<std::uint8_t>(1U << (bit - 144));
            const auto x = h(pr2, a2, p2);
            REQUIRE(x != base);
            flipped += std::popcount(x ^ base);
            ++trials;
        }
        std::array<std::uint8_t, 4> b4{a[0], a[1], a[2], a[3]};
        const auto base4 = h(proto, b4, port);
        for (int bit = 0; bit < 32; ++bit) {
            auto c4 = b4;
            c4[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
            const auto x = h(proto, c4, port);
            REQUIRE(x != base4);
            flipped += std::popcount(x ^ base4);
            ++trials;
        }
    }
    const double mean = flipped / trials;
    CHECK(mean > 30.0);
    CHECK(mean < 34.0);
}

TEST_CASE("flow_hash: shards and table groups are filled evenly and independently") {
    const ipvs::flow_hasher h{0xabcdef, 0x123457};
    std::mt19937_64 rng(3);
    constexpr int n = 400000;
    constexpr std::uint32_t shards = 16, groups = 1000;
    std::vector<int> per_shard(shards), per_group(groups), joint(shards * 8);
    for (int i = 0; i < n; ++i) {
        // Clients from one /16 with sequential ports: the structured case a weak hash fails on.
        const auto v = h(6, a4(0x0a010000 + static_cast<std::uint32_t>(i % 65536)),
                         static_cast<std::uint16_t>(1024 + i / 65536));
        const auto s = ipvs::shard_of(v, shards);
        const auto g = static_cast<std::uint32_t>(((v >> 32) * groups) >> 32);
        ++per_shard[s];
        ++per_group[g];
        ++joint[s * 8 + g % 8]; // the group choice inside one shard must still be uniform
    }
    auto chi2 = [](const std::vector<int>& v, double expected) {
        double x = 0;
        for (int c : v) x += (c - expected) * (c - expected) / expected;
        return x;
    };
    // 99.9 % quantiles: df 15 → 37.7, df 999 → 1143, df 127 → 181.
    CHECK(chi2(per_shard, n / double(shards)) < 37.7);
    CHECK(chi2(per_group, n / double(groups)) < 1143);
    CHECK(chi2(joint, n / double(shards * 8)) < 181);
}

TEST_CASE("flow_hash: the seed changes the hash") {
    const ipvs::flow_hasher a{1, 2}, b{1, 3}, c{2, 2};
    const auto k = a4(0xc0a80164);
    CHECK(a(6, k, 12345) != b(6, k, 12345));
    CHECK(a(6, k, 12345) != c(6, k, 12345));
}

TEST_CASE("flow_hash: kernel jhash and connection hash reproduce the spec's worked examples") {
    // spec §3.2: lookup3 of "Four score and seven years ago" with initval 0 is 0x17770551.
    const char* text = "Four score and seven years ago";
    std::vector<std::uint8_t> bytes(text, text + std::strlen(text));
    CHECK(ipvs::jhash(bytes.data(), bytes.size(), 0) == 0x17770551U);
    // TCP 192.168.1.100:12345, rnd 0: hash 0x337f043c, bucket 1084 of 4096.
    const auto v4 = *ipvs::parse_addr("192.168.1.100");
    CHECK(ipvs::kernel_conn_hash(0, 6, v4, 12345) == 0x337f043cU);
    CHECK((ipvs::kernel_conn_hash(0, 6, v4, 12345) & 4095) == 1084);
    // IPv6 2001:db8::1 port 12345 TCP: inner jhash 0x0e5b0adb, bucket 3707.
    const auto v6 = *ipvs::parse_addr("2001:db8::1");
    CHECK(ipvs::jhash(v6.bytes.data(), 16, 0) == 0x0e5b0adbU);
    CHECK((ipvs::kernel_conn_hash(0, 6, v6, 12345) & 4095) == 3707);
}
