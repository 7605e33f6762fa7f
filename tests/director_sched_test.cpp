// SPDX-License-Identifier: MIT
// Kernel oracle: the sched.jsonl cases the scheduler test cannot replay alone — persistent services (a
// returning client follows its template) — and those with configuration events, through the whole director.
#include <doctest/doctest.h>

#include <fstream>

#include <ipvs/director.hpp>

#include "support/director_config.hpp"
#include "support/oracle.hpp"

using namespace ipvs;

TEST_CASE("oracle: sched.jsonl persistent and config-event cases through the director") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto f = test::oracle_file(dir, "sched.jsonl");
        if (!f) continue;
        // Only the wanted cases' lines are parsed (the file has 177 cases, 8,570 steps): a first pass
        // over the raw text finds the persistent cases and those with events, by their own lines.
        std::vector<std::string> raw;
        {
            std::ifstream in(*f);
            for (std::string l; std::getline(in, l);)
                if (!l.empty()) raw.push_back(std::move(l));
        }
        auto case_of = [](const std::string& l) {
            const auto at = l.find("\"case\": \"");
            if (at == std::string::npos) return std::string();
            const auto from = at + 9;
            return l.substr(from, l.find('"', from) - from);
        };
        std::set<std::string> wanted; // persistent cases, and cases with weight edits, deletes and adds
        for (const auto& l : raw) {
            if (l.rfind("{\"type\": \"event\"", 0) == 0) wanted.insert(case_of(l));
            if (l.rfind("{\"type\": \"case\"", 0) == 0 && !test::json::parse(l).at("persistent").is_null())
                wanted.insert(case_of(l));
        }
        std::vector<test::json> lines;
        for (const auto& l : raw)
            if (wanted.count(case_of(l))) lines.push_back(test::json::parse(l));
        REQUIRE(!lines.empty());
        std::map<std::string, test::decisions::tally> by_sched;
        test::decisions::replay(lines, nullptr, by_sched);
        CHECK(test::decisions::report(dir, by_sched) > 0);
        ++sets;
    }
    CHECK(sets > 0);
}
