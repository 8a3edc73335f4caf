"""PoolIndex: "which pool holds this address", the rule the allocator and every planner
share, checked by hypothesis against a naive model that enumerates.

The model: take pools oldest first; a pool overlapping one already taken is invalid.
An address belongs to the valid pool holding it, else to the oldest invalid one.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from openelb.api import addresses
from openelb.ipam import pools
from tests.unit import factories

BASE = int(ipaddress.IPv4Address("192.0.2.0"))


def _naive(pool_list: list[pools.Pool], ip: addresses.IPAddress) -> str | None:
    taken: list[pools.Pool] = []
    invalid: list[pools.Pool] = []
    for pool in sorted(pool_list, key=lambda p: p.age_key):
        members = {int(a) for a in _members(pool)}
        if any(members & {int(a) for a in _members(t)} for t in taken):
            invalid.append(pool)
        else:
            taken.append(pool)
    for group in (taken, invalid):
        for pool in group:
            if ip in _members(pool):
                return pool.name
    return None


def _members(pool: pools.Pool) -> list[addresses.IPAddress]:
    first, last = int(pool.declared.first), int(pool.declared.last)
    return [ipaddress.IPv4Address(v) for v in range(first, last + 1)]


@st.composite
def _pools(draw: st.DrawFn) -> list[pools.Pool]:
    count = draw(st.integers(0, 6))
    found = []
    for n in range(count):
        first = draw(st.integers(0, 40))
        size = draw(st.integers(0, 12))
        last = min(first + size, 255)
        text = (str(ipaddress.IPv4Address(BASE + first)) if last == first else
                f"{ipaddress.IPv4Address(BASE + first)}-{ipaddress.IPv4Address(BASE + last)}")
        day = draw(st.integers(1, 3))  # equal timestamps: the name breaks the tie
        found.append(factories.pool(f"p{n}", text, created=f"2026-01-0{day}T00:00:00Z"))
    return found


@given(_pools(), st.integers(0, 60))
def test_an_address_resolves_as_the_naive_model_says(pool_list: list[pools.Pool],
                                                     offset: int) -> None:
    ip = ipaddress.IPv4Address(BASE + offset)
    found = pools.PoolIndex(pool_list).holding(ip)
    assert (found.name if found else None) == _naive(pool_list, ip)


@given(_pools())
def test_valid_pools_are_those_find_problems_does_not_call_overlapping(
        pool_list: list[pools.Pool]) -> None:
    index = pools.PoolIndex(pool_list)
    overlapping = {name for name, problem in pools.find_problems(pool_list).items()
                   if problem.field == "spec.address"}
    assert {p.name for p in pool_list if not index.is_valid(p.name)} == overlapping


def test_an_ipv6_address_never_resolves_to_an_ipv4_pool() -> None:
    index = pools.PoolIndex([factories.pool("v4", "192.0.2.0/24"),
                             factories.pool("v6", "2001:db8::/120")])
    found = index.holding(ipaddress.IPv6Address("2001:db8::5"))
    assert found is not None
    assert found.name == "v6"
    assert index.holding(ipaddress.IPv6Address("2001:db8:1::5")) is None
