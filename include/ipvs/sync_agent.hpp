// SPDX-License-Identifier: MIT
// The sync daemon's logic on a director: master (packets → records → messages) and backup (messages →
// connections).
#pragma once

// Design
// ------
// Source: spec §8.1 (flush rules), §8.2 (receiver rules), §8.3 (the master's decision and the backup
// side), §3.4 (binding a SYNC connection to its dest), §3.6 (the expiry timer that syncs a template
// still in use). Checked against the recorded Linux 6.1 master and backup (tests/sync_agent_test.cpp).
//
// Master. The agent is the director's `conn_observer`: after each client → VIP packet that updated a
// hashed connection (the kernel's ip_vs_sync_conn call site) it counts the packet (`in_pkts`, the
// kernel's atomic_inc_return), runs `sync_on_packet` on the connection and its controlling template
// and appends the records that are due to a `sync_buffer`. Through the observer's on_expire,
// director::poll() also runs the kernel's "expire later" sync of an entry still in use (a template with
// controlled connections) with pkts = sync_threshold. `poll(now, send)` hands out the messages that
// are due (flush rules of §8.1, see sync_buffer). No thread, no socket, no clock of its own.
//
// Backup. `apply(msg, now)` walks the message with sync_reader (syncid filter, size check, skip /
// drop rules) and for each accepted record, as §8.2/§8.3 say:
// - looks the connection up (find_in, or find_template for TEMPLATE records). A connection that names
//   another real server is expired and made anew — unless the record is INACTIVE, then it is ignored
//   (it is the old connection's farewell);
// - an existing entry: the INACTIVE bit moves its dest's active/inactive counters, only INACTIVE and
//   the SEQ bits are taken from the record (BACKUP_UPD_MASK); an entry still bound to a placeholder
//   (below) is bound to a local dest that now exists;
// - a new entry: the service by fwmark, then (protocol, vaddr, vport), then port 0; in it the dest
//   (daddr, dport) — for fwmark services with a non-NAT method the port-less dest first — and the
//   connection bound to it with the dest's forwarding method (and its NOOUTPUT), the record's INACTIVE
//   kept for connections; templates get the dest's INACTIVE. Counters: persist for templates, else
//   active / inactive by the flag;
// - both: in_pkts = sync_threshold, state = old_state = the record's, timeout = the record's seconds or
//   (0, v0) the state's default (templates 180 s), the timer restarted at now + timeout.
// The backup links no connection to a template (the kernel's backup does not either).
//
// Invariants: the agent keeps one `sync_endtime` per table slot (a side array, 8 B a slot, allocated
// once in the constructor): basic_conn has no room left in its 56 / 80 bytes (conn.hpp), and the value
// is read only when sync_refresh_period > 0. A slot's value is reset when the agent first sees its
// entry (in_pkts == 0: the director never counts in_pkts itself) or creates it.
//
// Deviations:
// - A record whose service or dest the backup lacks makes a connection bound to a *placeholder* dest
//   (the kernel leaves such a connection unbound; conn.hpp keeps the real server's address only in
//   the dest). Placeholders hold the record's daddr/dport and forwarding method, count nothing that
//   any scheduler sees, are available for connections (the kernel forwards unbound connections) and
//   unavailable for templates (check_template fails without a dest, so a new connection is
//   scheduled). They are parked in the director's dest trash. Destroying the agent removes the
//   connections bound to them, and them.
// - Timeouts are capped at 2^32 − 1 ms (49.7 days, conn.hpp); the kernel keeps larger ones.
// - SEQ data is not kept (no FTP helper, conn.hpp); the IN_SEQ/OUT_SEQ flags are. PE data is ignored.
// - fwmark: a master sends the service's mark for connections of fwmark services (the kernel sends the
//   packet's mark, which is the same for those) and 0 otherwise.
// - A connection record whose tuple matches a template (a crafted template with a client port) makes a
//   connection of its own; the kernel updates the template and skews the dest's counters.
// - One controller level (sync_on_packet). A template created while the agent ran with sync_version 0
//   gets its sync_endtime reset at its first controlled packet, not at creation (refresh only).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <ipvs/conn.hpp>
#include <ipvs/dest.hpp>
#include <ipvs/director.hpp>
#include <ipvs/sync.hpp>

namespace ipvs {

/// What `sync_agent::apply` did with one message.
struct sync_apply_result {
    sync_message_status message = sync_message_status::ok; ///< not ok: the whole message was ignored
    sync_header header{};
    unsigned created = 0;  ///< new connections / templates
    unsigned updated = 0;  ///< existing ones refreshed
    unsigned replaced = 0; ///< of `created`: an old connection to another real server was expired first
    unsigned stale = 0;    ///< INACTIVE records for a connection that now goes to another real server
    unsigned unbound = 0;  ///< of `created`: no local service or dest, bound to a placeholder
    unsigned skipped = 0;  ///< records the decoder skipped (is_skip statuses)
    unsigned failed = 0;   ///< the table refused the entry (full, per-client limit)
    sync_record_status first_skip = sync_record_status::ok; ///< why the first skipped record was skipped
    sync_record_status stop = sync_record_status::end;      ///< a drop_* status if the rest was dropped
};

/// Master-side counters.
struct sync_master_stats {
    std::uint64_t packets = 0;       ///< client packets seen
    std::uint64_t records = 0;       ///< records added to messages
    std::uint64_t timer_records = 0; ///< of `records`: sent by the expiry timer
    std::uint64_t not_encodable = 0; ///< records the writer refused (IPv6 in version 0)
    std::uint64_t messages = 0;      ///< messages handed out by poll()
};

/// A director's sync daemon, master and/or backup, without sockets (see
/// examples/common/sync_transport.hpp for the UDP multicast side).
///
///     ipvs::director dir;
///     ipvs::sync_agent agent(dir, {.master = true, .syncid = 7});
///     ... dir.in(pkt, now) ...                      // the agent watches through the observer hook
///     dir.poll(now);                                // expiry; the agent syncs deferred entries
///     agent.poll(now, [&](std::span<const std::byte> m) { udp_send(m); });
///
///     backup.apply(received_payload, now);           // on the other director
///
/// One thread: the director's. Configuration mistakes throw std::invalid_argument from the
/// constructor and set_sysctl(); the per-packet, expiry, poll and apply paths never throw or allocate
/// (apply allocates only a placeholder dest for a real server it has not seen before).
class sync_agent final : public conn_observer {
public:
    struct config {
        sync_sysctl sysctl{};
        bool master = false;
        bool backup = false;
        std::uint8_t syncid = 0;        ///< the master's syncid, put in every message
        std::uint8_t backup_syncid = 0; ///< the backup's: 0 accepts every syncid, else only this one
        std::size_t maxlen = sync_wire::default_maxlen_v4; ///< sync_maxlen: bytes of one message
        std::size_t qlen_max = 16;                         ///< sync_qlen_max: messages waiting at most
    };

    /// Attaches to `d` (as its observer when master). `d` must outlive the agent.
    sync_agent(director& d, const config& c)
        : m_dir(d), m_cfg(checked(c)),
          m_buf(sync_buffer::config{c.syncid, c.sysctl.sync_version, c.maxlen, c.qlen_max}),
          m_end4(d.m_t4.slots(), time_ns{0}), m_end6(d.m_t6.slots(), time_ns{0}) {
        m_owner = std::make_unique<director::svc_entry>(service_config{}, sched::make_scheduler("rr", {}),
                                                        service_params{});
        if (c.master) d.set_observer(this);
    }
    sync_agent(const sync_agent&) = delete;
    sync_agent& operator=(const sync_agent&) = delete;

    /// Detaches from the director; connections bound to placeholder dests are removed with them.
    ~sync_agent() {
        if (m_dir.m_observer == this) m_dir.set_observer(nullptr);
        drop_placeholders(m_dir.m_t4);
        drop_placeholders(m_dir.m_t6);
        m_dir.m_trash.remove_if([this](const auto& t) { return is_placeholder(t.d.get()); });
    }

    [[nodiscard]] const config& cfg() const noexcept { return m_cfg; }
    [[nodiscard]] const sync_master_stats& master_stats() const noexcept { return m_stats; }
    [[nodiscard]] const sync_buffer& buffer() const noexcept { return m_buf; }

    /// Changes the sync sysctls; a new sync_version closes the open message first, as the kernel
    /// does. Throws std::invalid_argument if `s` is not valid().
    void set_sysctl(const sync_sysctl& s, time_ns now) {
        if (!s.valid()) throw std::invalid_argument("ipvs: invalid sync sysctls");
        m_cfg.sysctl = s;
        m_buf.set_version(s.sync_version, now);
    }

    // ---- master -------------------------------------------------------------------------------------

    void on_in_packet(basic_conn<4>& e, const verdict& v) noexcept override {
        on_packet(m_dir.m_t4, m_end4, e, v);
    }
    void on_in_packet(basic_conn<16>& e, const verdict& v) noexcept override {
        on_packet(m_dir.m_t6, m_end6, e, v);
    }

    /// The master's timer sync rides on director::poll() (the observer's on_expire): an entry whose
    /// timer finds it still in use is synced (pkts = sync_threshold) after its timeout became 60 s
    /// (spec §3.6, §8.3). Kept for callers of the first version: the same as dir.poll(now, budget).
    std::size_t expire(time_ns now, std::size_t budget = 4096) noexcept { return m_dir.poll(now, budget); }

    void on_expire(basic_conn<4>& e, expire_reason why) noexcept override {
        expired(m_dir.m_t4, m_end4, e, why);
    }
    void on_expire(basic_conn<16>& e, expire_reason why) noexcept override {
        expired(m_dir.m_t6, m_end6, e, why);
    }

    /// Calls `send(std::span<const std::byte>)` for every message due at `now`; returns how many.
    template <class Send>
    std::size_t poll(time_ns now, Send&& send) noexcept(noexcept(send(std::span<const std::byte>{}))) {
        std::size_t n = 0;
        while (auto m = m_buf.poll(now)) {
            ++n;
            ++m_stats.messages;
            send(*m);
        }
        return n;
    }
    /// The next message due at `now`, or nullopt; valid until the next non-const call.
    [[nodiscard]] std::optional<std::span<const std::byte>> poll(time_ns now) noexcept {
        auto m = m_buf.poll(now);
        if (m) ++m_stats.messages;
        return m;
    }
    /// When poll() will next have a message (at or before now: at once); nullopt if nothing waits.
    [[nodiscard]] std::optional<time_ns> next_deadline() const noexcept { return m_buf.next_deadline(); }
    /// Makes everything buffered due now (daemon stop, failover drills).
    void flush(time_ns now) noexcept { m_buf.flush(now); }

    // ---- backup -------------------------------------------------------------------------------------

    /// Applies one received message (the UDP payload) at `now`, as a Linux backup with syncid
    /// `backup_syncid` does (spec §8.2, §8.3). Works whether or not this agent is configured as backup.
    sync_apply_result apply(std::span<const std::byte> msg, time_ns now) noexcept {
        *m_dir.m_now = now;
        sync_reader rd(msg, m_cfg.backup_syncid);
        sync_apply_result res;
        res.message = rd.status();
        res.header = rd.header();
        sync_record r;
        for (auto st = rd.next(r); st != sync_record_status::end; st = rd.next(r)) {
            if (drops_rest(st)) {
                res.stop = st;
                break;
            }
            if (is_skip(st)) {
                if (res.skipped++ == 0) res.first_skip = st;
                continue;
            }
            if (r.af == family::v4)
                apply_record(m_dir.m_t4, m_end4, r, res);
            else
                apply_record(m_dir.m_t6, m_end6, r, res);
        }
        return res;
    }

    /// Whether `d` is one of this agent's placeholder dests (a connection without a local dest).
    [[nodiscard]] bool is_placeholder(const dest* d) const noexcept {
        for (const dest* p : m_parked)
            if (p == d) return true;
        return false;
    }
    /// How many placeholder dests exist (one per real server endpoint, method and kind).
    [[nodiscard]] std::size_t placeholders() const noexcept { return m_parked.size(); }

private:
    template <std::size_t N>
    using table_t = director::table_t<N>;
    using ends_t = std::vector<time_ns>;

    static const config& checked(const config& c) {
        if (!c.sysctl.valid()) throw std::invalid_argument("ipvs: invalid sync sysctls");
        return c;
    }

    [[nodiscard]] time_ns now() const noexcept { return *m_dir.m_now; }
    [[nodiscard]] static time_ns low_cleared(time_ns t) noexcept {
        return time_ns{t.count() & ~std::int64_t{3}};
    }

    // ---- master -------------------------------------------------------------------------------------

    /// The decision's view of entry `e`.
    template <std::size_t N>
    sync_fields fields_of(const table_t<N>& t, const ends_t& ends, const basic_conn<N>& e) const noexcept {
        sync_fields f;
        f.protocol = e.protocol;
        f.state = e.state;
        f.old_state = e.old_state;
        f.is_template = e.is_template();
        f.controlled_by_template = e.is_controlled() && t.at(e.control).is_template();
        f.one_packet = (e.flags & conn_flag::one_packet) != 0;
        f.in_pkts = e.in_pkts;
        f.sync_endtime = ends[t.handle(e)];
        f.timeout = e.timeout();
        return f;
    }

    template <std::size_t N>
    void on_packet(table_t<N>& t, ends_t& ends, basic_conn<N>& e, const verdict& v) noexcept {
        if (!m_cfg.master) return;
        ++m_stats.packets;
        const time_ns n = now();
        // First sight of the entry (the director creates entries with in_pkts 0 and never counts):
        // sync_endtime = now & ~3 as at creation (spec §3.4).
        if (e.in_pkts == 0) ends[t.handle(e)] = low_cleared(n);
        const std::uint32_t pkts = ++e.in_pkts;
        basic_conn<N>* ctl = e.is_controlled() ? &t.at(e.control) : nullptr;
        if (ctl && (ctl->in_pkts == 0 || (v.new_conn && ctl->n_control == 1 && ctl->in_pkts == 0)))
            ends[t.handle(*ctl)] = low_cleared(n);
        // Version 0 carries IPv4 only: the kernel's v0 path returns before any decision.
        if (N == 16 && m_cfg.sysctl.sync_version == 0) return;
        sync_conn(t, ends, e, ctl, pkts, false);
    }

    /// ip_vs_sync_conn(cp, pkts): the decision for `e`, then for its controller; records appended.
    template <std::size_t N>
    void sync_conn(table_t<N>& t, ends_t& ends, basic_conn<N>& e, basic_conn<N>* ctl, std::uint32_t pkts,
                   bool by_timer) noexcept {
        const time_ns n = now();
        sync_fields f = fields_of(t, ends, e);
        sync_fields cf{};
        if (ctl) cf = fields_of(t, ends, *ctl);
        const auto a = sync_on_packet(f, pkts, ctl ? &cf : nullptr, m_cfg.sysctl, n);
        store(t, ends, e, f);
        if (ctl) store(t, ends, *ctl, cf);
        if (a.conn) add_record(e, by_timer);
        if (a.controller) add_record(*ctl, by_timer);
    }

    template <std::size_t N>
    static void store(const table_t<N>& t, ends_t& ends, basic_conn<N>& e, const sync_fields& f) noexcept {
        e.old_state = f.old_state;
        if (e.is_template()) e.in_pkts = f.in_pkts; // sync_on_packet counts a template controller's packets
        ends[t.handle(e)] = f.sync_endtime;
    }

    template <std::size_t N>
    void add_record(const basic_conn<N>& e, bool by_timer) noexcept {
        const auto st = m_buf.add(record_of(e), now());
        if (st != sync_encode_status::ok) {
            ++m_stats.not_encodable;
            return;
        }
        ++m_stats.records;
        if (by_timer) ++m_stats.timer_records;
    }

    /// The record a master sends for `e` (spec §8.2): flags without HASHED, timeout in seconds.
    template <std::size_t N>
    sync_record record_of(const basic_conn<N>& e) const noexcept {
        sync_record r;
        r.af = basic_conn<N>::af;
        r.protocol = e.protocol;
        r.flags = e.flags & ~conn_flag::hashed;
        // A kernel template carries its dest's INACTIVE from the bind and never loses it (templates
        // have no state transitions); the director does not set it on its templates.
        if (e.is_template()) r.flags |= conn_flag::inactive;
        r.state = e.state;
        r.cport = e.cport;
        r.vport = e.vport;
        r.dport = e.dport();
        r.timeout = e.timeout_ms / 1000;
        r.caddr = to_inet(e.caddr);
        r.vaddr = to_inet(e.vaddr);
        r.daddr = to_inet(e.daddr());
        if (e.is_template() && e.protocol == 0) {
            // A fwmark template carries its mark big-endian in vaddr's first bytes (spec §3.5).
            r.fwmark = std::uint32_t{e.vaddr[0]} << 24 | std::uint32_t{e.vaddr[1]} << 16 |
                       std::uint32_t{e.vaddr[2]} << 8 | e.vaddr[3];
        } else if (e.dest && !is_placeholder(e.dest) && m_dir.in_service(*e.dest)) {
            r.fwmark = director::owner_of(*e.dest).cfg.fwmark;
        }
        return r;
    }

    template <std::size_t N>
    void expired(table_t<N>& t, ends_t& ends, basic_conn<N>& e, expire_reason why) noexcept {
        if (why == expire_reason::deferred && m_cfg.master && !(N == 16 && m_cfg.sysctl.sync_version == 0)) {
            basic_conn<N>* ctl = e.is_controlled() ? &t.at(e.control) : nullptr;
            sync_conn(t, ends, e, ctl, m_cfg.sysctl.sync_threshold, true);
        }
    }

    // ---- backup -------------------------------------------------------------------------------------

    /// The local dest a record names (the kernel's ip_vs_find_dest), or nullptr.
    dest* find_dest(const sync_record& r, std::uint32_t flags) noexcept {
        director::svc_entry* s = r.fwmark ? m_dir.find_fwmark_service(r.af, r.fwmark) : nullptr;
        if (!s) s = m_dir.find_service(r.af, r.protocol, endpoint{r.vaddr, r.vport});
        if (!s) s = m_dir.find_service(r.af, r.protocol, endpoint{r.vaddr, 0});
        if (!s) return nullptr;
        // fwmark services with DR / TUN dests keep no port: look for the port-less dest first.
        const std::uint16_t port =
            r.fwmark && (flags & conn_flag::fwd_mask) != static_cast<std::uint32_t>(fwd_method::masq)
                ? 0
                : r.dport;
        const auto lookup = [&](std::uint16_t p) -> dest* {
            for (dest* d : s->svc.dests())
                if (d->ep.addr == r.daddr && d->ep.port == p) return d;
            return nullptr;
        };
        dest* d = lookup(port);
        if (!d) d = lookup(static_cast<std::uint16_t>(port ^ r.dport));
        return d;
    }

    /// The placeholder dest for (daddr, dport, method, template?), made on first use. May throw
    /// std::bad_alloc.
    dest* placeholder(const sync_record& r, std::uint32_t flags) {
        const auto fwd = static_cast<fwd_method>(flags & conn_flag::fwd_mask);
        const bool tmpl = (flags & conn_flag::template_) != 0;
        const endpoint ep{r.daddr, r.dport};
        for (dest* p : m_parked)
            if (p->ep == ep && p->fwd == fwd && p->available() == !tmpl) return p;
        m_parked.reserve(m_parked.size() + 1); // so that nothing below can throw after the trash took it
        auto p = std::make_unique<dest>();
        p->ep = ep;
        p->fwd = fwd;
        p->flags = tmpl ? 0 : dest_flag::available;
        p->owner = m_owner.get();
        dest* raw = p.get();
        // Parked in the trash: the director's bind/unbind then touch only its counters, no scheduler.
        m_dir.m_trash.push_back({nullptr, std::move(p)});
        m_parked.push_back(raw);
        return raw;
    }

    /// Flags of a SYNC connection bound to local dest `d` (spec §3.4): the dest's forwarding method
    /// (and NOOUTPUT) replace the received ones; its INACTIVE is added for templates only.
    static std::uint32_t bound_flags(std::uint32_t flags, const dest& d) noexcept {
        std::uint32_t dest_flags = static_cast<std::uint32_t>(d.fwd) | conn_flag::inactive;
        if (d.fwd != fwd_method::masq) dest_flags |= conn_flag::nooutput;
        if (!(flags & conn_flag::template_)) dest_flags &= ~conn_flag::inactive;
        return (flags & ~(conn_flag::fwd_mask | conn_flag::nooutput)) | dest_flags;
    }

    static conn_counter counter_of(std::uint32_t flags) noexcept {
        if (flags & conn_flag::template_) return conn_counter::persist;
        return (flags & conn_flag::inactive) ? conn_counter::inactive : conn_counter::active;
    }

    template <std::size_t N>
    void apply_record(table_t<N>& t, ends_t& ends, const sync_record& r, sync_apply_result& res) noexcept {
        const std::uint32_t flags = sync_backup_flags(r.flags);
        const bool tmpl = (flags & conn_flag::template_) != 0;
        const in_tuple<N> key{to_bytes<N>(r.caddr), to_bytes<N>(r.vaddr), r.cport, r.vport, r.protocol};
        basic_conn<N>* e = tmpl ? t.find_template(key) : t.find_in(key);
        // find_in also matches a template with a client port (only a crafted record makes one); the
        // kernel would then move a template's dest between active and inactive. Not ours: a new entry.
        if (e && e->is_template() != tmpl) e = nullptr;
        bool replacing = false;
        if (e && !tmpl && (e->dport() != r.dport || to_inet(e->daddr()) != r.daddr)) {
            if (flags & conn_flag::inactive) {
                ++res.stale; // the farewell of the connection that was already replaced
                return;
            }
            remove_now(t, *e);
            e = nullptr;
            replacing = true;
        }
        if (e) {
            dest* d = e->dest;
            if (((e->flags ^ flags) & conn_flag::inactive) && !tmpl && d)
                m_dir.move(*d, !(flags & conn_flag::inactive));
            e->flags = (flags & conn_flag::backup_upd_mask) | (e->flags & ~conn_flag::backup_upd_mask);
            if (d && is_placeholder(d)) rebind(*e, r);
            e->set_timeout(record_timeout(r, tmpl));
            t.touch(*e); // ip_vs_conn_put: the timer restarts at now + timeout
            ++res.updated;
        } else {
            // create() inserts with the record's timeout: the timer is armed at now + timeout.
            e = create(t, r, flags, res);
            if (!e) {
                ++res.failed;
                return;
            }
            if (replacing) ++res.replaced;
            ++res.created;
        }
        e->in_pkts = m_cfg.sysctl.sync_threshold;
        e->state = static_cast<std::uint8_t>(r.state);
        e->old_state = e->state;
        ends[t.handle(*e)] = low_cleared(now());
    }

    /// The timeout a record gives: its own, or (0) the state's default; 180 s for templates.
    time_ns record_timeout(const sync_record& r, bool tmpl) const noexcept {
        if (r.timeout != 0) return std::chrono::seconds{r.timeout};
        if (!tmpl) {
            if (r.protocol == ipproto::tcp) return m_dir.m_timeouts[static_cast<tcp_state>(r.state)];
            if (r.protocol == ipproto::sctp) return m_dir.m_timeouts[static_cast<sctp_state>(r.state)];
            if (r.protocol == ipproto::udp) return m_dir.m_timeouts.udp;
        }
        return std::chrono::seconds{180};
    }

    template <std::size_t N>
    basic_conn<N>* create(table_t<N>& t, const sync_record& r, std::uint32_t flags,
                          sync_apply_result& res) noexcept {
        dest* d = find_dest(r, flags);
        std::uint32_t f = flags;
        if (d) {
            f = bound_flags(flags, *d);
        }
        basic_conn<N> proto{};
        proto.caddr = to_bytes<N>(r.caddr);
        proto.vaddr = to_bytes<N>(r.vaddr);
        proto.cport = r.cport;
        proto.vport = r.vport;
        proto.protocol = r.protocol;
        proto.flags = f;
        proto.dest = d;
        if (!d || !proto.set_dport(r.dport)) {
            // No local dest, or a port-less local dest with a dport it cannot express: a placeholder.
            try {
                d = placeholder(r, flags);
            } catch (...) {
                return nullptr; // out of memory: the record is lost, as a failed kernel allocation
            }
            proto.flags = flags;
            proto.dest = d;
            (void)proto.set_dport(r.dport);
            ++res.unbound;
        }
        proto.set_timeout(record_timeout(r, (flags & conn_flag::template_) != 0));
        auto ins = t.insert(proto, admit::established, [&](basic_conn<N>& victim, expire_reason why) {
            m_dir.on_remove(t, victim, why);
        });
        if (!ins) return nullptr;
        m_dir.bind(*d, counter_of(proto.flags));
        return ins.entry;
    }

    /// An entry bound to a placeholder whose local dest now exists moves to it (ip_vs_try_bind_dest).
    template <std::size_t N>
    void rebind(basic_conn<N>& e, const sync_record& r) noexcept {
        dest* d = find_dest(r, e.flags);
        if (!d) return;
        const std::uint16_t dport = e.dport();
        basic_conn<N> probe = e;
        probe.dest = d;
        probe.flags = bound_flags(e.flags, *d);
        if (!probe.set_dport(dport)) return;
        m_dir.unbind(*e.dest, counter_of(e.flags));
        e.dest = d;
        e.flags = probe.flags;
        e.table_bits = probe.table_bits;
        m_dir.bind(*d, counter_of(e.flags));
    }

    /// Expires `e` at once with its bookkeeping (it may still control connections: then its timer).
    template <std::size_t N>
    void remove_now(table_t<N>& t, basic_conn<N>& e) noexcept {
        if (e.n_control != 0) {
            t.expire_now(e);
            return;
        }
        m_dir.on_remove(t, e, expire_reason::timed_out);
        t.erase(e);
    }

    template <std::size_t N>
    void drop_placeholders(table_t<N>& t) noexcept {
        // Connections controlled by a doomed template lose their controller first; then the doomed
        // go (entries never move, so erasing while visiting is safe).
        t.for_each([&](basic_conn<N>& e) {
            if (e.is_controlled() && is_placeholder(t.at(e.control).dest)) t.unlink_control(e);
        });
        t.for_each([&](basic_conn<N>& e) {
            if (!e.dest || !is_placeholder(e.dest)) return;
            m_dir.on_remove(t, e, expire_reason::timed_out);
            t.erase(e);
        });
    }

    director& m_dir;
    config m_cfg;
    sync_buffer m_buf;
    ends_t m_end4;
    ends_t m_end6;
    sync_master_stats m_stats{};
    std::unique_ptr<director::svc_entry> m_owner; ///< the service placeholders claim (their stats)
    std::vector<dest*> m_parked;                  ///< placeholders, owned by the director's trash
};

} // namespace ipvs
