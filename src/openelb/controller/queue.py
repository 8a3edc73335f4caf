"""A work queue of keys with per-key deduplication (controller-runtime's contract).

controller/ (DESIGN §3, STYLE §2.9). A key is queued at most once; a key re-added while
a worker holds it is queued again when that worker calls `done`, so one key is never
reconciled twice at once and no change is lost. `add_after` schedules a retry.
"""

from __future__ import annotations

import asyncio

__all__ = ["WorkQueue"]


class WorkQueue:
    def __init__(self) -> None:
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
