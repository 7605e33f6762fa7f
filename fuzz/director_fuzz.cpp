// SPDX-License-Identifier: MIT
// libFuzzer target: the director fed packets from both sides with configuration changes, sysctl toggles and
// clock jumps in between; its bookkeeping invariants checked after every step, and its fast paths
// (established lanes, in_burst / out_burst) checked against a second director on the general path.
//
// Input: a stream of records `op(1) arg(1) len(2) bytes(len)`.
//   op bit 0      side: in() (client) / out() (real server)
//   op bits 1–3   what to do first, with `arg`:
//                 0 nothing; 1 clock forward (arg·7 s, arg 255: a day) and a poll (odd arg: budget 8);
//                 2 clock backward arg·3 s and a poll; 3 edit a dest (weight arg/2 % 4 — 0 is quiescent —,
//                 upper threshold 2 when arg ≥ 128); 4 delete a dest; 5 add a dest from a pool;
//                 6 arg ≥ 128: edit_service to another scheduler; else delete the service, or add it
//                 back with another scheduler; 7 toggle a sysctl (expire_nodest_conn, sloppy_tcp,
//                 sloppy_sctp, secure_tcp 0 ↔ 3, expire_quiescent_template)
//   op bit 4      in() with fwmark 16
//   op bits 5–7   which of the 8 services the action is about
//   action 0 with odd arg: the packet joins a burst (same side and mark), played through in_burst /
//                 out_burst when a record that does not join it comes, or at the end
// Two directors see the same stream: `fast` (default: lanes and batched bursts) and `ref`
// (director_config::fast_paths off, every packet through in() / out() alone). Their verdicts, the
// rewritten bytes, replies, connection listings and stats must be identical.
// Invariants after every step (spec §1.6, §1.8, §3): no dest counter negative; every dest's active /
// inactive / persist counters equal the connections and templates bound to it (trashed dests
// included, while connections still point at them); each table's size equals the entries
// for_each_conn visits and stays within capacity. Per packet: a forwarded NAT packet re-parses with
// the dest's address (in) or a VIP (out), an IPv4 header checksum that verifies, and an L4 checksum
// that verifies whenever the input's did; a reply is a well-formed ICMP error.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include <ipvs/director.hpp>
#include <ipvs/io.hpp>
#include <ipvs/verify.hpp>

namespace {

using ipvs::family;
namespace ipproto = ipvs::ipproto;

constexpr std::array<std::string_view, 6> schedulers = {"rr", "wlc", "sh", "mh", "lc", "wrr"};

struct slot {
    ipvs::service_config cfg;
    std::array<ipvs::endpoint, 4> pool{}; ///< dest endpoints this service may get
    ipvs::director::svc_entry* live = nullptr;
};

struct world {
    ipvs::director d;
    std::array<slot, 8> slots{};
    std::vector<ipvs::inet_addr> vips;

    explicit world(bool fast_paths)
        : d(ipvs::director_config{.capacity_v4 = 256, .capacity_v6 = 256, .fast_paths = fast_paths}) {
        // The services of tests/data/kernel-6.1/nat.jsonl (so its frames, the seeds, hit them), the real
        // server there first in each pool; the last pool entry has port 0 (keep the packet's port).
        const std::array<const char*, 4> rs4 = {"10.0.2.11", "10.0.2.12", "10.0.2.13", "10.0.2.14"};
        const std::array<const char*, 4> rs6 = {"fd00:2::b", "fd00:2::c", "fd00:2::d", "fd00:2::e"};
        auto pool = [&](slot& s, std::uint16_t port) {
            for (std::size_t k = 0; k < 4; ++k)
                s.pool[k] = {*ipvs::parse_addr(s.cfg.af == family::v4 ? rs4[k] : rs6[k]),
                             k == 3 ? std::uint16_t{0} : port};
        };
        int i = 0;
        for (const char* vip : {"10.0.0.100", "fd00::100"})
            for (std::uint8_t proto : {ipproto::tcp, ipproto::udp, ipproto::sctp}) {
                auto& s = slots[static_cast<std::size_t>(i++)];
                const std::uint16_t vport = proto == ipproto::tcp ? 80 : proto == ipproto::udp ? 53 : 3868;
                s.cfg.vip = {*ipvs::parse_addr(vip), vport};
                s.cfg.af = s.cfg.vip.addr.af;
                s.cfg.protocol = proto;
                s.cfg.scheduler = proto == ipproto::tcp ? "wlc" : "rr";
                s.cfg.persistent = proto == ipproto::udp;
                pool(s, proto == ipproto::tcp ? 8080 : proto == ipproto::udp ? 5353 : 3869);
            }
        // A persistent fwmark service and a persistent port-0 (any port) TCP service.
        slots[6].cfg.fwmark = 16;
        slots[6].cfg.persistent = true;
        slots[6].cfg.scheduler = "rr";
        pool(slots[6], 0);
        slots[7].cfg.vip = *ipvs::parse_endpoint("10.0.0.101:0");
        slots[7].cfg.persistent = true;
        slots[7].cfg.persist_timeout = std::chrono::seconds(60);
        slots[7].cfg.scheduler = "sh";
        pool(slots[7], 0);
        for (auto& s : slots) {
            add_service(s);
            if (!s.cfg.fwmark) vips.push_back(s.cfg.vip.addr);
        }
    }
    void add_service(slot& s) {
        s.live = &d.add_service(s.cfg);
        for (std::size_t k = 2; k-- > 0;) add_dest(s, k, 1); // pool[0] last: at the list head
    }
    void add_dest(slot& s, std::size_t k, int weight) {
        try {
            (void)d.add_dest(*s.live, ipvs::dest_config{s.pool[k], weight});
        } catch (const std::invalid_argument&) { // already there: ipvsadm's "Destination already exists"
        }
    }
};

void require(bool ok) {
    if (!ok) std::abort();
}

void check(world& w) {
    std::map<const ipvs::dest*, std::array<int, 3>> bound;
    std::size_t n4 = 0, n6 = 0;
    w.d.for_each_conn([&](const auto& e) {
        (e.addr_len == 4 ? n4 : n6) += 1;
        if (!e.dest) return;
        auto& b = bound[e.dest];
        ++b[e.is_template() ? 2 : e.is_inactive() ? 1 : 0];
    });
    auto same = [](const ipvs::dest& x, const std::array<int, 3>& b) {
        return x.active_conns >= 0 && x.inactive_conns >= 0 && x.persist_conns >= 0 &&
               b[0] == x.active_conns && b[1] == x.inactive_conns && b[2] == x.persist_conns;
    };
    std::set<const ipvs::dest*> in_service;
    for (const auto& s : w.d.services())
        for (const ipvs::dest* x : s->svc.dests()) {
            require(same(*x, bound[x]));
            in_service.insert(x);
        }
    // Trashed dests stay alive while connections point at them (spec §1.8): check those too.
    for (const auto& [x, b] : bound)
        if (!in_service.count(x)) require(same(*x, b));
    const auto& t4 = w.d.table_v4();
    const auto& t6 = w.d.table_v6();
    require(n4 == t4.size() && n6 == t6.size());
    require(t4.size() <= t4.capacity() && t6.size() <= t6.capacity());
    require(t4.embryonic() <= t4.size() && t6.embryonic() <= t6.size());
}

void configure(world& w, std::uint8_t act, std::uint8_t arg, slot& s, ipvs::time_ns& now) {
    using namespace std::chrono;
    switch (act) {
    case 1:
        now += arg == 255 ? duration_cast<ipvs::time_ns>(hours(24))
                          : duration_cast<ipvs::time_ns>(seconds(arg) * 7);
        (void)w.d.poll(now, (arg & 1) ? 8 : 1 << 16);
        break;
    case 2:
        now -= std::min(now, ipvs::time_ns(seconds(arg) * 3));
        (void)w.d.poll(now);
        break;
    case 3:
        if (s.live && s.live->svc.num_dests() != 0) {
            const ipvs::dest* x = s.live->svc.dests()[arg % s.live->svc.num_dests()];
            ipvs::dest_config c{x->ep, (arg >> 1) % 4};
            c.u_threshold = arg >= 128 ? 2 : 0;
            w.d.edit_dest(*s.live, c);
        }
        break;
    case 4:
        if (s.live && s.live->svc.num_dests() != 0)
            w.d.del_dest(*s.live, s.live->svc.dests()[arg % s.live->svc.num_dests()]->ep);
        break;
    case 5:
        if (s.live) w.add_dest(s, arg % 4, arg % 3);
        break;
    case 6:
        if (s.live && (arg & 0x80)) { // ipvsadm -E: a new scheduler for the live service
            s.cfg.scheduler = schedulers[arg % schedulers.size()];
            w.d.edit_service(s.cfg);
        } else if (s.live) {
            w.d.del_service(s.cfg);
            s.live = nullptr;
        } else {
            s.cfg.scheduler = schedulers[arg % schedulers.size()];
            w.add_service(s);
        }
        break;
    case 7: {
        auto& sys = w.d.sysctl();
        switch (arg % 5) {
        case 0:
            sys.expire_nodest_conn = !sys.expire_nodest_conn;
            break;
        case 1:
            sys.sloppy_tcp = !sys.sloppy_tcp;
            break;
        case 2:
            sys.sloppy_sctp = !sys.sloppy_sctp;
            break;
        case 3:
            sys.secure_tcp = sys.secure_tcp ? 0 : 3;
            break;
        default:
            sys.expire_quiescent_template = !sys.expire_quiescent_template;
            break;
        }
        break;
    }
    default:
        break;
    }
}

/// The forwarded packet is what NAT should have made of the input.
void check_forward(const world& w, const std::vector<std::uint8_t>& pkt, ipvs::verify_status before, bool in,
                   const ipvs::verdict& v) {
    if (v.method != ipvs::fwd_method::masq) return;
    const auto r = ipvs::parse(pkt);
    require(r.ok());
    const auto b = std::as_bytes(std::span(pkt));
    if (r.info.ip.af == family::v4) require(ipvs::verify_ip_header(b, r.info.ip) == ipvs::verify_status::ok);
    const bool icmp = r.info.ip.protocol == ipproto::icmp || r.info.ip.protocol == ipproto::icmpv6;
    if (icmp) {
        require(ipvs::verify_l4(b, r.info) == ipvs::verify_status::ok); // recomputed in full
        return;
    }
    if (in) {
        require(v.to && r.info.ip.daddr == v.to->ep.addr);
    } else {
        bool vip = false;
        for (const auto& a : w.vips) vip |= a == r.info.ip.saddr;
        require(vip);
    }
    if (before == ipvs::verify_status::ok) require(ipvs::verify_l4(b, r.info) == ipvs::verify_status::ok);
}

/// Both directors agree on a packet's outcome and its bytes.
void same_outcome(const ipvs::verdict& a, const ipvs::verdict& b, const std::vector<std::uint8_t>& pa,
                  const std::vector<std::uint8_t>& pb) {
    require(a.act == b.act && a.reason == b.reason && a.method == b.method && a.new_conn == b.new_conn);
    require((a.to == nullptr) == (b.to == nullptr) && (!a.to || a.to->ep == b.to->ep));
    require(a.reply.size() == b.reply.size() && std::equal(a.reply.begin(), a.reply.end(), b.reply.begin()));
    require(pa == pb);
}

/// The checks every forwarded or answered packet gets (on the fast director's result).
void check_packet(const world& w, const std::vector<std::uint8_t>& pkt, ipvs::verify_status before, bool in,
                  const ipvs::verdict& v) {
    if (v.act == ipvs::action::forward) check_forward(w, pkt, before, in, v);
    if (v.act == ipvs::action::reply) {
        const auto rr = ipvs::parse(v.reply);
        require(rr.ok() && rr.info.inner.present);
        require(ipvs::verify_l4(v.reply, rr.info) == ipvs::verify_status::ok);
    }
}

ipvs::verify_status l4_status(const std::vector<std::uint8_t>& pkt) {
    const auto r = ipvs::parse(pkt);
    return r.ok() ? ipvs::verify_l4(std::as_bytes(std::span(pkt)), r.info)
                  : ipvs::verify_status::not_verifiable;
}

/// Packets waiting to go through the fast director as one burst (the reference takes them one by one).
struct pending {
    std::vector<std::vector<std::uint8_t>> pkts;
    bool out = false;
    std::uint32_t mark = 0;
};

void flush(world& fast, world& ref, pending& q, ipvs::time_ns now) {
    if (q.pkts.empty()) return;
    std::vector<std::vector<std::uint8_t>> mine = q.pkts;
    std::vector<ipvs::verdict> va(q.pkts.size()), vb(q.pkts.size());
    std::vector<ipvs::verify_status> before;
    for (const auto& p : q.pkts) before.push_back(l4_status(p));
    for (std::size_t k = 0; k < q.pkts.size(); ++k)
        vb[k] = q.out ? ref.d.out(q.pkts[k], now) : ref.d.in(q.pkts[k], now, q.mark);
    if (q.out)
        fast.d.out_burst(std::span(mine), std::span(va), now);
    else
        fast.d.in_burst(std::span(mine), std::span(va), now, q.mark);
    // A burst's replies share the director's one reply buffer: only the last one is still there.
    for (std::size_t k = 0; k < mine.size(); ++k) {
        require(va[k].act == vb[k].act && va[k].reason == vb[k].reason && va[k].method == vb[k].method);
        require(va[k].new_conn == vb[k].new_conn && (va[k].to == nullptr) == (vb[k].to == nullptr));
        require(!va[k].to || va[k].to->ep == vb[k].to->ep);
        require(mine[k] == q.pkts[k]);
        if (va[k].act == ipvs::action::forward) check_forward(fast, mine[k], before[k], !q.out, va[k]);
    }
    q.pkts.clear();
}

void same_state(world& fast, world& ref, ipvs::time_ns now) {
    require(ipvs::list_conns(fast.d, now) == ipvs::list_conns(ref.d, now));
    require(ipvs::list_stats(fast.d) == ipvs::list_stats(ref.d));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    world fast(true), ref(false);
    ipvs::time_ns now{std::chrono::seconds(1)};
    std::vector<std::uint8_t> pkt;
    pending q;
    std::size_t i = 0;
    while (i + 4 <= size) {
        const std::uint8_t op = data[i], arg = data[i + 1];
        std::size_t len = (std::size_t{data[i + 2]} << 8 | data[i + 3]) % 1600;
        i += 4;
        if (len > size - i) len = size - i;
        pkt.assign(data + i, data + i + len);
        i += len;
        const auto act = static_cast<std::uint8_t>((op >> 1) & 7);
        const bool out = (op & 1) != 0;
        const std::uint32_t mark = (op & 0x10) ? 16 : 0;
        if (act == 0 && (arg & 1)) { // joins the burst
            if (!q.pkts.empty() && (q.out != out || q.mark != mark || q.pkts.size() == 32))
                flush(fast, ref, q, now);
            q.out = out;
            q.mark = mark;
            q.pkts.push_back(pkt);
            continue;
        }
        flush(fast, ref, q, now);
        check(fast);
        check(ref);
        ipvs::time_ns ref_now = now;
        configure(fast, act, arg, fast.slots[op >> 5], now);
        configure(ref, act, arg, ref.slots[op >> 5], ref_now);
        check(fast);
        check(ref);

        const auto before = l4_status(pkt);
        std::vector<std::uint8_t> rpkt = pkt;
        const auto v = out ? fast.d.out(pkt, now) : fast.d.in(pkt, now, mark);
        const auto rv = out ? ref.d.out(rpkt, now) : ref.d.in(rpkt, now, mark);
        same_outcome(v, rv, pkt, rpkt);
        check_packet(fast, pkt, before, !out, v);
        check(fast);
        same_state(fast, ref, now);
    }
    flush(fast, ref, q, now);
    check(fast);
    check(ref);
    same_state(fast, ref, now);
    return 0;
}
