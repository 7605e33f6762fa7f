// SPDX-License-Identifier: MIT
// Test support: where the recorded kernel vectors are, reading JSON lines, hex frames.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace ipvs::test {

using json = nlohmann::json;

/// The vector sets to replay: `IPVS_ORACLE_DIR` when set (one set), else every
/// tests/data/kernel-*/ directory (CLARIFICATIONS: "Replaying the recorded vectors").
inline std::vector<std::filesystem::path> oracle_dirs() {
    std::vector<std::filesystem::path> dirs;
    if (const char* env = std::getenv("IPVS_ORACLE_DIR"); env && *env) {
        dirs.emplace_back(env);
        return dirs;
    }
    for (const auto& e : std::filesystem::directory_iterator(IPVS_TEST_DATA_DIR)) {
        if (e.is_directory() && e.path().filename().string().rfind("kernel-", 0) == 0)
            dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

/// The file `name` in vector set `dir`, or nullopt with a message when the set lacks it.
inline std::optional<std::filesystem::path> oracle_file(const std::filesystem::path& dir,
                                                        const std::string& name) {
    auto p = dir / name;
    if (!std::filesystem::exists(p)) {
        MESSAGE("skipping " << name << ": not in " << dir.string());
        return std::nullopt;
    }
    return p;
}

/// Reads a JSON-lines file into memory (the files are at most a few MiB).
inline std::vector<json> read_jsonl(const std::filesystem::path& p) {
    std::vector<json> out;
    std::ifstream in(p);
    REQUIRE_MESSAGE(in.good(), "cannot open " << p.string());
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) out.push_back(json::parse(line));
    }
    return out;
}

/// Decodes a hex string ("4500003c…") into bytes.
inline std::vector<std::uint8_t> from_hex(const std::string& s) {
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::vector<std::uint8_t> out;
    out.reserve(s.size() / 2);
    bool good = s.size() % 2 == 0;
    for (std::size_t i = 0; i + 1 < s.size(); i += 2) {
        const int hi = nib(s[i]), lo = nib(s[i + 1]);
        good = good && hi >= 0 && lo >= 0;
        out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
    }
    REQUIRE_MESSAGE(good, "malformed hex string of length " << s.size());
    return out;
}

inline std::string to_hex(const std::uint8_t* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

} // namespace ipvs::test
