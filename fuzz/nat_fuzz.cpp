// SPDX-License-Identifier: MIT
// libFuzzer target: nat_rewrite on arbitrary packets, both directions, both families, every checksum state —
// a correct rewrite whose checksums verify, or a refusal with the buffer byte-for-byte untouched.
//
// Input: `ctl(1) port(2) addr(16) packet…`. ctl bit 0: dnat / snat; bits 1–2: csum_state; bits 3–4: the
// IP header's offset in the view (0..3, the bytes before it are packet bytes too); bit 5: give the new
// address the other family (must be refused); bit 6: keep the packet's own port (SCTP then keeps its CRC).
//
// The oracle (independent of nat.hpp's arithmetic): the output re-parses the same; it differs from the
// input only in the rewritten address and port (written here from the parse offsets) and in checksum
// fields; the IPv4 header checksum verifies; the L4 checksum verifies exactly when the input's did
// (TCP/UDP incremental updates keep a wrong sum wrong — spec §6.1, CLARIFICATIONS "bad checksum"),
// except the cases where the rewrite computes the sum afresh: an ICMP error (outer sum), an SCTP packet
// whose port changed or whose state is partial (CRC32c), a UDP datagram with checksum 0 (it gains one).
// A CHECKSUM_PARTIAL view is first "completed" the way the NIC would (sum from the L4 header on,
// complement, store) on both the input and the output, then verified.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include <ipvs/nat.hpp>
#include <ipvs/verify.hpp>

namespace {

/// A view with its own checksum state and L3 offset, over a heap buffer of exactly the packet's size
/// (so ASan sees any read past the end).
struct fuzz_view {
    std::vector<std::byte> buf;
    std::size_t l3 = 0;
    ipvs::csum_state cs = ipvs::csum_state::none;
    [[nodiscard]] ipvs::csum_state checksum_state() const noexcept { return cs; }
    void set_checksum_state(ipvs::csum_state s) noexcept { cs = s; }
    [[nodiscard]] std::size_t l3_offset() const noexcept { return l3; }
};

} // namespace

template <>
struct ipvs::packet_traits<fuzz_view> {
    static std::span<std::byte> bytes(fuzz_view& v) noexcept { return v.buf; }
    static std::span<const std::byte> bytes(const fuzz_view& v) noexcept { return v.buf; }
    static ipvs::csum_state checksum_state(const fuzz_view& v) noexcept { return v.cs; }
    static void set_checksum_state(fuzz_view& v, ipvs::csum_state s) noexcept { v.cs = s; }
    static std::size_t l3_offset(const fuzz_view& v) noexcept { return v.l3; }
};

namespace {

using ipvs::family;
namespace ipproto = ipvs::ipproto;

[[noreturn]] void fail() { std::abort(); }
void require(bool ok) {
    if (!ok) fail();
}

std::size_t addr_at(const ipvs::ip_info& ip, bool source) {
    if (ip.af == family::v4) return ip.offset + (source ? ipvs::ipv4_hdr::saddr : ipvs::ipv4_hdr::daddr);
    return ip.offset + (source ? ipvs::ipv6_hdr::saddr : ipvs::ipv6_hdr::daddr);
}

/// Blanks [at, at + n) in both buffers: checksum fields, judged by verification instead.
void mask(std::vector<std::byte>& a, std::vector<std::byte>& b, std::size_t at, std::size_t n) {
    for (std::size_t i = at; i < at + n && i < a.size(); ++i) a[i] = b[i] = std::byte{0};
}

/// What a NIC does with a CHECKSUM_PARTIAL TCP/UDP packet at transmit: sums from the L4 header to the
/// end (the field holds the pseudo-header sum) and stores the complement.
void complete_partial(std::vector<std::byte>& b, const ipvs::packet_info& info) {
    const auto l4 = std::span<const std::byte>(b).subspan(info.l4.offset, info.l4.length);
    std::uint16_t c = ipvs::csum_finish(ipvs::csum_partial(l4));
    if (info.ip.protocol == ipproto::udp && c == 0) c = 0xffff;
    ipvs::store_be16(b.data() + info.l4.check_offset, c);
}

ipvs::verify_status l4_status(std::vector<std::byte> b, const ipvs::packet_info& info, bool partial) {
    if (partial && (info.ip.protocol == ipproto::tcp || info.ip.protocol == ipproto::udp))
        complete_partial(b, info);
    return ipvs::verify_l4(b, info);
}

void check_ok(const std::vector<std::byte>& in, const fuzz_view& v, const ipvs::parse_result& r0, bool snat,
              const ipvs::inet_addr& to, std::uint16_t to_port, ipvs::csum_state cs0) {
    const auto& ip = r0.info.ip;
    // Only a whole parse, or an IPv6 non-first fragment (L3 only), gets rewritten; IPv4 fragments never.
    require(r0.ok() || (r0.status == ipvs::parse_status::fragment && ip.af == family::v6));
    require(!(ip.af == family::v4 && ip.is_fragment()));
    require(v.cs == (cs0 == ipvs::csum_state::complete ? ipvs::csum_state::none : cs0));
    const auto r1 = ipvs::parse(v);
    require(r1.status == r0.status);
    const auto& ip1 = r1.info.ip;
    const bool icmp = ip.protocol == ipproto::icmp || ip.protocol == ipproto::icmpv6;
    const bool l4 = ip.frag_offset == 0;

    // The expected bytes: the input with the new address and port written where the parse says.
    std::vector<std::byte> want = in, got = v.buf;
    to.store(want.data() + addr_at(ip, snat));
    if (icmp) {
        const auto& q = r0.info.inner;
        require(q.present && q.has_ports);
        to.store(want.data() + addr_at(q.ip, !snat));
        ipvs::store_be16(want.data() + q.l4_offset + (snat ? 2 : 0), to_port);
        if (q.ip.af == family::v4) mask(want, got, q.ip.offset + ipvs::ipv4_hdr::check, 2);
        mask(want, got, r0.info.l4.check_offset, 2);
        // The re-parse sees the new quote.
        require((snat ? r1.info.inner.ip.daddr : r1.info.inner.ip.saddr) == to);
        require((snat ? r1.info.inner.dport : r1.info.inner.sport) == to_port);
    } else if (l4) {
        ipvs::store_be16(want.data() + r0.info.l4.offset + (snat ? 0 : 2), to_port);
        mask(want, got, r0.info.l4.check_offset, ip.protocol == ipproto::sctp ? 4 : 2);
        require((snat ? r1.info.l4.sport : r1.info.l4.dport) == to_port);
        require((snat ? r1.info.l4.dport : r1.info.l4.sport) == (snat ? r0.info.l4.dport : r0.info.l4.sport));
    }
    if (ip.af == family::v4) mask(want, got, ip.offset + ipvs::ipv4_hdr::check, 2);
    require(want == got);
    require((snat ? ip1.saddr : ip1.daddr) == to);
    require((snat ? ip1.daddr : ip1.saddr) == (snat ? ip.daddr : ip.saddr));

    // Checksums.
    if (ip.af == family::v4) require(ipvs::verify_ip_header(v.buf, ip1) == ipvs::verify_status::ok);
    if (!r0.ok() || ip.is_fragment()) return; // a fragment's L4 sum covers bytes not here
    if (icmp) {
        require(ipvs::verify_l4(v.buf, r1.info) == ipvs::verify_status::ok);
        const auto& q = r1.info.inner.ip;
        if (q.af == family::v4 && q.offset + q.header_len <= v.buf.size())
            require(ipvs::internet_checksum(
                        std::span<const std::byte>(v.buf).subspan(q.offset, q.header_len)) == 0);
        return;
    }
    const bool partial = cs0 == ipvs::csum_state::partial;
    const auto before = l4_status(in, r0.info, partial);
    const auto after = l4_status(v.buf, r1.info, partial);
    const std::uint16_t old_port = snat ? r0.info.l4.sport : r0.info.l4.dport;
    if (ip.protocol == ipproto::sctp) {
        require(after == ((old_port != to_port || partial) ? ipvs::verify_status::ok : before));
    } else if (ip.protocol == ipproto::udp && !partial &&
               ipvs::load_be16(in.data() + r0.info.l4.check_offset) == 0) {
        require(after == ipvs::verify_status::ok); // the datagram gains a full checksum
    } else {
        require(after == before);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 19) return 0;
    const std::uint8_t ctl = data[0];
    const bool snat = (ctl & 1) != 0;
    const auto cs0 = static_cast<ipvs::csum_state>((ctl >> 1) & 3);
    fuzz_view v;
    v.l3 = (ctl >> 3) & 3;
    v.cs = cs0;
    const auto* pkt = reinterpret_cast<const std::byte*>(data + 19);
    v.buf.assign(pkt, pkt + (size - 19));
    const std::vector<std::byte> in = v.buf;

    const auto r0 = ipvs::parse(v);
    const family af = r0.info.ip.af;
    const bool wrong_family = (ctl & 0x20) != 0;
    const family to_af = wrong_family ? (af == family::v4 ? family::v6 : family::v4) : af;
    std::array<std::uint8_t, 16> ab{};
    std::memcpy(ab.data(), data + 3, 16);
    ipvs::inet_addr to = ipvs::inet_addr::v6(ab);
    if (to_af == family::v4)
        to = ipvs::inet_addr::v4(ipvs::load_be32(reinterpret_cast<const std::byte*>(ab.data())));
    std::uint16_t to_port = static_cast<std::uint16_t>(data[1] << 8 | data[2]);
    if (ctl & 0x40) to_port = snat ? r0.info.l4.sport : r0.info.l4.dport;

    const auto st = ipvs::nat_rewrite(v, snat ? ipvs::nat_dir::snat : ipvs::nat_dir::dnat, to, to_port);
    if (st != ipvs::nat_status::ok) {
        require(v.buf == in && v.cs == cs0); // all-or-nothing
        return 0;
    }
    require(!wrong_family);
    check_ok(in, v, r0, snat, to, to_port, cs0);
    return 0;
}
