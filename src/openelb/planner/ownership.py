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
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.api import addresses
from openelb.planner import eligibility, snapshot

__all__ = ["Layer2Claim", "Layer2Plan", "owner", "plan_layer2", "score"]


def score(node: str, ip: addresses.IPAddress) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def owner(ip: addresses.IPAddress, candidates: Iterable[str]) -> str | None:
    """The node among `candidates` that owns `ip`, or None when there is none."""
    return max(candidates, key=lambda node: (score(node, ip), node), default=None)


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
) -> Layer2Plan:
    """Claims of `snap.node`. `serving[node]` lists the layer-2 pools a node can reach;
    a node missing from `serving` is assumed able to (it has not told us otherwise).
    `joining` are live nodes that claim nothing yet, `held` the addresses this node
    answers for now: it keeps those whose owner is joining (make before break)."""
    claims: set[Layer2Claim] = set()
    owners: dict[addresses.IPAddress, str] = {}
    announced: dict[str, frozenset[addresses.IPAddress]] = {}
    skipped: dict[str, eligibility.Skip] = {}
    kept: set[addresses.IPAddress] = set()
    for svc in snap.services:
        if not svc.wants_address:
            continue
        mine: set[addresses.IPAddress] = set()
        for ip in svc.assigned_ips:
            pool = snap.pool_of(ip)
            if pool is None or pool.protocol != "layer2":
                continue
            candidates = [
                n for n in eligibility.eligible_nodes(snap, svc)
                if n in live and pool.name in serving.get(n, frozenset({pool.name}))
            ]
            chosen = owner(ip, candidates)
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
    return Layer2Plan(frozenset(claims), owners, announced, skipped, frozenset(kept))
