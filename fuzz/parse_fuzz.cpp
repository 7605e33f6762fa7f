// SPDX-License-Identifier: MIT
// libFuzzer target: the parser and checksum verification on arbitrary bytes, at every L3 offset 0..3.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <ipvs/ethernet.hpp>
#include <ipvs/parse.hpp>
#include <ipvs/verify.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto b = std::as_bytes(std::span(data, size));
    // As a bare IP packet, and as an Ethernet frame.
    for (int framing = 0; framing < 2; ++framing) {
        std::size_t off = 0;
        if (framing == 1) {
            const auto eth = ipvs::parse_ethernet(b);
            if (!eth) break;
            off = eth->l3_offset;
        }
        const auto r = ipvs::parse(b, off);
        if (r.ok()) {
            // Invariants every later stage relies on: the headers lie inside the buffer.
            const auto& ip = r.info.ip;
            if (ip.offset + ip.header_len > size || ip.end() > size) std::abort();
            if (r.info.l4.offset + r.info.l4.length > size) std::abort();
            if (r.info.l4.check_offset != 0 && r.info.l4.check_offset + 2 > size) std::abort();
            if (r.info.inner.present && r.info.inner.l4_offset + r.info.inner.l4_available > size)
                std::abort();
            (void)ipvs::verify_ip_header(b, ip);
            (void)ipvs::verify_l4(b, r.info);
        }
    }
    return 0;
}
