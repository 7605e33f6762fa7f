// SPDX-License-Identifier: MIT
// Kernel oracle: sysctl.jsonl (sloppy_tcp / sloppy_sctp / secure_tcp / expire_nodest_conn / conn_reuse_mode)
// replayed packet by packet through the whole director.
#include <doctest/doctest.h>

#include <map>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>

#include "support/director_config.hpp"
#include "support/oracle.hpp"

using namespace ipvs;

namespace {

struct tally {
    int packets = 0, verdicts = 0, states = 0, timeouts = 0, counters = 0, counters_skipped = 0, events = 0;
};

/// What the recorded director did with a packet, read from `emitted` (FORMAT.md: a frame from the VIP
/// or a director address that is no rewrite of the input is the director's own stack answering).
enum class want_kind { forward, host, drop_or_silent };

want_kind expected(const test::json& line, bool from_client, const endpoint& vip, const endpoint& client) {
    const auto& em = line.at("emitted");
    for (const auto& f : em) {
        const std::string ifc = f.at("if");
        const auto src = parse_addr(f.at("src").get<std::string>());
        if (from_client && ifc == "sx") return want_kind::forward; // IPVS sent it on to a real server
        // A reply towards the client from the VIP is our SNAT only for a server-side packet; from the real
        // server itself it went out unchanged (not IPVS's: the host routed it).
        if (!from_client && ifc == "cx" && src && *src == vip.addr && f.at("dport") == client.port)
            return want_kind::forward;
    }
    return em.empty() ? want_kind::drop_or_silent : want_kind::host;
}

const char* kind_name(want_kind k) {
    return k == want_kind::forward ? "forward" : k == want_kind::host ? "host stack" : "drop / silent";
}

void apply_sysctls(director& d, const test::json& sys) {
    for (const auto& item : sys.items()) {
        const std::string k = item.key();
        const int x = item.value().get<int>();
        if (k == "sloppy_tcp")
            d.sysctl().sloppy_tcp = x != 0;
        else if (k == "sloppy_sctp")
            d.sysctl().sloppy_sctp = x != 0;
        else if (k == "secure_tcp")
            d.sysctl().secure_tcp = x;
        else if (k == "expire_nodest_conn")
            d.sysctl().expire_nodest_conn = x != 0;
        else if (k == "conn_reuse_mode")
            d.sysctl().conn_reuse_mode = static_cast<unsigned>(x);
        else
            FAIL("unknown sysctl " << k);
    }
}

using counts = std::map<std::string, std::array<int, 3>>;

counts our_counts(director::svc_entry& s) {
    counts c;
    for (const dest* x : s.svc.dests()) c[to_string(x->ep)] = {x->weight, x->active_conns, x->inactive_conns};
    return c;
}
counts recorded_counts(const test::json& dc) {
    counts c;
    for (const auto& [k, v] : dc.items()) c[k] = {v[0].get<int>(), v[1].get<int>(), v[2].get<int>()};
    return c;
}

void replay(const std::filesystem::path& file, tally& t) {
    std::unique_ptr<director> d;
    director::svc_entry* svc = nullptr;
    time_ns now{};
    endpoint vip{}, client{}, flow_rs{};
    std::uint8_t proto = ipproto::tcp;
    counts prev_rec, prev_ours;
    bool have_prev = false, nodest_pending = false;
    // The kernel's dests outlive a sequence's service (its trash): a sequence starts from the counts the
    // last line of the same service identity recorded.
    std::map<std::string, counts> last_by_service;
    std::string service_id;
    for (const auto& line : test::read_jsonl(file)) {
        const std::string where = line.at("seq").get<std::string>() + " " + line.at("sysctl").dump() + " v" +
                                  std::to_string(line.at("af").get<int>()) + " #" +
                                  std::to_string(line.at("i").get<int>()) + " " +
                                  line.at("pkt").get<std::string>();
        if (line.at("i").get<int>() == 0) { // a new sequence: a fresh service (rr starts anew)
            d = std::make_unique<director>();
            test::configure(*d, line.at("services"));
            REQUIRE(d->services().size() == 1);
            svc = d->services()[0].get();
            apply_sysctls(*d, line.at("sysctl"));
            vip = svc->cfg.vip;
            proto = svc->cfg.protocol;
            client = *parse_endpoint(line.at("client").get<std::string>());
            now = std::chrono::seconds(1);
            flow_rs = {};
            service_id = line.at("services").dump();
            prev_ours = our_counts(*svc);
            have_prev = last_by_service.count(service_id) != 0;
            if (have_prev) prev_rec = last_by_service[service_id];
        }
        const std::string pkt = line.at("pkt");
        const std::string dir = line.at("dir");
        if (dir == "event") {
            REQUIRE_MESSAGE(flow_rs.addr.af == vip.addr.af, where << ": an event before the flow had a dest");
            if (pkt == "DEL") {
                d->del_dest(*svc, flow_rs);
                nodest_pending = d->sysctl().expire_nodest_conn;
            } else if (pkt == "W0") {
                const dest* cur = svc->svc.find_dest(flow_rs);
                REQUIRE(cur);
                d->edit_dest(*svc, dest_config{flow_rs, 0, 0, 0, cur->fwd, cur->tun});
            } else {
                FAIL(where << ": unknown event");
            }
            ++t.events;
        } else {
            const bool from_client = pkt[0] == 'c';
            // A real server answers from where the flow was sent (a deleted dest still answers).
            const endpoint rs = flow_rs.port ? flow_rs : endpoint{};
            auto bytes = from_client ? test::token_packet(proto, pkt, client, vip)
                                     : test::token_packet(proto, pkt, rs, client);
            const verdict v = from_client ? d->in(bytes, now) : d->out(bytes, now);
            const want_kind want = expected(line, from_client, vip, client);
            const bool ok = want == want_kind::forward ? v.act == action::forward
                            : want == want_kind::host  ? v.act == action::accept || v.act == action::reply
                                                       : v.act == action::drop || v.act == action::accept;
            CHECK_MESSAGE(ok, where << ": kernel " << kind_name(want) << ", ours action "
                                    << static_cast<int>(v.act) << " reason " << to_string(v.reason));
            if (want == want_kind::forward && from_client && v.to) {
                // NAT frames go to the dest's address and port; DR keeps the VIP (the MAC tells the dest).
                const auto& f = line.at("emitted")[0];
                const endpoint sent_to{*parse_addr(f.at("dst").get<std::string>()),
                                       f.at("dport").get<std::uint16_t>()};
                if (v.method == fwd_method::masq)
                    CHECK_MESSAGE(sent_to == v.to->ep, where << ": sent to " << to_string(v.to->ep));
                flow_rs = v.to->ep;
            }
            ++t.verdicts;
            ++t.packets;
        }
        const bool just_deleted = nodest_pending && dir == "event";
        nodest_pending = false;
        now += std::chrono::microseconds(static_cast<long>(line.at("dt").get<double>() * 1e6));

        // The flow's connections after the packet: state, time left, dest.
        std::vector<const basic_conn<4>*> c4;
        std::vector<const basic_conn<16>*> c6;
        d->for_each_conn([&](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            if (e.is_template() || to_inet<E::addr_len>(e.caddr) != client.addr || e.cport != client.port)
                return;
            if constexpr (E::addr_len == 4)
                c4.push_back(&e);
            else
                c6.push_back(&e);
        });
        const auto& want_conns = line.at("conns");
        auto check_one = [&](const auto& e, const test::json& w) {
            CHECK_MESSAGE(test::state_name(e) == w.at("state").get<std::string>(), where);
            const auto left = std::chrono::duration_cast<std::chrono::seconds>(d->deadline(e) - now).count();
            const auto rec = w.at("expires").get<long>();
            // Right after a delete with expire_nodest_conn the kernel still lists the connection with its
            // timer (the expiry runs from a work item a jiffy later, spec §1.8); ours is due at once.
            if (just_deleted)
                CHECK_MESSAGE(left <= 0, where << ": due now, expires " << left);
            else
                CHECK_MESSAGE((left >= rec - 1 && left <= rec + 1),
                              where << ": expires " << left << " vs " << rec);
            CHECK_MESSAGE((e.dest && to_string(e.dest->ep) == w.at("dest").get<std::string>()), where);
            ++t.states;
            ++t.timeouts;
        };
        const std::size_t have = c4.size() + c6.size();
        CHECK_MESSAGE(have == want_conns.size(),
                      where << ": " << have << " connections, kernel " << want_conns.size());
        if (have == want_conns.size() && have == 1) {
            if (!c4.empty())
                check_one(*c4[0], want_conns[0]);
            else
                check_one(*c6[0], want_conns[0]);
        }

        // Dest counters: the listed dests and weights exactly; the [active, inactive] change since the
        // previous line equals ours, unless the kernel's totals fell further (an older connection of an
        // earlier sequence expired meanwhile: FORMAT.md, tcpstate).
        const counts rec = recorded_counts(line.at("dest_counts"));
        const counts ours = our_counts(*svc);
        REQUIRE_MESSAGE(rec.size() == ours.size(), where << ": dest list differs");
        for (const auto& entry : rec) {
            const std::string& ep = entry.first; // no structured binding: doctest's lambdas capture it
            const auto& r = entry.second;
            REQUIRE_MESSAGE(ours.count(ep), where << ": no dest " << ep);
            const auto& o = ours.at(ep);
            CHECK_MESSAGE(o[0] == r[0], where << ": weight of " << ep);
            if (!have_prev || !prev_rec.count(ep) || !prev_ours.count(ep)) continue;
            bool explained = true, skip = false;
            for (int k = 1; k < 3; ++k) {
                const int dr = r[k] - prev_rec.at(ep)[k], dk = o[k] - prev_ours.at(ep)[k];
                if (dr < dk) skip = true; // an older connection expired meanwhile
                if (dr > dk) explained = false;
            }
            CHECK_MESSAGE(explained, where << ": counters of " << ep << " moved unlike ours");
            if (explained) ++(skip ? t.counters_skipped : t.counters);
        }
        prev_rec = rec;
        prev_ours = ours;
        have_prev = true;
        last_by_service[service_id] = rec;
    }
}

} // namespace

TEST_CASE("oracle: sysctl variants through the director") {
    int sets = 0;
    for (const auto& dir : test::oracle_dirs()) {
        auto f = test::oracle_file(dir, "sysctl.jsonl");
        if (!f) continue;
        tally t;
        replay(*f, t);
        MESSAGE(dir.filename().string()
                << " sysctl.jsonl: " << t.packets << " packets, " << t.verdicts << " verdicts, " << t.states
                << " states and timeouts, " << t.counters << " counter changes checked ("
                << t.counters_skipped << " skipped: older connections expired), " << t.events << " events");
        CHECK(t.verdicts > 0);
        CHECK(t.states > 0);
        ++sets;
    }
    CHECK(sets > 0);
}
