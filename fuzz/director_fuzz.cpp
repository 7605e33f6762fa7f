// SPDX-License-Identifier: MIT
// libFuzzer target: the director fed a sequence of packets from both sides, with time steps and dest edits.
//
// Input: a stream of records `op(1) len(2) bytes(len)`: op bit 0 = side (client / real server), bit 1 =
// advance the clock 1 s and poll, bit 2 = toggle a dest's weight between 0 and 1, bit 3 = delete and
// re-add a dest. Invariants after every step: no dest counter negative, the counters equal the
// connections and templates bound to each dest, the table never above capacity.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <vector>

#include <ipvs/director.hpp>

namespace {
struct world {
    ipvs::director d{ipvs::director_config{.capacity_v4 = 256, .capacity_v6 = 256}};
    std::vector<ipvs::director::svc_entry*> svcs;
    world() {
        const char* vips[] = {"10.0.0.100:80", "[fd00::100]:80"};
        const char* rss[2][2] = {{"10.0.2.11:8080", "10.0.2.12:8080"},
                                 {"[fd00:2::b]:8080", "[fd00:2::c]:8080"}};
        for (int i = 0; i < 2; ++i)
            for (std::uint8_t proto : {ipvs::ipproto::tcp, ipvs::ipproto::udp, ipvs::ipproto::sctp}) {
                ipvs::service_config c;
                c.vip = *ipvs::parse_endpoint(vips[i]);
                c.af = c.vip.addr.af;
                c.protocol = proto;
                c.scheduler = proto == ipvs::ipproto::tcp ? "wlc" : "rr";
                c.persistent = proto == ipvs::ipproto::udp;
                auto& s = d.add_service(c);
                for (auto* rs : rss[i]) d.add_dest(s, ipvs::dest_config{*ipvs::parse_endpoint(rs), 1});
                svcs.push_back(&s);
            }
    }
};

void check(ipvs::director& d) {
    std::map<const ipvs::dest*, std::array<int, 3>> bound;
    d.for_each_conn([&](const auto& e) {
        if (!e.dest) return;
        auto& b = bound[e.dest];
        if (e.is_template())
            ++b[2];
        else if (e.is_inactive())
            ++b[1];
        else
            ++b[0];
    });
    for (const auto& s : d.services())
        for (const ipvs::dest* x : s->svc.dests()) {
            if (x->active_conns < 0 || x->inactive_conns < 0 || x->persist_conns < 0) std::abort();
            const auto b = bound[x];
            if (b[0] != x->active_conns || b[1] != x->inactive_conns || b[2] != x->persist_conns)
                std::abort();
        }
    if (d.table_v4().size() > d.table_v4().capacity() || d.table_v6().size() > d.table_v6().capacity())
        std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    world w;
    ipvs::time_ns now{std::chrono::seconds(1)};
    std::vector<std::uint8_t> pkt;
    std::size_t i = 0;
    while (i + 3 <= size) {
        const std::uint8_t op = data[i];
        std::size_t len = (std::size_t{data[i + 1]} << 8 | data[i + 2]) % 1600;
        i += 3;
        if (len > size - i) len = size - i;
        pkt.assign(data + i, data + i + len);
        i += len;
        if (op & 2) {
            now += std::chrono::seconds(1 + (op >> 4) * 30);
            (void)w.d.poll(now, 1 << 16);
        }
        auto& s = *w.svcs[(op >> 4) % w.svcs.size()];
        if ((op & 4) && s.svc.num_dests() != 0) {
            ipvs::dest* x = s.svc.dests()[0];
            w.d.edit_dest(s, ipvs::dest_config{x->ep, x->weight ? 0 : 1});
        }
        if ((op & 8) && s.svc.num_dests() != 0) {
            const auto ep = s.svc.dests()[0]->ep;
            w.d.del_dest(s, ep);
            w.d.add_dest(s, ipvs::dest_config{ep, 1});
        }
        const auto v = (op & 1) ? w.d.out(pkt, now) : w.d.in(pkt, now);
        if (v.act == ipvs::action::reply && v.reply.empty()) std::abort();
        check(w.d);
    }
    return 0;
}
