// SPDX-License-Identifier: MIT
// Scheduler benchmarks: each of the 14 schedulers' fast class against its kernel-style reference, mh table
// builds, and the flows sh / dh / mh move when a dest leaves or joins.
//
// Benchmarks (fixed seeds; the fast class and its reference see identical dests, flows and connections):
//   picks/<sched>/<fast|reference>/<n>   one pick per iteration over n dests (ns per pick = time column;
//                                        items_per_second = picks/s). Dests: weights uniform in 1..100,
//                                        one in eight 0 (quiescent), no thresholds (the common setup, in
//                                        which OVERLOAD never comes up). Flows: 8192 precomputed, cycled,
//                                        random clients (¼ IPv6) and ports, 4096 destination addresses.
//                                        For the connection-driven schedulers (lc wlc sed nq fo ovf twos
//                                        lblc lblcr) each pick binds a connection to the picked dest and
//                                        frees the oldest of 4n live ones (bind_counts / unbind_counts,
//                                        then counts_changed), so the index upkeep is inside the timing.
//                                        lblc / lblcr advance the injected clock by 1 µs a pick.
//   mh_build/<fast|reference>/<n>/<M>    one table population (init_service) of n dests into M slots.
//   moved/<sched>/<fast|reference>/<n>   sh, dh, mh (M = 4093; mh_65521: M = 65521) over n dests of
//                                        weight 1: `moved_frac_del` = share of 100k fixed flows whose
//                                        dest changes when a serving dest in the middle of the list is
//                                        deleted (ideal `ideal_del` = 1/n; `serving` = dests that get
//                                        any flow: 256 at most for sh, dh), `moved_frac_add` = likewise
//                                        when a new dest is added at the head (ideal 1/(n+1)). The timed
//                                        loop is the rebuild: one del_dest + one add_dest per iteration
//                                        (items = rebuilds).
// Counter `result`: a checksum of the first 1024 picks (untimed, made on the same steady state as the
// timed ones), of the mh table, or of the moved counts. The fast class and its reference must give the
// same value; the binary checks this itself (the second of a pair to run fails with an error and the
// exit status is 1), so a broken fast path cannot win.
// Reading the numbers: reference_rr / reference_wrr find their cursor in the span with a scan, where the
// kernel follows a list pointer, so their cost grows with n and the kernel's does not; compare rr / wrr
// against the absolute target rather than that ratio. The reference lblc / lblcr keep no index, so with
// a warm cache (hits need only busy()) a pick costs them the table lookup alone; the fast classes only
// queue counter changes and refresh wlc's index when a miss needs it, so they cost the same there and
// pull ahead once n is large enough for the misses' O(n) scans to dominate.
// IPVS_BENCH_SMOKE set (CI): only n ∈ {8, 1024} and the mh builds at M = 4093.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ipvs/dest.hpp>
#include <ipvs/sched/dh.hpp>
#include <ipvs/sched/fo.hpp>
#include <ipvs/sched/lblc.hpp>
#include <ipvs/sched/lblcr.hpp>
#include <ipvs/sched/lc.hpp>
#include <ipvs/sched/mh.hpp>
#include <ipvs/sched/nq.hpp>
#include <ipvs/sched/ovf.hpp>
#include <ipvs/sched/rr.hpp>
#include <ipvs/sched/scheduler.hpp>
#include <ipvs/sched/sed.hpp>
#include <ipvs/sched/sh.hpp>
#include <ipvs/sched/twos.hpp>
#include <ipvs/sched/wlc.hpp>
#include <ipvs/sched/wrr.hpp>
#include <ipvs/service.hpp>

namespace {

using namespace ipvs;
using namespace ipvs::sched;

constexpr std::uint64_t dest_seed = 0x5eed0001;
constexpr std::uint64_t flow_seed = 0x5eed0002;
constexpr std::uint64_t conn_seed = 0x5eed0003;
constexpr std::size_t flow_count = 8192; // power of two: the loop cycles with a mask
constexpr std::size_t checked_picks = 1024;
constexpr std::size_t moved_flows = 100000;
constexpr std::uint32_t lblc_daddrs = 4096; // distinct destination addresses in the pick workload

// sh-port + sh-fallback (and the same for mh): the flags that make the lookups do the most work.
constexpr sched_flags hash_flags{.fallback = true, .port = true};

// ---- checksums and the fast-vs-reference agreement ----------------------------------------------------

[[nodiscard]] std::uint64_t mix(std::uint64_t h, const dest* d) noexcept {
    return (h ^ (d != nullptr ? d->list_seq : 0)) * 0x100000001b3ULL; // FNV-1a step
}
constexpr std::uint64_t mix_init = 0xcbf29ce484222325ULL;

bool g_disagreement = false;

/// Records `h` under `key` (scheduler, sizes) and compares it with what the other implementation of the
/// pair recorded. On a mismatch the benchmark is failed before its loop runs.
bool agree(benchmark::State& st, const std::string& key, std::uint64_t h) {
    static std::map<std::string, std::uint64_t> seen;
    const auto [it, fresh] = seen.emplace(key, h);
    st.counters["result"] = static_cast<double>(h & 0xffffffffU);
    if (fresh || it->second == h) return true;
    g_disagreement = true;
    st.SkipWithError(("fast and reference disagree on " + key).c_str());
    return false;
}

// ---- workload ----------------------------------------------------------------------------------------

/// n dests as a service holds them after adding dest 0, 1, …, n−1 one by one: the list is head first,
/// so dest n−1 is at the head and carries the largest list_seq. Stored contiguously (addresses stable).
class dest_set {
public:
    /// `weight(rng)` gives each dest its weight.
    template <class Weight>
    dest_set(std::size_t n, Weight weight) : m_pool(n) {
        std::mt19937_64 rng(dest_seed);
        for (std::size_t k = 0; k < n; ++k) {
            dest& d = m_pool[k];
            d.ep = {inet_addr::v4(0x0a000000U + static_cast<std::uint32_t>(k)), 8080};
            d.weight = d.last_weight = weight(rng);
            d.flags = dest_flag::available;
            d.list_seq = k + 1;
        }
        for (std::size_t k = n; k-- > 0;) list.push_back(&m_pool[k]);
    }

    [[nodiscard]] dest_list view() const noexcept { return {list.data(), list.size()}; }
    [[nodiscard]] dest& at(std::size_t k) noexcept { return m_pool[k]; }

    std::vector<dest*> list; ///< head first

private:
    std::vector<dest> m_pool;
};

/// Weights of the pick workload: one in eight 0, else uniform in 1..100.
int random_weight(std::mt19937_64& rng) { return rng() % 8 == 0 ? 0 : static_cast<int>(1 + rng() % 100); }
int unit_weight(std::mt19937_64& /*rng*/) { return 1; }

/// First packets of new flows: clients ¾ IPv4 / ¼ IPv6, random ports, TCP (⅞) or UDP, destinations
/// drawn from `daddrs` addresses.
std::vector<sched_input> make_flows(std::size_t count, std::uint32_t daddrs) {
    std::mt19937_64 rng(flow_seed);
    std::vector<sched_input> flows(count);
    for (sched_input& in : flows) {
        if (rng() % 4 == 0) {
            std::array<std::uint8_t, 16> b{0xfd, 0x01};
            const std::uint64_t r = rng();
            for (std::size_t i = 0; i < 8; ++i) b[8 + i] = static_cast<std::uint8_t>(r >> (8 * i));
            in.saddr = inet_addr::v6(b);
        } else {
            in.saddr = inet_addr::v4(static_cast<std::uint32_t>(rng()));
        }
        in.daddr = inet_addr::v4(0xc0a80000U + static_cast<std::uint32_t>(rng() % daddrs));
        in.sport = static_cast<std::uint16_t>(1024 + rng() % 64512);
        in.dport = 80;
        in.protocol = rng() % 8 == 0 ? 17 : 6;
    }
    return flows;
}

/// Attaches a scheduler to dests that already exist. Those with an init_service hook get it (the
/// kernel's attach); the indexed ones build their index from the whole list on any add_dest, so one
/// call stands for n adds (adding one by one would cost O(n²) at 16384 dests for no difference).
template <class S>
void attach(S& s, dest_list l) {
    if constexpr (requires { s.init_service(l); }) {
        s.init_service(l);
    } else if (!l.empty()) {
        s.add_dest(l, *l.front());
    }
}

/// A live connection: the dest it is bound to and the counter it occupies.
struct conn {
    dest* d = nullptr;
    conn_counter counter = conn_counter::inactive;
};

/// The steady state of one picks/… benchmark: dests, flows, 4n live connections, the scheduler.
/// `Binds`: every pick binds a connection and frees the oldest. `Timed`: the clock advances per pick.
template <class S, bool Binds, bool Timed>
class pick_workload {
public:
    template <class Make>
    pick_workload(std::size_t n, Make make)
        : m_dests(n, random_weight), m_view(m_dests.view()), m_flows(make_flows(flow_count, lblc_daddrs)),
          m_sched(make(n)) {
        if constexpr (Binds) {
            // Start from connections spread uniformly (weight-0 dests too: they drain old ones), ¾ active.
            std::mt19937_64 rng(conn_seed);
            m_ring.resize(4 * n);
            for (conn& c : m_ring) {
                c.d = m_dests.list[rng() % n];
                c.counter = rng() % 4 != 0 ? conn_counter::active : conn_counter::inactive;
                bind_counts(*c.d, c.counter);
            }
        }
        attach(m_sched, m_view);
    }

    /// One pick, and with `Binds` the connection bookkeeping the service would do around it.
    dest* step() noexcept {
        const sched_input* in = &m_flows[m_i & (flow_count - 1)];
        sched_input stamped;
        if constexpr (Timed) {
            stamped = *in;
            stamped.now = time_ns(static_cast<std::int64_t>(m_i) * 1000);
            in = &stamped;
        }
        dest* d = m_sched.schedule(m_view, *in);
        if constexpr (Binds) {
            conn& oldest = m_ring[m_pos];
            const conn fresh{d, (in->sport & 3) != 0 ? conn_counter::active : conn_counter::inactive};
            if (d != nullptr) {
                bind_counts(*d, fresh.counter);
                m_sched.counts_changed(m_view, *d);
            }
            if (oldest.d != nullptr) {
                unbind_counts(*oldest.d, oldest.counter);
                m_sched.counts_changed(m_view, *oldest.d);
            }
            oldest = fresh;
            m_pos = m_pos + 1 == m_ring.size() ? 0 : m_pos + 1;
        }
        ++m_i;
        return d;
    }

private:
    dest_set m_dests;
    dest_list m_view;
    std::vector<sched_input> m_flows;
    std::vector<conn> m_ring; ///< live connections, oldest at m_pos
    S m_sched;
    std::size_t m_pos = 0;
    std::uint64_t m_i = 0;
};

// ---- benchmarks --------------------------------------------------------------------------------------

template <class S, bool Binds, bool Timed, class Make>
void bm_picks(benchmark::State& st, Make make, const std::string& name) {
    const auto n = static_cast<std::size_t>(st.range(0));
    pick_workload<S, Binds, Timed> w(n, make);
    std::uint64_t h = mix_init;
    for (std::size_t k = 0; k < checked_picks; ++k) h = mix(h, w.step());
    if (!agree(st, "picks/" + name + "/" + std::to_string(n), h)) return;
    for (auto _ : st) {
        dest* d = w.step();
        benchmark::DoNotOptimize(d);
    }
    st.SetItemsProcessed(st.iterations());
}

template <class S>
void bm_mh_build(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto m = static_cast<std::uint32_t>(st.range(1));
    dest_set dests(n, random_weight);
    S s(sched_flags{}, m);
    s.init_service(dests.view());
    std::uint64_t h = mix_init;
    for (const dest* d : s.table()) h = mix(h, d);
    if (!agree(st, "mh_build/" + std::to_string(n) + "/" + std::to_string(m), h)) return;
    for (auto _ : st) {
        s.init_service(dests.view());
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
}

/// Picks of `s` over `l` for every flow.
template <class S>
std::vector<dest*> picks_of(S& s, dest_list l, const std::vector<sched_input>& flows) {
    std::vector<dest*> out;
    out.reserve(flows.size());
    for (const sched_input& in : flows) out.push_back(s.schedule(l, in));
    return out;
}

[[nodiscard]] double moved_share(const std::vector<dest*>& before, const std::vector<dest*>& after) {
    std::size_t moved = 0;
    for (std::size_t i = 0; i < before.size(); ++i) moved += before[i] != after[i] ? 1 : 0;
    return static_cast<double>(moved) / static_cast<double>(before.size());
}

template <class S, class Make>
void bm_moved(benchmark::State& st, Make make, const std::string& name) {
    const auto n = static_cast<std::size_t>(st.range(0));
    // n + 1 dests of weight 1: `base` lists the first n, `plus` has the (n+1)-th at its head, `minus`
    // lacks the victim: the middle one of the dests that serve flows. sh and dh give their 256 buckets
    // to the first 256 dests of the list only, so with more the victim is taken among those.
    dest_set dests(n + 1, unit_weight);
    const std::vector<dest*> plus = dests.list;
    const std::vector<dest*> base(plus.begin() + 1, plus.end());
    const std::size_t at = std::min<std::size_t>(n, 256) / 2;
    dest& victim = *base[at];
    std::vector<dest*> minus = base;
    minus.erase(minus.begin() + static_cast<std::ptrdiff_t>(at));
    // 2^20 destination addresses, so dh's 256 buckets are hit evenly too.
    const std::vector<sched_input> flows = make_flows(moved_flows, 1U << 20);

    S s = make(n);
    attach(s, base);
    const std::vector<dest*> before = picks_of(s, base, flows);
    const std::set<const dest*> serving(before.begin(), before.end());
    victim.flags &= ~dest_flag::available; // as the service's del_dest: unlinked, then the hook
    s.del_dest(minus, victim);
    const double del = moved_share(before, picks_of(s, minus, flows));

    S grown = make(n);
    attach(grown, base);
    grown.add_dest(plus, *plus.front());
    const double add = moved_share(before, picks_of(grown, plus, flows));

    const auto per_million = [](double x) { return static_cast<std::uint64_t>(x * 1e6 + 0.5); };
    const std::uint64_t h = (per_million(del) << 32) | per_million(add);
    if (!agree(st, "moved/" + name + "/" + std::to_string(n), h)) return;
    st.counters["serving"] = static_cast<double>(serving.size()); // dests that got any of the flows
    st.counters["moved_frac_del"] = del;
    st.counters["ideal_del"] = 1.0 / static_cast<double>(n);
    st.counters["moved_frac_add"] = add;
    st.counters["ideal_add"] = 1.0 / static_cast<double>(n + 1);

    // Timed: the control-path cost of the change, one re-add and one delete of the victim per iteration.
    const dest_list base_view{base.data(), base.size()};
    const dest_list minus_view{minus.data(), minus.size()};
    for (auto _ : st) {
        victim.flags |= dest_flag::available;
        s.add_dest(base_view, victim);
        victim.flags &= ~dest_flag::available;
        s.del_dest(minus_view, victim);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(2 * st.iterations());
}

// ---- registration ------------------------------------------------------------------------------------

/// The table size for mh over n dests: the kernel default 4093, or 65521 where 4093 slots are too few
/// (the kernel refuses more dests than slots).
[[nodiscard]] std::uint32_t mh_size_for(std::size_t n) { return n <= 4093 ? 4093 : 65521; }

template <class S>
S make_default(std::size_t /*n*/) {
    return S{};
}

/// picks/<name>/fast and picks/<name>/reference for every size, fast first.
template <class Fast, class Ref, bool Binds, bool Timed = false, class MakeFast, class MakeRef>
void register_picks(const std::string& name, MakeFast make_fast, MakeRef make_ref,
                    const std::vector<std::int64_t>& sizes) {
    for (const std::int64_t n : sizes) {
        benchmark::RegisterBenchmark(("picks/" + name + "/fast").c_str(),
                                     bm_picks<Fast, Binds, Timed, MakeFast>, make_fast, name)
            ->Arg(n);
        benchmark::RegisterBenchmark(("picks/" + name + "/reference").c_str(),
                                     bm_picks<Ref, Binds, Timed, MakeRef>, make_ref, name)
            ->Arg(n);
    }
}

template <class Fast, class Ref, bool Binds, bool Timed = false>
void register_picks(const std::string& name, const std::vector<std::int64_t>& sizes) {
    register_picks<Fast, Ref, Binds, Timed>(name, make_default<Fast>, make_default<Ref>, sizes);
}

template <class Fast, class Ref, class MakeFast, class MakeRef>
void register_moved(const std::string& name, MakeFast make_fast, MakeRef make_ref,
                    const std::vector<std::int64_t>& sizes) {
    for (const std::int64_t n : sizes) {
        benchmark::RegisterBenchmark(("moved/" + name + "/fast").c_str(), bm_moved<Fast, MakeFast>, make_fast,
                                     name)
            ->Arg(n)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("moved/" + name + "/reference").c_str(), bm_moved<Ref, MakeRef>,
                                     make_ref, name)
            ->Arg(n)
            ->Unit(benchmark::kMicrosecond);
    }
}

void register_all(bool smoke) {
    const std::vector<std::int64_t> sizes =
        smoke ? std::vector<std::int64_t>{8, 1024} : std::vector<std::int64_t>{8, 64, 1024, 16384};
    const std::vector<std::int64_t> moved_sizes =
        smoke ? std::vector<std::int64_t>{8, 1024} : std::vector<std::int64_t>{8, 64, 1024};

    // O(1) schedulers: the pick alone (counters do not drive them).
    register_picks<rr, reference_rr, false>("rr", sizes);
    register_picks<wrr, reference_wrr, false>("wrr", sizes);
    const auto make_sh = [](std::size_t) { return sh(hash_flags); };
    const auto make_ref_sh = [](std::size_t) { return reference_sh(hash_flags); };
    const auto make_mh = [](std::size_t n) { return mh(hash_flags, mh_size_for(n)); };
    const auto make_ref_mh = [](std::size_t n) { return reference_mh(hash_flags, mh_size_for(n)); };
    register_picks<sh, reference_sh, false>("sh", make_sh, make_ref_sh, sizes);
    register_picks<dh, reference_dh, false>("dh", sizes);
    register_picks<mh, reference_mh, false>("mh", make_mh, make_ref_mh, sizes);

    // Counter-driven schedulers: each pick binds a connection and frees one.
    register_picks<lc, reference_lc, true>("lc", sizes);
    register_picks<wlc, reference_wlc, true>("wlc", sizes);
    register_picks<sed, reference_sed, true>("sed", sizes);
    register_picks<nq, reference_nq, true>("nq", sizes);
    register_picks<fo, reference_fo, true>("fo", sizes);
    register_picks<ovf, reference_ovf, true>("ovf", sizes);
    register_picks<twos<>, reference_twos<>, true>("twos", sizes);
    register_picks<lblc, reference_lblc, true, true>("lblc", sizes);
    register_picks<lblcr, reference_lblcr, true, true>("lblcr", sizes);

    // mh table builds: n ∈ {10, 100, 1000} at M = 4093 and 65521, and 16384 dests at 65521.
    std::vector<std::pair<std::int64_t, std::int64_t>> builds;
    for (const std::int64_t m :
         smoke ? std::vector<std::int64_t>{4093} : std::vector<std::int64_t>{4093, 65521})
        for (const std::int64_t n : {10, 100, 1000}) builds.emplace_back(n, m);
    if (!smoke) builds.emplace_back(16384, 65521);
    for (const auto& [n, m] : builds) {
        benchmark::RegisterBenchmark("mh_build/fast", bm_mh_build<mh>)
            ->Args({n, m})
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark("mh_build/reference", bm_mh_build<reference_mh>)
            ->Args({n, m})
            ->Unit(benchmark::kMicrosecond);
    }

    register_moved<sh, reference_sh>("sh", make_sh, make_ref_sh, moved_sizes);
    register_moved<dh, reference_dh>("dh", make_default<dh>, make_default<reference_dh>, moved_sizes);
    register_moved<mh, reference_mh>("mh", make_mh, make_ref_mh, moved_sizes);
    if (!smoke) { // Maglev's disruption shrinks as M/n grows: the same at the largest table size
        const auto make_big = [](std::size_t) { return mh(hash_flags, 65521); };
        const auto make_ref_big = [](std::size_t) { return reference_mh(hash_flags, 65521); };
        register_moved<mh, reference_mh>("mh_65521", make_big, make_ref_big, moved_sizes);
    }
}

} // namespace

int main(int argc, char** argv) {
    const char* smoke = std::getenv("IPVS_BENCH_SMOKE");
    register_all(smoke != nullptr && *smoke != '\0' && std::string(smoke) != "0");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return g_disagreement ? 1 : 0;
}
