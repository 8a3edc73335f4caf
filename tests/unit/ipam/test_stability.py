"""DESIGN §4 IP stability: a valid address never moves; rebuild reproduces the state and
refuses later claimants deterministically (oldest wins)."""

from __future__ import annotations

import dataclasses

from openelb.ipam import allocator
from openelb.ipam import errors as ipam_errors
from tests.unit.factories import ips, pool, svc

STEPS = [
    # (desc, pools after the edit)
    ("priority of the Service's pool changes", [pool("lan", "192.0.2.0/24", priority=9)]),
    (
        "an unrelated pool is added",
        [pool("lan", "192.0.2.0/24"), pool("other", "198.51.100.0/24", default=True)],
    ),
    ("the pool is disabled", [pool("lan", "192.0.2.0/24", disabled=True)]),
    ("the pool is bound to other namespaces", [pool("lan", "192.0.2.0/24", namespaces=["x"])]),
]


def test_pool_edits_never_move_a_valid_address() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    web = svc("web", pool="lan")
    first = alloc.assign(web)
    for desc, edited in STEPS:
        alloc.set_pools(edited)
        assert alloc.assign(web) == first, desc


def test_deleting_a_service_in_the_middle_moves_no_other() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    services = [svc(f"s{i}", pool="lan") for i in range(10)]
    before = {s.key: alloc.assign(s) for s in services}
    alloc.release("default/s5")
    for s in services[:5] + services[6:]:
        assert alloc.assign(s) == before[s.key]


def test_rebuild_reproduces_every_assignment() -> None:
    pools_now = [pool("lan", "192.0.2.0/24"), pool("v6", "2001:db8::/120")]
    alloc = allocator.Allocator(pools_now)
    services = [svc(f"s{i}", pool=("lan", "v6"), families=(4, 6)) for i in range(20)]
    for s in services:
        alloc.assign(s)
    alloc.release("default/s3")
    holding = [
        dataclasses.replace(s, assigned_ips=alloc.assignment(s.key).ips)
        for s in services
        if alloc.assignment(s.key)
    ]
    fresh = allocator.Allocator(pools_now)
    report = fresh.rebuild(reversed(holding))
    assert not report.refused
    for s in holding:
        assert fresh.assignment(s.key) == alloc.assignment(s.key)
    # and the next allocation fills the hole left by s3, as the original would
    assert fresh.assign(svc("new", pool="lan")).ips == ips("192.0.2.4")


def test_two_claims_on_one_address_oldest_wins_and_the_other_is_told_why() -> None:
    old = svc("old", assigned=["192.0.2.5"], created="2026-01-01T00:00:00Z")
    new = svc("new", assigned=["192.0.2.5"], created="2026-03-01T00:00:00Z")
    for order in ([old, new], [new, old]):
        alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
        report = alloc.rebuild(order)
        assert alloc.holders(ips("192.0.2.5")[0]) == ("default/old",)
        refusal = report.refused["default/new"]
        assert isinstance(refusal, ipam_errors.AddressTaken)
        assert refusal.holder == "default/old"


def test_address_outside_every_pool_is_reported_not_kept() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24")])
    report = alloc.rebuild([svc("web", assigned=["203.0.113.9"])])
    assert isinstance(report.refused["default/web"], ipam_errors.NotInAnyPool)
    assert alloc.assignment("default/web") is None


def test_address_openelb_handed_out_at_dot_zero_is_kept() -> None:
    """A migrating user's Service holding a CIDR's `.0` (OpenELB #425) keeps it."""
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    report = alloc.rebuild([svc("legacy", assigned=["192.0.2.0"])])
    assert not report.refused
    assert alloc.assign(svc("legacy")).ips == ips("192.0.2.0")


def test_dual_stack_keeps_the_valid_family_when_the_other_pool_vanished() -> None:
    alloc = allocator.Allocator([pool("v4", "192.0.2.0/24")])
    web = svc("web", pool=("v4",), families=(4, 6), assigned=["192.0.2.9", "2001:db8::5"])
    report = alloc.rebuild([web])
    assert report.kept["default/web"].ips == ips("192.0.2.9")
    assert isinstance(report.refused["default/web"], ipam_errors.NotInAnyPool)


def test_changing_the_requested_ip_moves_the_service() -> None:
    alloc = allocator.Allocator([pool("lan", "192.0.2.0/24", default=True)])
    alloc.assign(svc("web"))
    assert alloc.assign(svc("web", ip="192.0.2.50")).ips == ips("192.0.2.50")
    assert alloc.holders(ips("192.0.2.1")[0]) == ()


def test_naming_another_pool_moves_the_service_there() -> None:
    alloc = allocator.Allocator([pool("a", "192.0.2.0/24"), pool("b", "198.51.100.0/24")])
    alloc.assign(svc("web", pool="a"))
    assert alloc.assign(svc("web", pool="b")).pools == ("b",)
    assert alloc.pool_status("a").usage == 0
