// SPDX-License-Identifier: MIT
// libFuzzer target: the sync message decoder on arbitrary bytes, and encode → decode round trips of what it
// accepts.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include <ipvs/sync.hpp>

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
    return 0;
}
