// SPDX-License-Identifier: MIT
// Replays the recorded kernel decisions of sched.jsonl through service<any_scheduler> (and the
// reference lblc / lblcr), step by step, with the counters brought to what the kernel had.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ipvs/sched/any.hpp>
#include <ipvs/sched/lblc.hpp>
#include <ipvs/sched/lblcr.hpp>
#include <ipvs/service.hpp>

#include "support/oracle.hpp"

using namespace ipvs;
using ipvs::test::json;

namespace {

endpoint ep_of(const std::string& s) {
    auto e = parse_endpoint(s);
    if (!e) FAIL("bad endpoint " << s); // not REQUIRE: this runs ~10^5 times
    return *e;
}

std::uint8_t proto_of(const std::string& p) {
    if (p == "tcp") return 6;
    if (p == "udp") return 17;
    if (p == "sctp") return 132;
    FAIL("unknown protocol " << p);
    return 0;
}

/// "sh-fallback,sh-port" → SCHED1 | SCHED2.
sched::sched_flags flags_of(const std::string& s) {
    sched::sched_flags f;
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
        if (tok == "sh-fallback" || tok == "mh-fallback") {
            f.fallback = true;
        } else if (tok == "sh-port" || tok == "mh-port") {
            f.port = true;
        } else if (!tok.empty()) {
            FAIL("unknown scheduler flag " << tok);
        }
    }
    return f;
}

time_ns seconds(double t) { return std::chrono::duration_cast<time_ns>(std::chrono::duration<double>(t)); }

/// One ipvsadm dest operation as the recorder ran it: "ipvsadm -e ADDR:PORT -w 3" etc. Options the
/// line does not give take ipvsadm's defaults (weight 1, thresholds 0: `-e` without -x/-y clears them).
struct ipvsadm_op {
    char op = 0; // 'a', 'e', 'd'
    dest_config cfg;
};

ipvsadm_op parse_ipvsadm(const std::string& line) {
    std::stringstream ss(line);
    std::vector<std::string> tok;
    for (std::string t; ss >> t;) tok.push_back(t);
    REQUIRE_MESSAGE((tok.size() >= 3 && tok[0] == "ipvsadm" && tok[1].size() == 2),
                    "unparsed event " << line);
    ipvsadm_op r;
    r.op = tok[1][1];
    r.cfg.ep = ep_of(tok[2]);
    for (std::size_t i = 3; i + 1 < tok.size(); i += 2) {
        const auto v = std::stoul(tok[i + 1]);
        if (tok[i] == "-w") {
            r.cfg.weight = static_cast<int>(v);
        } else if (tok[i] == "-x") {
            r.cfg.u_threshold = static_cast<std::uint32_t>(v);
        } else if (tok[i] == "-y") {
            r.cfg.l_threshold = static_cast<std::uint32_t>(v);
        } else {
            FAIL("unknown ipvsadm option in " << line);
        }
    }
    return r;
}

dest_config config_of(const dest& d, int weight) {
    return dest_config{d.ep, weight, d.u_threshold, d.l_threshold, d.fwd, d.tun};
}

/// Brings `d` to the recorded [weight, active, inactive] through the service's own operations, so
/// that OVERLOAD and every scheduler index see a history the kernel could have had: connections that
/// ended are unbound (OVERLOAD's clear rule runs), new ones are bound inactive first (its set rule
/// runs), then established / closed ones move between the counters (which never touches OVERLOAD).
template <class Service>
void reconcile(Service& svc, dest& d, const json& want) {
    const int w = want.at(0).get<int>(), a = want.at(1).get<int>(), i = want.at(2).get<int>();
    if (d.weight != w) svc.edit_dest(config_of(d, w));
    int delta = (a + i) - (d.active_conns + d.inactive_conns);
    for (; delta > 0; --delta) svc.bind(d, conn_counter::inactive);
    for (; delta < 0; ++delta)
        svc.unbind(d, d.active_conns > a ? conn_counter::active : conn_counter::inactive);
    while (d.active_conns < a) svc.move_to_active(d);
    while (d.active_conns > a) svc.move_to_inactive(d);
}

struct recorded_case {
    json head;
    std::vector<json> lines; // steps and events in file order
};

std::vector<recorded_case> group_cases(std::vector<json>&& all) {
    std::vector<recorded_case> out;
    for (auto& j : all) {
        const auto type = j.at("type").get<std::string>();
        if (type == "case") {
            out.push_back({std::move(j), {}});
        } else {
            REQUIRE_MESSAGE(!out.empty(), "a " << type << " line before any case");
            if (j.at("case") != out.back().head.at("case")) FAIL("a line outside its case: " << j.at("case"));
            out.back().lines.push_back(std::move(j));
        }
    }
    return out;
}

/// The cases of `dir`'s sched.jsonl, or nullptr when the set lacks the file. Parsed once per run:
/// both test cases below replay them, and parsing 4 MB of JSON dominates a sanitized build's time.
const std::vector<recorded_case>* sched_cases(const std::filesystem::path& dir) {
    static std::map<std::filesystem::path, std::vector<recorded_case>> cache;
    if (auto it = cache.find(dir); it != cache.end()) return &it->second;
    auto file = ipvs::test::oracle_file(dir, "sched.jsonl");
    if (!file) return nullptr;
    return &cache.emplace(dir, group_cases(ipvs::test::read_jsonl(*file))).first->second;
}

struct tally {
    std::size_t checked = 0;
    std::size_t stale = 0;
    std::size_t mismatched = 0;
};

/// Replays one case on a fresh service over `sched`; adds to `t`.
template <class Sched>
void replay_case(const recorded_case& rc, Sched sched, tally& t) {
    const auto& head = rc.head;
    const auto name = head.at("case").get<std::string>();
    service<Sched> svc(std::move(sched));
    const endpoint vip = ep_of(head.at("vip").get<std::string>());
    const std::uint8_t proto = proto_of(head.at("proto").get<std::string>());
    std::vector<std::unique_ptr<dest>> trash; // the kernel's dest trash, for -d then -a

    for (const auto& jd : head.at("dests_added_in_order")) {
        auto addr = parse_addr(jd.at("addr").get<std::string>());
        REQUIRE(addr.has_value());
        svc.add_dest(dest_config{endpoint{*addr, jd.at("port").get<std::uint16_t>()},
                                 jd.at("weight").get<int>(), jd.at("u_threshold").get<std::uint32_t>(),
                                 jd.at("l_threshold").get<std::uint32_t>()});
    }
    const auto& order = head.at("kernel_list_order");
    REQUIRE(order.size() == svc.num_dests());
    for (std::size_t k = 0; k < order.size(); ++k)
        CHECK_MESSAGE(svc.dests()[k]->ep == ep_of(order[k].get<std::string>()),
                      name << ": list position " << k);

    for (const auto& line : rc.lines) {
        if (line.at("type") == "event") {
            for (const auto& cmd : line.at("event")) {
                auto op = parse_ipvsadm(cmd.get<std::string>());
                if (op.op == 'e') {
                    svc.edit_dest(op.cfg);
                } else if (op.op == 'd') {
                    trash.push_back(svc.del_dest(op.cfg.ep));
                } else if (op.op == 'a') {
                    auto it =
                        std::find_if(trash.begin(), trash.end(), [&](auto& p) { return p->ep == op.cfg.ep; });
                    if (it != trash.end()) {
                        svc.add_dest(std::move(*it), op.cfg);
                        trash.erase(it);
                    } else {
                        svc.add_dest(op.cfg);
                    }
                } else {
                    FAIL(name << ": unknown event " << cmd);
                }
            }
            // The dests and weights the kernel listed after the event.
            REQUIRE_MESSAGE(line.at("now").size() == svc.num_dests(), name << ": dests after event");
            for (const auto& item : line.at("now").items()) { // (clang 14: no bindings in lambdas)
                const std::string& key = item.key();
                const json& counts = item.value();
                const dest* d = svc.find_dest(ep_of(key));
                REQUIRE_MESSAGE(d != nullptr, name << ": " << key << " missing after event");
                CHECK_MESSAGE(d->weight == counts.at(0).template get<int>(), name << ": weight of " << key);
            }
            continue;
        }

        const auto step = line.at("step").get<int>();
        const auto& pre = line.at("pre");
        if (pre.size() != svc.num_dests())
            FAIL(name << " step " << step << ": " << pre.size() << " dests in pre");
        for (const auto& item : pre.items()) {
            const std::string& key = item.key();
            const json& counts = item.value();
            dest* d = svc.find_dest(ep_of(key));
            if (d == nullptr) FAIL(name << " step " << step << ": " << key << " not in the service");
            reconcile(svc, *d, counts);
        }

        sched::sched_input in;
        in.saddr = *parse_addr(line.at("client").get<std::string>());
        in.sport = line.at("cport").get<std::uint16_t>();
        in.daddr = vip.addr;
        in.dport = vip.port;
        in.protocol = proto;
        in.now = seconds(line.at("t").get<double>());

        const auto& rec = line.at("chosen");
        dest* want = rec.is_null() ? nullptr : svc.find_dest(ep_of(rec.get<std::string>()));
        if (!rec.is_null() && want == nullptr) FAIL(name << " step " << step << ": chosen not listed");
        dest* bound = want;
        if (line.value("pre_stale", false)) {
            // The counters read may not be what the kernel saw: take its answer, don't judge it.
            if (want) svc.assume_picked(*want, in);
            ++t.stale;
        } else {
            dest* got = svc.schedule(in);
            ++t.checked;
            if (got != want) {
                ++t.mismatched;
                std::string got_name = got ? "an unlisted dest" : "none";
                for (const auto& item : pre.items())
                    if (got && ep_of(item.key()) == got->ep) got_name = item.key();
                FAIL_CHECK(name << " step " << step << ": kernel chose " << rec << ", got " << got_name);
            }
        }
        // The SYN's connection: bound inactive (spec §1.6), then whatever the kernel's counters
        // show right after (6.1: SYN_RECV counts active).
        if (bound) {
            svc.bind(*bound, conn_counter::inactive);
            reconcile(svc, *bound, line.at("post_chosen"));
        }
    }
}

/// Replays every sched.jsonl of every vector set through the scheduler `make(case_head)` builds;
/// reports checked steps per scheduler name and set, and fails a set that checked none.
template <class Make>
void replay_all(Make make) {
    bool any_set = false;
    for (const auto& dir : ipvs::test::oracle_dirs()) {
        const auto* cases = sched_cases(dir);
        if (!cases) continue;
        any_set = true;
        std::map<std::string, tally> per_sched;
        std::size_t persistent = 0;
        for (const auto& rc : *cases) {
            const auto sched_name = rc.head.at("sched").get<std::string>();
            if (!rc.head.at("persistent").is_null()) {
                ++persistent; // a returning client follows its template: the director's replay
                continue;
            }
            replay_case(rc, make(rc.head), per_sched[sched_name]);
        }
        MESSAGE(dir.filename().string()
                << ": skipped " << persistent << " persistent cases (replayed through the director)");
        std::size_t total = 0;
        for (const auto& entry : per_sched) {
            const std::string& n = entry.first;
            const tally& t = entry.second;
            MESSAGE(dir.filename().string() << ": " << n << " checked " << t.checked << " steps, " << t.stale
                                            << " pre_stale applied, " << t.mismatched << " differ");
            CHECK_MESSAGE(t.checked > 0, n << " checked no step");
            total += t.checked;
        }
        CHECK_MESSAGE(total > 0, dir.string() << ": no step checked");
    }
    if (!any_set) {
        // A set that lacks sched.jsonl was skipped with a message (FORMAT.md); one that holds no
        // vector file at all is a mistake (CLARIFICATIONS: "IPVS_ORACLE_DIR").
        for (const auto& dir : ipvs::test::oracle_dirs()) {
            bool holds_vectors = false;
            if (std::filesystem::is_directory(dir))
                for (const auto& e : std::filesystem::directory_iterator(dir))
                    holds_vectors = holds_vectors || e.path().extension() == ".jsonl";
            CHECK_MESSAGE(holds_vectors, dir.string() << " holds no recorded vectors");
        }
    }
}

} // namespace

TEST_CASE("oracle: sched — every recorded decision of every scheduler through service<any_scheduler>") {
    replay_all([](const json& head) {
        return sched::make_scheduler(head.at("sched").get<std::string>(),
                                     flags_of(head.at("flags").get<std::string>()));
    });
}

TEST_CASE("oracle: sched — the literal reference_lblc and reference_lblcr make the same decisions") {
    // The references are not alternatives of any_scheduler: replay their cases directly.
    for (const auto& dir : ipvs::test::oracle_dirs()) {
        const auto* cases = sched_cases(dir);
        if (!cases) continue;
        tally lblc_t, lblcr_t;
        for (const auto& rc : *cases) {
            if (!rc.head.at("persistent").is_null()) continue;
            const auto n = rc.head.at("sched").get<std::string>();
            if (n == "lblc") replay_case(rc, sched::reference_lblc{}, lblc_t);
            if (n == "lblcr") replay_case(rc, sched::reference_lblcr{}, lblcr_t);
        }
        MESSAGE(dir.filename().string() << ": reference_lblc checked " << lblc_t.checked
                                        << " steps, reference_lblcr " << lblcr_t.checked);
        CHECK(lblc_t.checked > 0);
        CHECK(lblcr_t.checked > 0);
        CHECK(lblc_t.mismatched == 0);
        CHECK(lblcr_t.mismatched == 0);
    }
}
