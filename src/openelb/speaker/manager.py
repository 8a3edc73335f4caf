"""The speaker process: caches, planning, the registered modes, Events, clean exit.

speaker/ (DESIGN §2, §3): wired by `openelb speaker`. Every cache change marks the
state dirty; a single loop (at once after a quiet spell, then at most one round per
`debounce`) builds a snapshot and hands it to each registered mode (speaker/modes),
then posts an Event on each Service this node starts or stops announcing in a mode.
The loop knows no mode by name. SIGTERM withdraws everything (each mode's aclose)
before the process exits (DESIGN §4).
"""

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from openelb import health, supervisor
from openelb.api import nodes
from openelb.kube import client, events, informer, ratelimit, requestmetrics, resources
from openelb.planner import eligibility
from openelb.speaker import announcements, metrics, modes, seam, snapshots
from openelb.speaker.settings import SpeakerSettings

__all__ = ["ANNOUNCE", "WITHDRAW", "SpeakerSettings", "run"]

log = logging.getLogger(__name__)

ANNOUNCE: str = "AnnounceIP"
WITHDRAW: str = "WithdrawIP"


class Speaker:
    def __init__(self, kube: client.Kube, settings: SpeakerSettings,
                 registry: Sequence[Callable[[seam.ModeContext], seam.Mode]] = modes.REGISTRY,
                 ) -> None:
        self.settings = settings
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
        # EndpointSlices also feed the snapshot's endpoint index as they change.
        callbacks = {"endpointslices": self._slice_changed}
        self.informers = {name: informer.Informer(kube, kind, callbacks.get(name, self._changed),
                                                  transform=transforms.get(name))
                          for name, kind in kinds.items()}
        self.stats = metrics.SpeakerMetrics(settings.registry)
        self.snapshots = snapshots.SnapshotBuilder(settings.node, settings.lb_class,
                                                   self.informers)
        self.recorder = events.Recorder(kube, "openelb-speaker", settings.node)
        context = seam.ModeContext(settings, kube, self.informers, self.recorder,
                                   self.stats, self._dirty.set)
        self.modes: tuple[seam.Mode, ...] = tuple(make(context) for make in registry)
        self._announced: dict[str, Mapping[str, frozenset[Any]]] = {
            m.name: {} for m in self.modes}
        self._states: dict[str, object] = {}  # mode -> Round.state of its last round
        self._skip_series: dict[str, set[tuple[str, ...]]] = {}  # mode -> its skip series
        self.applied = asyncio.Event()
        self.supervisor: supervisor.Supervisor | None = None  # set by run()
        # This node's NodeAnnouncement: what it answers for, for kubectl and status.
        self.record = announcements.AnnouncementRecord(kube, settings.node)

    async def start(self) -> None:
        """What a mode needs before the caches sync (layer 2: heartbeats, so the
        start-up hold-down runs while the caches fill)."""
        for mode in self.modes:
            await mode.start()

    def _changed(self, key: str) -> None:
        self._dirty.set()

    def _slice_changed(self, key: str) -> None:
        self.snapshots.endpoints.changed(key)
        self._dirty.set()

    def ready(self) -> tuple[bool, str]:
        if not all(i.synced.is_set() for i in self.informers.values()):
            return False, "caches not synced"
        stale = informer.staleness(self.informers.values(), self.settings.stale_after)
        if stale:
            return False, stale
        stalled = self.supervisor.lag_problem() if self.supervisor is not None else ""
        if stalled:
            return False, stalled
        if not self.applied.is_set():
            return False, "no plan applied yet"
        for mode in self.modes:
            ok, why = mode.ready()
            if not ok:
                return False, f"{mode.name}: {why}"
        return True, "announcing"

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
            changed, failed = await self._apply()
            last_round = started if changed else -self.settings.debounce
            if failed:
                self.stats.plans.labels("retry").inc()
                await asyncio.sleep(1.0)
                self._dirty.set()
            else:
                self.stats.plans.labels("applied").inc()

    async def _apply(self) -> tuple[bool, bool]:
        """One plan round: (whether what this node announces changed, whether a mode
        was not ready). Modes run in registry order and none waits for another: a
        failing ExaBGP never holds up ARP/NDP claims, and a failing raw socket never
        holds up BGP. A mode that is not ready keeps its last state and the round is
        retried."""
        snap = self.snapshots.build()
        changed = failed = False
        for mode in self.modes:
            try:
                result = await mode.apply(snap)
            except mode.retryable as exc:
                log.warning("announcer not ready, retrying", extra={
                    "op": mode.name, "error": str(exc)})
                failed = True
                continue
            self._count_skipped(mode.name, result.skipped)
            self._post_events(mode, result)
            if self._states.get(mode.name) != result.state:
                changed = True
                self._states[mode.name] = result.state
        if not failed:
            self.applied.set()
        self.record.update(self._announced)
        return changed, failed

    def _count_skipped(self, mode: str, skipped: Mapping[str, eligibility.Skip]) -> None:
        counts: dict[tuple[str, ...], float] = {}
        for why in skipped.values():
            counts[(mode, str(why))] = counts.get((mode, str(why)), 0) + 1
        self._skip_series[mode] = metrics.sync_series(
            self.stats.skipped, self._skip_series.get(mode, set()), counts)

    def _post_events(self, mode: seam.Mode, result: seam.Round) -> None:
        """Log each Service this node starts or stops announcing; its Event is posted in
        the background (Recorder.emit), so a burst never delays the next plan."""
        node = self.settings.node
        now = dict(result.announced)
        memory = self._announced[mode.name]
        for key in sorted(set(now) | set(memory)):
            before, after = memory.get(key, frozenset()), now.get(key, frozenset())
            if before == after:
                continue
            raw = self.informers["services"].get(key)
            ips = ", ".join(sorted(str(i) for i in (after or before)))
            if raw is None:
                continue  # the Service is gone: nobody to tell
            ref = events.ObjectRef.of(raw, "Service", "v1")
            if after:
                self.recorder.emit(ref, "Normal", ANNOUNCE,
                                   f"announcing {ips} from node {node} {mode.how}",
                                   service=key, ip=ips, node=node, protocol=mode.name)
            else:
                why = str(result.skipped.get(key, "notAssigned"))
                self.recorder.emit(ref, "Normal", WITHDRAW,
                                   f"stopped announcing {ips} from node {node}: {why}",
                                   service=key, ip=ips, node=node, protocol=mode.name,
                                   reason=why)
        self._announced[mode.name] = now

    async def aclose(self) -> None:
        """Withdraw first, every mode at once (that is what the routers and LAN wait
        for; a layer-2 handover takes an interval), then post the Events still queued,
        for a second at most."""
        await asyncio.gather(*(mode.aclose() for mode in self.modes))
        await self.record.clear()
        await self.recorder.aclose(grace=1.0)


async def run(kube: client.Kube, settings: SpeakerSettings, stop: asyncio.Event) -> int:
    """Run until `stop` is set (exit 0) or the plan loop ends (exit 1); withdraw
    everything before returning either way."""
    speaker = Speaker(kube, settings)
    tasks = supervisor.Supervisor(settings.registry)
    speaker.supervisor = tasks
    ratelimit.export(kube.limiter, settings.registry)
    requestmetrics.export(kube, settings.registry)
    server = health.HealthServer(settings.registry, speaker.ready, settings.health_host,
                                 settings.health_port, live=tasks.health)
    await server.start()
    await speaker.start()
    for name, cache in speaker.informers.items():
        tasks.start(f"informer-{name}", cache.run)
    tasks.start("speaker-loop", speaker.loop, on_exit=supervisor.Exit.FATAL)
    tasks.start("node-announcement", speaker.record.run)
    stopper = asyncio.create_task(stop.wait())
    fatal = asyncio.create_task(tasks.fatal.wait())
    log.info("speaker started", extra={"node": settings.node})
    code = 0
    try:
        done, _ = await asyncio.wait({stopper, fatal}, return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            log.error("exiting", extra={"node": settings.node, "reason": tasks.fatal_reason})
            code = 1
    finally:
        stopper.cancel()
        fatal.cancel()
        await tasks.aclose()
        await speaker.aclose()
        log.info("speaker stopped, routes withdrawn", extra={"node": settings.node})
        await server.aclose()
    return code
