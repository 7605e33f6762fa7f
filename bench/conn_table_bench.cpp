// SPDX-License-Identifier: MIT
// conn_table vs std::unordered_map, boost::unordered_flat_map, absl::flat_hash_map: same keys and hash.
//
// Benchmarks (IPv4 and IPv6, each size given by --sizes=N[,N…], default 65536,1000000):
//   hit/<impl>/v4/<size>       one lookup at a time, keys drawn at random from the table
//   miss/<impl>/v4/<size>      one lookup at a time, keys not in the table
//   batch_hit/ipvs/v4/<size>   find_in_batch, 16 / 32 / 64 keys a call (ns per key: `per_key`)
//   churn/<impl>/v4/<size>     steady state at 7/8 of the size: one insert and one expiry per iteration
//                              (ipvs: 120 s timeouts through the timer wheel; baselines: erase the oldest)
// Counters: `bytes_per_conn` (ipvs: entries + index at capacity; baselines: bytes their allocator
// holds after the inserts, divided by the element count), `found` (must be 1 for hits, 0 for misses)
// and `checksum` (sum over found entries, so a lookup optimised away cannot win).
// Every container uses the same allocator (counting; 2 MB-aligned + MADV_HUGEPAGE for blocks of 2 MB
// and more, so large tables of all kinds get transparent huge pages alike) and the same hash
// (ipvs::flow_hasher over the client endpoint, marked avalanching for boost). Fixed seeds.
#include <sys/mman.h>

#include <absl/container/flat_hash_map.h>
#include <benchmark/benchmark.h>
#include <boost/unordered/unordered_flat_map.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <ipvs/conn_table.hpp>

namespace {

// ---- allocator: counts bytes, huge pages for big blocks ----------------------------------------------
std::size_t g_allocated = 0;

template <class T>
struct bench_alloc {
    using value_type = T;
    bench_alloc() = default;
    template <class U>
    bench_alloc(const bench_alloc<U>&) noexcept {}
    static constexpr std::size_t huge = std::size_t{2} << 20;
    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        g_allocated += bytes;
        if (bytes >= huge) {
            const std::size_t len = (bytes + huge - 1) / huge * huge;
            void* p = mmap(nullptr, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            // Trim to a 2 MB-aligned block so the kernel can back it with huge pages.
            auto a = reinterpret_cast<std::uintptr_t>(p);
            const std::uintptr_t aligned = (a + huge - 1) & ~(huge - 1);
            if (aligned > a) munmap(p, aligned - a);
            const std::uintptr_t end = a + len + huge, aend = aligned + len;
            if (end > aend) munmap(reinterpret_cast<void*>(aend), end - aend);
            madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
            return reinterpret_cast<T*>(aligned);
        }
        return static_cast<T*>(::operator new(bytes, std::align_val_t(alignof(T) < 16 ? 16 : alignof(T))));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        g_allocated -= bytes;
        if (bytes >= huge)
            munmap(p, (bytes + huge - 1) / huge * huge);
        else
            ::operator delete(p, std::align_val_t(alignof(T) < 16 ? 16 : alignof(T)));
    }
    template <class U>
    bool operator==(const bench_alloc<U>&) const noexcept {
        return true;
    }
};

// ---- keys ------------------------------------------------------------------------------------------------
template <std::size_t N>
using key_t = ipvs::in_tuple<N>;
template <std::size_t N>
using entry_t = ipvs::basic_conn<N>;

/// The same hash for everyone: the table's client-endpoint flow hash.
template <std::size_t N>
struct key_hash {
    using is_avalanching = std::true_type; // boost: use the value as is
    ipvs::flow_hasher h;
    std::size_t operator()(const key_t<N>& k) const noexcept { return h(k.protocol, k.caddr, k.cport); }
};

std::vector<ipvs::dest>& dests() {
    static std::vector<ipvs::dest> d = [] {
        std::vector<ipvs::dest> v(4);
        for (int i = 0; i < 4; ++i) {
            v[i].ep = {ipvs::inet_addr::v4(0x0a02000b + i), 8080};
            v[i].weight = 1;
        }
        return v;
    }();
    return d;
}

template <std::size_t N>
key_t<N> make_key(std::uint64_t x, std::uint64_t y) {
    key_t<N> k;
    for (std::size_t i = 0; i < N; ++i)
        k.caddr[i] = static_cast<std::uint8_t>((i < 8 ? x : y) >> (8 * (i % 8)));
    if constexpr (N == 16) k.caddr[0] = 0xfd;
    k.vaddr[0] = 10;
    k.vaddr[N - 1] = static_cast<std::uint8_t>(100 + (y >> 60)); // 4 VIPs
    k.cport = static_cast<std::uint16_t>(y >> 16);
    if (k.cport == 0) k.cport = 1; // port 0 only matches NO_CPORT entries (spec §3.3)
    k.vport = 80;
    k.protocol = 6;
    return k;
}

constexpr std::size_t lookup_len = std::size_t{1} << 20;

/// The keys of one size: the inserted ones, a random-order hit stream and a miss stream.
template <std::size_t N>
struct keyset {
    std::size_t size = 0;
    std::vector<key_t<N>> inserted, hits, misses;
    static keyset& get(std::size_t size) {
        static keyset ks;
        if (ks.size != size) {
            ks = keyset{};
            ks.size = size;
            std::mt19937_64 rng(42 + size);
            ks.inserted.reserve(size);
            for (std::size_t i = 0; i < size; ++i) ks.inserted.push_back(make_key<N>(rng(), rng()));
            ks.hits.reserve(lookup_len);
            ks.misses.reserve(lookup_len);
            for (std::size_t i = 0; i < lookup_len; ++i) {
                ks.hits.push_back(ks.inserted[rng() % size]);
                ks.misses.push_back(
                    make_key<N>(rng(), rng() | 1)); // fresh random: a miss (2^-64 collision odds)
            }
        }
        return ks;
    }
};

entry_t<4> payload(const key_t<4>& k, std::size_t i) {
    return ipvs::make_conn<entry_t<4>>(k, &dests()[i % 4], 8080, 0, std::chrono::seconds(900));
}
entry_t<16> payload(const key_t<16>& k, std::size_t i) {
    return ipvs::make_conn<entry_t<16>>(k, &dests()[i % 4], 8080, 0, std::chrono::seconds(900));
}

// ---- the four implementations -----------------------------------------------------------------------
template <std::size_t N>
struct ipvs_impl {
    static constexpr const char* name = "ipvs";
    using table =
        ipvs::conn_table<entry_t<N>, ipvs::flow_hasher, ipvs::manual_clock, bench_alloc<entry_t<N>>>;
    std::unique_ptr<table> t;
    double bytes_per_conn = 0;
    explicit ipvs_impl(std::size_t cap)
        : t(std::make_unique<table>(ipvs::conn_table_config{.capacity = cap})) {
        bytes_per_conn = double(t->memory_bytes()) / double(cap);
    }
    void insert(const key_t<N>& k, std::size_t i) {
        (void)t->insert(payload(k, i), ipvs::admit::established, [](auto&) {});
    }
    const entry_t<N>* find(const key_t<N>& k) { return t->find_in(k); }
    void finish_build(std::size_t) {}
};

template <std::size_t N>
using pair_alloc = bench_alloc<std::pair<const key_t<N>, entry_t<N>>>;

/// A baseline: `Map` is std::unordered_map, boost::unordered_flat_map or absl::flat_hash_map.
template <std::size_t N, template <class...> class Map, const char* Name>
struct map_impl {
    static constexpr const char* name = Name;
    Map<key_t<N>, entry_t<N>, key_hash<N>, std::equal_to<>, pair_alloc<N>> m;
    double bytes_per_conn = 0;
    std::size_t before = 0;
    explicit map_impl(std::size_t cap) : before(g_allocated) { m.reserve(cap); }
    void insert(const key_t<N>& k, std::size_t i) { m.emplace(k, payload(k, i)); }
    const entry_t<N>* find(const key_t<N>& k) {
        auto it = m.find(k);
        return it == m.end() ? nullptr : &it->second;
    }
    void finish_build(std::size_t n) { bytes_per_conn = double(g_allocated - before) / double(n); }
};
constexpr char boost_name[] = "boost_flat", absl_name[] = "absl_flat", std_name[] = "std_unordered";
template <std::size_t N>
using boost_impl = map_impl<N, boost::unordered_flat_map, boost_name>;
template <std::size_t N>
using absl_impl = map_impl<N, absl::flat_hash_map, absl_name>;
template <std::size_t N>
using std_impl = map_impl<N, std::unordered_map, std_name>;

/// One built container at a time (10M-entry tables are big): rebuilt when another is asked for.
struct built_base {
    virtual ~built_base() = default;
};
template <class Impl>
struct built : built_base {
    Impl impl;
    explicit built(std::size_t n) : impl(n) {}
};
std::unique_ptr<built_base> g_current;
const void* g_current_tag = nullptr;
std::size_t g_current_size = 0;

template <class Impl, std::size_t N>
Impl& get_built(std::size_t size) {
    static const char tag = 0;
    if (g_current_tag != &tag || g_current_size != size) {
        g_current.reset();
        auto& ks = keyset<N>::get(size);
        auto b = std::make_unique<built<Impl>>(size);
        for (std::size_t i = 0; i < size; ++i) b->impl.insert(ks.inserted[i], i);
        b->impl.finish_build(size);
        g_current = std::move(b);
        g_current_tag = &tag;
        g_current_size = size;
    }
    return static_cast<built<Impl>*>(g_current.get())->impl;
}

template <std::size_t N>
void report(benchmark::State& st, double bytes, std::uint64_t found, std::uint64_t sum, std::uint64_t n) {
    st.counters["bytes_per_conn"] = bytes;
    st.counters["found"] = n ? double(found) / double(n) : 0;
    st.counters["checksum"] = double(sum & 0xffffffff);
}

template <class Impl, std::size_t N, bool Hit>
void bm_lookup(benchmark::State& st) {
    const auto size = static_cast<std::size_t>(st.range(0));
    auto& impl = get_built<Impl, N>(size);
    const auto& keys = Hit ? keyset<N>::get(size).hits : keyset<N>::get(size).misses;
    std::size_t i = 0;
    std::uint64_t found = 0, sum = 0, n = 0;
    for (auto _ : st) {
        const entry_t<N>* e = impl.find(keys[i]);
        i = (i + 1) & (lookup_len - 1);
        if (e) {
            ++found;
            sum += e->cport + e->dest->ep.port;
        }
        ++n;
        benchmark::DoNotOptimize(e);
    }
    report<N>(st, impl.bytes_per_conn, found, sum, n);
}

template <std::size_t N>
void bm_batch(benchmark::State& st) {
    const auto size = static_cast<std::size_t>(st.range(0));
    const auto burst = static_cast<std::size_t>(st.range(1));
    auto& impl = get_built<ipvs_impl<N>, N>(size);
    const auto& keys = keyset<N>::get(size).hits;
    std::vector<entry_t<N>*> out(burst);
    std::size_t i = 0;
    std::uint64_t found = 0, sum = 0, n = 0;
    for (auto _ : st) {
        impl.t->find_in_batch(std::span(keys).subspan(i, burst), out);
        i = (i + burst) & (lookup_len - 1);
        for (auto* e : out) {
            if (e) {
                ++found;
                sum += e->cport + e->dest->ep.port;
            }
        }
        n += burst;
        benchmark::DoNotOptimize(out.data());
    }
    report<N>(st, impl.bytes_per_conn, found, sum, n);
    st.counters["per_key"] =
        benchmark::Counter(double(n), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// Steady-state churn at 7/8 of capacity: each iteration one new connection, one gone.
template <class Impl, std::size_t N>
void bm_churn(benchmark::State& st) {
    const auto size = static_cast<std::size_t>(st.range(0));
    const std::size_t pop = size / 8 * 7;
    g_current.reset(); // free whatever lookup fixture was built
    g_current_tag = nullptr;
    std::uint64_t seq = 0;
    auto next_key = [&] {
        ++seq;
        return make_key<N>(mix(seq), mix(seq ^ 0xabcdef));
    };
    std::uint64_t sum = 0;
    if constexpr (std::is_same_v<Impl, ipvs_impl<N>>) {
        Impl impl(size);
        // 120 s timeouts (a SYN_RECV-to-ESTABLISHED mix would be similar; below one wheel rotation) and
        // the clock moving 120 s / population per iteration: one connection expires per iteration on
        // average, as in a director at that connection rate.
        const ipvs::time_ns timeout = std::chrono::seconds(120);
        const ipvs::time_ns step = timeout / static_cast<std::int64_t>(pop);
        auto& clock = impl.t->clock();
        std::size_t gone = 0;
        auto count_gone = [&](entry_t<N>& e) {
            ++gone;
            sum += e.cport;
        };
        for (std::size_t i = 0; i < pop; ++i) {
            clock.advance(step);
            (void)impl.t->insert(ipvs::make_conn<entry_t<N>>(next_key(), &dests()[i % 4], 8080, 0, timeout),
                                 ipvs::admit::established, count_gone);
            impl.t->expire(8, count_gone); // a director polls all along
        }
        gone = 0;
        for (auto _ : st) {
            clock.advance(step);
            auto r =
                impl.t->insert(ipvs::make_conn<entry_t<N>>(next_key(), &dests()[seq % 4], 8080, 0, timeout),
                               ipvs::admit::established, count_gone);
            benchmark::DoNotOptimize(r.entry);
            impl.t->expire(8, count_gone);
        }
        st.counters["expired_per_iter"] = double(gone) / double(st.iterations());
        st.counters["size"] = double(impl.t->size());
        st.counters["bytes_per_conn"] = impl.bytes_per_conn;
    } else {
        Impl impl(size);
        std::vector<key_t<N>> ring(pop);
        for (std::size_t i = 0; i < pop; ++i) {
            ring[i] = next_key();
            impl.insert(ring[i], i);
        }
        std::size_t pos = 0;
        for (auto _ : st) {
            auto it = impl.m.find(ring[pos]);
            sum += it->second.cport;
            impl.m.erase(it);
            ring[pos] = next_key();
            impl.insert(ring[pos], seq);
            pos = pos + 1 == pop ? 0 : pos + 1;
        }
        st.counters["size"] = double(impl.m.size());
    }
    st.counters["checksum"] = double(sum & 0xffffffff);
}

template <std::size_t N>
void register_family(const std::vector<std::int64_t>& sizes) {
    const std::string fam = N == 4 ? "v4" : "v6";
    for (auto size : sizes) {
        // Grouped by container so each is built once per size.
        auto lookups = [&](auto impl_tag) {
            using Impl = decltype(impl_tag);
            const std::string nm = std::string(Impl::name) + "/" + fam;
            benchmark::RegisterBenchmark(("hit/" + nm).c_str(), bm_lookup<Impl, N, true>)->Arg(size);
            benchmark::RegisterBenchmark(("miss/" + nm).c_str(), bm_lookup<Impl, N, false>)->Arg(size);
            if constexpr (std::is_same_v<Impl, ipvs_impl<N>>)
                for (std::int64_t b : {16, 32, 64})
                    benchmark::RegisterBenchmark(("batch_hit/" + nm).c_str(), bm_batch<N>)->Args({size, b});
        };
        lookups(ipvs_impl<N>(1));
        lookups(boost_impl<N>(1));
        lookups(absl_impl<N>(1));
        lookups(std_impl<N>(1));
        benchmark::RegisterBenchmark(("churn/ipvs/" + fam).c_str(), bm_churn<ipvs_impl<N>, N>)->Arg(size);
        benchmark::RegisterBenchmark(("churn/boost_flat/" + fam).c_str(), bm_churn<boost_impl<N>, N>)
            ->Arg(size);
        benchmark::RegisterBenchmark(("churn/absl_flat/" + fam).c_str(), bm_churn<absl_impl<N>, N>)
            ->Arg(size);
        benchmark::RegisterBenchmark(("churn/std_unordered/" + fam).c_str(), bm_churn<std_impl<N>, N>)
            ->Arg(size);
    }
}

} // namespace

int main(int argc, char** argv) {
    // Our own flag, taken out before Google Benchmark sees the arguments.
    std::vector<std::int64_t> sizes = {65536, 1000000};
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strncmp(argv[i], "--sizes=", 8) == 0) {
            sizes.clear();
            for (const char* p = argv[i] + 8; *p;) {
                char* end = nullptr;
                sizes.push_back(std::strtoll(p, &end, 10));
                p = *end == ',' ? end + 1 : end;
            }
        } else {
            args.push_back(argv[i]);
        }
    }
    int n = static_cast<int>(args.size());
    register_family<4>(sizes);
    register_family<16>(sizes);
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
