#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job (README). Until the pcap NAT demo lands, the stand-in the foundation issue allows:
# build in Release and run the checksum benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DIPVS_BUILD_TESTS=OFF -DIPVS_BUILD_EXAMPLES=OFF \
      -DIPVS_BUILD_BENCHMARKS=ON > /dev/null
cmake --build build/demo --target checksum_bench
exec build/demo/bench/checksum_bench --benchmark_min_time=0.1 "$@"
