// SPDX-License-Identifier: MIT
// A downstream program: parses a SYN and fixes its checksum through <ipvs/ipvs.hpp> only.
#include <cstdio>
#include <vector>

#include <ipvs/ipvs.hpp>

int main() {
    // 10.1.0.1:40000 → 10.0.0.100:80, SYN, no options.
    std::vector<std::uint8_t> pkt = {0x45, 0, 0,  40, 0,    0,    0x40, 0,    64, 6,  0, 0, 10, 1,
                                     0,    1, 10, 0,  0,    100,  0x9c, 0x40, 0,  80, 0, 0, 0,  1,
                                     0,    0, 0,  0,  0x50, 0x02, 0xff, 0xff, 0,  0,  0, 0};
    const auto r = ipvs::parse(pkt);
    if (!r.ok() || r.info.l4.dport != 80) return 1;
    const auto vip = *ipvs::parse_addr("10.0.0.100");
    std::printf("ipvs %d.%d.%d: %s → port %u, vip %s\n", ipvs::version_major, ipvs::version_minor,
                ipvs::version_patch, ipvs::to_string(r.status), r.info.l4.dport,
                r.info.ip.daddr == vip ? "matches" : "differs");
    return 0;
}
