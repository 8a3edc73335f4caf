"""The speaker's snapshot from real informers: each object is parsed once per version.

An unchanged Eip or Node is the very same parsed value in the next round (what the
incremental planners' change checks rely on, and what keeps a round from re-parsing
every pool and node); an edit gives a new value, itself kept until the next edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from openelb.kube import client, informer, resources
from openelb.kube import errors as kube_errors
from openelb.speaker import snapshots

pytestmark = pytest.mark.controlplane

KINDS = {"services": resources.SERVICES, "endpointslices": resources.ENDPOINTSLICES,
         "nodes": resources.NODES, "eips": resources.EIPS,
         "bgpconfs": resources.BGPCONFS, "bgppeers": resources.BGPPEERS}


async def _until_version(cache: informer.Informer, key: str, version: str) -> None:
    for _ in range(300):
        raw = cache.get(key)
        if raw is not None and raw["metadata"]["resourceVersion"] == version:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} never reached version {version}")


async def test_objects_are_parsed_once_per_version(admin_kube: client.Kube) -> None:
    name = f"snap-{uuid.uuid4().hex[:6]}"
    caches = {n: informer.Informer(admin_kube, kind, lambda key: None)
              for n, kind in KINDS.items()}
    tasks = [asyncio.create_task(c.run()) for c in caches.values()]
    try:
        created = await admin_kube.create(resources.EIPS, {
            "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": {"address": "198.51.100.32/28"}})
        await _until_version(caches["eips"], name, created["metadata"]["resourceVersion"])
        builder = snapshots.SnapshotBuilder("node-x", None, caches)
        first = builder.build().pools[name]
        assert builder.build().pools[name] is first

        edited = await admin_kube.patch(resources.EIPS, name, {"spec": {"priority": 5}})
        await _until_version(caches["eips"], name, edited["metadata"]["resourceVersion"])
        second = builder.build().pools[name]
        assert second is not first
        assert second.priority == 5
        assert builder.build().pools[name] is second

    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(kube_errors.NotFound):
            await admin_kube.delete(resources.EIPS, name)
