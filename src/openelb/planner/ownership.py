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
The speaker runs `Layer2Planner`, which on top of that plans again only the Services
that changed since its last round: ~2.5 ms for one change at 10,000 Services and 100
nodes, where a full pass costs ~20-30 ms (bench/planner.py).
"""

import collections
import hashlib
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TypeVar

from openelb.api import addresses, service
from openelb.planner import eligibility, incremental, snapshot

__all__ = ["Layer2Claim", "Layer2Plan", "Layer2Planner", "Rankings", "owner", "plan_layer2",
           "score"]


_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class _Part:
    """What one Service contributes to a Layer2Plan."""

    owners: tuple[tuple[addresses.IPAddress, str], ...] = ()
    claims: tuple[Layer2Claim, ...] = ()
    announced: frozenset[addresses.IPAddress] = frozenset()
    skip: eligibility.Skip | None = None
    kept: tuple[addresses.IPAddress, ...] = ()


class _Round:
    """The inputs of one round every Service's part is planned against."""

    def __init__(self, snap: snapshot.Snapshot, live: frozenset[str],
                 serving: Mapping[str, frozenset[str]], joining: frozenset[str],
                 held: frozenset[addresses.IPAddress], ranks: Rankings) -> None:
        self.snap, self.live, self.serving = snap, live, serving
        self.joining, self.held, self.ranks = joining, held, ranks
        self.usable = eligibility.usable_nodes(snap)  # Ready, reachable, not excluded
        self._per_pool: dict[str, frozenset[str]] = {}  # pool -> a Cluster Service's nodes
        ranks.know(sorted(snap.nodes))

    def part(self, svc: service.LbService) -> _Part | None:
        if not svc.wants_address:
            return None
        snap = self.snap
        owners: list[tuple[addresses.IPAddress, str]] = []
        claims: list[Layer2Claim] = []
        mine: set[addresses.IPAddress] = set()
        kept: list[addresses.IPAddress] = []
        skip: eligibility.Skip | None = None
        for ip in svc.assigned_ips:
            pool = snap.pool_of(ip)
            if pool is None or pool.protocol != "layer2":
                continue
            base = self._per_pool.get(pool.name)
            if base is None:
                base = frozenset(n for n in self.usable if n in self.live
                                 and pool.name in self.serving.get(n, frozenset({pool.name})))
                self._per_pool[pool.name] = base
            candidates = (base & snap.endpoints.get(svc.key, frozenset())
                          if svc.traffic_policy is service.TrafficPolicy.LOCAL else base)
            chosen = self.ranks.owner(ip, candidates)
            if chosen in self.joining and ip in self.held and snap.node in candidates:
                chosen = snap.node
                kept.append(ip)
            if chosen is None:
                skip = (eligibility.service_skip(snap, svc, snap.node)
                        or eligibility.Skip.NO_INTERFACE)
                continue
            owners.append((ip, chosen))
            if chosen == snap.node:
                mine.add(ip)
                claims.append(Layer2Claim(ip, pool.name, pool.interface))
            else:
                skip = eligibility.Skip.NOT_OWNER
        if not owners and skip is None:
            return None  # no layer-2 address
        return _Part(tuple(owners), tuple(claims), frozenset(mine),
                     None if mine else skip, tuple(kept))


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
    `rankings` is a memo the caller keeps across rounds (faster, same answer).
    Where Services share an address, `owners` names the owner the Service with the
    smallest key found (they agree but for ETP Local Services with other endpoints).
    Layer2Planner gives the same plans at the cost of what changed since its last."""
    ranks = rankings if rankings is not None else Rankings()
    round_ = _Round(snap, live, serving, joining, held, ranks)
    claims: set[Layer2Claim] = set()
    owners: dict[addresses.IPAddress, tuple[str, str]] = {}  # ip -> (svc key, node)
    announced: dict[str, frozenset[addresses.IPAddress]] = {}
    skipped: dict[str, eligibility.Skip] = {}
    kept: set[addresses.IPAddress] = set()
    for svc in snap.services:
        part = round_.part(svc)
        if part is None:
            continue
        for ip, node in part.owners:
            if ip not in owners or svc.key < owners[ip][0]:
                owners[ip] = (svc.key, node)
        claims.update(part.claims)
        kept.update(part.kept)
        if part.announced:
            announced[svc.key] = part.announced
        if part.skip is not None:
            skipped[svc.key] = part.skip
    ranks.forget_except(owners.keys())
    return Layer2Plan(frozenset(claims), {ip: node for ip, (_, node) in owners.items()},
                      announced, skipped, frozenset(kept))


class Layer2Planner:
    """plan_layer2 kept across rounds: equal plans (a property test holds them equal),
    at a cost that follows what changed (issue #13): while the round's inputs other than
    the Services (nodes, liveness, pools, joining and held addresses) stay the same, only
    the Services that changed (planner/incremental.py) are planned again, and the plan's
    maps are kept up to date rather than rebuilt."""

    def __init__(self, depth: int = 8) -> None:
        self.rankings = Rankings(depth)
        self._tracker = incremental.ServiceTracker()
        self._forget()

    def _forget(self) -> None:
        """No Service planned yet (a new planner, or a round whose context changed)."""
        self._parts: dict[str, _Part] = {}
        self._claims: collections.Counter[Layer2Claim] = collections.Counter()
        self._owners: dict[addresses.IPAddress, dict[str, str]] = {}  # ip -> svc -> node
        self._owner_of: dict[addresses.IPAddress, str] = {}
        self._announced: dict[str, frozenset[addresses.IPAddress]] = {}
        self._skipped: dict[str, eligibility.Skip] = {}
        self._kept: collections.Counter[addresses.IPAddress] = collections.Counter()

    def plan(self, snap: snapshot.Snapshot, live: frozenset[str],
             serving: Mapping[str, frozenset[str]], joining: frozenset[str] = frozenset(),
             held: frozenset[addresses.IPAddress] = frozenset()) -> Layer2Plan:
        """plan_layer2(snap, live, serving, joining, held)."""
        round_ = _Round(snap, live, serving, joining, held, self.rankings)
        context = (snap.node, snap.me, round_.usable, live, frozenset(serving.items()),
                   joining, held if joining else None, sorted(snap.pools.items()))
        delta = self._tracker.delta(snap.services, snap.endpoints, context)
        if delta.reset:
            self._forget()
        for key in delta.removed:
            self._drop(key)
        for svc in delta.changed:
            self._drop(svc.key)
            part = round_.part(svc)
            if part is not None:
                self._add(svc.key, part)
        self.rankings.forget_except(self._owner_of.keys())
        return Layer2Plan(frozenset(self._claims), dict(self._owner_of),
                          dict(self._announced), dict(self._skipped), frozenset(self._kept))

    def _add(self, key: str, part: _Part) -> None:
        self._parts[key] = part
        self._claims.update(part.claims)
        self._kept.update(part.kept)
        for ip, node in part.owners:
            self._owners.setdefault(ip, {})[key] = node
            self._settle(ip)
        if part.announced:
            self._announced[key] = part.announced
        if part.skip is not None:
            self._skipped[key] = part.skip

    def _drop(self, key: str) -> None:
        part = self._parts.pop(key, None)
        if part is None:
            return
        _release(self._claims, part.claims)
        _release(self._kept, part.kept)
        for ip, _ in part.owners:
            self._owners[ip].pop(key, None)
            self._settle(ip)
        self._announced.pop(key, None)
        self._skipped.pop(key, None)

    def _settle(self, ip: addresses.IPAddress) -> None:
        by_service = self._owners.get(ip)
        if by_service:
            self._owner_of[ip] = by_service[min(by_service)]
        else:
            self._owners.pop(ip, None)
            self._owner_of.pop(ip, None)


def _release(counter: collections.Counter[_T], items: Iterable[_T]) -> None:
    for item in items:
        counter[item] -= 1
        if counter[item] <= 0:
            del counter[item]
