"""Shared by the benchmarks: notes when each Service of one namespace first shows an
address in its status, from a watch of the real apiserver (not a test)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from openelb.kube import client, resources
from openelb.kube import errors as kube_errors


class StatusWatch:
    """Watches `namespace`'s Services; `clock` stamps when each appeared and when its
    status first showed an address (use the clock the caller compares against)."""

    def __init__(self, kube: client.Kube, namespace: str,
                 clock: Callable[[], float] = time.monotonic, poll: float = 0.5) -> None:
        self._kube = kube
        self._namespace = namespace
        self._clock = clock
        self._poll = poll
        self.seen: dict[str, float] = {}  # name -> when its status first showed an address
        self.appeared: dict[str, float] = {}  # name -> when the watch first showed it
        self.ips: dict[str, str] = {}  # name -> its first address
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        page = await self._kube.request("GET", resources.SERVICES.path(self._namespace),
                                        query={"limit": 1})
        self._task = asyncio.create_task(self._run(str(page["metadata"]["resourceVersion"])))

    async def _run(self, version: str) -> None:
        # Every namespace's Services (kube.watch has no namespace); others are skipped.
        while True:
            try:
                async for event in self._kube.watch(resources.SERVICES, version,
                                                    timeout_seconds=3600):
                    meta = event.object.get("metadata") or {}
                    version = str(meta.get("resourceVersion") or version)
                    if event.type == "BOOKMARK" or meta.get("namespace") != self._namespace:
                        continue
                    name = str(meta.get("name"))
                    self.appeared.setdefault(name, self._clock())
                    ingress = ((event.object.get("status") or {}).get("loadBalancer")
                               or {}).get("ingress") or []
                    if ingress and name not in self.seen:
                        self.seen[name] = self._clock()
                        self.ips[name] = str(ingress[0]["ip"])
                        self.changed.set()
            except kube_errors.Retryable:
                await asyncio.sleep(0.2)

    async def wait_for(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not names <= self.seen.keys():
            if time.monotonic() > deadline:
                missing = len(names - self.seen.keys())
                raise TimeoutError(f"{missing} Services still without an address")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self.changed.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
