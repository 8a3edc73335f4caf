"""Layer-2 mode inside the speaker: liveness, ownership, and the ARP/NDP announcer.

speaker/ (DESIGN §2, §4). Each plan round: tell the heartbeats which nodes to reach and
which layer-2 pools this node can serve (its interface resolves here), compute the
owners from the live set, and hand this node's claims to the Layer2Announcer. While
the membership is not settled (one heartbeat timeout from the first heartbeat sent to
the peers) nothing is claimed, so a restarting speaker never answers next to the
current owner: by then the owner has heard it. The current holder keeps answering until
the newcomer has applied its claims and said so in its heartbeats (make before break,
planner's ownership), so the address is never left unanswered; on SIGTERM the speaker
says it leaves and keeps answering one interval more while the others take over,
announcing nothing more (its pending gratuitous repeats are cancelled first). The
heartbeat secret comes
from a Secret in the speaker's namespace; without it heartbeats are off and ownership
falls back to node readiness from the apiserver (slow failover, logged loudly). When
a peer that could not hear this node comes back without having restarted (a cut link),
the addresses this node kept are announced again: the peer may have taken them and
moved the LAN meanwhile.
"""

import logging
from collections.abc import Mapping

from openelb.announce import layer2 as l2
from openelb.announce.liveness import udp
from openelb.api import addresses, nodes
from openelb.ipam import pools as ipam_pools
from openelb.planner import eligibility, ownership, snapshot

__all__ = ["Layer2Mode"]

log = logging.getLogger(__name__)


class Layer2Mode:
    def __init__(self, node: str, heartbeats: udp.Heartbeats | None,
                 announcer: l2.Layer2Announcer) -> None:
        self.node = node
        self.heartbeats = heartbeats
        self.announcer = announcer
        self.plan = ownership.Layer2Plan()
        self._interfaces: dict[str, str | None] = {}
        self._rejoins = 0  # heartbeats.rejoins as last acted on

    def _resolve(self, pool: ipam_pools.Pool) -> str | None:
        """The interface name this node uses for a layer-2 pool, or None."""
        probe = addresses.parse_address(pool.declared_text).first
        name = l2.resolve_interface(pool.interface, probe) if pool.interface else None
        if self._interfaces.get(pool.name, "?") != name:
            log.info("layer2 interface", extra={"op": "layer2", "eip": pool.name,
                                               "interface": name or "", "node": self.node,
                                               "reason": "" if name else "noInterface"})
            self._interfaces[pool.name] = name
        return name

    async def apply(self, snap: snapshot.Snapshot) -> ownership.Layer2Plan:
        layer2_pools = {n: p for n, p in snap.pools.items() if p.protocol == "layer2"}
        resolved = {n: self._resolve(p) for n, p in layer2_pools.items()}
        mine = frozenset(n for n, iface in resolved.items() if iface)
        ready = frozenset(n for n, info in snap.nodes.items()
                          if eligibility.node_skip(info) is None)
        if self.heartbeats is not None:
            self.heartbeats.pools = mine
            self.heartbeats.set_peers(_peer_addresses(snap.nodes))
            live = self.heartbeats.live(fallback=ready)
            serving = {**self.heartbeats.serving(), self.node: mine}
            settled = self.heartbeats.settled()
            joining = self.heartbeats.joining()
        else:
            live, serving, settled = ready | {self.node}, {self.node: mine}, True
            joining = frozenset()
        held = frozenset(claim.ip for claim in self.announcer.claims)
        plan = ownership.plan_layer2(snap, live, serving, joining, held)
        claims: set[l2.Claim] = set()
        if settled:
            for claim in plan.claims:
                iface = resolved.get(claim.pool)
                if iface:
                    claims.add(l2.Claim(claim.ip, iface))
        kept = self.announcer.claims & claims
        try:
            await self.announcer.set(frozenset(claims), undefended=plan.kept)
        finally:
            if settled and self.heartbeats is not None:
                # After the claims (and their first GARPs) went out; also when some
                # interface failed, or a holder would keep what we did claim forever.
                self.heartbeats.mark_claiming()
        rejoins = self.heartbeats.rejoins if self.heartbeats is not None else 0
        if rejoins != self._rejoins:
            # A peer that could not hear us came back: it may have answered for our
            # addresses meanwhile, so announce them again (membership: Rejoin).
            self._rejoins = rejoins
            self.announcer.reannounce(kept)
        if not settled:
            waiting = dict.fromkeys((*plan.announced, *plan.skipped),
                                    eligibility.Skip.NOT_OWNER)
            plan = ownership.Layer2Plan(frozenset(), plan.owners, {}, waiting)
        self.plan = plan
        return plan

    async def aclose(self) -> None:
        """Hand over, then stop: the peers hear that this speaker leaves and take its
        addresses at once; it keeps answering for one heartbeat interval meanwhile, but
        announces nothing more: a gratuitous repeat after the heir's would pull the LAN
        back to this node just before it goes quiet."""
        await self.announcer.stop_announcing()
        if self.heartbeats is not None:
            await self.heartbeats.leave()
        await self.announcer.aclose()
        if self.heartbeats is not None:
            await self.heartbeats.aclose()


def _peer_addresses(node_map: Mapping[str, nodes.NodeInfo]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, info in node_map.items():
        ip = info.internal_ip(4) or info.internal_ip(6)
        if ip is not None:
            found[name] = str(ip)
    return found
