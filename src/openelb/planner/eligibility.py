"""Which nodes may attract a Service's traffic, and why not (DESIGN §4).

Pure (DESIGN §3); used by planner/bgp.py and planner/ownership.py. A node is eligible
when it is Ready, not NetworkUnavailable, not labelled exclude-from-external-load-
balancers, and — for externalTrafficPolicy Local — hosts a ready endpoint. Every
refusal is a `Skip` value that appears unchanged in logs, Events and metrics.
"""

import enum

from openelb.api import nodes, service
from openelb.planner import snapshot

__all__ = ["Skip", "eligible_nodes", "node_skip", "service_skip", "usable_nodes"]


class Skip(enum.StrEnum):
    """Why this node does not announce an address (lowerCamel, STYLE §2.7)."""

    NO_ADDRESS = "noAddress"
    NOT_IN_POOL = "notInPool"
    OTHER_PROTOCOL = "otherProtocol"
    NODE_UNKNOWN = "nodeUnknown"
    NODE_NOT_READY = "nodeNotReady"
    NODE_NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
    NODE_EXCLUDED = "nodeExcluded"
    NO_READY_ENDPOINT = "noReadyEndpoint"
    NO_BGP_CONF = "noBgpConf"
    NO_PEERS = "noPeers"
    NOT_OWNER = "notOwner"
    NO_INTERFACE = "noInterface"
    NO_NODE_ADDRESS = "noNodeAddress"  # vip: no InternalIP of the family for VRRP
    NO_VRID = "noVrid"  # vip: all 255 VRRP ids of the family are taken
    NO_KEEPALIVED = "noKeepalived"  # vip: keepalived cannot run on this node


def node_skip(node: nodes.NodeInfo | None) -> Skip | None:
    """Why a node may attract no traffic at all, or None when it may."""
    if node is None:
        return Skip.NODE_UNKNOWN
    if not node.ready:
        return Skip.NODE_NOT_READY
    if node.network_unavailable:
        return Skip.NODE_NETWORK_UNAVAILABLE
    if node.excluded:
        return Skip.NODE_EXCLUDED
    return None


def service_skip(snap: snapshot.Snapshot, svc: service.LbService, node: str) -> Skip | None:
    """Why `node` may not attract `svc`'s traffic, or None when it may."""
    skip = node_skip(snap.nodes.get(node))
    if skip is not None:
        return skip
    if svc.traffic_policy is service.TrafficPolicy.LOCAL and node not in snap.endpoints.get(
        svc.key, frozenset()
    ):
        return Skip.NO_READY_ENDPOINT
    return None


def eligible_nodes(snap: snapshot.Snapshot, svc: service.LbService) -> frozenset[str]:
    return frozenset(n for n in snap.nodes if service_skip(snap, svc, n) is None)


def usable_nodes(snap: snapshot.Snapshot) -> frozenset[str]:
    """The nodes that may attract any traffic (no `node_skip`): a Cluster Service's
    eligible nodes; a Local Service's are these that hold its ready endpoints."""
    return frozenset(n for n, info in snap.nodes.items() if node_skip(info) is None)
