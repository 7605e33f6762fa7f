// SPDX-License-Identifier: MIT
// Tests for <ipvs/addr.hpp>: parsing, fold, masks.
#include <doctest/doctest.h>

#include <ipvs/addr.hpp>

using namespace ipvs;

TEST_CASE("parse_addr: IPv4 dotted quads") {
    CHECK(parse_addr("10.0.2.11")->v4_host() == 0x0a00020b);
    CHECK(parse_addr("255.255.255.255")->v4_host() == 0xffffffff);
    SUBCASE("malformed") {
        for (auto s : {"", "1.2.3", "1.2.3.4.5", "1.2.3.", "01234.1.1.1", "a.b.c.d", "1..2.3", "256.0.0.1"})
            CHECK_MESSAGE(!parse_addr(s), s);
    }
}

TEST_CASE("parse_addr: IPv6 text forms of RFC 4291 §2.2") {
    auto a = parse_addr("fd00:2::b");
    REQUIRE(a);
    CHECK(a->is_v6());
    CHECK(a->bytes[0] == 0xfd);
    CHECK(a->bytes[15] == 0x0b);
    CHECK(parse_addr("::")->is_unspecified());
    CHECK(parse_addr("::1")->bytes[15] == 1);
    CHECK(parse_addr("1:2:3:4:5:6:7:8")->word(3) == 0x00070008);
    CHECK(parse_addr("::ffff:10.0.0.1")->word(3) == 0x0a000001);
    CHECK(*parse_addr("fd00:0:0:0:0:0:0:100") == *parse_addr("fd00::100"));
    SUBCASE("malformed") {
        for (auto s : {":", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::1",
                       "1:", "::1.2.3"})
            CHECK_MESSAGE(!parse_addr(s), s);
    }
}

TEST_CASE("inet_addr::fold matches the spec's worked values") {
    // spec §11: fold(192.168.1.1) = 0xc0a80101; fold(2001:db8::1) = 0x20010db9.
    CHECK(parse_addr("192.168.1.1")->fold() == 0xc0a80101U);
    CHECK(parse_addr("2001:db8::1")->fold() == 0x20010db9U);
    CHECK(parse_addr("::1")->fold() == 1U);
}

TEST_CASE("inet_addr::masked applies prefix lengths") {
    CHECK(parse_addr("10.1.77.9")->masked(24) == *parse_addr("10.1.77.0"));
    CHECK(parse_addr("10.1.77.9")->masked(16) == *parse_addr("10.1.0.0"));
    CHECK(parse_addr("10.1.77.9")->masked(0) == *parse_addr("0.0.0.0"));
    CHECK(parse_addr("fd01:1:2:3:4:5:6:7")->masked(48) == *parse_addr("fd01:1:2::"));
    CHECK(parse_addr("fd01:1:2:3:4:5:6:7")->masked(64) == *parse_addr("fd01:1:2:3::"));
    CHECK(parse_addr("fd01::ff")->masked(121) == *parse_addr("fd01::80"));
}

TEST_CASE("parse_endpoint: the forms ipvsadm prints") {
    auto e = parse_endpoint("10.0.0.100:80");
    REQUIRE(e);
    CHECK(e->port == 80);
    auto e6 = parse_endpoint("[fd00::100]:3868");
    REQUIRE(e6);
    CHECK(e6->addr.is_v6());
    CHECK(e6->port == 3868);
    for (auto s : {"10.0.0.1", "10.0.0.1:", "10.0.0.1:65536", "fd00::1:80", "[fd00::1]80", "[10.0.0.1]:80"})
        CHECK_MESSAGE(!parse_endpoint(s), s);
}
