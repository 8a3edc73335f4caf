"""Builds the planner's Snapshot from the speaker's informer caches.

speaker/ (DESIGN §3): parses raw objects with api/, skipping (and reporting) the ones
that do not parse so one bad object never hides the others. An Eip that stops parsing
keeps its last good pool, so a typo never withdraws working addresses.

Services are parsed once, when they arrive: the speaker's Service informer stores
`service_entry(raw)` (identity plus the parsed LbService) instead of the object. A
snapshot is built after every burst of changes, and re-parsing a thousand unchanged
Services cost ~20 ms per round; keeping the raw objects as well cost ~2.5 KB each.
"""

import logging
from collections.abc import Mapping
from typing import Any

from openelb.api import annotations, bgp, eip, errors, nodes, service
from openelb.ipam import pools as ipam_pools
from openelb.kube import informer
from openelb.planner import snapshot

__all__ = ["PARSED", "EndpointIndex", "SnapshotBuilder", "service_entry"]

PARSED = "openelb.parsed"  # the key of the parsed Service in a cached entry
_IDENTITY = ("name", "namespace", "uid", "resourceVersion")


def service_entry(raw: Mapping[str, Any], *, lb_class: str | None) -> dict[str, Any]:
    """What the speaker keeps of a Service: its identity (for Events and the informer)
    and, under PARSED, the LbService when it wants and holds an address, else None
    (not ours, not assigned yet, or invalid: the controller reports that one)."""
    meta = raw.get("metadata") or {}
    parsed: service.LbService | None
    try:
        parsed = service.LbService.parse(raw, lb_class=lb_class)
    except errors.InvalidObject:
        parsed = None
    if parsed is not None and not (parsed.wants_address and parsed.assigned_ips):
        parsed = None
    return {"metadata": {k: meta[k] for k in _IDENTITY if k in meta}, PARSED: parsed}

log = logging.getLogger(__name__)


def _pool(raw: Mapping[str, Any]) -> ipam_pools.Pool:
    return ipam_pools.Pool.from_eip(eip.Eip.parse(raw))


class EndpointIndex:
    """Service -> nodes with a ready endpoint, kept as EndpointSlices change.

    Recomputing it from every slice took ~15 ms per round at 10,000 Services; fed by
    the EndpointSlice informer's callback, a change costs the Services of that slice.
    """

    def __init__(self, slices: informer.Informer) -> None:
        self._slices = slices
        self._of_slice: dict[str, tuple[str, frozenset[str]]] = {}  # slice -> (svc, nodes)
        self._by_service: dict[str, dict[str, frozenset[str]]] = {}  # svc -> slice -> nodes
        self._nodes: dict[str, frozenset[str]] = {}  # svc -> union over its slices

    def changed(self, key: str) -> None:
        raw = self._slices.get(key)
        now = nodes.slice_nodes(raw) if raw is not None else None
        before = self._of_slice.pop(key, None)
        touched = set()
        if before is not None:
            self._by_service.get(before[0], {}).pop(key, None)
            touched.add(before[0])
        if now is not None:
            self._of_slice[key] = now
            self._by_service.setdefault(now[0], {})[key] = now[1]
            touched.add(now[0])
        for svc in touched:
            per_slice = self._by_service.get(svc)
            if per_slice:
                self._nodes[svc] = frozenset().union(*per_slice.values())
            else:
                self._by_service.pop(svc, None)
                self._nodes.pop(svc, None)

    def snapshot(self) -> dict[str, frozenset[str]]:
        """A copy: the index keeps changing while a plan round awaits."""
        return dict(self._nodes)


class _Parsed:
    """Parsed objects by name, each parsed once per resourceVersion: a round re-reads
    the caches, not the objects (unchanged values also stay the same objects, which the
    planners' change checks rely on)."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[str, object]] = {}

    def get(self, raw: Mapping[str, Any], parse: Any) -> Any:
        """parse(raw), or the value parsed from this very version (an InvalidObject is
        remembered and raised again)."""
        meta = raw.get("metadata") or {}
        name, version = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
        known = self._by_name.get(name)
        if known is None or known[0] != version or not version:
            try:
                value: object = parse(raw)
            except errors.InvalidObject as exc:
                value = exc
            known = (version, value)
            self._by_name[name] = known
        if isinstance(known[1], errors.InvalidObject):
            raise known[1]
        return known[1]

    def keep_only(self, names: set[str]) -> None:
        if len(self._by_name) > len(names):
            self._by_name = {n: v for n, v in self._by_name.items() if n in names}


class SnapshotBuilder:
    def __init__(self, node: str, lb_class: str | None,
                 informers: Mapping[str, informer.Informer]) -> None:
        self._node = node
        self._lb_class = lb_class
        self._inf = informers
        self._last_good: dict[str, ipam_pools.Pool] = {}
        self._complained: dict[str, str] = {}
        self.endpoints = EndpointIndex(informers["endpointslices"])
        self._pools, self._nodes, self._peers = _Parsed(), _Parsed(), _Parsed()

    def _complain(self, ref: str, error: errors.InvalidObject) -> None:
        if self._complained.get(ref) != error.message:
            self._complained[ref] = error.message
            log.warning("object ignored", extra={"object": ref, "error": error.message})

    def build(self) -> snapshot.Snapshot:
        services = [entry[PARSED] for entry in self._inf["services"].items()
                    if entry.get(PARSED) is not None]
        pools: dict[str, ipam_pools.Pool] = {}
        for raw in self._inf["eips"].items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            try:
                pools[name] = self._pools.get(raw, _pool)
            except errors.InvalidObject as exc:
                self._complain(f"eip/{name}", exc)
                if name in self._last_good:
                    pools[name] = self._last_good[name]
        self._last_good = pools
        self._pools.keep_only(set(pools))
        node_map = {}
        for raw in self._inf["nodes"].items():
            info = self._nodes.get(raw, nodes.NodeInfo.parse)
            node_map[info.name] = info
        self._nodes.keep_only(set(node_map))
        conf = self._bgp_conf(self._inf["bgpconfs"].get(annotations.DEFAULT_BGPCONF_NAME))
        peers = []
        for raw in self._inf["bgppeers"].items():
            try:
                peers.append(self._peers.get(raw, bgp.BgpPeer.parse))
            except errors.InvalidObject as exc:
                self._complain(f"bgppeer/{(raw.get('metadata') or {}).get('name')}", exc)
        self._peers.keep_only({p.metadata.name for p in peers})
        return snapshot.Snapshot(
            node=self._node,
            nodes=node_map,
            services=tuple(services),
            pools=pools,
            endpoints=self.endpoints.snapshot(),
            bgp_conf=conf,
            bgp_peers=tuple(peers),
        )

    def _bgp_conf(self, raw: Mapping[str, Any] | None) -> bgp.BgpConf | None:
        # One object, parsed every round: cheaper than keeping it.
        if raw is None:
            return None
        try:
            return bgp.BgpConf.parse(raw)
        except errors.InvalidObject as exc:
            self._complain("bgpconf/default", exc)
            return None
