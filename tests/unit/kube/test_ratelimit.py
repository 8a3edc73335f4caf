"""The client-side ceiling on apiserver requests (kube/ratelimit.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from openelb.kube import ratelimit


async def test_a_burst_passes_then_requests_are_held_to_the_rate() -> None:
    bucket = ratelimit.TokenBucket(qps=50, burst=10)
    began = time.monotonic()
    for _ in range(10):
        await bucket.acquire()
    assert time.monotonic() - began < 0.05  # the burst: no wait
    assert bucket.throttled == 0
    for _ in range(25):
        await bucket.acquire()
    spent = time.monotonic() - began
    assert 0.4 <= spent < 1.5  # 25 more at 50/s: about half a second
    assert bucket.throttled >= 20
    assert bucket.waited == pytest.approx(0.5, abs=0.1)


async def test_waiters_are_served_in_order() -> None:
    bucket = ratelimit.TokenBucket(qps=100, burst=1)
    order: list[int] = []

    async def one(index: int) -> None:
        await bucket.acquire()
        order.append(index)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert order == list(range(20))


def test_the_totals_are_exported() -> None:
    registry = CollectorRegistry()
    bucket = ratelimit.TokenBucket(qps=1, burst=1)
    bucket.waited, bucket.throttled = 2.5, 3
    ratelimit.export(bucket, registry)
    assert registry.get_sample_value("openelb_kube_client_throttled_seconds_total") == 2.5
    assert registry.get_sample_value("openelb_kube_client_throttled_requests_total") == 3


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="qps must be positive"):
        ratelimit.TokenBucket(qps=0, burst=1)
