// SPDX-License-Identifier: MIT
// Tests for <ipvs/service.hpp>: list order, scheduler hooks, OVERLOAD hysteresis, trash revival, errors.
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ipvs/service.hpp>

using namespace ipvs;

namespace {

endpoint ep(const char* s) { return *parse_endpoint(s); }

/// One hook call as the scheduler saw it: which hook, on which dest, the list at that moment and
/// the fields the hook may read.
struct hook_call {
    std::string hook;
    endpoint who;
    std::vector<endpoint> list;
    int weight;
    bool available;
    bool overloaded;
};

/// A scheduler that records every hook call, picks the list head, and can be told to reject.
struct recording_scheduler {
    std::shared_ptr<std::vector<hook_call>> log = std::make_shared<std::vector<hook_call>>();
    std::shared_ptr<bool> reject = std::make_shared<bool>(false);

    void note(const char* hook, sched::dest_list l, const dest& d) const {
        std::vector<endpoint> eps;
        for (const dest* x : l) eps.push_back(x->ep);
        log->push_back({hook, d.ep, eps, d.weight, d.available(), d.overloaded()});
    }
    [[nodiscard]] dest* schedule(sched::dest_list l, const sched::sched_input&) noexcept {
        return l.empty() ? nullptr : l[0];
    }
    void add_dest(sched::dest_list l, dest& d) {
        note("add", l, d);
        if (*reject) throw std::invalid_argument("rejected by the scheduler");
    }
    void del_dest(sched::dest_list l, dest& d) {
        note("del", l, d);
        if (*reject) throw std::invalid_argument("rejected by the scheduler");
    }
    void upd_dest(sched::dest_list l, dest& d) {
        note("upd", l, d);
        if (*reject) throw std::invalid_argument("rejected by the scheduler");
    }
    void counts_changed(sched::dest_list l, dest& d) noexcept {
        try {
            note("counts", l, d);
        } catch (...) {
        }
    }
};
static_assert(sched::scheduler<recording_scheduler>);

std::vector<endpoint> order(const service<recording_scheduler>& s) {
    std::vector<endpoint> out;
    for (const dest* d : s.dests()) out.push_back(d->ep);
    return out;
}

} // namespace

TEST_CASE("service: a new dest goes to the list head, so the list is the reverse of the adds (spec §0)") {
    service<recording_scheduler> s;
    auto& a = s.add_dest({ep("10.0.2.11:80"), 4});
    auto& b = s.add_dest({ep("10.0.2.12:80"), 3});
    auto& c = s.add_dest({ep("10.0.2.13:80"), 0});
    CHECK(order(s) == std::vector<endpoint>{c.ep, b.ep, a.ep});
    CHECK(c.list_seq > b.list_seq);
    CHECK(b.list_seq > a.list_seq);
    SUBCASE("every listed dest is AVAILABLE, last_weight is the weight on add even when 0 (§1.2, §1.4)") {
        for (const dest* d : s.dests()) CHECK(d->available());
        CHECK(a.last_weight == 4);
        CHECK(c.last_weight == 0);
    }
    SUBCASE("an edit does not move the dest; last_weight keeps the latest non-zero weight") {
        s.edit_dest({a.ep, 0});
        CHECK(order(s) == std::vector<endpoint>{c.ep, b.ep, a.ep});
        CHECK(a.weight == 0);
        CHECK(a.last_weight == 4);
        s.edit_dest({a.ep, 7});
        CHECK(a.last_weight == 7);
    }
    SUBCASE("find_dest finds listed dests only") {
        CHECK(s.find_dest(b.ep) == &b);
        CHECK(s.find_dest(ep("10.0.2.14:80")) == nullptr);
        CHECK(s.find_dest(ep("10.0.2.11:81")) == nullptr);
        auto gone = s.del_dest(b.ep);
        CHECK(s.find_dest(b.ep) == nullptr);
        CHECK(gone.get() == &b);
    }
}

TEST_CASE("service: scheduler hooks run when spec §1.9 says, with the dest's fields already final") {
    recording_scheduler rec;
    service<recording_scheduler> s(rec);
    auto& a = s.add_dest({ep("10.0.2.11:80"), 2, 4});
    auto& b = s.add_dest({ep("[fd00:2::c]:80"), 3});
    auto& log = *rec.log;
    REQUIRE(log.size() == 2);
    SUBCASE("add: after the insertion at the head, never upd") {
        CHECK(log[1].hook == "add");
        CHECK(log[1].who == b.ep);
        CHECK(log[1].list == std::vector<endpoint>{b.ep, a.ep});
        CHECK(log[1].weight == 3);
        CHECK(log[1].available);
    }
    SUBCASE("edit: upd after the new weight is set") {
        s.edit_dest({a.ep, 9});
        REQUIRE(log.size() == 3);
        CHECK(log[2].hook == "upd");
        CHECK(log[2].weight == 9);
        CHECK(log[2].list == std::vector<endpoint>{b.ep, a.ep});
    }
    SUBCASE("delete: del after the unlink, the dest alive but no longer AVAILABLE") {
        auto gone = s.del_dest(b.ep);
        REQUIRE(log.size() == 3);
        CHECK(log[2].hook == "del");
        CHECK(log[2].who == b.ep);
        CHECK(log[2].list == std::vector<endpoint>{a.ep});
        CHECK_FALSE(log[2].available);
        CHECK_FALSE(gone->available());
    }
    SUBCASE("each counter operation tells the scheduler once, OVERLOAD already updated") {
        s.bind(a, conn_counter::inactive);
        s.move_to_active(a);
        s.bind(a, conn_counter::persist);
        s.bind(a, conn_counter::inactive);
        s.bind(a, conn_counter::inactive);
        s.bind(a, conn_counter::inactive); // total 4 = u_threshold
        s.unbind(a, conn_counter::active);
        s.move_to_active(a);
        REQUIRE(log.size() == 10);
        for (std::size_t i = 2; i < log.size(); ++i) CHECK(log[i].hook == "counts");
        CHECK(log[7].overloaded);
        CHECK(log[8].overloaded); // 3 of 4: not below 3/4 yet
    }
    SUBCASE("a deleted dest's connections still count, the scheduler is not told") {
        s.bind(b, conn_counter::inactive);
        auto gone = s.del_dest(b.ep);
        const auto before = log.size();
        s.unbind(*gone, conn_counter::inactive);
        CHECK(gone->inactive_conns == 0);
        CHECK(log.size() == before);
    }
}

TEST_CASE("service: OVERLOAD follows the hysteresis of spec §1.5 through bind and unbind") {
    service<recording_scheduler> s;
    SUBCASE("upper threshold only: set at u, cleared below 3/4 of u") {
        auto& d = s.add_dest({ep("10.0.2.11:80"), 1, 8});
        for (int i = 0; i < 7; ++i) s.bind(d, conn_counter::inactive);
        CHECK_FALSE(d.overloaded());
        s.bind(d, conn_counter::inactive);
        CHECK(d.overloaded()); // total 8 >= 8
        s.move_to_active(d);
        CHECK(d.overloaded()); // moves never touch it
        s.unbind(d, conn_counter::inactive);
        s.unbind(d, conn_counter::inactive);
        CHECK(d.overloaded()); // 6*4 = 24 is not < 8*3 = 24
        s.unbind(d, conn_counter::active);
        CHECK_FALSE(d.overloaded()); // 5*4 < 24
    }
    SUBCASE("with a lower threshold: cleared below l") {
        auto& d = s.add_dest({ep("10.0.2.11:80"), 1, 4, 2});
        for (int i = 0; i < 4; ++i) s.bind(d, conn_counter::inactive);
        CHECK(d.overloaded());
        s.unbind(d, conn_counter::inactive);
        s.unbind(d, conn_counter::inactive);
        CHECK(d.overloaded()); // 2 is not < 2
        s.unbind(d, conn_counter::inactive);
        CHECK_FALSE(d.overloaded());
    }
    SUBCASE("binding a template can set it; persist_conns is not in the total") {
        auto& d = s.add_dest({ep("10.0.2.11:80"), 1, 2});
        s.bind(d, conn_counter::inactive);
        s.bind(d, conn_counter::persist);
        CHECK_FALSE(d.overloaded()); // total 1
        s.bind(d, conn_counter::inactive);
        CHECK(d.overloaded());
        s.unbind(d, conn_counter::inactive);
        s.unbind(d, conn_counter::inactive);
        s.bind(d, conn_counter::persist);
        CHECK_FALSE(d.overloaded());
        CHECK(d.persist_conns == 2);
    }
    SUBCASE("no threshold: never set, and any unbind clears") {
        auto& d = s.add_dest({ep("10.0.2.11:80"), 1});
        for (int i = 0; i < 100; ++i) s.bind(d, conn_counter::active);
        CHECK_FALSE(d.overloaded());
    }
}

TEST_CASE("service: an edit re-evaluates OVERLOAD from the current total (spec §1.5, 6.1.183 rule)") {
    service<recording_scheduler> s;
    auto& d = s.add_dest({ep("10.0.2.11:80"), 1});
    for (int i = 0; i < 5; ++i) s.bind(d, conn_counter::inactive);
    CHECK_FALSE(d.overloaded());
    s.edit_dest({d.ep, 1, 4});
    CHECK(d.overloaded()); // 5 >= 4
    s.edit_dest({d.ep, 1, 6});
    CHECK(d.overloaded()); // below 6 but not below 6 - 6/4 = 5
    s.edit_dest({d.ep, 1, 8, 5});
    CHECK(d.overloaded()); // 5 is not below l = 5
    s.edit_dest({d.ep, 1, 8});
    CHECK_FALSE(d.overloaded()); // 5 < 8 - 2
    s.edit_dest({d.ep, 1, 5});
    CHECK(d.overloaded());
    s.edit_dest({d.ep, 2}); // ipvsadm -e without -x/-y: both thresholds 0
    CHECK(d.u_threshold == 0);
    CHECK_FALSE(d.overloaded());
}

TEST_CASE("service: a dest deleted and re-added from the caller's trash keeps its counters (spec §1.8)") {
    recording_scheduler rec;
    service<recording_scheduler> s(rec);
    auto& a = s.add_dest({ep("10.0.2.11:80"), 1});
    auto& b = s.add_dest({ep("10.0.2.12:80"), 1, 3});
    for (int i = 0; i < 3; ++i) s.bind(b, conn_counter::inactive);
    s.move_to_active(b);
    s.bind(b, conn_counter::persist);
    REQUIRE(b.overloaded());
    const auto first_seq = b.list_seq;

    auto trash = s.del_dest(b.ep);
    CHECK(order(s) == std::vector<endpoint>{a.ep});
    s.unbind(*trash, conn_counter::inactive); // one of its connections ends while in the trash
    dest* raw = trash.get();

    SUBCASE("revived: same object, at the head, counters kept, OVERLOAD re-evaluated from its total") {
        CHECK_FALSE(trash->overloaded()); // the unbind in the trash cleared it: 2 < 3/4 of 3
        auto& back = s.add_dest(std::move(trash), {ep("10.0.2.12:80"), 5, 2});
        CHECK(&back == raw);
        CHECK(order(s) == std::vector<endpoint>{back.ep, a.ep});
        CHECK(back.list_seq > first_seq);
        CHECK(back.active_conns == 1);
        CHECK(back.inactive_conns == 1);
        CHECK(back.persist_conns == 1);
        CHECK(back.weight == 5);
        CHECK(back.last_weight == 5);
        CHECK(back.available());
        CHECK(back.overloaded()); // total 2 >= the new upper threshold 2, at once
    }
    SUBCASE("the scheduler sees a normal add") {
        s.add_dest(std::move(trash), {ep("10.0.2.12:80"), 1});
        CHECK(rec.log->back().hook == "add");
        CHECK(rec.log->back().list.size() == 2);
    }
    SUBCASE("a revival must name the same endpoint, and failure leaves the dest with the caller") {
        CHECK_THROWS_AS(s.add_dest(std::move(trash), {ep("10.0.2.13:80"), 1}), std::invalid_argument);
        REQUIRE(trash);
        CHECK(trash.get() == raw);
    }
}

TEST_CASE("service: configuration mistakes throw std::invalid_argument and change nothing") {
    recording_scheduler rec;
    service<recording_scheduler> s(rec);
    auto& a = s.add_dest({ep("10.0.2.11:80"), 2});
    SUBCASE("bad dest configurations (ERANGE / EINVAL in the kernel)") {
        CHECK_THROWS_AS(s.add_dest({ep("10.0.2.12:80"), -1}), std::invalid_argument);
        CHECK_THROWS_AS(s.add_dest({ep("10.0.2.12:80"), 1, 2, 3}), std::invalid_argument);
        CHECK_THROWS_AS(s.add_dest({ep("10.0.2.12:80"), 1, 0, 1}), std::invalid_argument);
        dest_config gue{ep("10.0.2.12:80"), 1};
        gue.fwd = fwd_method::tunnel;
        gue.tun.type = tun_type::gue;
        CHECK_THROWS_AS(s.add_dest(gue), std::invalid_argument);
        CHECK_THROWS_AS(s.edit_dest({a.ep, -3}), std::invalid_argument);
        CHECK(s.num_dests() == 1);
        CHECK(a.weight == 2);
    }
    SUBCASE("duplicate add, unknown edit or delete") {
        CHECK_THROWS_AS(s.add_dest({a.ep, 1}), std::invalid_argument);
        CHECK_THROWS_AS(s.edit_dest({ep("10.0.2.99:80"), 1}), std::invalid_argument);
        CHECK_THROWS_AS((void)s.del_dest(ep("10.0.2.99:80")), std::invalid_argument);
        CHECK(s.num_dests() == 1);
    }
    SUBCASE("a hook that rejects rolls the change back") {
        *rec.reject = true;
        CHECK_THROWS_AS(s.add_dest({ep("10.0.2.12:80"), 1}), std::invalid_argument);
        CHECK(order(s) == std::vector<endpoint>{a.ep});
        CHECK(s.find_dest(ep("10.0.2.12:80")) == nullptr);
        CHECK_THROWS_AS(s.edit_dest({a.ep, 5, 10}), std::invalid_argument);
        CHECK(a.weight == 2);
        CHECK(a.u_threshold == 0);
        CHECK_THROWS_AS((void)s.del_dest(a.ep), std::invalid_argument);
        CHECK(order(s) == std::vector<endpoint>{a.ep});
        CHECK(a.available());
        *rec.reject = false;
        auto& b = s.add_dest({ep("10.0.2.12:80"), 1});
        CHECK(b.list_seq > a.list_seq);
    }
}

TEST_CASE("service: schedule hands the list in kernel order to the scheduler") {
    service<recording_scheduler> s;
    CHECK(s.schedule({}) == nullptr);
    s.add_dest({ep("10.0.2.11:80"), 1});
    auto& b = s.add_dest({ep("10.0.2.12:80"), 1});
    CHECK(s.schedule({}) == &b); // the recording scheduler returns the head
    s.params().protocol = 17;
    CHECK(s.params().protocol == 17);
}
