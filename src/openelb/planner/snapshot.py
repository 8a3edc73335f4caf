"""The cluster as one speaker sees it at one instant: the planner's only input.

Pure (DESIGN §3). Built by speaker/ from its informer caches; every field is a parsed,
immutable value so the planner can be tested with hand-written snapshots.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from openelb.api import addresses, bgp, service
from openelb.api import nodes as node_info
from openelb.ipam import pools as ipam_pools

__all__ = ["Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    node: str  # the node this speaker runs on
    nodes: Mapping[str, node_info.NodeInfo]
    services: tuple[service.LbService, ...]  # with the addresses their status holds
    pools: Mapping[str, ipam_pools.Pool]  # parsed Eips by name
    endpoints: Mapping[str, frozenset[str]] = field(default_factory=dict)  # svc -> nodes
    bgp_conf: bgp.BgpConf | None = None  # the BgpConf named `default`, if any
    bgp_peers: tuple[bgp.BgpPeer, ...] = ()
    pool_index: ipam_pools.PoolIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_index", ipam_pools.PoolIndex(self.pools.values()))

    @property
    def me(self) -> node_info.NodeInfo | None:
        return self.nodes.get(self.node)

    def pool_of(self, ip: addresses.IPAddress) -> ipam_pools.Pool | None:
        """The pool whose declared range holds `ip` (ipam's rule: the oldest if pools
        overlap)."""
        return self.pool_index.holding(ip)
