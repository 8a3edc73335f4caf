"""The speaker process: caches, planning, announcing, status, Events, clean exit.

speaker/ (DESIGN §2): wired by `openelb speaker`. Every cache change marks the state
dirty; a single loop (at once after a quiet spell, then at most one round per
`debounce`) builds a snapshot, asks the planner what this node must announce, hands the
whole result to the announcers, posts an Event on each Service this node starts or
stops announcing, and writes this node's BGP status. SIGTERM
withdraws everything (announcer.aclose) before the process exits (DESIGN §4).
"""

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from openelb import health
from openelb.announce import layer2 as l2
from openelb.announce.bgp import announcer
from openelb.announce.bgp import errors as bgp_errors
from openelb.announce.liveness import udp
from openelb.api import nodes
from openelb.kube import client, events, informer, resources
from openelb.kube import errors as kube_errors
from openelb.planner import bgp as bgp_plan
from openelb.planner import eligibility
from openelb.speaker import layer2, metrics, reachability, snapshots, status

__all__ = ["SpeakerSettings", "run"]

log = logging.getLogger(__name__)

ANNOUNCE: str = "AnnounceIP"
ADDRESS_CONFLICT: str = "AddressConflict"
CLOCK_SKEW: str = "ClockSkew"
WITHDRAW: str = "WithdrawIP"


@dataclass(frozen=True, slots=True)
class SpeakerSettings:
    node: str
    workdir: Path
    lb_class: str | None = None
    debounce: float = 0.05  # least time between two plan rounds: bursts coalesce
    health_host: str = "127.0.0.1"
    health_port: int = 8081
    namespace: str = "openelb-system"  # where the heartbeat Secret lives
    heartbeat_secret: str = "openelb-speaker-heartbeat"  # Secret name; key `secret`
    heartbeat: udp.HeartbeatSettings = field(default_factory=udp.HeartbeatSettings)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


class Speaker:
    def __init__(self, kube: client.Kube, settings: SpeakerSettings) -> None:
        self.settings = settings
        self._kube = kube
        self._dirty = asyncio.Event()
        kinds = {
            "services": resources.SERVICES, "endpointslices": resources.ENDPOINTSLICES,
            "nodes": resources.NODES, "eips": resources.EIPS,
            "bgpconfs": resources.BGPCONFS, "bgppeers": resources.BGPPEERS,
        }
        # Read-only caches keep only what the planner reads: a Service as its identity
        # and parsed form, a Node without its status bulk (tens of KB, mostly images).
        transforms: dict[str, informer.Transform] = {
            "services": functools.partial(snapshots.service_entry, lb_class=settings.lb_class),
            "endpointslices": nodes.slim_endpointslice, "nodes": nodes.slim_node,
        }
        self.informers = {name: informer.Informer(kube, kind, self._changed,
                                                  transform=transforms.get(name))
                          for name, kind in kinds.items()}
        self.stats = metrics.SpeakerMetrics(settings.registry)
        self.snapshots = snapshots.SnapshotBuilder(settings.node, settings.lb_class,
                                                   self.informers)
        self.bgp = announcer.BgpAnnouncer(settings.workdir / "bgp", self._session_changed)
        self.recorder = events.Recorder(kube, "openelb-speaker", settings.node)
        self.status = status.StatusWriter(kube, settings.node, self.informers["bgpconfs"],
                                          self.informers["bgppeers"])
        self._announced: dict[str, dict[str, frozenset[Any]]] = {"bgp": {}, "layer2": {}}
        self._plan: bgp_plan.BgpPlan | None = None
        self._announcing: tuple[Any, ...] = ()  # claims, peers, routes of the last round
        self.layer2: layer2.Layer2Mode | None = None
        self._secret_checked = -1e9
        self._owned: set[tuple[str, str]] = set()
        self.reachability = reachability.PeerReachability(settings.node, self._dirty.set)
        self.applied = asyncio.Event()

    async def start_layer2(self) -> None:
        """The ARP/NDP announcer, and heartbeats once the shared Secret can be read."""
        announcer_l2 = l2.Layer2Announcer(on_counter=self.stats.count_layer2,
                                          on_conflict=self._address_conflict,
                                          on_lost=self._dirty.set)
        self.layer2 = layer2.Layer2Mode(self.settings.node, None, announcer_l2)
        await self._start_heartbeats()

    async def _start_heartbeats(self) -> None:
        s = self.settings
        if self.layer2 is None or self.layer2.heartbeats is not None or s.heartbeat.port <= 0:
            return
        now = asyncio.get_running_loop().time()
        if now - self._secret_checked < 10.0:
            return
        self._secret_checked = now
        try:
            raw = await self._kube.get(resources.SECRETS, s.heartbeat_secret, s.namespace)
            secret = base64.b64decode((raw.get("data") or {}).get("secret", ""))
        except kube_errors.KubeError as exc:
            log.warning("heartbeat secret unavailable: layer-2 failover falls back to node "
                        "readiness (slow) until it exists", extra={
                            "op": "liveness", "error": str(exc)})
            return
        if not secret:
            log.warning("heartbeat secret is empty", extra={"op": "liveness"})
            return
        beats = udp.Heartbeats(s.node, secret, s.heartbeat, on_change=self._dirty.set,
                               on_refused=self.stats.count_refused,
                               on_skew=self.stats.record_skew,
                               on_skew_alarm=self._clock_skew)
        self.stats.watch_heartbeats(beats)
        await beats.start()
        self.layer2.heartbeats = beats
        log.info("heartbeats started", extra={"op": "liveness", "node": s.node,
                                              "port": s.heartbeat.port})

    def _changed(self, key: str) -> None:
        self._dirty.set()

    def _session_changed(self, peer: str, state: str) -> None:
        self.stats.session_up.labels(peer).set(1 if state == "up" else 0)
        self._dirty.set()  # status carries the session state

    def ready(self) -> tuple[bool, str]:
        if not all(i.synced.is_set() for i in self.informers.values()):
            return False, "caches not synced"
        return (True, "announcing") if self.applied.is_set() else (False, "no plan applied yet")

    async def loop(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers.values()))
        self._dirty.set()
        clock = asyncio.get_running_loop().time
        last_round = -self.settings.debounce
        while True:
            await self._dirty.wait()
            # Leading edge: a change after a quiet spell is planned at once (a fixed
            # sleep here sat inside every status -> route figure); what arrives while a
            # round runs, or within `debounce` of the start of a round that changed
            # what this node announces, waits for the next round. A round that changed
            # nothing (a new Service without an address yet, an EndpointSlice elsewhere)
            # holds nothing back: the status write that follows it acts at once.
            wait = last_round + self.settings.debounce - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            started = clock()
            self._dirty.clear()
            try:
                changed = await self._apply()
                last_round = started if changed else -self.settings.debounce
                self.stats.plans.labels("applied").inc()
            except (bgp_errors.BgpEngineError, l2.Layer2Error) as exc:
                log.warning("announcer not ready, retrying", extra={
                    "op": "bgp" if isinstance(exc, bgp_errors.BgpEngineError) else "layer2",
                    "error": str(exc)})
                self.stats.plans.labels("retry").inc()
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def _apply(self) -> bool:
        """One plan round; whether what this node announces changed. Layer 2 goes first
        (its failover is the time-critical one) and neither mode waits for the other: a
        failing ExaBGP never holds up ARP/NDP claims, and a failing raw socket never
        holds up BGP. The first failure is re-raised at the end so the loop retries the
        round."""
        snap = self.snapshots.build()
        failure: Exception | None = None
        claims: frozenset[Any] = frozenset()
        if self.layer2 is not None:
            await self._start_heartbeats()
            try:
                l2_plan = await self.layer2.apply(snap)
            except l2.Layer2Error as exc:
                failure = exc
            else:
                claims = l2_plan.claims
                self._count_ownership(l2_plan.announced)
                self._post_events("layer2", l2_plan.announced, l2_plan.skipped)
        plan = bgp_plan.plan_bgp(snap)
        try:
            await self.bgp.set(plan)
        except bgp_errors.BgpEngineError as exc:
            failure = failure or exc
        else:
            self._plan = plan
            prefixes = {r.address for routes in plan.routes.values() for r in routes}
            self.stats.announced_prefixes.set(len(prefixes))
            reasons: dict[str, int] = {}
            for why in plan.skipped.values():
                reasons[str(why)] = reasons.get(str(why), 0) + 1
            self.stats.skipped.clear()
            for why_text, count in reasons.items():
                self.stats.skipped.labels(why_text).set(count)
            self._post_events("bgp", plan.announced, plan.skipped)
            info = snap.nodes.get(self.settings.node)
            self.reachability.update(plan.peers, self.bgp.sessions,
                                     info.internal_ips if info is not None else ())
            await self.status.write(plan, self.bgp.sessions, self.reachability.reasons)
        if failure is not None:
            raise failure
        self.applied.set()
        announcing = (claims, plan.peers, frozenset(plan.routes.items()))
        changed, self._announcing = announcing != self._announcing, announcing
        return changed

    def _count_ownership(self, announced: Mapping[str, frozenset[Any]]) -> None:
        now = {(str(ip), key) for key, ips in announced.items() for ip in ips}
        before = self._owned
        for ip, key in now - before:
            self.stats.layer2_owned.labels(ip, key).set(1)
            self.stats.layer2_ownership_changes.labels("acquired").inc()
        for ip, key in before - now:
            self.stats.layer2_owned.remove(ip, key)
            self.stats.layer2_ownership_changes.labels("released").inc()
        self._owned = now

    def _clock_skew(self, peer: str, skew: float, off: bool) -> None:
        """A peer's clock crossed the skew limit: an Event on this node's Node."""
        raw = self.informers["nodes"].get(self.settings.node)
        if raw is None:
            return
        limit = self.settings.heartbeat.skew_warn
        if off:
            message = (f"clock of node {peer} is {skew:+.1f} s off this node's (limit "
                       f"{limit:g} s); beyond 30 s its heartbeats are refused and it counts "
                       "as down for layer 2: check NTP")
        else:
            message = f"clock of node {peer} is back in step ({skew:+.1f} s)"
        self.recorder.emit(events.ObjectRef.of(raw, "Node", "v1"),
                           "Warning" if off else "Normal", CLOCK_SKEW, message,
                           node=self.settings.node, peer=peer, skew_s=round(skew, 3))

    def _address_conflict(self, ip: Any, other: str) -> None:
        """MAC `other` claimed `ip` and this node announced it again: a Warning on each
        Service this node answers it for (at most one per address per second, the
        announcer's defence interval)."""
        node = self.settings.node
        for key, ips in self._announced["layer2"].items():
            raw = self.informers["services"].get(key) if ip in ips else None
            if raw is None:
                continue
            self.recorder.emit(events.ObjectRef.of(raw, "Service", "v1"), "Warning",
                               ADDRESS_CONFLICT,
                               f"{other} claims {ip}, which node {node} answers for;"
                               " announced it again",
                               service=key, ip=str(ip), node=node, mac=other)

    def _post_events(self, protocol: str, announced: Mapping[str, frozenset[Any]],
                     skipped: Mapping[str, eligibility.Skip]) -> None:
        """Log each Service this node starts or stops announcing; its Event is posted in
        the background (Recorder.emit), so a burst never delays the next plan."""
        node = self.settings.node
        now = dict(announced)
        memory = self._announced[protocol]
        for key in sorted(set(now) | set(memory)):
            before, after = memory.get(key, frozenset()), now.get(key, frozenset())
            if before == after:
                continue
            raw = self.informers["services"].get(key)
            ips = ", ".join(sorted(str(i) for i in (after or before)))
            if raw is None:
                continue  # the Service is gone: nobody to tell
            ref = events.ObjectRef.of(raw, "Service", "v1")
            how = "over BGP" if protocol == "bgp" else "by ARP/NDP (layer-2 owner)"
            if after:
                self.recorder.emit(ref, "Normal", ANNOUNCE,
                                   f"announcing {ips} from node {node} {how}",
                                   service=key, ip=ips, node=node, protocol=protocol)
            else:
                why = str(skipped.get(key, "notAssigned"))
                self.recorder.emit(ref, "Normal", WITHDRAW,
                                   f"stopped announcing {ips} from node {node}: {why}",
                                   service=key, ip=ips, node=node, protocol=protocol,
                                   reason=why)
        self._announced[protocol] = now

    async def aclose(self) -> None:
        """Withdraw first (that is what the routers and LAN wait for), then post the
        Events still queued, for a second at most."""
        await self.reachability.aclose()
        closing = [self.bgp.aclose()]
        if self.layer2 is not None:
            closing.append(self.layer2.aclose())  # its handover takes an interval
        await asyncio.gather(*closing)
        await self.recorder.aclose(grace=1.0)


async def run(kube: client.Kube, settings: SpeakerSettings, stop: asyncio.Event) -> int:
    """Run until `stop` is set; withdraw everything before returning."""
    speaker = Speaker(kube, settings)
    server = health.HealthServer(settings.registry, speaker.ready, settings.health_host,
                                 settings.health_port)
    await server.start()
    await speaker.start_layer2()
    tasks = [asyncio.create_task(i.run(), name=f"informer-{name}")
             for name, i in speaker.informers.items()]
    main = asyncio.create_task(speaker.loop(), name="speaker-loop")
    stopper = asyncio.create_task(stop.wait())
    log.info("speaker started", extra={"node": settings.node})
    try:
        done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if main in done:
            main.result()  # a crash of the loop is a bug: surface it
    finally:
        for task in (main, stopper, *tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(main, *tasks, return_exceptions=True)
        await speaker.aclose()
        log.info("speaker stopped, routes withdrawn", extra={"node": settings.node})
        await server.aclose()
    return 0
