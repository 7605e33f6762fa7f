#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages the given group needs (as root). Skips apt entirely when all are present.
#   deps.sh test   — compilers, doctest, json, benchmark + baselines, libpcap, fuzzing runtime, tshark,
#                    the namespace tests (iproute2 ethtool nftables curl python3) and DPDK
#   deps.sh demo   — what the NAT demo needs
set -euo pipefail
group=${1:-test}
common=(cmake ninja-build g++ pkg-config)
case "$group" in
  test) pkgs=("${common[@]}" clang-14 libclang-rt-14-dev clang-format-14 doctest-dev nlohmann-json3-dev
              libbenchmark-dev libboost1.81-dev libabsl-dev libpcap-dev git tshark iproute2
              ethtool nftables curl python3 libdpdk-dev) ;;
  demo) pkgs=("${common[@]}" libpcap-dev) ;;
  *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then echo "deps.sh: need root to install: ${missing[*]}" >&2; exit 1; fi
  echo "deps.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
