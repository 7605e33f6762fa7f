#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end test of pcap_nat's live mode with real TCP stacks (run as root; CTest: pcap_nat_live_netns).
#
#   live_test.sh PCAP_NAT [REQUESTS]
#
# Builds, in network namespaces it creates and always removes:
#
#   client (10.99.1.2, .3) ── veth ── director (dc 10.99.1.1 | ds 10.99.2.1) ── veth ── switch (bridge)
#                                       pcap_nat --live                               ├── rs1 10.99.2.11
#                                                                                      ├── rs2 10.99.2.12
#                                                                                      └── rs3 10.99.2.13
#
# The VIP 10.99.100.1 is on no interface; the director's kernel does not forward (ip_forward 0) and drops
# in nftables prerouting everything not addressed to itself, so only pcap_nat moves traffic. Every
# namespace has static routes and permanent neighbour entries (no ARP); TX checksum offload is off on the
# veths so captured frames carry final checksums. Real servers run python3's http.server; the client is curl.
# IPv6 likewise (fd99:…). Asserts: every request answered; rr (port 80, IPv4 and IPv6) splits exactly evenly; wrr 3:2:1 (port 81) in exact
# proportion; persistence (port 82, -p) keeps each client address on one server; the director's stats agree.
set -euo pipefail
pcap_nat=$(readlink -f "${1:?usage: live_test.sh PCAP_NAT [REQUESTS]}")
requests=${2:-300}
(( requests % 6 == 0 )) || { echo "REQUESTS must be a multiple of 6"; exit 2; }
source "$(dirname "$0")/netns_lib.sh"
ns_init

ns_add c d s r1 r2 r3
veth c c0 d dc
veth d ds s sd
for i in 1 2 3; do veth r$i r0 s s$i; done
bridge s sd s1 s2 s3

x c ip addr add 10.99.1.2/24 dev c0
for a in 3 4 5; do x c ip addr add 10.99.1.$a/24 dev c0; done
x d ip addr add 10.99.1.1/24 dev dc
x d ip addr add 10.99.2.1/24 dev ds
x c ip -6 addr add fd99:1::2/64 dev c0 nodad # IPv6 beside IPv4 (nodad: usable at once)
x d ip -6 addr add fd99:1::1/64 dev dc nodad
x d ip -6 addr add fd99:2::1/64 dev ds nodad

# routes and permanent neighbours: nothing waits on ARP / ND
x c ip route add 10.99.100.0/24 via 10.99.1.1
x c ip neigh add 10.99.1.1 lladdr "$(mac d dc)" dev c0 nud permanent
x c ip -6 route add fd99:100::/64 via fd99:1::1
x c ip -6 neigh add fd99:1::1 lladdr "$(mac d dc)" dev c0 nud permanent
for a in 10.99.1.2 10.99.1.3 10.99.1.4 10.99.1.5 fd99:1::2; do
  x d ip neigh add $a lladdr "$(mac c c0)" dev dc nud permanent
done
for i in 1 2 3; do
  x r$i ip addr add 10.99.2.1$i/24 dev r0
  x r$i ip -6 addr add fd99:2::1$i/64 dev r0 nodad
  x d ip neigh add 10.99.2.1$i lladdr "$(mac r$i r0)" dev ds nud permanent
  x d ip -6 neigh add fd99:2::1$i lladdr "$(mac r$i r0)" dev ds nud permanent
  x r$i ip route add default via 10.99.2.1
  x r$i ip neigh add 10.99.2.1 lladdr "$(mac d ds)" dev r0 nud permanent
  x r$i ip -6 route add default via fd99:2::1
  x r$i ip -6 neigh add fd99:2::1 lladdr "$(mac d ds)" dev r0 nud permanent
done
director_kernel_off d

# real servers: each answers /id with its name
for i in 1 2 3; do
  mkdir -p "$work/rs$i"
  printf 'rs%s' $i > "$work/rs$i/id"
  http_server r$i 10.99.2.1$i "$work/rs$i"
  http_server r$i fd99:2::1$i "$work/rs$i"
done

cat > "$work/rules" << 'EOF'
-A -t 10.99.100.1:80 -s rr
-a -t 10.99.100.1:80 -r 10.99.2.11:8080 -m -w 1
-a -t 10.99.100.1:80 -r 10.99.2.12:8080 -m -w 1
-a -t 10.99.100.1:80 -r 10.99.2.13:8080 -m -w 1
-A -t 10.99.100.1:81 -s wrr
-a -t 10.99.100.1:81 -r 10.99.2.11:8080 -m -w 3
-a -t 10.99.100.1:81 -r 10.99.2.12:8080 -m -w 2
-a -t 10.99.100.1:81 -r 10.99.2.13:8080 -m -w 1
-A -t 10.99.100.1:82 -s rr -p 300
-a -t 10.99.100.1:82 -r 10.99.2.11:8080 -m -w 1
-a -t 10.99.100.1:82 -r 10.99.2.12:8080 -m -w 1
-a -t 10.99.100.1:82 -r 10.99.2.13:8080 -m -w 1
-A -t [fd99:100::1]:80 -s rr
-a -t [fd99:100::1]:80 -r [fd99:2::11]:8080 -m -w 1
-a -t [fd99:100::1]:80 -r [fd99:2::12]:8080 -m -w 1
-a -t [fd99:100::1]:80 -r [fd99:2::13]:8080 -m -w 1
EOF

start_director main d --rules "$work/rules" --live --client-if dc --server-if ds --trace

fail=0
# Each run uses its own client address. Reusing one would let the client's port choice repeat a 4-tuple
# towards a real server that still holds it in TIME_WAIT from another service's run; that server then
# answers the SYN with an old ACK, the client resets, and its retransmitted SYN is rescheduled (Linux
# IPVS does the same: CLOSE + SYN is a new connection) — correct, but no longer an exact split.
# run PORT COUNT SRC [VIP] → "rsN code" lines in $work/out
run() {
  x c curl -sS --interface "$3" --max-time 10 --retry 0 -w ' %{http_code} %{time_total}\n' \
    "http://${4:-10.99.100.1}:$1/id?[1-$2]" > "$work/out.raw" 2> "$work/curl.err" || true
  cut -d' ' -f1,2 "$work/out.raw" > "$work/out"
  if grep -qv ' 200 ' "$work/out.raw"; then echo "curl:"; cat "$work/curl.err"; grep -v ' 200 ' "$work/out.raw"; fi
}
count() { grep -c "^$1 200$" "$work/out" || true; }
check_split() { # NAME PORT N1 N2 N3 [SRC VIP]
  local name=$1 port=$2
  run "$port" "$requests" "${6:-10.99.1.2}" "${7:-10.99.100.1}"
  local ok; ok=$(grep -c ' 200$' "$work/out" || true)
  local got="$(count rs1) $(count rs2) $(count rs3)"
  echo "$name (port $port): $ok/$requests answered; per server $got (expected $3 $4 $5)"
  [[ $ok -eq $requests && $got == "$3 $4 $5" ]] || { echo "FAIL: $name"; fail=1; }
}
check_split rr 80 $((requests / 3)) $((requests / 3)) $((requests / 3))
check_split wrr 81 $((requests / 2)) $((requests / 3)) $((requests / 6)) 10.99.1.4
check_split "rr over IPv6" 80 $((requests / 3)) $((requests / 3)) $((requests / 3)) fd99:1::2 "[fd99:100::1]"

# persistence: each client address stays on one server
for src in 10.99.1.3 10.99.1.5; do
  run 82 $((requests / 5)) $src
  ok=$(grep -c ' 200$' "$work/out" || true)
  servers=$(sort -u "$work/out" | wc -l)
  echo "persistent (port 82) from $src: $ok/$((requests / 5)) answered by $servers server(s): $(sort -u "$work/out" | tr '\n' ' ')"
  [[ $ok -eq $((requests / 5)) && $servers -eq 1 ]] || { echo "FAIL: persistence from $src"; fail=1; }
done

kill -TERM $main_pid
wait $main_pid || { echo "FAIL: pcap_nat exited with $?"; fail=1; }
echo "--- director's final report:"
grep -v '^new ' "$work/main-director.log"
# the director counted what the clients saw: rr and wrr connections on their dests
total=$((requests * 3 + 2 * requests / 5))
conns=$(awk '/^  -> (10\.99\.2\.1[123]|\[fd99:2::1[123]\]):8080 / {s += $3} END {print s + 0}' "$work/main-director.log")
echo "connections counted by the director: $conns (requests made: $total)"
[[ $conns -eq $total ]] || { echo "FAIL: the director's connection counters"; fail=1; }
grep -q "inject errors 0" "$work/main-director.log" || { echo "FAIL: inject errors"; fail=1; }
((fail == 0)) && echo "PASS"
exit $fail
