"""Whether anything can announce a pool's addresses at all: the black-hole check.

Pure (DESIGN §3, "never silent"); in ipam because it judges pools, and both the
controller and manifests.py (beside the planner's layer) use it. An address from a
pool that no node can announce is the worst thing a load balancer can hand out: the
Service shows an EXTERNAL-IP that nobody answers. The controller (a Warning Event and
a status condition on the Service) and `openelb validate` ask `unannounced` the same
question, so they say the same words.

One rule per announcement mode, named by the Eip's `spec.protocol`; the speaker's modes
(speaker/modes) implement the same names, and a unit test keeps the two lists equal.
What is checked is what the cluster's objects can tell: a BGP pool needs the BgpConf
named `default` and at least one BgpPeer; layer 2 and VIP need only their Eip's
interface, which the Eip's own validation already requires. What only a node can tell
(an interface missing there, keepalived not installed) the speakers report themselves.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from openelb.api import annotations, bgp
from openelb.ipam import pools

__all__ = ["MODES", "Gap", "unannounced"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Why nothing announces a pool: `reason` for conditions, `message` for people."""

    reason: str  # UpperCamel, for a condition's reason
    message: str


@dataclass(frozen=True, slots=True)
class _Cluster:
    bgp_conf: bgp.BgpConf | None
    peers: tuple[bgp.BgpPeer, ...]


def _bgp(pool: pools.Pool, cluster: _Cluster) -> Gap | None:
    if cluster.bgp_conf is None:
        return Gap("NoBgpConf", f"eip/{pool.name} is a BGP pool but there is no BgpConf "
                                f"named {annotations.DEFAULT_BGPCONF_NAME}: no node speaks "
                                "BGP, so no router learns this address")
    if not cluster.peers:
        return Gap("NoBgpPeer", f"eip/{pool.name} is a BGP pool but there is no BgpPeer: "
                                "no router to announce this address to")
    return None


def _nothing_to_check(pool: pools.Pool, cluster: _Cluster) -> Gap | None:
    return None


# Eip spec.protocol -> what the cluster must hold for that mode to announce anything.
MODES: Mapping[str, Callable[[pools.Pool, _Cluster], Gap | None]] = {
    "bgp": _bgp,
    "layer2": _nothing_to_check,  # spec.interface is required by the Eip itself
    "vip": _nothing_to_check,  # likewise
}


def unannounced(pool: pools.Pool, bgp_confs: Iterable[bgp.BgpConf],
                bgp_peers: Iterable[bgp.BgpPeer]) -> Gap | None:
    """Why no node can announce `pool`'s addresses, or None when some node can."""
    rule = MODES.get(pool.protocol)
    if rule is None:
        return Gap("UnknownProtocol", f"eip/{pool.name} has protocol {pool.protocol!r}, "
                                      f"which no mode announces ({', '.join(sorted(MODES))})")
    conf = next((c for c in bgp_confs if c.counts), None)
    return rule(pool, _Cluster(conf, tuple(p for p in bgp_peers if not p.ignored)))
