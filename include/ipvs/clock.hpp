// SPDX-License-Identifier: MIT
// Time as the library sees it: nanoseconds on the caller's monotonic clock, injected, never read inside.
#pragma once

#include <chrono>
#include <cstdint>

namespace ipvs {

/// A point in time: nanoseconds since an arbitrary epoch of the caller's monotonic clock. Everything
/// time-driven (timeouts, lblc expiry, sync refresh) takes `now` as an argument or reads it from a
/// `Clock` policy, so tests replay recorded traces with a manual clock and datapaths pass the
/// timestamp they already have (TSC, rte_rdtsc, the pcap record's time).
using time_ns = std::chrono::nanoseconds;

/// A clock policy: `now()` returns `time_ns`. `steady_clock` reads std::chrono::steady_clock.
struct steady_clock {
    [[nodiscard]] time_ns now() const noexcept {
        return std::chrono::duration_cast<time_ns>(std::chrono::steady_clock::now().time_since_epoch());
    }
};

/// A clock the caller moves by hand: tests and offline replays (pcap record times).
struct manual_clock {
    time_ns t{0};
    [[nodiscard]] time_ns now() const noexcept { return t; }
    void set(time_ns v) noexcept { t = v; }
    void advance(time_ns d) noexcept { t += d; }
};

} // namespace ipvs
