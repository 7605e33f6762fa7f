// SPDX-License-Identifier: MIT
// Runtime choice of a scheduler by its ipvsadm name: a std::variant of the 14 schedulers + std::visit.
#pragma once

// Design
// ------
// `any_scheduler` holds one of the fast schedulers by value (no virtual call, no allocation of its
// own) and forwards the ops of the `scheduler` concept with std::visit, so a service<any_scheduler>
// is configured from text (`ipvsadm -s NAME`) and still costs one jump-table dispatch per pick.
// The alternatives are in the order of the kernel's ip_vs_*.c modules' ipvsadm names below; name()
// maps the active one back to its name. Invariant: never valueless — every hook either leaves the
// alternative in place or throws before changing it (the alternatives' hooks give that guarantee).
// Source: the kernel's scheduler registry (ip_vs_sched.c: lookup by name, -ENOENT for an unknown one).
// Deviation: none; an unknown name is a configuration mistake and throws std::invalid_argument.

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

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

namespace ipvs::sched {

/// Construction parameters of the schedulers that have any; the others ignore them.
struct scheduler_options {
    std::uint32_t mh_table_size = 4093; ///< prime; the recorded kernels' CONFIG_IP_VS_MH_TAB_INDEX 12
    lblc_options lblc{};
    lblcr_options lblcr{};
    std::uint64_t twos_seed = splitmix_rng::default_seed;
};

/// One of the 14 schedulers, chosen at run time; models `scheduler` itself.
class any_scheduler {
public:
    using variant_type = std::variant<rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos<>>;

    /// The ipvsadm names, indexed like variant_type's alternatives.
    static constexpr std::array<std::string_view, std::variant_size_v<variant_type>> names = {
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"};

    /// wlc, ipvsadm's default scheduler.
    any_scheduler() : m_v(std::in_place_type<wlc>) {}

    template <class S>
    requires(!std::same_as<std::remove_cvref_t<S>, any_scheduler> &&
             std::is_constructible_v<variant_type, S&&>) any_scheduler(S&& s)
        : m_v(std::forward<S>(s)) {} // NOLINT: implicit on purpose, like std::variant

    [[nodiscard]] dest* schedule(dest_list list, const sched_input& in) noexcept {
        return std::visit([&](auto& s) noexcept -> dest* { return s.schedule(list, in); }, m_v);
    }
    void add_dest(dest_list list, dest& d) {
        std::visit([&](auto& s) { s.add_dest(list, d); }, m_v);
    }
    void del_dest(dest_list list, dest& d) {
        std::visit([&](auto& s) { s.del_dest(list, d); }, m_v);
    }
    void upd_dest(dest_list list, dest& d) {
        std::visit([&](auto& s) { s.upd_dest(list, d); }, m_v);
    }
    void counts_changed(dest_list list, dest& d) noexcept {
        std::visit([&](auto& s) noexcept { s.counts_changed(list, d); }, m_v);
    }

    /// Forwards to the alternative's `assume_picked` where it has one (rr, wrr, lblc, lblcr, …).
    void assume_picked(dest_list list, dest& d, const sched_input& in) noexcept {
        std::visit(
            [&](auto& s) noexcept {
                if constexpr (requires { s.assume_picked(list, d, in); })
                    s.assume_picked(list, d, in);
                else if constexpr (requires { s.assume_picked(list, d); })
                    s.assume_picked(list, d);
            },
            m_v);
    }

    /// The ipvsadm name of the held scheduler ("wlc", "sh", …).
    [[nodiscard]] std::string_view name() const noexcept { return names[m_v.index()]; }

    /// The held scheduler if it is an `S`, else nullptr.
    template <class S>
    [[nodiscard]] S* get_if() noexcept {
        return std::get_if<S>(&m_v);
    }
    [[nodiscard]] variant_type& variant() noexcept { return m_v; }
    [[nodiscard]] const variant_type& variant() const noexcept { return m_v; }

private:
    variant_type m_v;
};

static_assert(scheduler<any_scheduler>);

/// The scheduler `ipvsadm -s name` selects, with the service's SCHED1/SCHED2 flags (used by sh and
/// mh, ignored by the others, as the kernel does). Throws std::invalid_argument for an unknown name.
[[nodiscard]] inline any_scheduler make_scheduler(std::string_view name, sched_flags flags = {},
                                                  const scheduler_options& o = {}) {
    if (name == "rr") return rr{};
    if (name == "wrr") return wrr{};
    if (name == "lc") return lc{};
    if (name == "wlc") return wlc{};
    if (name == "lblc") return lblc{o.lblc};
    if (name == "lblcr") return lblcr{o.lblcr};
    if (name == "dh") return dh{};
    if (name == "sh") return sh{flags};
    if (name == "sed") return sed{};
    if (name == "nq") return nq{};
    if (name == "fo") return fo{};
    if (name == "ovf") return ovf{};
    if (name == "mh") return mh{flags, o.mh_table_size};
    if (name == "twos") return twos<>{splitmix_rng{o.twos_seed}};
    throw std::invalid_argument("ipvs: unknown scheduler '" + std::string(name) + "'");
}

} // namespace ipvs::sched
