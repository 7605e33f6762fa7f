// SPDX-License-Identifier: MIT
// libFuzzer target: the sync message decoder on arbitrary bytes, encode → decode round trips of what it
// accepts, and a backup director applying the message (its counters must match its table).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>

#include <ipvs/director.hpp>
#include <ipvs/sync.hpp>
#include <ipvs/sync_agent.hpp>

namespace {

bool inside(std::span<const std::byte> msg, std::span<const std::byte> v) {
    if (v.empty()) return true;
    return v.data() >= msg.data() && v.data() + v.size() <= msg.data() + msg.size();
}

// What the writer makes of a decoded record: HASHED masked, SEQ_DATA iff the flags say so, a PE
// name only together with PE data.
ipvs::sync_record as_written(ipvs::sync_record r, std::uint8_t version) {
    r.flags &= ~ipvs::sync_flag::hashed;
    if (version == 0) r.flags &= 0xffff;
    r.has_seq = (r.flags & ipvs::sync_flag::seq_mask) != 0;
    if (!r.has_seq) r.in_seq = r.out_seq = {};
    if (r.pe_data.empty()) r.pe_name = {};
    return r;
}

// Encodes `r` alone and decodes it again: the same record with the same status (a record skipped for
// an unknown mandatory option loses that option, so it may come back with any non-drop status).
void round_trip(const ipvs::sync_record& r, ipvs::sync_record_status st, std::uint8_t version) {
    static std::array<std::byte, 1472> buf;
    ipvs::sync_writer w(buf, 9, version);
    if (w.add(r) != ipvs::sync_encode_status::ok) std::abort(); // any decoded record fits 1472 bytes
    const auto msg = w.finish();
    ipvs::sync_reader rd(msg, 9);
    if (rd.status() != ipvs::sync_message_status::ok || rd.header().version != version) std::abort();
    ipvs::sync_record back;
    const auto st2 = rd.next(back);
    if (st == ipvs::sync_record_status::skip_unknown_mandatory_option ? ipvs::drops_rest(st2) : st2 != st)
        std::abort();
    if (!(back == as_written(r, version))) std::abort();
    if (rd.next(back) != ipvs::sync_record_status::end) std::abort();
}

// A small backup director (tables of 64 entries, so that "full" is reached) with the services of the
// recorded backup: TCP / UDP / SCTP on 10.0.0.100:180..182 and [fd00::100]:180, a persistent one on 183.
struct backup {
    ipvs::director dir{ipvs::director_config{.capacity_v4 = 64, .capacity_v6 = 64}};
    std::optional<ipvs::sync_agent> agent;
    ipvs::time_ns now{std::chrono::seconds{1}};

    backup() {
        const auto add = [&](std::uint8_t proto, const char* vip, const char* rs, bool persistent) {
            ipvs::service_config c;
            c.vip = *ipvs::parse_endpoint(vip);
            c.af = c.vip.addr.af;
            c.protocol = proto;
            c.scheduler = "rr";
            c.persistent = persistent;
            auto& s = dir.add_service(c);
            ipvs::dest_config d;
            d.ep = *ipvs::parse_endpoint(rs);
            d.weight = 1;
            dir.add_dest(s, d);
        };
        add(6, "10.0.0.100:180", "10.0.2.18:7180", false);
        add(17, "10.0.0.100:181", "10.0.2.18:7181", false);
        add(132, "10.0.0.100:182", "10.0.2.18:7182", false);
        add(6, "10.0.0.100:183", "10.0.2.18:7183", true);
        add(6, "[fd00::100]:180", "[fd00:2::12]:7180", false);
        agent.emplace(dir, ipvs::sync_agent::config{.backup = true, .backup_syncid = 7});
    }

    // Every local dest's counters equal the entries bound to it (spec §1.6), and no table overflows.
    void check() {
        for (const auto& s : dir.services())
            for (const ipvs::dest* d : s->svc.dests()) {
                int active = 0, inactive = 0, persist = 0;
                dir.for_each_conn([&](const auto& e) {
                    if (e.dest != d) return;
                    if (e.is_template())
                        ++persist;
                    else
                        ++(e.is_inactive() ? inactive : active);
                });
                if (active != d->active_conns || inactive != d->inactive_conns || persist != d->persist_conns)
                    std::abort();
            }
        if (dir.table_v4().size() > 64 || dir.table_v6().size() > 64) std::abort();
    }
};

// A fresh backup per input (reproducible crashes); the message is applied twice, so that the second
// pass runs the update paths (INACTIVE moves, replaced real servers) over what the first created.
void apply_to_backup(std::span<const std::byte> msg) {
    backup b;
    for (int pass = 0; pass < 2; ++pass) {
        b.now += std::chrono::milliseconds{700};
        const auto r = b.agent->apply(msg, b.now);
        if (r.message != ipvs::sync_message_status::ok && (r.created || r.updated || r.skipped)) std::abort();
        (void)b.agent->expire(b.now);
        b.check();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto msg = std::as_bytes(std::span(data, size));
    // As a backup that takes every syncid, and as one with the message's own syncid or another.
    for (const std::uint8_t syncid :
         {std::uint8_t{0}, size > 1 ? data[1] : std::uint8_t{7}, std::uint8_t{7}}) {
        ipvs::sync_reader rd(msg, syncid);
        ipvs::sync_record r;
        unsigned n = 0;
        for (auto st = rd.next(r); st != ipvs::sync_record_status::end; st = rd.next(r)) {
            if (++n > 256) std::abort(); // nr_conns is one byte: the walk is bounded
            if (ipvs::drops_rest(st)) {
                if (rd.next(r) != ipvs::sync_record_status::end) std::abort();
                break;
            }
            if (!inside(msg, r.pe_data) || !inside(msg, r.pe_name)) std::abort();
            if (r.pe_name.size() > ipvs::sync_wire::pe_name_maxlen) std::abort();
            if (rd.header().version == 0 && r.af != ipvs::family::v4) std::abort();
            round_trip(r, st, rd.header().version);
        }
        if (rd.status() != ipvs::sync_message_status::ok && n != 0) std::abort();
    }
    apply_to_backup(msg);
    return 0;
}
