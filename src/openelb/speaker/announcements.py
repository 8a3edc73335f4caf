"""This node's NodeAnnouncement: what its speaker answers for, readable with kubectl.

speaker/ (issue #17, item 2). After each plan round the speaker hands over what each
mode announces; this module writes the node's record (deploy/crds: one object per node,
named after it) when that changed, at most once per `min_interval`, and renews it every
`renew_every` otherwise, so a reader can tell a live record from the last words of a
speaker that died. Layer 2 and VIP list addresses with their Services; BGP only counts
prefixes (every eligible node announces every BGP address). On a clean stop the record
is deleted: the node answers for nothing any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from openelb.kube import client, resources
from openelb.kube import errors as kube_errors

__all__ = ["AnnouncementRecord"]

log = logging.getLogger(__name__)

ByMode = Mapping[str, Mapping[str, frozenset[Any]]]  # mode -> Service -> addresses


def _listing(by_service: Mapping[str, frozenset[Any]]) -> dict[str, str]:
    holders: dict[str, list[str]] = {}
    for key, ips in by_service.items():
        for ip in ips:
            holders.setdefault(str(ip), []).append(key)
    return {ip: ";".join(sorted(keys)) for ip, keys in sorted(holders.items())}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnnouncementRecord:
    def __init__(self, kube: client.Kube, node: str, *, min_interval: float = 1.0,
                 renew_every: float = 60.0,
                 clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()
                 ) -> None:
        self._kube = kube
        self._node = node
        self._min_interval = min_interval
        self._renew_every = renew_every
        self._clock = clock
        self._wanted: dict[str, Any] | None = None
        self._changed = asyncio.Event()

    def update(self, by_mode: ByMode) -> None:
        """What the node answers for now (called after every plan round)."""
        layer2 = _listing(by_mode.get("layer2", {}))
        vip = _listing(by_mode.get("vip", {}))
        prefixes = {ip for ips in by_mode.get("bgp", {}).values() for ip in ips}
        wanted = {"layer2": layer2, "layer2Count": len(layer2), "vip": vip,
                  "vipCount": len(vip), "bgpPrefixes": len(prefixes)}
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def run(self) -> None:
        """Write changes (coalesced) and renewals until cancelled; errors are retried."""
        last = -self._min_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._renew_every):
                    await self._changed.wait()
            wait = last + self._min_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)  # changes within the interval coalesce
            self._changed.clear()
            if self._wanted is None:
                continue
            try:
                await self._write(self._wanted)
            except kube_errors.KubeError as exc:
                log.warning("node announcement not written", extra={
                    "node": self._node, "error": str(exc)})
                self._changed.set()
                await asyncio.sleep(min(self._renew_every, 5.0))
                continue
            last = self._clock()

    async def _write(self, wanted: dict[str, Any]) -> None:
        status = {**wanted, "renewTime": _now()}
        patch = [{"op": "add", "path": "/status", "value": status}]
        try:
            await self._kube.patch(resources.NODE_ANNOUNCEMENTS, self._node, patch,
                                   content_type=client.JSON_PATCH)
        except kube_errors.NotFound:
            await self._kube.create(resources.NODE_ANNOUNCEMENTS, {
                "apiVersion": resources.NODE_ANNOUNCEMENTS.api_version,
                "kind": "NodeAnnouncement",
                "metadata": {"name": self._node,
                             "labels": {"app.kubernetes.io/part-of": "openelb"}},
                "status": status})

    async def clear(self) -> None:
        """The node answers for nothing now: remove its record (best effort)."""
        with contextlib.suppress(kube_errors.KubeError):
            await self._kube.delete(resources.NODE_ANNOUNCEMENTS, self._node)
