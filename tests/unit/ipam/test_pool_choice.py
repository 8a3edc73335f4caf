"""Pool choice follows DESIGN §6: named pool, pool of the requested IP, namespace pools
by priority (non-full first), the default pool, else a clear refusal."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from openelb.ipam import allocator
from openelb.ipam import errors as ipam_errors
from tests.unit.factories import ips, pool, svc

LAN = pool("lan", "192.0.2.0/24")
DEFAULT = pool("fallback", "198.51.100.0/24", default=True)
SHOP_HI = pool("shop-hi", "203.0.113.0/28", namespaces=["shop"], priority=1)
SHOP_LO = pool("shop-lo", "203.0.113.16/28", namespaces=["shop"], priority=5)
TEAM = pool("team", "203.0.113.64/28", selector={"team": "blue"})


def _alloc() -> allocator.Allocator:
    return allocator.Allocator([LAN, DEFAULT, SHOP_HI, SHOP_LO, TEAM])


def test_named_pool_wins_over_namespace_and_default() -> None:
    got = _alloc().assign(svc("web", "shop", pool="lan"))
    assert got.ips == ips("192.0.2.1")
    assert got.pools == ("lan",)


def test_requested_ip_picks_the_pool_that_contains_it() -> None:
    got = _alloc().assign(svc("web", "shop", ip="192.0.2.77"))
    assert got.ips == ips("192.0.2.77")
    assert got.pools == ("lan",)


def test_requested_ip_must_lie_in_the_named_pool() -> None:
    with pytest.raises(ipam_errors.NotInNamedPool):
        _alloc().assign(svc("web", pool="fallback", ip="192.0.2.77"))


def test_namespace_pools_go_by_priority_lower_first() -> None:
    got = _alloc().assign(svc("web", "shop"))
    assert got.pools == ("shop-hi",)
    assert got.ips == ips("203.0.113.1")


def test_full_namespace_pool_is_skipped_for_the_next_one() -> None:
    alloc = _alloc()
    for i in range(14):  # a /28 has 14 usable addresses
        alloc.assign(svc(f"s{i}", "shop"))
    got = alloc.assign(svc("one-more", "shop"))
    assert got.pools == ("shop-lo",)
    assert got.ips == ips("203.0.113.17")


def test_namespace_selector_binds_by_namespace_labels() -> None:
    got = _alloc().assign(svc("web", "blue-app"), {"team": "blue"})
    assert got.pools == ("team",)


def test_other_namespaces_fall_back_to_the_default_pool() -> None:
    got = _alloc().assign(svc("web", "blog"), {"team": "red"})
    assert got.pools == ("fallback",)
    assert got.ips == ips("198.51.100.1")


def test_namespace_bound_pool_is_never_used_elsewhere_even_when_default_is_full() -> None:
    alloc = allocator.Allocator(
        [pool("fallback", "198.51.100.0/31", default=True), SHOP_HI]
    )
    alloc.assign(svc("a", "blog"))
    alloc.assign(svc("b", "blog"))
    with pytest.raises(ipam_errors.NoFreeAddress):
        alloc.assign(svc("c", "blog"))
    assert all(p == "fallback" for k in ("blog/a", "blog/b") for p in alloc.assignment(k).pools)


def test_unbound_pool_without_default_mark_is_used_only_when_named() -> None:
    alloc = allocator.Allocator([LAN])
    with pytest.raises(ipam_errors.NoPool):
        alloc.assign(svc("web"))
    assert alloc.assign(svc("web", pool="lan")).pools == ("lan",)


def test_disabled_namespace_pool_is_passed_over() -> None:
    alloc = allocator.Allocator(
        [pool("shop-off", "203.0.113.0/28", namespaces=["shop"], disabled=True), SHOP_LO]
    )
    assert alloc.assign(svc("web", "shop")).pools == ("shop-lo",)


def test_dual_stack_service_gets_one_address_per_family() -> None:
    alloc = allocator.Allocator(
        [pool("v4", "192.0.2.0/24"), pool("v6", "2001:db8::/120")]
    )
    got = alloc.assign(svc("web", pool=("v4", "v6"), families=(4, 6)))
    assert got.ips == ips("192.0.2.1", "2001:db8::1")
    assert got.pools == ("v4", "v6")


def test_require_dual_stack_is_all_or_nothing() -> None:
    alloc = allocator.Allocator([pool("v4", "192.0.2.0/24")])
    from openelb.api import service

    with pytest.raises(ipam_errors.FamilyNotServed):
        alloc.assign(
            svc("web", pool="v4", families=(4, 6), policy=service.FamilyPolicy.REQUIRE_DUAL)
        )
    assert alloc.assignment("default/web") is None


def test_prefer_dual_stack_takes_what_exists() -> None:
    alloc = allocator.Allocator([pool("v4", "192.0.2.0/24")])
    from openelb.api import service

    got = alloc.assign(
        svc("web", pool="v4", families=(4, 6), policy=service.FamilyPolicy.PREFER_DUAL)
    )
    assert got.ips == ips("192.0.2.1")


def test_lowest_free_address_is_chosen_and_reused_after_release() -> None:
    alloc = allocator.Allocator([LAN])
    for name in ("a", "b", "c"):
        alloc.assign(svc(name, pool="lan"))
    assert alloc.release("default/b") == frozenset(ips("192.0.2.2"))
    assert alloc.assign(svc("d", pool="lan")).ips == ips("192.0.2.2")
    assert alloc.assign(svc("e", pool="lan")).ips == ips("192.0.2.4")


def test_huge_pools_cost_nothing_until_used() -> None:
    """A /8 and a /64 pool allocate instantly and report their full size."""
    alloc = allocator.Allocator(
        [pool("v4", "10.0.0.0/8"), pool("v6", "2001:db8::/64")]
    )
    assert alloc.assign(svc("a", pool="v4")).ips == ips("10.0.0.1")
    assert alloc.assign(svc("b", pool="v6", families=(6,))).ips == ips("2001:db8::1")
    assert alloc.pool_status("v4").pool_size == 2**24 - 2
    assert alloc.pool_status("v6").pool_size == 2**63 - 1  # capped to the CRD's int64


def test_status_used_is_cut_to_its_byte_budget_but_usage_stays_complete() -> None:
    alloc = allocator.Allocator([pool("big", "198.51.100.0/24")])
    for i in range(100):
        alloc.assign(svc(f"service-with-a-long-name-{i:03d}", pool="big"))
    whole = alloc.pool_status("big")
    assert whole.usage == 100
    assert len(whole.used) == 100
    assert not whole.used_truncated
    cut = alloc.pool_status("big", used_bytes=2000)
    assert cut.usage == 100
    assert cut.used_truncated
    assert 0 < len(cut.used) < 100
    assert list(cut.used) == list(whole.used)[:len(cut.used)]  # the lowest addresses
    assert len(json.dumps(cut.used, separators=(",", ":"))) <= 2000  # as stored


def test_a_refused_service_waits_on_exactly_the_pools_and_addresses_that_could_serve_it() -> None:
    """What the controller re-queues a waiting Service on when addresses are freed."""
    alloc = allocator.Allocator([
        pool("shop-a", "192.0.2.0/30", namespaces=["shop"], priority=1),
        pool("shop-b", "192.0.2.8/30", namespaces=["shop"], priority=2),
        pool("elsewhere", "192.0.2.16/30", namespaces=["other"]),
        pool("fallback", "198.51.100.0/30", default=True),
        pool("named", "203.0.113.0/30"),
    ])
    assert alloc.waits_on(svc("web", "shop")) == (
        frozenset({"shop-a", "shop-b", "fallback"}), frozenset())
    assert alloc.waits_on(svc("web", "shop", pool="named")) == (frozenset({"named"}), frozenset())
    assert alloc.waits_on(svc("web", "shop", ip="203.0.113.1")) == (
        frozenset({"named"}), frozenset({IPv4Address("203.0.113.1")}))
    assert alloc.waits_on(svc("web", "shop", ip="192.0.2.200")) == (
        frozenset(), frozenset({IPv4Address("192.0.2.200")}))
