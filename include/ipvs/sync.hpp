// SPDX-License-Identifier: MIT
// LVS connection synchronisation: the v0/v1 wire codec, the master's send decision and message batching.
#pragma once

// Design
// ------
// This header is the protocol alone; sync_agent.hpp drives it from a director (master and backup) and
// examples/common/sync_transport.hpp carries it over UDP multicast.
//
// Source: spec §8 (8.1 transport and flush rules, 8.2 message format and receiver rules, 8.3 the
// master's decision), §3.1 (connection flags), §3.4 (`sync_endtime = now & ~3` at creation), §4.1 /
// §5.1 / §5.4 (state counts). Checked against the recorded Linux 6.1 master and backup
// (tests/data/kernel-6.1/sync.jsonl, tests/sync_codec_test.cpp).
//
// Version 1 message (all fields big-endian):
//
//   0        1        2        3        4        5        6        7
//   +--------+--------+--------+--------+--------+--------+--------+--------+
//   |reserved| syncid |      size       |nr_conns|version |      spare      |   header, 8 bytes
//   +--------+--------+--------+--------+--------+--------+--------+--------+
//   |  type  |protocol|    ver_size     |              flags                |   record: IPv4 36 B,
//   |      state      |      cport      |      vport      |      dport      |   IPv6 72 B, then
//   |              fwmark               |           timeout (s)             |   options {type, len,
//   |  caddr (4|16)  ...  vaddr (4|16)  ...  daddr (4|16)                   |   data}, then zero
//   +-------------------------------------------------------------------------+   padding up to the
//   ver_size = version << 12 | length incl. options, excl. padding                next record (4-aligned)
//
// Version 0 (IPv4 only): header {nr_conns, syncid, size be16}; record 24 bytes {reserved, protocol,
// cport, vport, dport, caddr, vaddr, daddr, flags be16, state be16} + 24 bytes of sequence data when
// the flags carry IN_SEQ / OUT_SEQ. Byte 1 (syncid) and bytes 2..3 (size) are shared by both headers,
// which is how a receiver checks them before it knows the version.
//
// Invariants:
// - The decoder (`sync_reader`) never reads outside the message it was given and never allocates:
//   every field read is preceded by a length check against the message end (fuzzed:
//   fuzz/sync_fuzz.cpp). PE data / name are returned as views into the message.
// - Each rejection has its own status. Message level: `sync_message_status`. Record level:
//   `sync_record_status`, split by `is_skip()` (this record is ignored, the next is read) and
//   `drops_rest()` (the kernel stops reading the message here) exactly as §8.2 lists them.
// - The writer lays records out as a Linux master does: HASHED masked from the flags, SEQ_DATA iff the
//   flags say IN_SEQ/OUT_SEQ, PE_DATA then PE_NAME, padding *before* the next record (so the message
//   size excludes padding after the last record).
// - The decision (`sync_decide`) is a pure function of a connection's sync fields, the sysctls, the
//   packet count and `now`; `sync_buffer` is driven by the caller's clock only: no threads, no timers.
//
// Deviations (deliberate, all documented at the API):
// - Time is `time_ns`; the kernel's jiffies with their low 2 bits reused as a retry counter become
//   the low 2 bits of the nanosecond count (a 3 ns loss of resolution instead of 4 jiffies).
// - `sync_buffer` sends a message exactly 2 s after its first record; the kernel's master thread
//   looks only once a second, so Linux sends it 2–3 s after first use.
// - The writer never puts more than 255 records in one message (nr_conns is one byte).
// - v0 template records are checked with the v1 template rule (state ≥ 2 → skipped); the spec does
//   not say what a v0 backup does with them and no recording has one.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include <ipvs/addr.hpp>
#include <ipvs/bytes.hpp>
#include <ipvs/clock.hpp>
#include <ipvs/config.hpp>
#include <ipvs/headers.hpp>

namespace ipvs {

/// Connection flags as the sync protocol carries them (IP_VS_CONN_F_*, spec §3.1). Same values as
/// `conn_flag` in conn.hpp; repeated here so that the codec stands alone.
namespace sync_flag {
inline constexpr std::uint32_t fwd_mask = 0x0007;
inline constexpr std::uint32_t fwd_masq = 0, fwd_localnode = 1, fwd_tunnel = 2, fwd_droute = 3,
                               fwd_bypass = 4;
inline constexpr std::uint32_t sync = 0x0020;   ///< set by the backup on every connection it creates
inline constexpr std::uint32_t hashed = 0x0040; ///< never sent
inline constexpr std::uint32_t nooutput = 0x0080;
inline constexpr std::uint32_t inactive = 0x0100;
inline constexpr std::uint32_t out_seq = 0x0200;
inline constexpr std::uint32_t in_seq = 0x0400;
inline constexpr std::uint32_t seq_mask = 0x0600;
inline constexpr std::uint32_t no_cport = 0x0800;
inline constexpr std::uint32_t template_ = 0x1000;
inline constexpr std::uint32_t one_packet = 0x2000;
inline constexpr std::uint32_t nfct = 1U << 16;
/// What a backup keeps of a record's flags (it then adds `sync`).
inline constexpr std::uint32_t backup_mask = fwd_mask | nooutput | inactive | seq_mask | no_cport | template_;
/// What a backup updates on a connection it already has.
inline constexpr std::uint32_t backup_upd_mask = inactive | seq_mask;
} // namespace sync_flag

/// The flags a backup gives a connection made from a record with wire flags `wire` (spec §8.2).
[[nodiscard]] constexpr std::uint32_t sync_backup_flags(std::uint32_t wire) noexcept {
    return (wire & sync_flag::backup_mask) | sync_flag::sync;
}

/// Persistence template states (IP_VS_CTPL_S_*): what a record with the TEMPLATE flag carries.
namespace sync_template_state {
inline constexpr std::uint16_t none = 0;
inline constexpr std::uint16_t assured = 1;
inline constexpr std::uint16_t count = 2;
} // namespace sync_template_state

/// Sizes, option numbers and defaults of the wire format (spec §8.1, §8.2).
namespace sync_wire {
inline constexpr std::size_t header_v1_len = 8;
inline constexpr std::size_t header_v0_len = 4;
inline constexpr std::size_t record_v4_len = 36;
inline constexpr std::size_t record_v6_len = 72;
inline constexpr std::size_t record_v0_len = 24;
inline constexpr std::size_t seq_data_len = 24;  ///< in_seq and out_seq, 3 × u32 each
inline constexpr std::uint8_t proto_version = 1; ///< header byte 5 of a v1 message
inline constexpr std::uint8_t type_inet6 = 0x01; ///< record type bit 0; any other bit alone is bad
inline constexpr unsigned ver_shift = 12;        ///< ver_size: version in the top 4 bits
inline constexpr std::uint16_t size_mask = 0x0fff;
inline constexpr std::uint8_t opt_seq_data = 1;
inline constexpr std::uint8_t opt_pe_data = 2;
inline constexpr std::uint8_t opt_pe_name = 3;
/// Option type bit 1 << (7 − 1): "optional parameter", an unknown one is skipped, not fatal.
inline constexpr std::uint8_t opt_optional = 0x40;
inline constexpr std::size_t pe_data_maxlen = 255; ///< IP_VS_PEDATA_MAXLEN (one length byte anyway)
inline constexpr std::size_t pe_name_maxlen = 16;  ///< IP_VS_PENAME_MAXLEN
/// Message size limit of an IPv4 master on a 1500-byte MTU: 1500 − 20 (IPv4) − 8 (UDP).
inline constexpr std::size_t default_maxlen_v4 = 1472;
/// The same over IPv6: 1500 − 40 − 8.
inline constexpr std::size_t default_maxlen_v6 = 1452;
inline constexpr std::size_t max_records = 255; ///< nr_conns is one byte
inline constexpr std::uint16_t default_port = 8848;
/// 224.0.0.81, the default multicast group.
inline constexpr inet_addr default_group = inet_addr::v4(0xe0000051U);
} // namespace sync_wire

/// How many states a non-template record of `protocol` may carry (state must be below it), 0 for a
/// protocol the backup does not know (spec §4.1, §5.1, §5.4; AH/ESP are registered with one state).
[[nodiscard]] constexpr std::uint16_t sync_state_count(std::uint8_t protocol) noexcept {
    switch (protocol) {
    case ipproto::tcp:
        return 11;
    case ipproto::udp:
        return 1;
    case ipproto::sctp:
        return 14;
    case ipproto::ah:
    case ipproto::esp:
        return 1;
    default:
        return 0;
    }
}

// ---------------------------------------------------------------------------------------------------
// Records and statuses.

/// TCP sequence adjustment carried by SEQ_DATA (the FTP helper's deltas).
struct sync_seq {
    std::uint32_t init_seq = 0;
    std::uint32_t delta = 0;
    std::uint32_t previous_delta = 0;
    friend constexpr bool operator==(const sync_seq&, const sync_seq&) noexcept = default;
};

/// One connection record, decoded or to encode. Addresses are network-order bytes, ports host order.
/// `pe_data` / `pe_name` view the decoded message (or the caller's bytes when encoding).
struct sync_record {
    family af = family::v4;
    std::uint8_t protocol = 0;
    std::uint32_t flags = 0; ///< the flags as on the wire (v0: 16 bits); see sync_backup_flags()
    std::uint16_t state = 0; ///< protocol state; templates: sync_template_state
    std::uint16_t cport = 0;
    std::uint16_t vport = 0;
    std::uint16_t dport = 0;
    std::uint32_t fwmark = 0;
    std::uint32_t timeout = 0; ///< seconds; 0 = "use the state's default" (always 0 in v0 messages)
    inet_addr caddr{};
    inet_addr vaddr{};
    inet_addr daddr{};
    bool has_seq = false; ///< a SEQ_DATA option was present (decode); ignored when encoding
    sync_seq in_seq{};
    sync_seq out_seq{};
    std::span<const std::byte> pe_data{};
    std::span<const std::byte> pe_name{};

    [[nodiscard]] constexpr bool is_template() const noexcept { return (flags & sync_flag::template_) != 0; }

    /// Field-wise equality, PE data and name compared by content.
    friend bool operator==(const sync_record& a, const sync_record& b) noexcept {
        const auto same = [](std::span<const std::byte> x, std::span<const std::byte> y) {
            return std::equal(x.begin(), x.end(), y.begin(), y.end());
        };
        return a.af == b.af && a.protocol == b.protocol && a.flags == b.flags && a.state == b.state &&
               a.cport == b.cport && a.vport == b.vport && a.dport == b.dport && a.fwmark == b.fwmark &&
               a.timeout == b.timeout && a.caddr == b.caddr && a.vaddr == b.vaddr && a.daddr == b.daddr &&
               a.has_seq == b.has_seq && a.in_seq == b.in_seq && a.out_seq == b.out_seq &&
               same(a.pe_data, b.pe_data) && same(a.pe_name, b.pe_name);
    }
};

/// Why a whole message is ignored (spec §8.2, checked in this order).
enum class sync_message_status : std::uint8_t {
    ok,
    too_short,     ///< shorter than the 4-byte v0 header
    size_mismatch, ///< the header's size is not the datagram's length
    other_syncid,  ///< the backup has a syncid ≠ 0 and the message carries another (0 included)
};

[[nodiscard]] constexpr const char* to_string(sync_message_status s) noexcept {
    switch (s) {
    case sync_message_status::ok:
        return "ok";
    case sync_message_status::too_short:
        return "message shorter than a header";
    case sync_message_status::size_mismatch:
        return "header size is not the message length";
    case sync_message_status::other_syncid:
        return "other syncid";
    }
    return "?";
}

/// What became of one record (spec §8.2). `ok` and the skip_* values have a decoded record; the
/// drop_* values end the message; `end` says that every record the header announced was read.
enum class sync_record_status : std::uint8_t {
    ok,
    end,
    // Skip this record, go on with the next.
    skip_unknown_protocol,         ///< a non-template of a protocol the backup does not know
    skip_bad_state,                ///< state ≥ the protocol's state count
    skip_bad_template_state,       ///< a template with state ≥ 2
    skip_template_no_cport,        ///< TEMPLATE and NO_CPORT together
    skip_one_packet,               ///< ONE_PACKET set (a master never sends those)
    skip_unknown_mandatory_option, ///< an unknown option type without the optional bit 0x40
    // Drop the rest of the message.
    drop_truncated,        ///< fewer bytes left than a minimal record (nr_conns larger than the records)
    drop_size_overrun,     ///< the record's length runs past the message
    drop_bad_version,      ///< record version nibble ≠ 0
    drop_bad_type,         ///< record type neither 0 nor with bit 0 set
    drop_record_too_short, ///< record length below the fixed part (36 / 72 bytes)
    drop_option_truncated, ///< an option header or its data runs past the record
    drop_zero_option_length,
    drop_bad_seq_length,   ///< SEQ_DATA of a length other than 24
    drop_pe_name_too_long, ///< PE_NAME longer than 16 bytes
    drop_duplicate_option, ///< SEQ_DATA, PE_DATA or PE_NAME twice
};

[[nodiscard]] constexpr bool is_skip(sync_record_status s) noexcept {
    return s >= sync_record_status::skip_unknown_protocol &&
           s <= sync_record_status::skip_unknown_mandatory_option;
}
[[nodiscard]] constexpr bool drops_rest(sync_record_status s) noexcept {
    return s >= sync_record_status::drop_truncated;
}

[[nodiscard]] constexpr const char* to_string(sync_record_status s) noexcept {
    constexpr const char* names[] = {
        "ok",
        "end of message",
        "unknown protocol",
        "state out of range",
        "template state out of range",
        "template with NO_CPORT",
        "ONE_PACKET connection",
        "unknown mandatory option",
        "record truncated",
        "record size past message end",
        "record version not 0",
        "bad record type",
        "record shorter than its fixed part",
        "option past record end",
        "zero option length",
        "SEQ_DATA length not 24",
        "PE_NAME too long",
        "duplicate option",
    };
    const auto i = static_cast<std::size_t>(s);
    return i < std::size(names) ? names[i] : "?";
}

/// The message header fields (v0 messages have no version byte: `version` is 0).
struct sync_header {
    std::uint8_t version = 0;
    std::uint8_t syncid = 0;
    std::uint16_t size = 0;
    std::uint8_t nr_conns = 0;
    [[nodiscard]] constexpr std::size_t length() const noexcept {
        return version == 1 ? sync_wire::header_v1_len : sync_wire::header_v0_len;
    }
};

// ---------------------------------------------------------------------------------------------------
// Decoding.

/// Walks one sync message as a Linux backup with syncid `backup_syncid` does (spec §8.2).
///
///     ipvs::sync_reader rd(payload, 7);
///     if (rd.status() != ipvs::sync_message_status::ok) return;   // whole message ignored
///     ipvs::sync_record r;
///     for (auto st = rd.next(r); st != sync_record_status::end && !drops_rest(st); st = rd.next(r))
///         if (st == sync_record_status::ok) apply(r);
///
/// The reader keeps a view of the message: it must outlive the reader and the records' PE views.
class sync_reader {
public:
    sync_reader(std::span<const std::byte> msg, std::uint8_t backup_syncid) noexcept : m_msg(msg) {
        if (msg.size() < sync_wire::header_v0_len) {
            m_status = sync_message_status::too_short;
            return;
        }
        m_hdr.syncid = load_u8(&msg[1]);
        m_hdr.size = load_be16(&msg[2]);
        // v1 is recognised by reserved == 0, version == 1, spare == 0; anything else is read as v0.
        if (msg.size() >= sync_wire::header_v1_len && load_u8(&msg[0]) == 0 &&
            load_u8(&msg[5]) == sync_wire::proto_version && load_be16(&msg[6]) == 0) {
            m_hdr.version = 1;
            m_hdr.nr_conns = load_u8(&msg[4]);
        } else {
            m_hdr.version = 0;
            m_hdr.nr_conns = load_u8(&msg[0]);
        }
        if (m_hdr.size != msg.size()) {
            m_status = sync_message_status::size_mismatch;
        } else if (backup_syncid != 0 && m_hdr.syncid != backup_syncid) {
            m_status = sync_message_status::other_syncid;
        } else {
            m_status = sync_message_status::ok;
            m_left = m_hdr.nr_conns;
            m_off = m_hdr.length();
        }
    }
    explicit sync_reader(std::span<const std::uint8_t> msg, std::uint8_t backup_syncid) noexcept
        : sync_reader(std::as_bytes(msg), backup_syncid) {}

    [[nodiscard]] sync_message_status status() const noexcept { return m_status; }
    [[nodiscard]] const sync_header& header() const noexcept { return m_hdr; }
    /// Offset of the next record (after a drop: of the record that ended the message).
    [[nodiscard]] std::size_t offset() const noexcept { return m_off; }
    /// Records announced by the header and not read yet (0 once a record dropped the rest).
    [[nodiscard]] unsigned remaining() const noexcept { return m_left; }

    /// Decodes the next record into `out`. After `end`, a drop_* status or on a rejected message,
    /// every further call returns `end`. For skip_* statuses `out` holds what was decoded.
    [[nodiscard]] sync_record_status next(sync_record& out) noexcept {
        if (m_status != sync_message_status::ok || m_left == 0) return sync_record_status::end;
        out = sync_record{};
        std::size_t len = 0;
        const auto st = m_hdr.version == 1 ? decode_v1(out, len) : decode_v0(out, len);
        if (drops_rest(st)) {
            m_left = 0;
            return st;
        }
        --m_left;
        // The next record starts 4-byte aligned (v0 records are multiples of 4 anyway).
        m_off += (len + 3) & ~std::size_t{3};
        return st;
    }

private:
    [[nodiscard]] sync_record_status decode_v1(sync_record& r, std::size_t& len) const noexcept {
        const std::size_t left = m_off <= m_msg.size() ? m_msg.size() - m_off : 0;
        if (left < sync_wire::record_v4_len) return sync_record_status::drop_truncated;
        const std::byte* p = m_msg.data() + m_off;
        const std::uint16_t ver_size = load_be16(p + 2);
        len = ver_size & sync_wire::size_mask;
        if (len > left) return sync_record_status::drop_size_overrun;
        if ((ver_size >> sync_wire::ver_shift) != 0) return sync_record_status::drop_bad_version;
        const std::uint8_t type = load_u8(p);
        if (type & sync_wire::type_inet6) {
            r.af = family::v6; // bit 0 decides, whatever the other bits (type 3 is IPv6 too)
        } else if (type != 0) {
            return sync_record_status::drop_bad_type;
        }
        const std::size_t fixed = r.af == family::v6 ? sync_wire::record_v6_len : sync_wire::record_v4_len;
        if (len < fixed) return sync_record_status::drop_record_too_short;

        r.protocol = load_u8(p + 1);
        r.flags = load_be32(p + 4);
        r.state = load_be16(p + 8);
        r.cport = load_be16(p + 10);
        r.vport = load_be16(p + 12);
        r.dport = load_be16(p + 14);
        r.fwmark = load_be32(p + 16);
        r.timeout = load_be32(p + 20);
        const std::size_t alen = r.af == family::v6 ? 16 : 4;
        r.caddr = inet_addr::load(r.af, p + 24);
        r.vaddr = inet_addr::load(r.af, p + 24 + alen);
        r.daddr = inet_addr::load(r.af, p + 24 + 2 * alen);

        // Options: {type, length > 0, data}, up to the record's end. Known types are matched with the
        // optional bit masked off.
        bool have_pe_data = false, have_pe_name = false;
        for (std::size_t q = fixed; q < len;) {
            if (len - q < 2) return sync_record_status::drop_option_truncated;
            const std::uint8_t otype = load_u8(p + q);
            const std::size_t olen = load_u8(p + q + 1);
            q += 2;
            if (olen == 0) return sync_record_status::drop_zero_option_length;
            if (olen > len - q) return sync_record_status::drop_option_truncated;
            const std::byte* d = p + q;
            switch (static_cast<std::uint8_t>(otype & ~sync_wire::opt_optional)) {
            case sync_wire::opt_seq_data:
                if (olen != sync_wire::seq_data_len) return sync_record_status::drop_bad_seq_length;
                if (r.has_seq) return sync_record_status::drop_duplicate_option;
                r.has_seq = true;
                r.in_seq = load_seq(d);
                r.out_seq = load_seq(d + 12);
                break;
            case sync_wire::opt_pe_data:
                if (have_pe_data) return sync_record_status::drop_duplicate_option;
                have_pe_data = true;
                r.pe_data = std::span<const std::byte>(d, olen);
                break;
            case sync_wire::opt_pe_name:
                if (olen > sync_wire::pe_name_maxlen) return sync_record_status::drop_pe_name_too_long;
                if (have_pe_name) return sync_record_status::drop_duplicate_option;
                have_pe_name = true;
                r.pe_name = std::span<const std::byte>(d, olen);
                break;
            default:
                // The kernel stops at an unknown mandatory option and ignores the record.
                if (!(otype & sync_wire::opt_optional))
                    return sync_record_status::skip_unknown_mandatory_option;
                break;
            }
            q += olen;
        }
        return check_semantics(r);
    }

    [[nodiscard]] sync_record_status decode_v0(sync_record& r, std::size_t& len) const noexcept {
        const std::size_t left = m_off <= m_msg.size() ? m_msg.size() - m_off : 0;
        if (left < sync_wire::record_v0_len) return sync_record_status::drop_truncated;
        const std::byte* p = m_msg.data() + m_off;
        r.af = family::v4;
        r.protocol = load_u8(p + 1);
        r.cport = load_be16(p + 2);
        r.vport = load_be16(p + 4);
        r.dport = load_be16(p + 6);
        r.caddr = inet_addr::load(family::v4, p + 8);
        r.vaddr = inet_addr::load(family::v4, p + 12);
        r.daddr = inet_addr::load(family::v4, p + 16);
        r.flags = load_be16(p + 20);
        r.state = load_be16(p + 22);
        len = sync_wire::record_v0_len;
        if (r.flags & sync_flag::seq_mask) {
            if (left < sync_wire::record_v0_len + sync_wire::seq_data_len)
                return sync_record_status::drop_option_truncated;
            r.has_seq = true;
            r.in_seq = load_seq(p + 24);
            r.out_seq = load_seq(p + 36);
            len += sync_wire::seq_data_len;
        }
        return check_semantics(r);
    }

    [[nodiscard]] static sync_seq load_seq(const std::byte* d) noexcept {
        return {load_be32(d), load_be32(d + 4), load_be32(d + 8)};
    }

    // The "skip this record" rules, on a completely read record.
    [[nodiscard]] static sync_record_status check_semantics(const sync_record& r) noexcept {
        if (r.is_template()) {
            // A template's protocol is not looked up: only its state range matters.
            if (r.state >= sync_template_state::count) return sync_record_status::skip_bad_template_state;
            if (r.flags & sync_flag::no_cport) return sync_record_status::skip_template_no_cport;
        } else {
            const std::uint16_t n = sync_state_count(r.protocol);
            if (n == 0) return sync_record_status::skip_unknown_protocol;
            if (r.state >= n) return sync_record_status::skip_bad_state;
        }
        if (r.flags & sync_flag::one_packet) return sync_record_status::skip_one_packet;
        return sync_record_status::ok;
    }

    std::span<const std::byte> m_msg;
    sync_header m_hdr{};
    sync_message_status m_status = sync_message_status::too_short;
    std::size_t m_off = 0;
    unsigned m_left = 0;
};

/// What `decode_sync` saw in one message.
struct sync_decode_result {
    sync_message_status status = sync_message_status::ok;
    sync_header header{};
    unsigned records_ok = 0;
    unsigned records_skipped = 0;
    /// `end` when every announced record was read, else the drop_* status that ended the message.
    sync_record_status stop = sync_record_status::end;
};

/// Decodes a whole message, calling `on_record(const sync_record&, sync_record_status)` for every
/// record that was read — `ok` ones and skipped ones (drop statuses are only reported in the result).
template <class F>
sync_decode_result decode_sync(std::span<const std::byte> msg, std::uint8_t backup_syncid, F&& on_record) {
    sync_reader rd(msg, backup_syncid);
    sync_decode_result res{rd.status(), rd.header(), 0, 0, sync_record_status::end};
    sync_record r;
    for (auto st = rd.next(r); st != sync_record_status::end; st = rd.next(r)) {
        if (drops_rest(st)) {
            res.stop = st;
            break;
        }
        ++(st == sync_record_status::ok ? res.records_ok : res.records_skipped);
        on_record(static_cast<const sync_record&>(r), st);
    }
    return res;
}

// ---------------------------------------------------------------------------------------------------
// Encoding.

/// Why the writer refused a record.
enum class sync_encode_status : std::uint8_t {
    ok,
    no_room,          ///< the record (with its padding) does not fit in what is left of the buffer
    too_many_records, ///< the message already has 255 records
    v0_needs_ipv4,    ///< version-0 messages carry IPv4 records only
    pe_name_too_long, ///< more than 16 bytes
    pe_data_too_long, ///< more than 255 bytes
    record_too_long,  ///< a v1 record longer than the 12-bit ver_size can say (impossible with the limits)
};

[[nodiscard]] constexpr const char* to_string(sync_encode_status s) noexcept {
    switch (s) {
    case sync_encode_status::ok:
        return "ok";
    case sync_encode_status::no_room:
        return "no room in the message";
    case sync_encode_status::too_many_records:
        return "255 records already";
    case sync_encode_status::v0_needs_ipv4:
        return "version 0 is IPv4 only";
    case sync_encode_status::pe_name_too_long:
        return "PE name longer than 16 bytes";
    case sync_encode_status::pe_data_too_long:
        return "PE data longer than 255 bytes";
    case sync_encode_status::record_too_long:
        return "record longer than 4095 bytes";
    }
    return "?";
}

/// The encoded length of `r` in a message of `version`, without padding.
[[nodiscard]] constexpr std::size_t sync_record_length(const sync_record& r, std::uint8_t version) noexcept {
    const bool seq = (r.flags & sync_flag::seq_mask) != 0;
    if (version == 0) return sync_wire::record_v0_len + (seq ? sync_wire::seq_data_len : 0);
    std::size_t n = r.af == family::v6 ? sync_wire::record_v6_len : sync_wire::record_v4_len;
    if (seq) n += 2 + sync_wire::seq_data_len;
    if (!r.pe_data.empty()) {
        n += 2 + r.pe_data.size();
        if (!r.pe_name.empty()) n += 2 + r.pe_name.size();
    }
    return n;
}

/// Builds one sync message in a caller-provided buffer, as a Linux master lays it out.
///
///     std::array<std::byte, 1472> buf;
///     ipvs::sync_writer w(buf, /*syncid*/ 7);
///     if (w.add(rec) == sync_encode_status::no_room) { send(w.finish()); w.reset(); (void)w.add(rec); }
///     send(w.finish());
///
/// The capacity is the buffer's size, capped at 65535 (size is 16 bits); the message is never
/// longer. No allocation.
class sync_writer {
public:
    sync_writer(std::span<std::byte> buf, std::uint8_t syncid, std::uint8_t version = 1) noexcept
        : m_buf(buf.first(std::min<std::size_t>(buf.size(), 0xffff))), m_syncid(syncid), m_version(version) {
        IPVS_ASSERT(version <= 1);
        IPVS_ASSERT(m_buf.size() >= header_len());
        reset();
    }

    /// Starts an empty message (the buffer is reused).
    void reset() noexcept {
        m_size = header_len();
        m_nr = 0;
    }

    [[nodiscard]] std::uint8_t version() const noexcept { return m_version; }
    [[nodiscard]] std::uint8_t syncid() const noexcept { return m_syncid; }
    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] std::size_t capacity() const noexcept { return m_buf.size(); }
    [[nodiscard]] unsigned nr_conns() const noexcept { return m_nr; }
    [[nodiscard]] bool empty() const noexcept { return m_nr == 0; }
    [[nodiscard]] std::size_t header_len() const noexcept {
        return m_version == 1 ? sync_wire::header_v1_len : sync_wire::header_v0_len;
    }
    /// Whether `r` would fit (padding included) in what is left of the buffer.
    [[nodiscard]] bool fits(const sync_record& r) const noexcept {
        return m_size + pad() + sync_record_length(r, m_version) <= m_buf.size();
    }

    /// Appends `r`: flags without HASHED, SEQ_DATA iff the flags say IN_SEQ/OUT_SEQ, PE_DATA (and
    /// PE_NAME, only together with data) if present. `has_seq` is ignored. On failure nothing changes.
    [[nodiscard]] sync_encode_status add(const sync_record& r) noexcept {
        if (m_nr >= sync_wire::max_records) return sync_encode_status::too_many_records;
        if (m_version == 0 && r.af != family::v4) return sync_encode_status::v0_needs_ipv4;
        if (r.pe_name.size() > sync_wire::pe_name_maxlen) return sync_encode_status::pe_name_too_long;
        if (r.pe_data.size() > sync_wire::pe_data_maxlen) return sync_encode_status::pe_data_too_long;
        const std::size_t len = sync_record_length(r, m_version);
        if (m_version == 1 && len > sync_wire::size_mask) return sync_encode_status::record_too_long;
        const std::size_t pad_len = pad();
        if (m_size + pad_len + len > m_buf.size()) return sync_encode_status::no_room;
        std::byte* p = m_buf.data() + m_size;
        // Padding goes before a record, so that it starts 4-byte aligned (spec §8.2).
        for (std::size_t i = 0; i < pad_len; ++i) *p++ = std::byte{0};
        if (m_version == 1) {
            write_v1(p, r, len);
        } else {
            write_v0(p, r);
        }
        m_size += pad_len + len;
        ++m_nr;
        return sync_encode_status::ok;
    }

    /// Writes the header and returns the message. `pad_end` also pads the message to a multiple of 4
    /// (Linux does not; some senders do, and receivers accept both). The writer may go on adding.
    [[nodiscard]] std::span<const std::byte> finish(bool pad_end = false) noexcept {
        std::size_t n = m_size;
        if (pad_end) {
            const std::size_t p = std::min((4 - (n & 3)) & 3, m_buf.size() - n);
            for (std::size_t i = 0; i < p; ++i) m_buf[n + i] = std::byte{0};
            n += p;
        }
        std::byte* h = m_buf.data();
        if (m_version == 1) {
            store_u8(h, 0);
            store_u8(h + 1, m_syncid);
            store_be16(h + 2, static_cast<std::uint16_t>(n));
            store_u8(h + 4, static_cast<std::uint8_t>(m_nr));
            store_u8(h + 5, sync_wire::proto_version);
            store_be16(h + 6, 0);
        } else {
            store_u8(h, static_cast<std::uint8_t>(m_nr));
            store_u8(h + 1, m_syncid);
            store_be16(h + 2, static_cast<std::uint16_t>(n));
        }
        return std::span<const std::byte>(m_buf.data(), n);
    }

private:
    [[nodiscard]] std::size_t pad() const noexcept { return m_version == 1 ? (4 - (m_size & 3)) & 3 : 0; }

    static std::byte* put_seq(std::byte* p, const sync_seq& s) noexcept {
        store_be32(p, s.init_seq);
        store_be32(p + 4, s.delta);
        store_be32(p + 8, s.previous_delta);
        return p + 12;
    }
    static std::byte* put_option(std::byte* p, std::uint8_t type, std::span<const std::byte> d) noexcept {
        store_u8(p, type);
        store_u8(p + 1, static_cast<std::uint8_t>(d.size()));
        std::copy(d.begin(), d.end(), p + 2);
        return p + 2 + d.size();
    }

    static void write_v1(std::byte* p, const sync_record& r, std::size_t len) noexcept {
        const bool v6 = r.af == family::v6;
        store_u8(p, v6 ? sync_wire::type_inet6 : 0);
        store_u8(p + 1, r.protocol);
        store_be16(p + 2, static_cast<std::uint16_t>(len)); // version nibble 0
        store_be32(p + 4, r.flags & ~sync_flag::hashed);
        store_be16(p + 8, r.state);
        store_be16(p + 10, r.cport);
        store_be16(p + 12, r.vport);
        store_be16(p + 14, r.dport);
        store_be32(p + 16, r.fwmark);
        store_be32(p + 20, r.timeout);
        const std::size_t alen = v6 ? 16 : 4;
        r.caddr.store(p + 24);
        r.vaddr.store(p + 24 + alen);
        r.daddr.store(p + 24 + 2 * alen);
        p += 24 + 3 * alen;
        if (r.flags & sync_flag::seq_mask) {
            store_u8(p, sync_wire::opt_seq_data);
            store_u8(p + 1, static_cast<std::uint8_t>(sync_wire::seq_data_len));
            p = put_seq(put_seq(p + 2, r.in_seq), r.out_seq);
        }
        if (!r.pe_data.empty()) {
            p = put_option(p, sync_wire::opt_pe_data, r.pe_data);
            if (!r.pe_name.empty()) p = put_option(p, sync_wire::opt_pe_name, r.pe_name);
        }
    }

    static void write_v0(std::byte* p, const sync_record& r) noexcept {
        store_u8(p, 0);
        store_u8(p + 1, r.protocol);
        store_be16(p + 2, r.cport);
        store_be16(p + 4, r.vport);
        store_be16(p + 6, r.dport);
        r.caddr.store(p + 8);
        r.vaddr.store(p + 12);
        r.daddr.store(p + 16);
        const std::uint32_t flags = r.flags & ~sync_flag::hashed;
        store_be16(p + 20, static_cast<std::uint16_t>(flags));
        store_be16(p + 22, r.state);
        if (flags & sync_flag::seq_mask) put_seq(put_seq(p + 24, r.in_seq), r.out_seq);
    }

    std::span<std::byte> m_buf;
    std::uint8_t m_syncid = 0;
    std::uint8_t m_version = 1;
    std::size_t m_size = 0;
    unsigned m_nr = 0;
};

// ---------------------------------------------------------------------------------------------------
// The master's decision (spec §8.3).

/// The sync sysctls (net.ipv4.vs.*, spec §9) with their defaults.
struct sync_sysctl {
    std::uint32_t sync_threshold = 3; ///< first value of "sync_threshold"
    std::uint32_t sync_period = 50;   ///< second value of "sync_threshold"; 0 = sync once
    time_ns sync_refresh_period{0};   ///< 0 = off
    std::uint32_t sync_retries = 0;   ///< 0..3
    bool sync_persist_mode = false;   ///< do not sync conns controlled by a template
    std::uint8_t sync_version = 1;    ///< 0 or 1

    /// The kernel refuses a threshold ≥ a non-zero period, retries > 3 and versions other than 0/1.
    [[nodiscard]] constexpr bool valid() const noexcept {
        return (sync_period == 0 || sync_threshold < sync_period) && sync_retries <= 3 && sync_version <= 1 &&
               sync_refresh_period >= time_ns{0};
    }
};

/// The part of a connection the decision reads and writes. A new connection starts with
/// `sync_endtime = now & ~3` (spec §3.4; `sync_fields_at_creation`), `old_state = 0`, `in_pkts = 0`.
struct sync_fields {
    std::uint8_t protocol = 0;
    std::uint8_t state = 0;     ///< protocol state; templates: sync_template_state
    std::uint8_t old_state = 0; ///< the state at the last send decision that went through
    bool is_template = false;
    bool controlled_by_template = false; ///< its controller is a persistence template
    bool one_packet = false;
    /// Packets counted on a *controller*: `sync_on_packet` increments it for a template controller.
    /// (A connection's own count is the datapath's `++in_pkts`, passed as `pkts`.)
    std::uint32_t in_pkts = 0;
    /// When the last record said the connection would expire; the low 2 bits of the count are the
    /// number of refresh retries sent since (the kernel keeps them in the low bits of jiffies).
    time_ns sync_endtime{0};
    time_ns timeout{0}; ///< the connection's current timeout
    friend constexpr bool operator==(const sync_fields&, const sync_fields&) noexcept = default;
};

/// Sync fields of a connection created at `now`.
[[nodiscard]] constexpr sync_fields sync_fields_at_creation(std::uint8_t protocol, time_ns now,
                                                            bool is_template = false,
                                                            bool controlled_by_template = false) noexcept {
    sync_fields f;
    f.protocol = protocol;
    f.is_template = is_template;
    f.controlled_by_template = controlled_by_template;
    f.sync_endtime = time_ns{now.count() & ~std::int64_t{3}};
    return f;
}

/// Why a connection was or was not sent.
enum class sync_reason : std::uint8_t {
    sent,              ///< the packet count or the refresh period said so
    sent_forced,       ///< a state change (TCP / SCTP)
    one_packet,        ///< ONE_PACKET connections are never sent
    persist_mode,      ///< sync_persist_mode and controlled by a template
    state_not_synced,  ///< a TCP / SCTP state that is never sent (SYN_RECV, INIT, …)
    retries_exhausted, ///< refresh: already sent sync_retries times for this expiry time
    refresh_too_early, ///< refresh: less than refresh_period/8 since the last record
    not_due,           ///< the packet count does not match threshold / period
    conn_not_sent,     ///< version 0: a controller goes only right after its connection
    no_controller,
};

[[nodiscard]] constexpr const char* to_string(sync_reason r) noexcept {
    switch (r) {
    case sync_reason::sent:
        return "sent";
    case sync_reason::sent_forced:
        return "sent (state change)";
    case sync_reason::one_packet:
        return "ONE_PACKET";
    case sync_reason::persist_mode:
        return "controlled by a template (sync_persist_mode)";
    case sync_reason::state_not_synced:
        return "state not synced";
    case sync_reason::retries_exhausted:
        return "refresh retries exhausted";
    case sync_reason::refresh_too_early:
        return "refresh too early";
    case sync_reason::not_due:
        return "packet count not due";
    case sync_reason::conn_not_sent:
        return "v0: connection not sent";
    case sync_reason::no_controller:
        return "no controller";
    }
    return "?";
}

/// The result of one decision: whether to send, why, and the fields to store back.
struct sync_verdict {
    bool send = false;
    sync_reason reason = sync_reason::not_due;
    sync_fields fields{};
};

namespace detail {
// TCP: ESTABLISHED 1, FIN_WAIT 4, TIME_WAIT 5, CLOSE 6, CLOSE_WAIT 7 (spec §8.3 step 2).
[[nodiscard]] constexpr bool tcp_sync_state(std::uint8_t s) noexcept {
    return s == 1 || s == 4 || s == 5 || s == 6 || s == 7;
}
// SCTP: ESTABLISHED 8, SHUTDOWN_SENT 9, SHUTDOWN_RECEIVED 10, SHUTDOWN_ACK_SENT 11, CLOSED 13.
[[nodiscard]] constexpr bool sctp_sync_state(std::uint8_t s) noexcept {
    return (s >= 8 && s <= 11) || s == 13;
}
inline constexpr std::uint8_t tcp_established = 1;
inline constexpr std::uint8_t sctp_established = 8;
} // namespace detail

/// Decides whether a master sends connection `c` after a client → VIP packet (spec §8.3), `pkts`
/// being its `++in_pkts` (or, for a controller, what `sync_on_packet` passes). Pure: the caller
/// stores `fields` back. ONE_PACKET and the persist-mode rule leave the fields unchanged, as do all
/// "not sent" outcomes; a send sets `old_state = state` and the new `sync_endtime`.
[[nodiscard]] constexpr sync_verdict sync_decide(const sync_fields& c, const sync_sysctl& s,
                                                 std::uint32_t pkts, time_ns now) noexcept {
    if (c.one_packet) return {false, sync_reason::one_packet, c};
    const time_ns orig = c.sync_endtime;
    time_ns n{(now + c.timeout).count() & ~std::int64_t{3}};
    bool force = false, send_now = false;
    if (!c.is_template) {
        if (s.sync_persist_mode && c.controlled_by_template) return {false, sync_reason::persist_mode, c};
        if (c.protocol == ipproto::tcp || c.protocol == ipproto::sctp) {
            const bool tcp = c.protocol == ipproto::tcp;
            if (!(tcp ? detail::tcp_sync_state(c.state) : detail::sctp_sync_state(c.state)))
                return {false, sync_reason::state_not_synced, c};
            force = c.state != c.old_state;
            // A change into a closing state goes out at once; into ESTABLISHED it still waits for
            // the packet count below.
            send_now = force && c.state != (tcp ? detail::tcp_established : detail::sctp_established);
        }
    }
    if (!send_now) {
        if (s.sync_refresh_period > time_ns{0}) {
            const time_ns diff = n > orig ? n - orig : orig - n;
            const time_ns limit =
                std::min(s.sync_refresh_period, std::max(c.timeout / 2, time_ns{std::chrono::seconds{10}}));
            if (diff < limit) {
                // The same expiry time was already announced: resend only sync_retries times, and
                // not before refresh_period/8 has passed since that announcement.
                const std::uint32_t retries = static_cast<std::uint32_t>(orig.count() & 3);
                if (retries >= s.sync_retries) return {false, sync_reason::retries_exhausted, c};
                if (now < orig - c.timeout + s.sync_refresh_period / 8)
                    return {false, sync_reason::refresh_too_early, c};
                n = time_ns{n.count() | static_cast<std::int64_t>(retries + 1)};
            }
        }
        if (s.sync_period > 0) {
            if (!c.is_template && pkts % s.sync_period != s.sync_threshold)
                return {false, sync_reason::not_due, c};
        } else if (s.sync_refresh_period == time_ns{0} && pkts != s.sync_threshold) {
            return {false, sync_reason::not_due, c};
        }
    }
    sync_verdict v{true, force ? sync_reason::sent_forced : sync_reason::sent, c};
    v.fields.old_state = c.state;
    v.fields.sync_endtime = n;
    return v;
}

/// What one client → VIP packet makes a master send: the connection's record, then its controller's.
struct sync_actions {
    bool conn = false;
    bool controller = false;
    sync_reason conn_reason = sync_reason::not_due;
    sync_reason controller_reason = sync_reason::no_controller;
};

/// Runs the decision for a connection and then its controller (if any) as `ip_vs_sync_conn` does:
/// the controller gets `pkts = ++controller->in_pkts` if it is a template, `sync_threshold` otherwise.
/// Version 1 processes the controller on every call, version 0 only when the connection was sent.
/// Updates both field sets in place. One level of controller (the kernel walks the chain; a
/// template has none, so only an FTP data → control → template chain would need a second level).
constexpr sync_actions sync_on_packet(sync_fields& entry, std::uint32_t pkts, sync_fields* controller,
                                      const sync_sysctl& s, time_ns now) noexcept {
    sync_actions a;
    const auto v = sync_decide(entry, s, pkts, now);
    entry = v.fields;
    a.conn = v.send;
    a.conn_reason = v.reason;
    if (controller == nullptr) return a;
    if (s.sync_version == 0 && !v.send) {
        a.controller_reason = sync_reason::conn_not_sent;
        return a;
    }
    const std::uint32_t cp = controller->is_template ? ++controller->in_pkts : s.sync_threshold;
    const auto w = sync_decide(*controller, s, cp, now);
    *controller = w.fields;
    a.controller = w.send;
    a.controller_reason = w.reason;
    return a;
}

// ---------------------------------------------------------------------------------------------------
// Batching (spec §8.1).

/// Collects records into messages and says when each is due, the way the kernel's master thread
/// does: a message is closed when the next record does not fit (`maxlen`, 255 records); closed
/// messages wait in a queue that is sent 20 ms after it stopped being empty, or at once when 8 are
/// waiting; the open message goes out 2 s after its first record at the latest (draining the queue
/// before it). A closed message that finds `qlen_max` waiting is dropped (sync_qlen_max).
///
///     ipvs::sync_buffer sb({.syncid = 7});
///     (void)sb.add(rec, now);
///     while (auto msg = sb.poll(now)) udp_send(*msg);     // when the clock passes sb.next_deadline()
///
/// Storage for qlen_max + 2 messages is allocated once, in the constructor; nothing after.
class sync_buffer {
public:
    static constexpr time_ns flush_time = std::chrono::seconds{2};       ///< IPVS_SYNC_FLUSH_TIME
    static constexpr time_ns send_delay = std::chrono::milliseconds{20}; ///< IPVS_SYNC_SEND_DELAY, HZ/50
    static constexpr std::size_t wakeup_rate = 8;                        ///< IPVS_SYNC_WAKEUP_RATE
    static constexpr std::size_t min_maxlen = 128; ///< room for the longest record without PE data

    struct config {
        std::uint8_t syncid = 0;
        std::uint8_t version = 1;
        std::size_t maxlen = sync_wire::default_maxlen_v4;
        std::size_t qlen_max = 16;
    };

    /// Throws std::invalid_argument for a version other than 0/1, maxlen outside [128, 65535] or a
    /// zero qlen_max.
    explicit sync_buffer(const config& c) : m_cfg(c) {
        if (c.version > 1) throw std::invalid_argument("ipvs: sync version must be 0 or 1");
        if (c.maxlen < min_maxlen || c.maxlen > 0xffff)
            throw std::invalid_argument("ipvs: sync maxlen must be in [128, 65535]");
        if (c.qlen_max == 0 || c.qlen_max > 0xfff0)
            throw std::invalid_argument("ipvs: sync qlen_max must be > 0");
        m_slots = c.qlen_max + 2; // queued + open + the one the last poll() returned
        m_store.resize(m_slots * c.maxlen);
        m_len.resize(m_slots);
    }

    [[nodiscard]] std::uint8_t version() const noexcept { return m_cfg.version; }
    [[nodiscard]] std::size_t queued() const noexcept { return m_queued; }
    [[nodiscard]] bool has_open() const noexcept { return m_open.has_value(); }
    [[nodiscard]] std::uint64_t dropped_messages() const noexcept { return m_dropped_msgs; }
    [[nodiscard]] std::uint64_t dropped_records() const noexcept { return m_dropped_recs; }

    /// Adds a record at time `now`. ok, or the writer's refusal of a record that cannot be encoded
    /// at all (it is not added).
    [[nodiscard]] sync_encode_status add(const sync_record& r, time_ns now) noexcept {
        if (m_open) {
            const auto st = m_open->add(r);
            if (st == sync_encode_status::ok) return st;
            if (st != sync_encode_status::no_room && st != sync_encode_status::too_many_records) return st;
            if (m_open->empty()) return st; // could never fit
            close_open(now);
        }
        open(now);
        const auto st = m_open->add(r);
        if (st != sync_encode_status::ok) {
            m_open.reset(); // does not fit even an empty message: leave no empty message behind
            return st;
        }
        // v0 closes a message as soon as a minimal record no longer fits (v1 waits for the next one).
        if (m_cfg.version == 0 && m_open->size() + sync_wire::record_v0_len > m_open->capacity())
            close_open(now);
        return st;
    }

    /// The next message due at `now`, or nullopt. The bytes stay valid until the next call of any
    /// non-const member.
    [[nodiscard]] std::optional<std::span<const std::byte>> poll(time_ns now) noexcept {
        const bool open_due = m_open && now - m_first_use >= flush_time;
        if (m_queued > 0 && (now >= m_wake_at || open_due)) return pop();
        if (m_queued == 0 && open_due) {
            close_open(now);
            return pop();
        }
        return std::nullopt;
    }

    /// When `poll` will next return a message (now or in the past: at once), or nullopt if nothing waits.
    [[nodiscard]] std::optional<time_ns> next_deadline() const noexcept {
        std::optional<time_ns> t;
        if (m_queued > 0) t = m_wake_at;
        if (m_open) t = t ? std::min(*t, m_first_use + flush_time) : m_first_use + flush_time;
        return t;
    }

    /// Closes the open message now and makes everything waiting due (daemon stop).
    void flush(time_ns now) noexcept {
        if (m_open) close_open(now);
        m_wake_at = now;
    }

    /// Switches the format of the following messages; the open one is closed first (as the kernel
    /// does when sync_version changes).
    void set_version(std::uint8_t v, time_ns now) noexcept {
        IPVS_ASSERT(v <= 1);
        if (v == m_cfg.version) return;
        if (m_open) close_open(now);
        m_cfg.version = v;
    }

private:
    [[nodiscard]] std::size_t slot_at(std::size_t k) const noexcept { return (m_head + k) % m_slots; }
    [[nodiscard]] std::span<std::byte> slot(std::size_t i) noexcept {
        return std::span<std::byte>(m_store.data() + i * m_cfg.maxlen, m_cfg.maxlen);
    }

    void open(time_ns now) noexcept {
        m_open.emplace(slot(slot_at(m_queued)), m_cfg.syncid, m_cfg.version);
        m_first_use = now;
    }

    void close_open(time_ns now) noexcept {
        const std::size_t i = slot_at(m_queued);
        const auto msg = m_open->finish();
        const unsigned nr = m_open->nr_conns();
        m_open.reset();
        if (m_queued >= m_cfg.qlen_max) {
            ++m_dropped_msgs;
            m_dropped_recs += nr;
            return;
        }
        m_len[i] = static_cast<std::uint16_t>(msg.size());
        ++m_queued;
        if (m_queued == 1) m_wake_at = now + send_delay;
        if (m_queued >= wakeup_rate) m_wake_at = std::min(m_wake_at, now);
    }

    [[nodiscard]] std::span<const std::byte> pop() noexcept {
        const std::size_t i = m_head;
        m_head = slot_at(1);
        --m_queued;
        return slot(i).first(m_len[i]);
    }

    config m_cfg;
    std::size_t m_slots = 0;
    std::vector<std::byte> m_store;
    std::vector<std::uint16_t> m_len;
    std::size_t m_head = 0; ///< oldest queued message; the open one is at m_head + m_queued
    std::size_t m_queued = 0;
    std::optional<sync_writer> m_open;
    time_ns m_first_use{0};
    time_ns m_wake_at{0};
    std::uint64_t m_dropped_msgs = 0;
    std::uint64_t m_dropped_recs = 0;
};

} // namespace ipvs
