"""Layer-2 mode: liveness, ownership, and the ARP/NDP announcer (a speaker Mode).

speaker/modes (DESIGN §2, §3, §4). Each plan round: tell the heartbeats which nodes to reach and
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

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any

from openelb.announce import layer2 as l2
from openelb.announce.liveness import udp
from openelb.api import nodes
from openelb.kube import errors as kube_errors
from openelb.kube import events, resources
from openelb.planner import eligibility, ownership, snapshot
from openelb.speaker import interfaces, metrics, seam

__all__ = ["ADDRESS_CONFLICT", "CLOCK_SKEW", "Layer2Mode"]

log = logging.getLogger(__name__)

ADDRESS_CONFLICT: str = "AddressConflict"
CLOCK_SKEW: str = "ClockSkew"


class Layer2Mode:
    name = "layer2"
    how = "by ARP/NDP (layer-2 owner)"
    retryable: tuple[type[Exception], ...] = (l2.Layer2Error,)

    def __init__(self, ctx: seam.ModeContext) -> None:
        self._ctx = ctx
        self.node = ctx.settings.node
        self.heartbeats: udp.Heartbeats | None = None
        self.announcer = l2.Layer2Announcer(on_counter=ctx.stats.count_layer2,
                                            on_conflict=self._address_conflict,
                                            on_lost=ctx.wake)
        self.plan = ownership.Layer2Plan()
        self._interfaces = interfaces.InterfaceResolver(self.node, self.name)
        self._rejoins = 0  # heartbeats.rejoins as last acted on
        self._secret_checked = -1e9
        self._owned: set[tuple[str, ...]] = set()  # (ip, service) series of the gauge
        self._planner = ownership.Layer2Planner()  # plans what changed (planner/ownership.py)
        self._key_watch: asyncio.Task[None] | None = None

    def ready(self) -> tuple[bool, str]:
        return True, "ok"

    async def start(self) -> None:
        await self._start_heartbeats()
        self._key_watch = asyncio.create_task(self._follow_key(), name="heartbeat-key")

    async def _read_key(self) -> bytes:
        s = self._ctx.settings
        raw = await self._ctx.kube.get(resources.SECRETS, s.heartbeat_secret, s.namespace)
        return base64.b64decode((raw.get("data") or {}).get("secret", ""))

    async def _follow_key(self) -> None:
        """Re-read the heartbeat Secret every `key_check` seconds and rotate to a new key
        without a restart (udp.Heartbeats.rotate: every speaker accepts the new key
        before any signs with it). Also starts heartbeats once the Secret appears."""
        interval = self._ctx.settings.heartbeat.key_check
        while True:
            await asyncio.sleep(interval)
            if self.heartbeats is None:
                await self._start_heartbeats()
                continue
            try:
                key = await self._read_key()
            except (kube_errors.KubeError, ValueError) as exc:
                log.warning("heartbeat key not re-read", extra={"op": "liveness",
                                                                "error": str(exc)})
                continue
            if key:
                # Every peer reads the Secret within `interval` of the change, so
                # signing with the new key after twice that is safe.
                self.heartbeats.rotate(key, settle=2 * interval)

    async def _start_heartbeats(self) -> None:
        """Heartbeats, once the shared Secret can be read (retried every 10 s)."""
        s, stats = self._ctx.settings, self._ctx.stats
        if self.heartbeats is not None or s.heartbeat.port <= 0:
            return
        now = asyncio.get_running_loop().time()
        if now - self._secret_checked < 10.0:
            return
        self._secret_checked = now
        try:
            secret = await self._read_key()
        except (kube_errors.KubeError, ValueError) as exc:
            log.warning("heartbeat secret unavailable: layer-2 failover falls back to node "
                        "readiness (slow) until it exists", extra={
                            "op": "liveness", "error": str(exc)})
            return
        if not secret:
            log.warning("heartbeat secret is empty", extra={"op": "liveness"})
            return
        beats = udp.Heartbeats(s.node, secret, s.heartbeat, on_change=self._ctx.wake,
                               on_refused=stats.count_refused, on_skew=stats.record_skew,
                               on_skew_alarm=self._clock_skew)
        stats.watch_heartbeats(beats)
        await beats.start()
        self.heartbeats = beats
        log.info("heartbeats started", extra={"op": "liveness", "node": s.node,
                                              "port": s.heartbeat.port})

    def _clock_skew(self, peer: str, skew: float, off: bool) -> None:
        """A peer's clock crossed the skew limit: an Event on this node's Node."""
        raw = self._ctx.informers["nodes"].get(self.node)
        if raw is None:
            return
        limit = self._ctx.settings.heartbeat.skew_warn
        if off:
            message = (f"clock of node {peer} is {skew:+.1f} s off this node's (limit "
                       f"{limit:g} s); beyond 30 s its heartbeats are refused and it counts "
                       "as down for layer 2: check NTP")
        else:
            message = f"clock of node {peer} is back in step ({skew:+.1f} s)"
        self._ctx.recorder.emit(events.ObjectRef.of(raw, "Node", "v1"),
                                "Warning" if off else "Normal", CLOCK_SKEW, message,
                                node=self.node, peer=peer, skew_s=round(skew, 3))

    def _address_conflict(self, ip: Any, other: str) -> None:
        """MAC `other` claimed `ip` and this node announced it again: a Warning on each
        Service this node answers it for (at most one per address per second, the
        announcer's defence interval)."""
        for key, ips in self.plan.announced.items():
            raw = self._ctx.informers["services"].get(key) if ip in ips else None
            if raw is None:
                continue
            self._ctx.recorder.emit(events.ObjectRef.of(raw, "Service", "v1"), "Warning",
                                    ADDRESS_CONFLICT,
                                    f"{other} claims {ip}, which node {self.node} answers "
                                    "for; announced it again",
                                    service=key, ip=str(ip), node=self.node, mac=other)

    def _count_ownership(self, announced: Mapping[str, frozenset[Any]]) -> None:
        stats = self._ctx.stats
        now = {(str(ip), key) for key, ips in announced.items() for ip in ips}
        for change, count in (("acquired", len(now - self._owned)),
                              ("released", len(self._owned - now))):
            if count:
                stats.layer2_ownership_changes.labels(change).inc(count)
        self._owned = metrics.sync_series(stats.layer2_owned, self._owned,
                                          dict.fromkeys(now, 1))

    async def apply(self, snap: snapshot.Snapshot) -> seam.Round:
        await self._start_heartbeats()
        plan = await self._apply(snap)
        self._count_ownership(plan.announced)
        return seam.Round(plan.announced, plan.skipped, plan.claims)

    async def _apply(self, snap: snapshot.Snapshot) -> ownership.Layer2Plan:
        layer2_pools = {n: p for n, p in snap.pools.items() if p.protocol == "layer2"}
        resolved = {n: self._interfaces.resolve(p) for n, p in layer2_pools.items()}
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
        plan = self._planner.plan(snap, live, serving, joining, held)
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
        if self._key_watch is not None:
            self._key_watch.cancel()
            await asyncio.gather(self._key_watch, return_exceptions=True)
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
