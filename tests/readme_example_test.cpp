// SPDX-License-Identifier: MIT
// The README's short example, compiled and run, so the front door never shows code that does not work.
#include <doctest/doctest.h>

#include <ipvs/ipvs.hpp>

#include "support/build.hpp"

namespace readme {
struct frame {
    unsigned char* buf;
    std::uint32_t len;
};
} // namespace readme

template <>
struct ipvs::packet_traits<readme::frame> {
    static std::span<std::byte> bytes(readme::frame& f) noexcept {
        return {reinterpret_cast<std::byte*>(f.buf), f.len};
    }
    static std::span<const std::byte> bytes(const readme::frame& f) noexcept {
        return {reinterpret_cast<const std::byte*>(f.buf), f.len};
    }
    static std::size_t l3_offset(const readme::frame&) noexcept { return 14; } // Ethernet
};

namespace readme {
bool to_vip(const frame& f, const ipvs::inet_addr& vip) {
    const ipvs::parse_result r = ipvs::parse(f); // one pass: offsets and facts, or a status
    if (!r.ok()) return false;                   // e.g. parse_status::tcp_doff_past_end
    return r.info.ip.daddr == vip && r.info.l4.dport == 80 &&
           ipvs::verify_l4(ipvs::packet_bytes(f), r.info) == ipvs::verify_status::ok;
}
} // namespace readme

TEST_CASE("README example: a foreign frame type parses and verifies") {
    auto pkt = ipvs::test::ipv4_packet(ipvs::ipproto::tcp, "10.1.0.1", "10.0.0.100",
                                       ipvs::test::tcp_segment(40000, 80, ipvs::tcp_flag::syn));
    std::vector<unsigned char> buf(14, 0);
    buf.insert(buf.end(), pkt.begin(), pkt.end());
    readme::frame f{buf.data(), static_cast<std::uint32_t>(buf.size())};
    CHECK(readme::to_vip(f, *ipvs::parse_addr("10.0.0.100")));
    CHECK_FALSE(readme::to_vip(f, *ipvs::parse_addr("10.0.0.101")));
    buf[14 + 20 + 16] ^= 1; // break the TCP checksum
    CHECK_FALSE(readme::to_vip(f, *ipvs::parse_addr("10.0.0.100")));
}
