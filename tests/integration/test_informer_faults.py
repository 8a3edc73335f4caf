"""An informer against the real apiserver survives a bug in its owner's callback
(issue #13: such an exception used to end the cache without a trace)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pytest

from openelb.kube import client, informer, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import controlplane

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


async def test_a_watch_resuming_below_a_compaction_relists_and_drops_the_gone(
        admin_kube: client.Kube, control_plane: controlplane.ControlPlane,
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue #13, item 5: while the apiserver is down, an Eip is removed straight from
    etcd and etcd is compacted past it. The resumed watch is answered 410 Gone (its
    resourceVersion was compacted away), the informer relists, and the removed Eip
    leaves the cache: no watch event could ever have said so."""
    caplog.set_level(logging.INFO, logger="openelb.kube.informer")
    names = [f"compaction-{i}" for i in range(3)]
    for i, name in enumerate(names):
        await admin_kube.create(resources.EIPS, _eip(name, f"198.51.100.{64 + i}"))
    cache = informer.Informer(admin_kube, resources.EIPS, lambda key: None)
    task = asyncio.create_task(cache.run())
    try:
        await _until(lambda: all(cache.get(n) is not None for n in names))
        lists = cache.relists
        await control_plane.stop_apiserver()
        try:
            await control_plane.etcd_delete(
                "/registry/network.kubesphere.io/eips/compaction-1")
            await control_plane.etcd_compact()
        finally:
            await control_plane.start_apiserver()
        await _until(lambda: cache.get("compaction-1") is None, timeout=60)
        assert cache.relists > lists
        assert cache.get("compaction-0") is not None
        assert any("watch expired, relisting" in r.getMessage() for r in caplog.records), [
            (r.getMessage(), getattr(r, "error", "")) for r in caplog.records]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for name in names:
            with contextlib.suppress(kube_errors.NotFound):
                await admin_kube.delete(resources.EIPS, name)
