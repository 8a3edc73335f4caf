"""Builds the planner's Snapshot from the speaker's informer caches.

speaker/ (DESIGN §3): parses raw objects with api/, skipping (and reporting) the ones
that do not parse so one bad object never hides the others. An Eip that stops parsing
keeps its last good pool, so a typo never withdraws working addresses.
"""

import logging
from collections.abc import Mapping
from typing import Any

from openelb.api import annotations, bgp, eip, errors, nodes, service
from openelb.ipam import pools as ipam_pools
from openelb.kube import informer
from openelb.planner import snapshot

__all__ = ["SnapshotBuilder"]

log = logging.getLogger(__name__)


class SnapshotBuilder:
    def __init__(self, node: str, lb_class: str | None,
                 informers: Mapping[str, informer.Informer]) -> None:
        self._node = node
        self._lb_class = lb_class
        self._inf = informers
        self._last_good: dict[str, ipam_pools.Pool] = {}
        self._complained: dict[str, str] = {}

    def _complain(self, ref: str, error: errors.InvalidObject) -> None:
        if self._complained.get(ref) != error.message:
            self._complained[ref] = error.message
            log.warning("object ignored", extra={"object": ref, "error": error.message})

    def build(self) -> snapshot.Snapshot:
        services = []
        for raw in self._inf["services"].items():
            try:
                svc = service.LbService.parse(raw, lb_class=self._lb_class)
            except errors.InvalidObject:
                continue  # the controller reports it on the Service
            if svc.wants_address and svc.assigned_ips:
                services.append(svc)
        pools: dict[str, ipam_pools.Pool] = {}
        for raw in self._inf["eips"].items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            try:
                pools[name] = ipam_pools.Pool.from_eip(eip.Eip.parse(raw))
            except errors.InvalidObject as exc:
                self._complain(f"eip/{name}", exc)
                if name in self._last_good:
                    pools[name] = self._last_good[name]
        self._last_good = pools
        node_map = {}
        for raw in self._inf["nodes"].items():
            info = nodes.NodeInfo.parse(raw)
            node_map[info.name] = info
        conf = self._bgp_conf(self._inf["bgpconfs"].get(annotations.DEFAULT_BGPCONF_NAME))
        peers = []
        for raw in self._inf["bgppeers"].items():
            try:
                peers.append(bgp.BgpPeer.parse(raw))
            except errors.InvalidObject as exc:
                self._complain(f"bgppeer/{(raw.get('metadata') or {}).get('name')}", exc)
        return snapshot.Snapshot(
            node=self._node,
            nodes=node_map,
            services=tuple(services),
            pools=pools,
            endpoints=nodes.ready_endpoint_nodes(self._inf["endpointslices"].items()),
            bgp_conf=conf,
            bgp_peers=tuple(peers),
        )

    def _bgp_conf(self, raw: Mapping[str, Any] | None) -> bgp.BgpConf | None:
        if raw is None:
            return None
        try:
            return bgp.BgpConf.parse(raw)
        except errors.InvalidObject as exc:
            self._complain("bgpconf/default", exc)
            return None
