// SPDX-License-Identifier: MIT
// Kernel oracle: scheduling decisions (schedl4.jsonl, fwmark.jsonl, persist.jsonl) through the whole
// director.
#include <doctest/doctest.h>

#include <ipvs/director.hpp>

#include "support/director_config.hpp"
#include "support/oracle.hpp"

using namespace ipvs;

TEST_CASE("oracle: director decisions (schedl4, fwmark, persist) through in(), config events applied") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        std::map<std::string, test::decisions::tally> by_sched;
        int files = 0;
        for (const char* name : {"schedl4.jsonl", "fwmark.jsonl", "persist.jsonl"})
            if (auto f = test::oracle_file(dir, name))
                test::decisions::replay(test::read_jsonl(*f), nullptr, by_sched), ++files;
        if (!files) continue;
        CHECK(test::decisions::report(dir, by_sched) > 0);
        ++sets;
    }
    CHECK(sets > 0);
}
