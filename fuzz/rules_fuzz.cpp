// SPDX-License-Identifier: MIT
// libFuzzer target: the demo's ipvsadm-save reader (examples/common/rules.hpp), with its --mark rules, on
// arbitrary text.
//
// Properties: parse_rules never throws or crashes; a refusal names a line of the input (1 … the line
// count) and says what is wrong; an accepted file prints (to_text) as text that parses again to the
// same rules (to_text is a fixed point after one round), with every service, dest and mark rule kept;
// match_mark answers for every mark rule's own prefix.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../examples/common/rules.hpp"

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}

std::size_t dest_count(const ipvs::examples::rule_set& rs) {
    std::size_t n = 0;
    for (const auto& s : rs.services) n += s.dests.size();
    return n;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto r = ipvs::examples::parse_rules(text);
    if (!r.ok()) {
        // parse_rules counts lines as the text's '\n'-separated pieces (a last one without '\n' too).
        std::size_t lines = 1;
        for (char c : text) lines += c == '\n';
        require(r.error->line >= 1 && r.error->line <= lines);
        require(!r.error->message.empty());
        require(r.error->what().rfind("line " + std::to_string(r.error->line) + ": ", 0) == 0);
        require(r.rules.services.empty() && r.rules.marks.empty());
        return 0;
    }
    const std::string printed = ipvs::examples::to_text(r.rules);
    const auto again = ipvs::examples::parse_rules(printed);
    require(again.ok());
    require(again.rules.services.size() == r.rules.services.size());
    require(again.rules.marks.size() == r.rules.marks.size());
    require(dest_count(again.rules) == dest_count(r.rules));
    require(ipvs::examples::to_text(again.rules) == printed);
    for (const auto& m : r.rules.marks)
        require(ipvs::examples::match_mark(r.rules.marks, m.prefix, m.protocol ? m.protocol : 6,
                                           m.port ? m.port : 1) != 0);
    return 0;
}
