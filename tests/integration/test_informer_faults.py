"""An informer against the real apiserver survives a bug in its owner's callback
(issue #13: such an exception used to end the cache without a trace)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from openelb.kube import client, informer, resources

pytestmark = pytest.mark.controlplane


def _eip(name: str, address: str) -> dict[str, Any]:
    return {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": {"address": address}}


async def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_a_callback_that_raises_does_not_end_the_cache(
        admin_kube: client.Kube, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def callback(key: str) -> None:
        seen.append(key)
        if key == "poison":
            raise KeyError("a bug in the owner")

    cache = informer.Informer(admin_kube, resources.EIPS, callback)
    task = asyncio.create_task(cache.run())
    try:
        async with asyncio.timeout(30):
            await cache.synced.wait()
        await admin_kube.create(resources.EIPS, _eip("poison", "192.0.2.0/30"))
        await admin_kube.create(resources.EIPS, _eip("after", "192.0.2.8/30"))
        await _until(lambda: "after" in seen)
        assert cache.get("after") is not None
        assert cache.callback_errors >= 1
        assert not task.done()
        assert cache.stale_for() == 0.0
        assert "change callback crashed" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
