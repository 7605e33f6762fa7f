#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Failover of two pcap_nat directors kept in step by LVS's connection sync (run as root; CTest:
# examples_pcap_nat_failover_netns).
#
#   failover_test.sh PCAP_NAT [TRANSFERS]
#
#   client 10.99.1.2 ── switch ──┬── A dc (master)   A ds ──┬── switch ──┬── rs1 10.99.2.11
#                                └── B dc (backup)   B ds ──┘            ├── rs2 10.99.2.12
#                                                                        └── rs3 10.99.2.13
#
# Both directors run pcap_nat live with the same rules; A with `--start-daemon master`, B with
# `--start-daemon backup`, syncing over multicast 224.0.0.81:8848 on their server-side interfaces.
# The client reaches the VIP through the gateway 10.99.1.1 and the real servers answer through the
# gateway 10.99.2.1; neither address is on an interface: each is a permanent neighbour entry pointing at
# A's MACs. Long HTTP downloads (rate-limited, ~10 s each) start through A; after the handshakes have
# been synced, A is killed (SIGKILL: no goodbye) and both gateways move to B, as keepalived's gratuitous
# ARP would make the neighbours do. Every download must complete byte-exact, none reset: B carried on
# the connections A had made.
set -euo pipefail
pcap_nat=$(readlink -f "${1:?usage: failover_test.sh PCAP_NAT [TRANSFERS]}")
transfers=${2:-6}
source "$(dirname "$0")/netns_lib.sh"
ns_init

ns_add c a b l s r1 r2 r3
veth c c0 l lc
veth a dc l la
veth b dc l lb
bridge l lc la lb
veth a ds s sa
veth b ds s sb
for i in 1 2 3; do veth r$i r0 s s$i; done
bridge s sa sb s1 s2 s3

x c ip addr add 10.99.1.2/24 dev c0
x a ip addr add 10.99.1.11/24 dev dc
x b ip addr add 10.99.1.12/24 dev dc
x a ip addr add 10.99.2.2/24 dev ds # the sync daemon's source address
x b ip addr add 10.99.2.3/24 dev ds
x c ip route add 10.99.100.0/24 via 10.99.1.1
# a small receive buffer, so the servers cannot push a whole file into it before the failover: every
# download keeps needing the network until its end
x c sysctl -qw net.ipv4.tcp_rmem="4096 65536 131072"
for d in a b; do
  x $d ip neigh add 10.99.1.2 lladdr "$(mac c c0)" dev dc nud permanent
  director_kernel_off $d
done
for i in 1 2 3; do
  x r$i ip addr add 10.99.2.1$i/24 dev r0
  x r$i ip route add default via 10.99.2.1
  for d in a b; do x $d ip neigh add 10.99.2.1$i lladdr "$(mac r$i r0)" dev ds nud permanent; done
done
# gateways point at A (the master holds the VIP)
point_at() {
  x c ip neigh replace 10.99.1.1 lladdr "$(mac $1 dc)" dev c0 nud permanent
  for i in 1 2 3; do x r$i ip neigh replace 10.99.2.1 lladdr "$(mac $1 ds)" dev r0 nud permanent; done
}
point_at a

mkdir -p "$work/www"
head -c $((3 * 1024 * 1024)) /dev/urandom > "$work/www/big"
want=$(sha256sum < "$work/www/big")
for i in 1 2 3; do http_server r$i 10.99.2.1$i "$work/www"; done

cat > "$work/rules" << 'EOF'
-A -t 10.99.100.1:80 -s rr
-a -t 10.99.100.1:80 -r 10.99.2.11:8080 -m -w 1
-a -t 10.99.100.1:80 -r 10.99.2.12:8080 -m -w 1
-a -t 10.99.100.1:80 -r 10.99.2.13:8080 -m -w 1
EOF
start_director a a --rules "$work/rules" --live --client-if dc --server-if ds --quiet \
  --start-daemon master --mcast-interface ds --syncid 7
start_director b b --rules "$work/rules" --live --client-if dc --server-if ds \
  --start-daemon backup --mcast-interface ds --syncid 7

# downloads at 300 kB/s: 3 MiB take ~10 s each
for t in $(seq "$transfers"); do
  x c curl -sS --limit-rate 300k --max-time 60 -o "$work/got$t" -w '%{http_code} %{size_download} bytes in %{time_total} s\n' \
    http://10.99.100.1/big > "$work/curl$t.out" 2> "$work/curl$t.err" &
  eval "curl_pid$t=$!"
done
sleep 3.5 # the handshakes are synced at once (a state change), the message leaves within 2 s
kill -USR1 $b_pid # the backup's table before the failover, for the log
sleep 0.3
synced=$(grep -c 'ESTABLISHED' "$work/b-director.log" || true)
echo "backup's table before the failover: $synced ESTABLISHED connections (downloads running: $transfers)"

kill -9 $a_pid
point_at b
echo "master killed at $(date +%T.%N | cut -c1-12); gateways now point at the backup"

fail=0
for t in $(seq "$transfers"); do
  pid_var=curl_pid$t
  if wait ${!pid_var}; then rc=0; else rc=$?; fi
  got=$(sha256sum < "$work/got$t" 2> /dev/null || echo none)
  echo "download $t: curl exit $rc, $(cat "$work/curl$t.out") $(cat "$work/curl$t.err")"
  [[ $rc -eq 0 && $got == "$want" ]] || { echo "FAIL: download $t"; fail=1; }
done
[[ $synced -ge $transfers ]] || { echo "FAIL: the backup held $synced synced connections before the failover"; fail=1; }

kill -TERM $b_pid
wait $b_pid || { echo "FAIL: the backup's pcap_nat exited with $?"; fail=1; }
echo "--- backup's final report:"
grep -v '^TCP' "$work/b-director.log" | tail -n 12
fwd=$(sed -nE 's/.*forwarded in ([0-9]+), out ([0-9]+).*/\1 \2/p' "$work/b-director.log" | tail -n 1)
echo "the backup forwarded (in out): $fwd"
read -r fin fout <<< "$fwd"
((fin > 0 && fout > 0)) || { echo "FAIL: the backup forwarded nothing"; fail=1; }
((fail == 0)) && echo "PASS"
exit $fail
