"""What the speaker needs to know about a Node and about a Service's endpoints.

Pure (DESIGN §3, §4): `NodeInfo.parse(raw)` reads readiness, NetworkUnavailable, labels
and InternalIPs; `ready_endpoint_nodes(slices)` reads EndpointSlices into the set of
nodes that host a ready endpoint of each Service (for externalTrafficPolicy Local).
Lenient by design: a field the apiserver validates is trusted, a missing one is absent.

`slim_node` and `slim_endpointslice` keep only what those two read, for the speaker's
caches: a Node's status carries its image list and capacity (often tens of KB), and an
EndpointSlice its addresses, ports and targetRefs, none of which the speaker reads.
"""

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openelb.api import addresses, annotations

__all__ = ["NodeInfo", "ready_endpoint_nodes", "slice_nodes", "slim_endpointslice", "slim_node"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str]
    ready: bool
    network_unavailable: bool
    internal_ips: tuple[addresses.IPAddress, ...]

    @property
    def excluded(self) -> bool:
        """Labelled `node.kubernetes.io/exclude-from-external-load-balancers`."""
        return annotations.EXCLUDE_LB_LABEL in self.labels

    def internal_ip(self, version: int) -> addresses.IPAddress | None:
        return next((ip for ip in self.internal_ips if ip.version == version), None)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "NodeInfo":
        meta = raw.get("metadata") or {}
        status = raw.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
        ips: list[addresses.IPAddress] = []
        for entry in status.get("addresses") or ():
            if entry.get("type") == "InternalIP":
                try:
                    ips.append(ipaddress.ip_address(str(entry.get("address", ""))))
                except ValueError:
                    continue
        return cls(
            name=str(meta.get("name", "")),
            labels=dict(meta.get("labels") or {}),
            ready=conditions.get("Ready") == "True",
            network_unavailable=conditions.get("NetworkUnavailable") == "True",
            internal_ips=tuple(ips),
        )


def ready_endpoint_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Service key `ns/name` -> nodes with at least one ready endpoint of it."""
    found: dict[str, set[str]] = {}
    for raw in slices:
        slice_of = slice_nodes(raw)
        if slice_of is not None:
            found.setdefault(slice_of[0], set()).update(slice_of[1])
    return {k: frozenset(v) for k, v in found.items()}


def slice_nodes(raw: Mapping[str, Any]) -> tuple[str, frozenset[str]] | None:
    """One EndpointSlice: (its Service key, the nodes of its ready endpoints), or None
    for a slice of no Service."""
    meta = raw.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    nodes = set()
    for endpoint in raw.get("endpoints") or ():
        node = endpoint.get("nodeName")
        ready = (endpoint.get("conditions") or {}).get("ready")
        if node and ready is not False:  # absent means ready (API contract)
            nodes.add(str(node))
    return f"{meta.get('namespace')}/{service}", frozenset(nodes)


def _slim_metadata(raw: Mapping[str, Any]) -> dict[str, Any]:
    meta = raw.get("metadata") or {}
    return {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels")
            if k in meta}


def slim_node(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Node that NodeInfo.parse reads, and its identity."""
    status = raw.get("status") or {}
    return {
        "metadata": _slim_metadata(raw),
        "status": {
            "conditions": [{"type": c.get("type"), "status": c.get("status")}
                           for c in status.get("conditions") or ()],
            "addresses": [dict(a) for a in status.get("addresses") or ()],
        },
    }


def slim_endpointslice(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an EndpointSlice that ready_endpoint_nodes reads, and its identity."""
    return {
        "metadata": _slim_metadata(raw),
        "endpoints": [
            {"nodeName": e.get("nodeName"),
             "conditions": {"ready": (e.get("conditions") or {}).get("ready")}}
            for e in raw.get("endpoints") or ()
        ],
    }
