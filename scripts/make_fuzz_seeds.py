#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpora of the nat, director and rules fuzz targets from the recorded kernel frames
# (tests/data/kernel-6.1/{nat,fwd}.jsonl) and the sample rules; run from anywhere, output is deterministic.
#
# Seed formats (see the header comment of each fuzz/<name>_fuzz.cpp):
#   nat       ctl(1) port(2) addr(16) packet: each recorded input frame's IP packet, DNAT to the
#             recorded real server for client-side frames and SNAT to the VIP for server-side ones,
#             in checksum states none and partial.
#   director  records op(1) arg(1) len(2) packet: each recorded case alone, each family's whole case
#             sequence in file order (the kernel ran them in that order on one director), and that
#             sequence with configuration changes (weight 0, dest delete, sysctl toggles, clock
#             jumps both ways) between the packets.
#   rules     examples/data/sample.rules, the recorded ipvsadm-save text of the rules test, and a
#             few lines for each option family.
import hashlib
import json
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parent.parent
data = root / "tests" / "data" / "kernel-6.1"
out = root / "fuzz" / "corpus"


def ip_packet(frame_hex):
    """The IP packet of an Ethernet frame (VLAN tags skipped)."""
    f = bytes.fromhex(frame_hex)
    off, etype = 14, struct.unpack("!H", f[12:14])[0]
    while etype in (0x8100, 0x88A8):
        etype = struct.unpack("!H", f[off + 2:off + 4])[0]
        off += 4
    return f[off:]


def write(name, blob):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(blob).hexdigest()[:16]).write_bytes(blob)


def addr16(text):
    import ipaddress
    a = ipaddress.ip_address(text)
    return a.packed.ljust(16, b"\0")


def cases():
    for fn in ("nat.jsonl", "fwd.jsonl"):
        p = data / fn
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            c = json.loads(line)
            if "input_hex" in c:
                yield fn, c


def nat_seeds():
    for _, c in cases():
        pkt = ip_packet(c["input_hex"])
        v6 = c["af"] == 6
        snat = c["dir"].startswith("out")
        to = ("fd00::100" if v6 else "10.0.0.100") if snat else ("fd00:2::b" if v6 else "10.0.2.11")
        port = 80 if snat else 8080
        for cs in (0, 3):  # csum_state none, partial
            ctl = (1 if snat else 0) | cs << 1
            write("nat", bytes([ctl]) + struct.pack("!H", port) + addr16(to) + pkt)


def record(op, arg, pkt):
    return bytes([op, arg]) + struct.pack("!H", len(pkt)) + pkt


def director_seeds():
    seqs = {4: [], 6: []}
    for fn, c in cases():
        side = 1 if c["dir"].startswith("out") else 0
        rec = record(side, 0, ip_packet(c["input_hex"]))
        write("director", rec)
        if fn == "nat.jsonl":
            seqs[c["af"]].append((side, ip_packet(c["input_hex"])))
    # Config actions (op bits 1-3) with their argument, cycled between the packets of a sequence.
    actions = [(1, 2), (3, 0), (7, 0), (4, 1), (2, 5), (5, 1), (7, 3), (1, 255), (6, 1), (6, 2)]
    for af, seq in seqs.items():
        if not seq:
            continue
        write("director", b"".join(record(side, 0, p) for side, p in seq))
        mixed = b""
        for i, (side, p) in enumerate(seq):
            act, arg = actions[i % len(actions)]
            svc = 0 if af == 4 else 3  # op bits 5-7: the TCP service of the family
            mixed += record(side | act << 1 | svc << 5, arg, p)
        write("director", mixed)


def rules_seeds():
    sample = root / "examples" / "data" / "sample.rules"
    if sample.exists():
        write("rules", sample.read_bytes())
    texts = [
        "-A -t 10.0.0.100:180 -s rr\n-a -t 10.0.0.100:180 -r 10.0.2.18:7180 -m -w 1\n"
        "-A -t 10.0.0.100:183 -s rr -p 60\n-a -t 10.0.0.100:183 -r 10.0.2.18:7183 -m -w 1\n"
        "-A -u 10.0.0.100:181 -s rr\n-a -u 10.0.0.100:181 -r 10.0.2.18:7181 -m -w 1\n"
        "-A --sctp-service 10.0.0.100:182 -s rr\n"
        "-a --sctp-service 10.0.0.100:182 -r 10.0.2.18:7182 -m -w 1\n"
        "-A -t [fd00::100]:180 -s rr\n-a -t [fd00::100]:180 -r [fd00:2::12]:7180 -m -w 1\n",
        "-A -t 10.0.0.1:0 -s sh -p 120 -M 255.255.255.0 -b sh-fallback,sh-port\n"
        "-a -t 10.0.0.1:0 -r 10.0.2.1 -g -w 3 -x 100 -y 50\n",
        "-A -u [fd00::1]:53 -s mh -o -b mh-port\n-a -u [fd00::1]:53 -r [fd00:2::1]:5353 -m -w 0\n",
        "-A -f 16 -6 -s wlc -p\n-a -f 16 -6 -r 10.0.2.5 -i --tun-type gue --tun-port 6080 --tun-csum\n"
        "--mark udp [fd00:3::/64]:53=16\n",
        "ipvsadm -A -f 7 -s lblcr\n--add-server --fwmark-service=7 --real-server=10.0.2.9:0 --ipip"
        " --tun-type gre --tun-nocsum -w7\n--mark 10.0.3.0/24=7\n--mark tcp 10.0.4.0/24:80=7 # a comment\n",
        "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.2.11:8080 -m -w 3x\n",
    ]
    for t in texts:
        write("rules", t.encode())


if __name__ == "__main__":
    nat_seeds()
    director_seeds()
    rules_seeds()
    for name in ("nat", "director", "rules"):
        print(name, len(list((out / name).iterdir())), "seeds")
