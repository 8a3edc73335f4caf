"""A work queue of keys with per-key deduplication (controller-runtime's contract).

controller/ (DESIGN §3, STYLE §2.9). A key is queued at most once; a key re-added while
a worker holds it is queued again when that worker calls `done`, so one key is never
reconciled twice at once and no change is lost. `add_after` schedules a key later.

`retry` is for a reconcile that failed: each key backs off on its own, exponentially
with jitter (controller-runtime's per-item rate limiter), so one Service that keeps
failing neither spins nor delays the others, and never sooner than the caller asks
(an apiserver's Retry-After). `forget` ends a key's backoff once it succeeded or gave up.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "WorkQueue"]


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.05  # the first retry of a key, in seconds; doubles with each failure
    cap: float = 60.0  # no key waits longer than this for its next try
    jitter: float = 0.2  # each delay is spread by up to this fraction either way


class WorkQueue:
    def __init__(self, backoff: Backoff | None = None,
                 uniform: Callable[[], float] = random.random) -> None:
        """`uniform` returns a float in [0, 1) for the jitter (a seam for tests)."""
        self._backoff = backoff or Backoff()
        self._uniform = uniform
        self._failures: dict[str, int] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._again: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: str) -> None:
        if key in self._queued:
            return
        if key in self._active:
            self._again.add(key)
            return
        self._queued.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def retry(self, key: str, at_least: float = 0.0) -> float:
        """Queue `key` again after its next backoff delay, and not before `at_least`
        seconds; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        b = self._backoff
        delay = min(b.cap, b.base * 2.0 ** min(failures, 62))
        delay *= 1.0 + b.jitter * (2.0 * self._uniform() - 1.0)
        delay = max(delay, at_least)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """`key` succeeded (or waits for a change, not a timer): its backoff starts over."""
        self._failures.pop(key, None)

    async def get(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: str) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def idle(self) -> bool:
        return not self._queued and not self._active

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
