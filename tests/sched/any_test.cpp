// SPDX-License-Identifier: MIT
// Tests for <ipvs/sched/any.hpp>: choice by ipvsadm name, unknown names, and that the variant picks
// exactly as the scheduler it holds.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <ipvs/sched/any.hpp>
#include <ipvs/service.hpp>

using namespace ipvs;
using namespace ipvs::sched;

namespace {

/// The ipvsadm name of each scheduler class, written out independently of any.hpp's table.
template <class S>
constexpr std::string_view name_of = "";
template <>
constexpr std::string_view name_of<rr> = "rr";
template <>
constexpr std::string_view name_of<wrr> = "wrr";
template <>
constexpr std::string_view name_of<lc> = "lc";
template <>
constexpr std::string_view name_of<wlc> = "wlc";
template <>
constexpr std::string_view name_of<lblc> = "lblc";
template <>
constexpr std::string_view name_of<lblcr> = "lblcr";
template <>
constexpr std::string_view name_of<dh> = "dh";
template <>
constexpr std::string_view name_of<sh> = "sh";
template <>
constexpr std::string_view name_of<sed> = "sed";
template <>
constexpr std::string_view name_of<nq> = "nq";
template <>
constexpr std::string_view name_of<fo> = "fo";
template <>
constexpr std::string_view name_of<ovf> = "ovf";
template <>
constexpr std::string_view name_of<mh> = "mh";
template <>
constexpr std::string_view name_of<twos<>> = "twos";

constexpr sched_flags both{true, true};
constexpr std::uint64_t seed = 12345;

/// The concrete scheduler make_scheduler(name_of<S>, both, {seed}) should be equivalent to.
template <class S>
S direct() {
    if constexpr (std::is_same_v<S, sh> || std::is_same_v<S, mh>) {
        return S{both};
    } else if constexpr (std::is_same_v<S, twos<>>) {
        return S{splitmix_rng{seed}};
    } else {
        return S{};
    }
}

scheduler_options seeded() {
    scheduler_options o;
    o.twos_seed = seed;
    return o;
}

#define IPVS_ALL_SCHEDULERS rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos<>

/// Feeds the same random history to a service over `S` and one over any_scheduler; the picks
/// (as endpoints) must be equal.
template <class S>
void same_picks(std::uint64_t rng_seed) {
    service<S> one(direct<S>());
    service<any_scheduler> two(make_scheduler(name_of<S>, both, seeded()));
    std::mt19937_64 rng(rng_seed);
    auto below = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
    std::vector<endpoint> bound;
    auto dest_ep = [&](std::uint32_t i) { return endpoint{inet_addr::v4(0x0a00020b + i), 80}; };
    for (std::uint32_t i = 0; i < 5; ++i) {
        const dest_config c{dest_ep(i), int(below(4))};
        one.add_dest(c);
        two.add_dest(c);
    }
    for (int step = 0; step < 600; ++step) {
        const auto r = below(10);
        if (r < 6) {
            sched_input in;
            in.saddr = inet_addr::v4(0x0a010000 + below(200));
            in.sport = static_cast<std::uint16_t>(1024 + below(100));
            in.daddr = inet_addr::v4(0x0a000300 + below(20));
            in.dport = 80;
            in.now = std::chrono::seconds(step);
            dest* a = one.schedule(in);
            dest* b = two.schedule(in);
            REQUIRE((a == nullptr) == (b == nullptr));
            if (!a) continue;
            REQUIRE(a->ep == b->ep);
            one.bind(*a, conn_counter::inactive);
            two.bind(*b, conn_counter::inactive);
            one.move_to_active(*a);
            two.move_to_active(*b);
            bound.push_back(a->ep);
        } else if (r < 8 && !bound.empty()) {
            const auto k = below(static_cast<std::uint32_t>(bound.size()));
            if (dest* a = one.find_dest(bound[k])) {
                one.unbind(*a, conn_counter::active);
                two.unbind(*two.find_dest(bound[k]), conn_counter::active);
            }
            bound[k] = bound.back();
            bound.pop_back();
        } else {
            const auto e = dest_ep(below(5));
            const auto u = below(3) == 0 ? 1 + below(4) : 0;
            const dest_config c{e, int(below(5)), u};
            if (one.find_dest(e)) {
                one.edit_dest(c);
                two.edit_dest(c);
            } else {
                one.add_dest(c);
                two.add_dest(c);
            }
        }
    }
}

} // namespace

TEST_CASE_TEMPLATE("make_scheduler: each ipvsadm name gives its scheduler, and name() gives the name back", S,
                   IPVS_ALL_SCHEDULERS) {
    auto s = make_scheduler(name_of<S>);
    CHECK(s.name() == name_of<S>);
    CHECK(s.template get_if<S>() != nullptr);
    CHECK(any_scheduler(direct<S>()).name() == name_of<S>);
}

TEST_CASE("make_scheduler: an unknown name throws std::invalid_argument") {
    for (std::string_view bad : {"", "RR", "wrr ", "lblcrr", "round-robin", "twos2", "m"})
        CHECK_THROWS_AS((void)make_scheduler(bad), std::invalid_argument);
    CHECK(any_scheduler::names.size() == 14);
}

TEST_CASE("any_scheduler: wlc, ipvsadm's default, when nothing is named") {
    CHECK(any_scheduler{}.name() == "wlc");
}

TEST_CASE_TEMPLATE("any_scheduler: picks exactly as the scheduler it holds, through every hook", S,
                   IPVS_ALL_SCHEDULERS) {
    for (std::uint64_t s = 1; s <= 3; ++s) same_picks<S>(s);
}

TEST_CASE("any_scheduler: assume_picked reaches the alternatives that have it") {
    service<any_scheduler> s(make_scheduler("rr"));
    auto& a = s.add_dest({endpoint{inet_addr::v4(0x0a00020b), 80}, 1});
    auto& b = s.add_dest({endpoint{inet_addr::v4(0x0a00020c), 80}, 1});
    auto& c = s.add_dest({endpoint{inet_addr::v4(0x0a00020d), 80}, 1});
    REQUIRE(s.schedule({}) == &c); // list C, B, A: rr starts at the head
    s.assume_picked(b, {});
    CHECK(s.schedule({}) == &a); // continues after B
    service<any_scheduler> l(make_scheduler("lblc"));
    auto& la = l.add_dest({endpoint{inet_addr::v4(0x0a00020b), 80}, 1});
    l.add_dest({endpoint{inet_addr::v4(0x0a00020c), 80}, 1});
    l.assume_picked(la, {});
    CHECK(l.schedule({}) == &la); // wlc alone would pick the head
}

TEST_CASE("make_scheduler: options reach the schedulers that take them") {
    scheduler_options o;
    o.lblc.capacity = 1;
    service<any_scheduler> s(make_scheduler("lblc", {}, o));
    s.add_dest({endpoint{inet_addr::v4(0x0a00020b), 80}, 1});
    sched_input in;
    for (std::uint32_t i = 0; i < 3; ++i) {
        in.daddr = inet_addr::v4(0x0a000300 + i);
        CHECK(s.schedule(in) != nullptr);
    }
    CHECK(s.scheduler().get_if<lblc>()->entries() == 1);
    SUBCASE("sh and mh get the service's flags") {
        auto h = make_scheduler("sh", both);
        CHECK(h.name() == "sh");
        auto m = make_scheduler("mh", both, o);
        CHECK(m.name() == "mh");
    }
}
