"""Which VRRP instances this node runs for VIP mode, and who should be master.

Pure (DESIGN §3, §4); consumed by speaker/modes/vip.py, which renders them for
keepalived. One instance per address: its candidates are the nodes eligible for the
Service (Ready, not excluded, a ready endpoint under externalTrafficPolicy Local) that
have an InternalIP of the address's family (VRRP runs unicast between InternalIPs, no
multicast). Priorities follow the layer-2 ownership rule (planner/ownership: rendezvous
hashing), so the master is the node layer 2 would pick and addresses spread over the
nodes; the runner-up is the first backup, and so on.

The virtual_router_id of an address is derived from a cluster identity and the address
(sha256), so every node agrees without talking, and two clusters sharing a LAN pick
different ids for their addresses. VRRP ids are one byte and keepalived needs them
unique per interface and family, so addresses whose preferred ids collide are resolved
by probing upwards in (preferred id, address) order: adding an address can move a
colliding one to another id. More than 255 VIP addresses in one family cannot be
served; the excess is skipped with `noVrid` (loudly, never silently).
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.api import addresses, service
from openelb.planner import eligibility, ownership, snapshot

__all__ = ["PROTOCOL", "VipPlan", "VrrpInstance", "plan_vip", "priorities", "vrids"]

PROTOCOL = "vip"
TOP_PRIORITY = 250  # the owner's; VRRP reserves 255 for an address owner, 0 for leaving
PRIORITY_STEP = 50  # between the first ranks (see _priority)
WIDE_RANKS = 4  # ranks 0..4 are PRIORITY_STEP apart, the rest one apart
VRIDS = range(1, 256)


@dataclass(frozen=True, slots=True, order=True)
class VrrpInstance:
    """One VRRP instance this node runs: `ip` on the Eip's interface."""

    ip: addresses.IPAddress
    vrid: int
    pool: str
    interface: str  # the Eip's spec.interface (NIC name or can_reach:<IP>)
    priority: int  # this node's
    source: addresses.IPAddress  # this node's InternalIP of the family
    peers: tuple[addresses.IPAddress, ...]  # the other candidates' InternalIPs
    master: str  # the node that should be master (the top priority)

    @property
    def name(self) -> str:
        """keepalived's instance name: stable per address, so a reload keeps its state."""
        return "oelb_" + str(self.ip).replace(".", "_").replace(":", "_")


@dataclass(frozen=True, slots=True)
class VipPlan:
    instances: frozenset[VrrpInstance] = frozenset()
    # Service key -> the addresses this node runs an instance for.
    candidate: Mapping[str, frozenset[addresses.IPAddress]] = field(default_factory=dict)
    skipped: Mapping[str, eligibility.Skip] = field(default_factory=dict)  # svc -> why
    masters: Mapping[addresses.IPAddress, str] = field(default_factory=dict)  # expected


def _priority(rank: int) -> int:
    """250, 200, 150, 100, 50, then one less per rank down to 1. The steps are wide
    because a backup that hears the master leave (priority 0) takes over after its skew
    time, (256 - priority) / 256 advert intervals: one apart, the first two backups are
    0.8 ms apart at 0.2 s and a loaded host picks either, and the right one then waits a
    whole preempt delay to take over; fifty apart, they are 39 ms apart."""
    wide = TOP_PRIORITY - PRIORITY_STEP * min(rank, WIDE_RANKS)
    return max(1, wide - max(0, rank - WIDE_RANKS))


def priorities(ip: addresses.IPAddress, candidates: Iterable[str]) -> dict[str, int]:
    """Each candidate's VRRP priority for `ip`, in rendezvous order (the layer-2
    owner first): 250, 200, 150, 100, 50, 49, ... 1."""
    ranked = sorted(candidates, key=lambda n: (ownership.score(n, ip), n), reverse=True)
    return {node: _priority(rank) for rank, node in enumerate(ranked)}


def _preferred(cluster: str, ip: addresses.IPAddress) -> int:
    digest = hashlib.sha256(f"{cluster}#{ip}".encode()).digest()
    return VRIDS[int.from_bytes(digest[:8], "big") % len(VRIDS)]


def vrids(cluster: str, ips: Iterable[addresses.IPAddress]) -> dict[addresses.IPAddress, int]:
    """The virtual_router_id of each address, unique per family; an address missing
    from the result found no free id (more than 255 in its family)."""
    found: dict[addresses.IPAddress, int] = {}
    used: dict[int, set[int]] = {4: set(), 6: set()}
    for preferred, ip in sorted((_preferred(cluster, ip), ip)
                                for ip in set(ips)):
        taken = used[ip.version]
        for step in range(len(VRIDS)):
            vrid = VRIDS[(preferred - VRIDS[0] + step) % len(VRIDS)]
            if vrid not in taken:
                taken.add(vrid)
                found[ip] = vrid
                break
    return found


def plan_vip(snap: snapshot.Snapshot, cluster: str) -> VipPlan:
    """The VRRP instances of `snap.node` for every VIP-mode address."""
    wanted: list[tuple[service.LbService, addresses.IPAddress, str, str, frozenset[str]]] = []
    skipped: dict[str, eligibility.Skip] = {}
    for svc in snap.services:
        if not svc.wants_address:
            continue
        for ip in svc.assigned_ips:
            pool = snap.pool_of(ip)
            if pool is None or pool.protocol != PROTOCOL:
                continue
            candidates = frozenset(
                n for n in eligibility.eligible_nodes(snap, svc)
                if snap.nodes[n].internal_ip(ip.version) is not None)
            wanted.append((svc, ip, pool.name, pool.interface, candidates))
    ids = vrids(cluster, (ip for _, ip, _, _, candidates in wanted if candidates))
    instances: set[VrrpInstance] = set()
    candidate: dict[str, set[addresses.IPAddress]] = {}
    masters: dict[addresses.IPAddress, str] = {}
    me = snap.me
    for svc, ip, pool_name, interface, candidates in wanted:
        key = svc.key
        ranks = priorities(ip, candidates)
        if ranks:
            masters[ip] = max(ranks, key=lambda n: (ranks[n], n))
        if snap.node not in candidates or me is None:
            skipped.setdefault(key, eligibility.service_skip(snap, svc, snap.node)
                               or eligibility.Skip.NO_NODE_ADDRESS)
            continue
        if not interface:
            skipped.setdefault(key, eligibility.Skip.NO_INTERFACE)
            continue
        if ip not in ids:
            skipped.setdefault(key, eligibility.Skip.NO_VRID)
            continue
        source = me.internal_ip(ip.version)
        assert source is not None  # candidates have one
        peers = tuple(sorted(
            peer_ip for n in candidates if n != snap.node
            if (peer_ip := snap.nodes[n].internal_ip(ip.version)) is not None))
        instances.add(VrrpInstance(ip, ids[ip], pool_name, interface, ranks[snap.node], source,
                                   peers, masters[ip]))
        candidate.setdefault(key, set()).add(ip)
    for key in candidate:
        skipped.pop(key, None)
    return VipPlan(frozenset(instances), {k: frozenset(v) for k, v in candidate.items()},
                   skipped, masters)

