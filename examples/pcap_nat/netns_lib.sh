# SPDX-License-Identifier: MIT
# Shared by the namespace tests of pcap_nat (live_test.sh, failover_test.sh): sourced, not run.
# Namespaces are named $p<name> with a per-run prefix, registered in NSES and removed by ns_cleanup
# (installed as the EXIT trap by ns_init), whatever happens.

ns_init() { # ns_init → sets p, work; checks root and tools; installs the cleanup trap
  if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root (network namespaces)"; exit 77; fi
  local tool
  for tool in ip nft ethtool curl python3; do
    command -v $tool > /dev/null || { echo "SKIP: $tool not installed (scripts/deps.sh test installs it)"; exit 77; }
  done
  p=ipvs$$ # unique per run, so parallel runs never collide
  work=$(mktemp -d)
  NSES=()
  trap ns_cleanup EXIT INT TERM
}

ns_cleanup() {
  local rc=$? ns
  for ns in "${NSES[@]}"; do
    ip netns pids "$ns" 2> /dev/null | xargs -r kill -9 2> /dev/null || true
    ip netns del "$ns" 2> /dev/null || true
  done
  if ((rc != 0)); then
    local log
    for log in "$work"/*director*.log; do [[ -f $log ]] && { echo "--- $log:"; tail -n 60 "$log"; }; done
  fi
  [[ -n ${LIVE_TEST_KEEP:-} ]] && cp "$work"/*director*.log "$LIVE_TEST_KEEP"/ 2> /dev/null
  rm -rf "$work"
  exit $rc
}

ns_add() { local n; for n; do ip netns add $p$n; NSES+=($p$n); ip netns exec $p$n ip link set lo up; done; }
x() { local ns=$1; shift; ip netns exec "$p$ns" "$@"; }
mac() { x "$1" cat /sys/class/net/"$2"/address; }

# veth NS1 IF1 NS2 IF2: a pair created straight inside the namespaces (no names in the root namespace),
# up, with checksum offload and GRO off so captured frames carry final checksums and wire sizes.
veth() {
  ip link add "$2" netns $p$1 type veth peer name "$4" netns $p$3
  local l
  for l in "$1 $2" "$3 $4"; do
    set -- $l
    x $1 ethtool -K $2 tx off rx off gro off > /dev/null 2>&1 || x $1 ethtool -K $2 tx off > /dev/null
    x $1 ip link set $2 up
  done
}

# bridge NS PORT...: a switch in NS
bridge() {
  local ns=$1 port; shift
  x $ns ip link add br0 type bridge
  x $ns ip link set br0 up
  for port; do x $ns ip link set $port master br0; done
}

# director_kernel_off NS: the director's own kernel neither answers nor forwards (only pcap_nat moves
# traffic); the LVS sync multicast is let through to the sync daemon.
director_kernel_off() {
  x $1 sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
  x $1 nft -f - << 'EOF'
table inet ipvs_demo {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    ip daddr 224.0.0.81 udp dport 8848 accept
    fib daddr type != local drop
  }
}
EOF
}

# http_server NS ADDR DIR: a threading HTTP server (python3's http.server) on ADDR:8080 serving DIR; waits
# until it answers. server_bind is overridden because the stock one resolves its own name (getfqdn),
# which waits on DNS timeouts in a namespace without a resolver.
http_server() {
  x $1 python3 -c '
import functools, socket, socketserver, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "rs", self.server_address[1]
handler = functools.partial(SimpleHTTPRequestHandler, directory=sys.argv[2])
Server((sys.argv[1], 8080), handler).serve_forever()
' "$2" "$3" > "$work/http-$1-${2//[:\[\]]/_}.log" 2>&1 &
  local a=$2 i
  [[ $a == *:* ]] && a="[$a]"
  for i in $(seq 100); do x $1 curl -s -o /dev/null "http://$a:8080/" && return 0; sleep 0.1; done
  echo "FAIL: http server $2 in $1 did not start"; return 1
}

# start_director NAME NS ARGS...: pcap_nat in NS, log in $work/NAME-director.log; waits for "live on".
start_director() {
  local name=$1 ns=$2; shift 2
  ip netns exec $p$ns "$pcap_nat" "$@" > "$work/$name-director.log" 2>&1 &
  eval "${name}_pid=$!"
  local i
  for i in $(seq 100); do grep -q "live on" "$work/$name-director.log" && return 0; sleep 0.1; done
  echo "FAIL: pcap_nat ($name) did not start"; cat "$work/$name-director.log"; return 1
}
