"""Benchmark of the pure allocator (issue 2). Prints one JSON object; asserts nothing.

Phases: 100,000 allocations spread over a /8 IPv4 pool, a /64 IPv6 pool and 50 small
pools; 50,000 frees; 50,000 new allocations; then a rebuild of a fresh allocator from
100,000 existing assignments (what the Services' statuses would say).

Run: .venv/bin/python bench/ipam.py [--count 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import ipaddress
import json
import resource
import sys
import time
from collections.abc import Callable

from openelb.api import addresses, service
from openelb.ipam import allocator, pools
from openelb.ipam import errors as ipam_errors

PORTS = frozenset({service.Port(80, "TCP")})


def make_pools() -> list[pools.Pool]:
    # Pure arithmetic, no traffic: a /8 is needed and no documentation range is that big.
    found = [
        pools.Pool("big-v4", addresses.parse_address("10.0.0.0/8"), priority=0),
        pools.Pool("big-v6", addresses.parse_address("2001:db8::/64")),
    ]
    for i in range(50):
        # 50 small /26 pools inside 198.51.100.0/24 and 203.0.113.0/24 would not fit;
        # use 100.64.x.0/26 blocks, disjoint from the /8 above.
        net = ipaddress.IPv4Network((int(ipaddress.IPv4Address("100.64.0.0")) + i * 64, 26))
        found.append(pools.Pool(f"small-{i}", addresses.parse_address(str(net))))
    return found


def make_service(i: int) -> service.LbService:
    # 45% to the /8, 45% to the /64, 10% spread over the small pools (which fill up).
    bucket = i % 20
    if bucket < 9:
        pool, families = "big-v4", (4,)
    elif bucket < 18:
        pool, families = "big-v6", (6,)
    else:
        pool, families = f"small-{(i // 20) % 50}", (4,)
    return service.LbService(
        namespace=f"ns{i % 100}",
        name=f"svc-{i}",
        created=f"2026-01-01T00:00:{i:08d}Z",
        pool_names=(pool,),
        families=families,
        ports=PORTS,
    )


def timed(label: str, results: dict[str, object], count: int, fn: Callable[[], int]) -> int:
    start = time.perf_counter()
    failures = fn()
    wall = time.perf_counter() - start
    results[label] = {
        "count": count,
        "wall_s": round(wall, 4),
        "us_per_op": round(wall / count * 1e6, 2) if count else None,
        "refused": failures,
    }
    return failures


def assign_all(alloc: allocator.Allocator, services: list[service.LbService]) -> int:
    failures = 0
    for svc in services:
        try:
            alloc.assign(svc)
        except ipam_errors.AllocationError:
            failures += 1  # small pools fill up on purpose
    return failures


def churn(count: int, results: dict[str, object]) -> dict[str, allocator.Assignment]:
    """Phases 1-3; returns what the Services' statuses would say afterwards."""
    half = count // 2
    alloc = allocator.Allocator(make_pools())
    services = [make_service(i) for i in range(count)]
    timed("allocate", results, count, lambda: assign_all(alloc, services))

    def free_half() -> int:
        for svc in services[::2][:half]:
            alloc.release(svc.key)
        return 0

    timed("free", results, half, free_half)
    fresh = [make_service(count + i) for i in range(half)]
    timed("reallocate", results, half, lambda: assign_all(alloc, fresh))
    found = (alloc.assignment(s.key) for s in [*services, *fresh])
    return {a.key: a for a in found if a is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    count: int = args.count
    results: dict[str, object] = {"python": sys.version.split()[0], "count": count}

    expected = churn(count, results)
    gc.collect()  # the first allocator is gone: the rebuild is a restarted controller
    by_key = {s.key: s for s in (make_service(i) for i in range(count + count // 2))}
    held = [
        dataclasses.replace(by_key.pop(key), assigned_ips=got.ips)
        for key, got in expected.items()
    ]
    del by_key
    rebuilt = allocator.Allocator(make_pools())
    refused: list[int] = []

    def rebuild() -> int:
        refused.append(len(rebuilt.rebuild(held).refused))
        return refused[0]

    timed("rebuild", results, len(held), rebuild)
    results["rebuild_identical"] = all(
        rebuilt.assignment(key) == got for key, got in expected.items()
    )
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
