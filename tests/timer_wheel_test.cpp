// SPDX-License-Identifier: MIT
// timer_wheel: exact expiry order, lazy re-arm, cancel, clock jumps, bounded polls, a model differential.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <ipvs/timer_wheel.hpp>

using namespace std::chrono_literals;
using ipvs::time_ns;

namespace {

struct hooks {
    std::vector<ipvs::timer_hook>* v;
    ipvs::timer_hook& operator()(std::uint32_t h) const { return (*v)[h]; }
};

struct fixture {
    explicit fixture(std::uint32_t n, ipvs::timer_wheel_config cfg = {})
        : store(n), wheel(hooks{&store}, n, cfg) {}
    std::vector<ipvs::timer_hook> store;
    ipvs::timer_wheel<hooks> wheel;

    /// Polls without a work limit and returns the handles expired, in order.
    std::vector<std::uint32_t> drain(time_ns now) {
        std::vector<std::uint32_t> out;
        for (;;) {
            auto r = wheel.poll(now, 1 << 20, [&](std::uint32_t h) { out.push_back(h); });
            if (r.caught_up) break;
        }
        return out;
    }
};

} // namespace

TEST_CASE("timer_wheel: entries expire in deadline order, never early and at most a tick late") {
    constexpr std::uint32_t n = 3000;
    fixture f(n);
    std::mt19937_64 rng(7);
    // Distinct deadlines at least one tick apart, in a random arming order, over about 10 minutes —
    // more than two wheel rotations, so later rounds of the same slot are exercised.
    std::vector<time_ns> due(n);
    std::vector<std::uint32_t> order(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        order[i] = i;
        due[i] = 1s + i * 200ms;
    }
    std::shuffle(order.begin(), order.end(), rng);
    time_ns now = 0ns;
    for (auto h : order) {
        f.wheel.arm(h, now, due[h] - now);
        now += 100us; // arming takes a little time: each entry has its own arm time
    }
    std::vector<time_ns> deadline(n);
    // The deadline each entry was armed for is due[h] exactly (arm time + timeout).
    for (std::uint32_t h = 0; h < n; ++h) deadline[h] = due[h];

    std::vector<std::uint32_t> expired;
    time_ns prev = now;
    std::uniform_int_distribution<int> step_ms(1, 700);
    while (expired.size() < n) {
        now += std::chrono::milliseconds(step_ms(rng));
        auto got = f.drain(now);
        for (auto h : got) {
            CHECK(deadline[h] <= now);                  // never early
            CHECK(deadline[h] + f.wheel.tick() > prev); // would have been due at the previous poll
            expired.push_back(h);
        }
        prev = now;
    }
    std::vector<std::uint32_t> sorted(n);
    for (std::uint32_t i = 0; i < n; ++i) sorted[i] = i; // due[] increases with the handle
    CHECK(expired == sorted);
    CHECK(f.wheel.size() == 0);
}

TEST_CASE("timer_wheel: entries due in the same tick expire in the order they were armed") {
    fixture f(8);
    for (std::uint32_t h : {5U, 2U, 7U, 0U}) f.wheel.arm(h, 0ns, 10s);
    CHECK(f.drain(9s).empty());
    CHECK(f.drain(10s) == std::vector<std::uint32_t>{5, 2, 7, 0});
}

TEST_CASE("timer_wheel: re-arm") {
    fixture f(16);
    SUBCASE("to a later deadline postpones expiry (lazy: a store, found and re-filed later)") {
        f.wheel.arm(0, 0s, 10s);
        f.wheel.arm(1, 0s, 20s);
        f.wheel.arm(0, 5s, 25s); // now 30 s
        CHECK(f.drain(25s) == std::vector<std::uint32_t>{1});
        CHECK(f.drain(29s).empty());
        CHECK(f.drain(30s) == std::vector<std::uint32_t>{0});
    }
    SUBCASE("to an earlier deadline brings expiry forward") {
        f.wheel.arm(3, 0s, 900s);
        f.wheel.arm(3, 25s, 1s);
        CHECK(f.drain(25s + 999ms).empty());
        CHECK(f.drain(26s) == std::vector<std::uint32_t>{3});
    }
    SUBCASE("a timeout of zero expires at the next poll") {
        f.wheel.arm(4, 0s, 900s);
        f.wheel.arm(4, 3s, 0s);
        CHECK(f.drain(3s) == std::vector<std::uint32_t>{4});
    }
    SUBCASE("re-arming on every packet keeps an entry alive with little wheel work") {
        f.wheel.arm(7, 0s, 60s);
        std::size_t examined = 0;
        time_ns now = 0s;
        for (int pkt = 0; pkt < 2000; ++pkt) {
            now += 500ms;
            f.wheel.arm(7, now, 60s);
            auto r = f.wheel.poll(now, 64, [&](std::uint32_t) { FAIL("expired while in use"); });
            examined += r.examined;
        }
        // 1000 s of traffic: the entry is looked at about once per timeout, not once per packet.
        CHECK(examined <= 1000 / 60 + 2);
        CHECK(f.drain(now + 59s).empty());
        CHECK(f.drain(now + 60s) == std::vector<std::uint32_t>{7});
    }
    SUBCASE("the callback may re-arm the entry it is given") {
        f.wheel.arm(9, 0s, 1s);
        int fired = 0;
        f.wheel.poll(1s, 10, [&](std::uint32_t h) {
            ++fired;
            f.wheel.arm(h, 1s, 60s);
        });
        CHECK(fired == 1);
        CHECK(f.wheel.armed(9));
        CHECK(f.wheel.deadline(9) >= 61s);
        CHECK(f.drain(61s + f.wheel.tick()) == std::vector<std::uint32_t>{9});
    }
}

TEST_CASE("timer_wheel: cancel") {
    fixture f(16);
    for (std::uint32_t h = 0; h < 6; ++h) f.wheel.arm(h, 0s, std::chrono::seconds(h + 1));
    f.wheel.cancel(2);
    f.wheel.cancel(2);  // twice: no-op
    f.wheel.cancel(11); // never armed: no-op
    CHECK_FALSE(f.wheel.armed(2));
    CHECK(f.wheel.size() == 5);
    // A callback cancelling an entry that is due in the same poll.
    std::vector<std::uint32_t> got;
    for (;;) {
        auto r = f.wheel.poll(10s, 100, [&](std::uint32_t h) {
            got.push_back(h);
            if (h == 3) f.wheel.cancel(4);
        });
        if (r.caught_up) break;
    }
    CHECK(got == std::vector<std::uint32_t>{0, 1, 3, 5});
    CHECK(f.wheel.size() == 0);
}

TEST_CASE("timer_wheel: the clock jumping forward by hours expires exactly the overdue entries") {
    constexpr std::uint32_t n = 20000;
    fixture f(n);
    std::mt19937_64 rng(11);
    std::vector<time_ns> dl(n);
    for (std::uint32_t h = 0; h < n; ++h) {
        time_ns t;
        switch (h % 4) {
        case 0:
            t = std::chrono::seconds(1 + rng() % 900);
            break; // TCP-like
        case 1:
            t = std::chrono::seconds(300 + rng() % 3600);
            break; // persistence
        case 2:
            t = 5h + std::chrono::seconds(rng() % 3600);
            break; // survives the first jump
        default:
            t = 48h + std::chrono::seconds(rng() % 3600);
            break; // survives the second
        }
        f.wheel.arm(h, 0s, t);
        dl[h] = t;
    }
    auto run = [&](time_ns now, std::size_t limit) {
        std::vector<std::uint32_t> got;
        std::size_t polls = 0;
        for (;;) {
            auto r = f.wheel.poll(now, limit, [&](std::uint32_t h) { got.push_back(h); });
            ++polls;
            CHECK(r.expired <= limit);
            CHECK(r.examined <= limit * 5); // refile_factor 4
            if (r.caught_up) break;
            REQUIRE(polls < 100000);
        }
        return got;
    };
    auto expect = [&](time_ns lo, time_ns hi) {
        std::vector<std::uint32_t> v;
        for (std::uint32_t h = 0; h < n; ++h)
            if (dl[h] > lo && dl[h] <= hi) v.push_back(h);
        return v;
    };
    auto got = run(3h, 100);
    std::sort(got.begin(), got.end());
    CHECK(got == expect(-1s, 3h));
    got = run(3h + 1h, 100); // nothing between 3 h and 4 h except the persistence tail
    std::sort(got.begin(), got.end());
    CHECK(got == expect(3h, 4h));
    got = run(30h, 1000);
    std::sort(got.begin(), got.end());
    CHECK(got == expect(4h, 30h));
    got = run(72h, 7);
    std::sort(got.begin(), got.end());
    CHECK(got == expect(30h, 72h));
    CHECK(f.wheel.size() == 0);
}

TEST_CASE("timer_wheel: a clock going backwards freezes expiry instead of crashing") {
    fixture f(8);
    f.wheel.arm(0, 100s, 10s); // due at 110 s
    CHECK(f.drain(50s).empty());
    f.wheel.arm(1, 40s, 10s); // armed "at 40 s" but the wheel has seen 100 s: due at 110 s too
    CHECK(f.wheel.deadline(1) >= 110s);
    CHECK(f.drain(109s).empty());
    CHECK(f.drain(110s) == std::vector<std::uint32_t>{0, 1});
}

TEST_CASE("timer_wheel: a poll does at most the work it is allowed and resumes where it stopped") {
    fixture f(5000);
    for (std::uint32_t h = 0; h < 5000; ++h) f.wheel.arm(h, 0s, 10s); // all in one slot
    std::vector<std::uint32_t> got;
    std::size_t polls = 0;
    for (;;) {
        auto r = f.wheel.poll(10s, 64, [&](std::uint32_t h) { got.push_back(h); });
        ++polls;
        CHECK(r.expired <= 64);
        CHECK(r.examined <= 64 * 5);
        if (r.caught_up) break;
    }
    CHECK(got.size() == 5000);
    CHECK(polls == 5000 / 64 + 1);
    for (std::uint32_t h = 0; h < 5000; ++h) CHECK(got[h] == h);
    // Lazily re-armed entries cost re-files, also bounded.
    for (std::uint32_t h = 0; h < 5000; ++h) f.wheel.arm(h, 10s, 10s);
    for (std::uint32_t h = 0; h < 5000; ++h) f.wheel.arm(h, 15s, 60s); // lazy: stays in the 20 s slot
    auto r = f.wheel.poll(20s, 10, [&](std::uint32_t) { FAIL("not due"); });
    CHECK(r.expired == 0);
    CHECK(r.examined == 50); // 10 × (1 + refile_factor)
    CHECK_FALSE(r.caught_up);
}

TEST_CASE("timer_wheel: random operations agree with a reference model") {
    constexpr std::uint32_t n = 512;
    ipvs::timer_wheel_config cfg;
    cfg.slot_bits = 8; // a small wheel: rotations and sweeps happen often
    fixture f(n, cfg);
    const time_ns tick = f.wheel.tick();
    std::map<std::uint32_t, time_ns> model; // armed handle → exact deadline (base + timeout)
    std::mt19937_64 rng(2024);
    time_ns now = 0s, high = 0s;
    std::size_t expirations = 0, checks = 0;
    for (int op = 0; op < 200000; ++op) {
        const auto k = rng() % 100;
        const auto h = static_cast<std::uint32_t>(rng() % n);
        if (k < 45) {
            time_ns to = std::chrono::milliseconds(rng() % 5000);
            if (k < 2) to = 0s;
            if (k == 3) to = std::chrono::hours(1 + rng() % 3);
            f.wheel.arm(h, now, to);
            const time_ns base = std::max(now, high);
            high = base;
            model[h] = base + to;
        } else if (k < 55) {
            f.wheel.cancel(h);
            model.erase(h);
        } else {
            // Time moves: mostly forward a little, sometimes a big jump, sometimes backwards.
            const auto j = rng() % 100;
            if (j < 80)
                now += std::chrono::milliseconds(rng() % 40);
            else if (j < 95)
                now -= std::chrono::milliseconds(rng() % 2000);
            else
                now += std::chrono::minutes(rng() % 180);
            if (now < 0s) now = 0s;
            high = std::max(high, now);
            const std::size_t limit = (rng() % 4 == 0) ? 3 : 1000000;
            auto r = f.wheel.poll(now, limit, [&](std::uint32_t e) {
                auto it = model.find(e);
                REQUIRE(it != model.end());
                CHECK(it->second <= high); // never early
                model.erase(it);
                ++expirations;
            });
            if (r.caught_up) {
                for (auto& [e, d] : model) {
                    CHECK(d + tick > high); // nothing overdue by a whole tick is left
                    ++checks;
                }
            }
        }
        REQUIRE(f.wheel.size() == model.size());
    }
    for (auto& [e, d] : model) CHECK(f.wheel.armed(e));
    MESSAGE("expirations checked: " << expirations << ", survivors checked: " << checks);
    CHECK(expirations > 10000);
}
