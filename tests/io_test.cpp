// SPDX-License-Identifier: MIT
// Tests for <ipvs/io.hpp>: address text (RFC 5952, checked against inet_ntop) and the ipvsadm-style listings.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <random>

#include <ipvs/io.hpp>

using namespace ipvs;

TEST_CASE("to_string(inet_addr): RFC 5952 text, identical to inet_ntop") {
    CHECK(to_string(*parse_addr("10.0.0.100")) == "10.0.0.100");
    CHECK(to_string(*parse_addr("fd00:0:0:0:0:0:0:100")) == "fd00::100");
    CHECK(to_string(*parse_addr("2001:db8:0:1:1:1:1:1")) == "2001:db8:0:1:1:1:1:1"); // RFC 5952 §4.2.2
    CHECK(to_string(*parse_addr("2001:0:0:1:0:0:0:1")) == "2001:0:0:1::1"); // §4.2.3: the longer run
    CHECK(to_string(*parse_addr("2001:db8:0:0:1:0:0:1")) ==
          "2001:db8::1:0:0:1"); // §4.2.3: the first of equals
    CHECK(to_string(endpoint{*parse_addr("fd00::100"), 80}) == "[fd00::100]:80");
    std::mt19937 rng(5952);
    int checked = 0;
    for (int i = 0; i < 5000; ++i) {
        std::array<std::uint8_t, 16> b{};
        for (auto& x : b) x = (rng() % 3 == 0) ? static_cast<std::uint8_t>(rng()) : 0;
        char buf[INET6_ADDRSTRLEN];
        REQUIRE(inet_ntop(AF_INET6, b.data(), buf, sizeof buf));
        const std::string want = buf;
        if (want.find('.') != std::string::npos) continue; // inet_ntop's IPv4-mapped form
        CHECK(to_string(inet_addr::v6(b)) == want);
        ++checked;
    }
    CHECK(checked > 4000);
}

TEST_CASE("list_stats / list_services / list_conns show a configured director") {
    director d;
    service_config c;
    c.vip = *parse_endpoint("10.0.0.100:80");
    c.scheduler = "rr";
    auto& s = d.add_service(c);
    d.add_dest(s, dest_config{*parse_endpoint("10.0.2.11:8080"), 1});
    const auto stats = list_stats(d);
    CHECK(stats.find("TCP  10.0.0.100:80") != std::string::npos);
    CHECK(stats.find("  -> 10.0.2.11:8080") != std::string::npos);
    CHECK(list_services(d).find(" rr") != std::string::npos);
    CHECK(list_conns(d, time_ns{0}).find("pro expire state") == 0);
}
