"""Which single node answers ARP/NDP for each layer-2 address (DESIGN §4).

Pure (DESIGN §3); every speaker runs the same function on the same inputs and so agrees
on one owner per address without talking to the apiserver. Ownership is rendezvous
hashing: each candidate scores sha256("<node>#<ip>") and the highest score owns the
address. Adding a node moves only the addresses the new node wins (about 1/n of them);
removing a node moves only its own. Candidates are the eligible nodes (Ready, not
excluded, a ready endpoint for ETP=Local) that are alive by the speakers' heartbeats
and that can reach the Eip's interface.

Make before break: when the owner is a node that is still joining (alive, but in its
start-up hold-down, so it answers nothing yet), the node that currently holds the
address keeps it, while it is a candidate itself, until the owner says it claims.
Only a holder keeps, so this never adds a second claimant; without it a returning
node's addresses would go unanswered for one heartbeat timeout.

Cost (issue #13): hashing every candidate for every address made a round at 5,000
layer-2 addresses and 100 nodes cost ~0.8 s, on the loop that also sends heartbeats.
`Rankings` remembers, per address, the few nodes with the highest scores among every
node seen so far; the owner is the first of them that is a candidate, and only when
none is (most nodes down, or a Local Service with endpoints on a few nodes) are the
candidates hashed. A round where nothing moved then costs a lookup per address, a
node failing costs no hashing at all, and a new node costs one hash per address. The
candidate sets are built once per pool, not once per Service. The answer is the same
as `owner` over the candidates, always (a property test holds the two together).
"""

import hashlib
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from openelb.api import addresses, service
from openelb.planner import eligibility, snapshot

__all__ = ["Layer2Claim", "Layer2Plan", "Rankings", "owner", "plan_layer2", "score"]


def score(node: str, ip: addresses.IPAddress) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def owner(ip: addresses.IPAddress, candidates: Iterable[str]) -> str | None:
    """The node among `candidates` that owns `ip`, or None when there is none."""
    return max(candidates, key=lambda node: (score(node, ip), node), default=None)


class Rankings:
    """Per address, the `depth` best-scoring nodes among all nodes seen (a memo kept by
    its owner across rounds; answers never depend on it)."""

    def __init__(self, depth: int = 8) -> None:
        self._depth = depth
        self._nodes: list[str] = []  # every node seen, in the order first seen
        self._known: set[str] = set()
        # ip -> (how many of self._nodes are ranked in, best (score, node) first)
        self._top: dict[addresses.IPAddress, tuple[int, list[tuple[bytes, str]]]] = {}

    def know(self, nodes: Iterable[str]) -> None:
        """Nodes that may be candidates this round (new ones are ranked in lazily)."""
        for node in nodes:
            if node not in self._known:
                self._known.add(node)
                self._nodes.append(node)

    def owner(self, ip: addresses.IPAddress, candidates: AbstractSet[str]) -> str | None:
        """`owner(ip, candidates)`, for candidates among the nodes `know` was told."""
        if not candidates:
            return None
        seen, top = self._top.get(ip, (0, []))
        if seen < len(self._nodes):
            for node in self._nodes[seen:]:
                top.append((score(node, ip), node))
            top.sort(reverse=True)
            del top[self._depth:]
            self._top[ip] = (len(self._nodes), top)
        for _, node in top:
            if node in candidates:
                return node
        return owner(ip, candidates)  # every top node is out: hash the candidates

    def forget_except(self, ips: AbstractSet[addresses.IPAddress]) -> None:
        """Drop addresses no longer planned (called with this round's addresses)."""
        if len(self._top) > 2 * len(ips) + 64:
            self._top = {ip: entry for ip, entry in self._top.items() if ip in ips}


@dataclass(frozen=True, slots=True, order=True)
class Layer2Claim:
    """This node answers for `ip`, on the interface the Eip names (`interface` spec)."""

    ip: addresses.IPAddress
    pool: str
    interface: str  # the Eip's spec.interface, resolved by the announcer


@dataclass(frozen=True, slots=True)
class Layer2Plan:
    claims: frozenset[Layer2Claim] = frozenset()
    owners: Mapping[addresses.IPAddress, str] = field(default_factory=dict)  # ip -> node
    announced: Mapping[str, frozenset[addresses.IPAddress]] = field(default_factory=dict)
    skipped: Mapping[str, eligibility.Skip] = field(default_factory=dict)  # svc -> why
    # Claimed addresses this node only keeps for a joining owner (make before break):
    # that owner's first announcement is expected, not a conflict to defend against.
    kept: frozenset[addresses.IPAddress] = frozenset()


def plan_layer2(
    snap: snapshot.Snapshot,
    live: frozenset[str],
    serving: Mapping[str, frozenset[str]],
    joining: frozenset[str] = frozenset(),
    held: frozenset[addresses.IPAddress] = frozenset(),
    rankings: Rankings | None = None,
) -> Layer2Plan:
    """Claims of `snap.node`. `serving[node]` lists the layer-2 pools a node can reach;
    a node missing from `serving` is assumed able to (it has not told us otherwise).
    `joining` are live nodes that claim nothing yet, `held` the addresses this node
    answers for now: it keeps those whose owner is joining (make before break).
    `rankings` is a memo the caller keeps across rounds (faster, same answer)."""
    claims: set[Layer2Claim] = set()
    owners: dict[addresses.IPAddress, str] = {}
    announced: dict[str, frozenset[addresses.IPAddress]] = {}
    skipped: dict[str, eligibility.Skip] = {}
    kept: set[addresses.IPAddress] = set()
    ranks = rankings if rankings is not None else Rankings()
    ranks.know(sorted(snap.nodes))
    usable = eligibility.usable_nodes(snap)  # Ready, reachable, not excluded
    per_pool: dict[str, frozenset[str]] = {}  # pool -> candidates for a Cluster Service
    for svc in snap.services:
        if not svc.wants_address:
            continue
        mine: set[addresses.IPAddress] = set()
        for ip in svc.assigned_ips:
            pool = snap.pool_of(ip)
            if pool is None or pool.protocol != "layer2":
                continue
            base = per_pool.get(pool.name)
            if base is None:
                base = frozenset(n for n in usable if n in live
                                 and pool.name in serving.get(n, frozenset({pool.name})))
                per_pool[pool.name] = base
            candidates = (base & snap.endpoints.get(svc.key, frozenset())
                          if svc.traffic_policy is service.TrafficPolicy.LOCAL else base)
            chosen = ranks.owner(ip, candidates)
            if chosen in joining and ip in held and snap.node in candidates:
                chosen = snap.node
                kept.add(ip)
            if chosen is None:
                skipped[svc.key] = (eligibility.service_skip(snap, svc, snap.node)
                                    or eligibility.Skip.NO_INTERFACE)
                continue
            owners[ip] = chosen
            if chosen == snap.node:
                mine.add(ip)
                claims.add(Layer2Claim(ip, pool.name, pool.interface))
            else:
                skipped[svc.key] = eligibility.Skip.NOT_OWNER
        if mine:
            announced[svc.key] = frozenset(mine)
            skipped.pop(svc.key, None)
    ranks.forget_except(owners.keys())
    return Layer2Plan(frozenset(claims), owners, announced, skipped, frozenset(kept))
