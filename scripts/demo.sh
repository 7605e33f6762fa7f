#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job (README): the pcap NAT demo on the bundled capture. Builds pcap_nat (Release), runs the
# capture through it, writes build/demo/out.pcap and prints the director's statistics, its connection
# table at the end and the drop counts. Extra arguments go to pcap_nat.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DIPVS_BUILD_TESTS=OFF -DIPVS_BUILD_BENCHMARKS=OFF \
      -DIPVS_BUILD_EXAMPLES=ON > /dev/null
cmake --build build/demo --target pcap_nat
exec build/demo/examples/pcap_nat --rules examples/data/sample.rules --in examples/data/sample.pcap \
     --out build/demo/out.pcap "$@"
