// SPDX-License-Identifier: MIT
// An allocator that backs large arrays with huge pages, for the connection table's fixed arrays.
#pragma once

// Design
// ------
// A connection table of 1M entries is ≈ 64 MB touched at random: with 4 KB pages every lookup is also a
// TLB miss, and the page walk itself misses the cache (the table spans 16k pages; a core's TLB holds a
// few thousand). With 2 MB pages the same table is 32 pages. `huge_page_allocator<T>` allocates
// requests of at least 2 MB aligned to 2 MB and asks Linux for transparent huge pages on them
// (madvise(MADV_HUGEPAGE), honoured when /sys/kernel/mm/transparent_hugepage/enabled is `always` or
// `madvise`, the default of Debian's kernels). Smaller requests, other systems, and a refused madvise
// fall back to ordinary pages: the advice is a hint, never a failure. A disabled allocator
// (`huge_page_allocator<T>(false)`) allocates exactly as std::allocator does.
//
// It is meant for arrays allocated once and touched right after (conn_table's constructor value-
// initializes its arrays, so the pages are faulted in at construction, off the packet path). It is a
// stateful allocator: two compare equal when they agree on `enabled()`.
//
// Deviations: none (no kernel counterpart; the kernel's slab lives in its own huge-page direct map).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ipvs {

/// Allocates ≥ 2 MB requests on 2 MB boundaries with MADV_HUGEPAGE (Linux), the rest as operator new.
template <class T>
class huge_page_allocator {
public:
    using value_type = T;
    static constexpr std::size_t huge_page = std::size_t{2} << 20;

    constexpr huge_page_allocator() noexcept = default;
    constexpr explicit huge_page_allocator(bool enabled) noexcept : m_enabled(enabled) {}
    template <class U>
    constexpr huge_page_allocator(const huge_page_allocator<U>& o) noexcept : m_enabled(o.enabled()) {}

    [[nodiscard]] constexpr bool enabled() const noexcept { return m_enabled; }

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
        const std::size_t bytes = n * sizeof(T);
        if (!use_huge(bytes)) return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
        if (bytes > std::numeric_limits<std::size_t>::max() - huge_page) throw std::bad_alloc();
        void* p = std::aligned_alloc(huge_page, rounded(bytes));
        if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        (void)::madvise(p, rounded(bytes), MADV_HUGEPAGE); // a hint: ordinary pages if refused
#endif
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (!use_huge(bytes)) {
            ::operator delete (p, std::align_val_t{alignof(T)});
            return;
        }
        std::free(p);
    }

    template <class U>
    friend constexpr bool operator==(const huge_page_allocator& a, const huge_page_allocator<U>& b) noexcept {
        return a.enabled() == b.enabled();
    }

private:
    [[nodiscard]] bool use_huge(std::size_t bytes) const noexcept {
        return m_enabled && bytes >= huge_page && alignof(T) <= huge_page;
    }
    static constexpr std::size_t rounded(std::size_t bytes) noexcept {
        return (bytes + huge_page - 1) / huge_page * huge_page;
    }

    bool m_enabled = true;
};

} // namespace ipvs
