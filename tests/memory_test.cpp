// SPDX-License-Identifier: MIT
// huge_page_allocator: alignment, fallbacks, and (where the kernel allows it) real huge pages.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ipvs/conn_table.hpp>
#include <ipvs/memory.hpp>

using namespace ipvs;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

/// The AnonHugePages (kB) of the mapping that contains `p`, from /proc/self/smaps; -1 if unknown.
long anon_huge_kb(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    while (std::getline(smaps, line)) {
        unsigned long lo = 0, hi = 0;
        char dash = 0;
        std::istringstream head(line);
        if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::stol(line.substr(14));
    }
    return -1;
}

std::string thp_mode() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string s;
    std::getline(f, s);
    return s;
}

} // namespace

TEST_CASE(
    "huge_page_allocator: large requests are 2 MB aligned, small ones and a disabled one are ordinary") {
    huge_page_allocator<std::uint64_t> on, off(false);
    CHECK(on.enabled());
    CHECK_FALSE(off.enabled());
    CHECK(on != off);
    CHECK(on == huge_page_allocator<char>(true)); // rebinding keeps the state

    const std::size_t big = (std::size_t{5} << 20) / sizeof(std::uint64_t) + 3; // 5 MB and a bit
    std::uint64_t* p = on.allocate(big);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % huge_page_allocator<std::uint64_t>::huge_page == 0);
    for (std::size_t i = 0; i < big; ++i) p[i] = i; // every byte of the request is usable
    CHECK(p[big - 1] == big - 1);
    on.deallocate(p, big);

    std::uint64_t* q = on.allocate(16);
    q[15] = 7;
    CHECK(reinterpret_cast<std::uintptr_t>(q) % alignof(std::uint64_t) == 0);
    on.deallocate(q, 16);

    std::uint64_t* r = off.allocate(big);
    r[big - 1] = 1;
    off.deallocate(r, big);
    CHECK_THROWS_AS((void)on.allocate(~std::size_t{0} / 4), std::bad_array_new_length);
}

TEST_CASE("huge_page_allocator: a connection table's arrays get transparent huge pages when THP allows it") {
    using table = conn_table<conn4, flow_hasher, manual_clock, huge_page_allocator<conn4>>;
    table t(conn_table_config{.capacity = 1 << 17}); // ≈ 8 MB of entries
    const conn4* first = &t.at(0);
    const long kb = anon_huge_kb(first);
    const std::string mode = thp_mode();
    MESSAGE("THP mode '" << mode << "', AnonHugePages of the entry array's mapping: " << kb << " kB");
    if (mode.find("[never]") != std::string::npos || kb < 0 || sanitized) {
        MESSAGE(
            "transparent huge pages are off here (or ASan owns the heap): only the allocation is checked");
    } else {
        CHECK(kb >= 2048); // at least one 2 MB page backs the entries
    }
    CHECK(t.slots() >= (1U << 17));
}
