"""A token bucket in front of the apiserver client (client-go's flowcontrol idea).

kube/. Every request takes a token; tokens refill at `qps` up to `burst`. It is a
ceiling for a runaway loop, not a pacing device: the defaults (cli.py) sit above the
highest rate each daemon reaches when working normally (the controller catching up
10,000 Services makes about 1,500 requests/s), so no measured figure changes, while a
bug that writes in a tight loop is held to a rate the apiserver's own priority and
fairness can absorb. Time spent waiting is counted, so a throttled daemon is visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["TokenBucket", "export"]


class TokenBucket:
    def __init__(self, qps: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds requests spent waiting for a token, in total
        self.throttled = 0  # requests that had to wait

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    async def acquire(self) -> None:
        """Take a token, waiting for one if the bucket is empty (first come, first served)."""
        self._refill()
        if self._tokens >= 1 and not self._lock.locked():
            self._tokens -= 1
            return
        async with self._lock:  # waiters queue in order
            self._refill()
            if self._tokens < 1:
                delay = (1 - self._tokens) / self.qps
                self.throttled += 1
                self.waited += delay
                await asyncio.sleep(delay)
                self._refill()
            self._tokens -= 1



class _Collector(Collector):
    """Reads the bucket's totals when scraped (prometheus_client's custom collector)."""

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "openelb_kube_client_throttled_seconds",
            "Time requests to the apiserver waited for the client-side limit",
            value=self._bucket.waited)
        yield CounterMetricFamily(
            "openelb_kube_client_throttled_requests",
            "Requests to the apiserver that waited for the client-side limit",
            value=self._bucket.throttled)


def export(bucket: TokenBucket | None, registry: CollectorRegistry) -> None:
    """openelb_kube_client_throttled_{seconds,requests}_total for `bucket`."""
    if bucket is not None:
        registry.register(_Collector(bucket))
