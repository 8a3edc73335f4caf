"""The controller process: caches, leader election, replay, workers, status writer.

controller/ (DESIGN §2): wired by `openelb controller`. Informers for Services, Eips and
Namespaces start at once, so a standby keeps warm caches. On becoming leader it waits
for the caches, builds the pools, replays every Service that already holds an address
into the allocator (oldest first; from a fresh list when the Service cache is older
than the leadership) before assigning anything, then reconciles all Services, oldest
first, with a pool of workers. Eip status is written in batches whose spacing grows
with their cost. Losing the Lease ends the process (a restart is the only safe way to
drop allocator state); SIGTERM stops the workers, flushes Eip status and releases the
Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import functools
import gc
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from openelb import health, httpserve, statusview, supervisor
from openelb.api import annotations as api_annotations
from openelb.api import bgp, errors, service
from openelb.controller import bgpready, certs, eips, metrics, outcome, queue, services, webhook
from openelb.ipam import allocator, coverage
from openelb.ipam import errors as ipam_errors
from openelb.kube import client, events, informer, leases, ratelimit, requestmetrics, resources
from openelb.kube import errors as kube_errors

__all__ = ["ControllerSettings", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    namespace: str = "openelb-system"  # where the Lease lives
    lease_name: str = "openelb-controller"
    identity: str = "openelb-controller"  # unique per replica (pod name)
    lb_class: str | None = None  # spec.loadBalancerClass we answer to, besides the annotation
    workers: int = 32  # concurrent reconciles (status writes wait on the apiserver)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    status_interval: float = 0.5  # Eip status writes are batched this often
    heartbeat_secret: str = "openelb-speaker-heartbeat"  # created if missing; "" = never
    health_host: str = "127.0.0.1"
    health_port: int = 8080
    stale_after: float = 30.0  # a watch failing this long makes /readyz fail
    # The admission and conversion webhooks, served by every replica; port None: off.
    webhook_host: str = "0.0.0.0"
    webhook_port: int | None = None
    webhook_certs: certs.CertSettings = field(default_factory=certs.CertSettings)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


class Controller:
    def __init__(self, kube: client.Kube, settings: ControllerSettings) -> None:
        self.settings = settings
        self._kube = kube
        self.stats = metrics.ControllerMetrics(settings.registry)
        self.queue = queue.WorkQueue()
        self._leading = False
        self.services = informer.Informer(kube, resources.SERVICES, self._service_changed)
        self.eips = informer.Informer(kube, resources.EIPS, self._eip_changed)
        self.namespaces = informer.Informer(kube, resources.NAMESPACES,
                                            self._namespace_changed)
        # BGP objects only tell whether a BGP pool can be announced at all (coverage).
        self.bgpconfs = informer.Informer(kube, resources.BGPCONFS,
                                          functools.partial(self._bgp_changed, "bgpconfs"))
        self.bgppeers = informer.Informer(kube, resources.BGPPEERS,
                                          functools.partial(self._bgp_changed, "bgppeers"))
        # What each node answers for (its speaker's record): openelb_addresses_unannounced.
        self.announcements = informer.Informer(kube, resources.NODE_ANNOUNCEMENTS,
                                               lambda key: None)
        self._bgp_signatures: dict[tuple[str, str], tuple[object, ...]] = {}
        self.gaps: dict[str, coverage.Gap] = {}  # pool -> why nothing can announce it
        self.bgp_ready = bgpready.BgpReadiness(kube, self.bgpconfs, self.bgppeers)
        self.alloc = allocator.Allocator()
        self.recorder = events.Recorder(kube, "openelb-controller", settings.identity)
        self.eip_sync = eips.EipSync(kube, self.eips, self.alloc, self.recorder, self.stats)
        self.reconciler = services.ServiceReconciler(
            kube, self.services, self.namespaces, self.alloc, self.recorder, self.stats,
            lb_class=settings.lb_class, pools_touched=self._pools_touched,
            gap_of=self.gaps.get)
        metrics.export_waiting(settings.registry, lambda: self.reconciler.waiting_since)
        metrics.export_unannounced(settings.registry, self._unannounced)
        self.elector = leases.LeaderElector(kube, leases.LeaseSettings(
            settings.namespace, settings.lease_name, settings.identity,
            settings.lease_duration, settings.renew_deadline, settings.retry_period))
        self.webhook = webhook.Webhook(
            eips=self.eips, bgppeers=self.bgppeers,
            services=self.services, namespaces=self.namespaces, lb_class=settings.lb_class,
            registry=settings.registry)
        self.supervisor: supervisor.Supervisor | None = None  # set by run()
        self._pools_changed = asyncio.Event()
        self._eip_signatures: dict[str, tuple[object, ...]] = {}
        self.ready_since: float | None = None

    # ---- informer callbacks (hints only: handlers read the caches) ----------------------

    def _service_changed(self, key: str) -> None:
        self.webhook.holders.changed(key)
        if self._leading:
            self.queue.add(key)

    def _eip_changed(self, key: str) -> None:
        # Our own status writes change an Eip ~twice a second under load; only what
        # shapes the pool (spec via generation, deletion, the default flag) re-syncs pools.
        signature = eips.pool_signature(self.eips.get(key))
        if self._eip_signatures.get(key) != signature:
            self._eip_signatures[key] = signature
            self._pools_changed.set()

    def _bgp_changed(self, plural: str, key: str) -> None:
        # Every speaker writes its session state into BgpPeer/BgpConf status (and the
        # leader its Ready condition): only what decides whether and how an object is
        # used (spec via generation, labels, deletion) re-checks coverage and readiness.
        cache = self.bgpconfs if plural == "bgpconfs" else self.bgppeers
        raw = cache.get(key)
        meta = (raw or {}).get("metadata") or {}
        signature: tuple[object, ...] = () if raw is None else (
            meta.get("uid"), meta.get("generation"), meta.get("deletionTimestamp"),
            tuple(sorted((meta.get("labels") or {}).items())))
        if self._bgp_signatures.get((plural, key)) != signature:
            self._bgp_signatures[(plural, key)] = signature
            self._pools_changed.set()

    def _check_coverage(self) -> None:
        """Recompute which pools nothing can announce; requeue the Services of the
        pools whose answer changed (their condition and Warning follow). Until both
        BGP caches have synced nothing is known, so no gap is reported."""
        if not (self.bgpconfs.synced.is_set() and self.bgppeers.synced.is_set()):
            return
        confs, peers = [], []
        for raw in self.bgpconfs.items():
            with contextlib.suppress(errors.InvalidObject):
                confs.append(bgp.BgpConf.parse(raw))
        for raw in self.bgppeers.items():
            with contextlib.suppress(errors.InvalidObject):
                peers.append(bgp.BgpPeer.parse(raw))
        gaps = {name: gap for name, pool in self.alloc.pool_map.items()
                if (gap := coverage.unannounced(pool, confs, peers)) is not None}
        changed = {name for name in gaps.keys() | self.gaps.keys()
                   if gaps.get(name) != self.gaps.get(name)}
        self.gaps.clear()
        self.gaps.update(gaps)
        if not changed or not self._leading:
            return
        for key in self.services.keys():  # noqa: SIM118 (an Informer, not a dict)
            labels = ((self.services.get(key) or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(api_annotations.EIP_LABEL) in changed:
                self.queue.add(key)

    def _namespace_changed(self, key: str) -> None:
        if self._leading:
            self._requeue_waiting(lambda pending: pending.split("/", 1)[0] == key)

    def _pools_touched(self, names: set[str], freed: frozenset[allocator.IP]) -> None:
        self.eip_sync.dirty.update(names)
        if not freed:
            return  # taking an address helps no waiting Service
        for key in list(self.reconciler.conflicts):
            self.queue.add(key)  # a holder may have gone: try the claim again
        pending = self.reconciler.pending
        # Only the Services that could use what was freed (issue #19: every free used to
        # re-queue every waiting Service, thousands of identical warnings).
        self._requeue_waiting(lambda key: key in pending and (
            not pending[key][0].isdisjoint(names) or not pending[key][1].isdisjoint(freed)))

    def _requeue_waiting(self, which: Callable[[str], bool] = lambda key: True) -> None:
        """Queue Services refused an address, oldest first: the queue is FIFO and a
        reconcile allocates before its first await, so the longest waiting Service gets
        a freed address first, the same way on every run."""
        for key in sorted((k for k in self.reconciler.pending if which(k)), key=self._age):
            self.queue.add(key)

    def _age(self, key: str) -> tuple[str, str]:
        """Sorts Services oldest first (DESIGN §4: the older claim wins), then by key."""
        meta = (self.services.get(key) or {}).get("metadata") or {}
        return (str(meta.get("creationTimestamp") or "~"), key)

    def informers(self) -> tuple[informer.Informer, ...]:
        """Every cache; IPAM waits only for the first three (`_needed`)."""
        return (self.services, self.eips, self.namespaces, self.bgpconfs, self.bgppeers,
                self.announcements)

    def _unannounced(self) -> dict[str, int] | None:
        """Addresses nobody announces, by mode (statusview's rules); None unless this
        replica leads with every cache it needs synced."""
        caches = (self.announcements, self.bgppeers)
        if not self._leading or not all(c.synced.is_set() for c in caches):
            return None
        modes = {name: pool.protocol for name, pool in self.alloc.pool_map.items()}
        return statusview.unannounced(self.alloc.addresses_by_pool, modes,
                                      self.announcements.items(), self.bgppeers.items(),
                                      datetime.datetime.now(datetime.UTC))

    def _needed(self) -> tuple[informer.Informer, ...]:
        """The caches assignment cannot start without. The BGP ones only feed the
        coverage check: a controller that may not read them (RBAC from an older
        release) still assigns, and reports no BGP gap until they sync."""
        return (self.services, self.eips, self.namespaces)

    async def _recheck_when_bgp_synced(self) -> None:
        await asyncio.gather(self.bgpconfs.synced.wait(), self.bgppeers.synced.wait())
        self._pools_changed.set()

    def ready(self) -> tuple[bool, str]:
        synced = all(i.synced.is_set() for i in self._needed())
        if not synced:
            return False, "caches not synced"
        stale = informer.staleness(self._needed(), self.settings.stale_after)
        if stale:
            return False, stale
        stalled = self.supervisor.lag_problem() if self.supervisor is not None else ""
        if stalled:
            return False, stalled
        if self._leading and self.ready_since is None:
            return False, "leader replaying existing assignments"
        return True, "leading" if self._leading else "standby with warm caches"

    # ---- leadership --------------------------------------------------------------------

    async def _ensure_heartbeat_secret(self) -> None:
        """Create the speakers' shared heartbeat key once, if nobody did (like MetalLB's
        memberlist secret); an existing Secret is never changed."""
        name, namespace = self.settings.heartbeat_secret, self.settings.namespace
        if not name:
            return
        try:
            await self._kube.get(resources.SECRETS, name, namespace)
            return
        except kube_errors.NotFound:
            pass
        except kube_errors.KubeError as exc:
            log.warning("heartbeat secret not checked", extra={"error": str(exc)})
            return
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/part-of": "openelb"}},
                "data": {"secret": base64.b64encode(secrets.token_bytes(32)).decode()}}
        try:
            await self._kube.create(resources.SECRETS, body, namespace)
            log.info("heartbeat secret created", extra={"op": "liveness",
                                                        "secret": f"{namespace}/{name}"})
        except kube_errors.KubeError as exc:  # Conflict: another replica made it
            log.info("heartbeat secret not created", extra={"error": str(exc)})

    async def lead(self) -> None:
        """Runs once this replica holds the Lease; returns only when cancelled."""
        became = time.monotonic()
        await asyncio.gather(*(i.synced.wait() for i in self._needed()))
        await self._ensure_heartbeat_secret()
        started = time.perf_counter()
        if self.services.listed_at >= became:
            replay = self._holding(self.services.items())
        else:
            replay = await self._holding_now()
        self.eip_sync.sync_pools()
        self._check_coverage()
        report = self.alloc.rebuild(replay)
        for key, refusal in report.refused.items():
            if isinstance(refusal, (ipam_errors.AddressTaken, ipam_errors.SharingRefused)):
                self.reconciler.conflicts[key] = refusal
            log.warning("existing address not kept", extra={
                "service": key, "reason": refusal.reason, "error": refusal.message})
        log.info("replayed existing assignments", extra={
            "op": "rebuild", "kept": len(report.kept), "refused": len(report.refused),
            "seconds": round(time.perf_counter() - started, 3)})
        self.stats.services_assigned.set(len(self.alloc))
        _settle_heap()  # the caches and the allocator just grew by N Services
        self._leading = True
        self.stats.leader.set(1)
        self.ready_since = time.monotonic()
        for key in sorted(self.services.keys(), key=self._age):
            self.queue.add(key)
        async with asyncio.TaskGroup() as group:
            for _ in range(self.settings.workers):
                group.create_task(self._worker())
            group.create_task(self._pool_loop())
            group.create_task(self._recheck_when_bgp_synced())

    def _holding(self, raws: Iterable[client.RawObject]) -> list[service.LbService]:
        """The Services among `raws` that want an address and whose status holds one."""
        found = []
        for raw in raws:
            try:
                svc = self.reconciler.parse(raw)
            except errors.InvalidObject:
                continue  # its reconcile reports the problem
            if svc.wants_address and svc.assigned_ips:
                found.append(svc)
        return found

    async def _holding_now(self) -> list[service.LbService]:
        """`_holding` from a fresh list of every Service, read page by page.

        DESIGN §4, no duplicates: a standby's watch may lag, or sit in a reconnect
        backoff, while the old leader writes its last assignments; replaying a cache that
        misses them would hand those addresses out twice. The cache itself catches up
        through its watch; reconciles on a lagging copy fail their resourceVersion check
        and retry. A fresh list costs a second or two at 10k Services.
        """
        backoff = 0.5
        while True:
            try:
                found = []
                async for page in self._kube.list_pages(resources.SERVICES):
                    found.extend(self._holding(page.items))
                return found
            except kube_errors.KubeError as exc:
                log.warning("services not listed, retrying", extra={
                    "op": "rebuild", "error": str(exc), "after": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                result = await self.reconciler.reconcile(key)
            except Exception:  # a bug must not stop the worker: log it, keep going
                log.exception("reconcile crashed", extra={"service": key, "bug": True})
                result = outcome.Retry(after=5.0)
            finally:
                self.queue.done(key)
            self.stats.reconciles.labels("service", result.label).inc()
            if isinstance(result, outcome.Retry):
                self.queue.retry(key, result.after)
            else:
                self.queue.forget(key)

    async def _pool_loop(self) -> None:
        """Re-sync pools on Eip changes at once; write Eip status at most every interval."""
        loop = asyncio.get_running_loop()
        interval = self.settings.status_interval
        next_flush = loop.time()
        while True:
            wait = max(0.0, next_flush - loop.time()) if self.eip_sync.dirty else interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._pools_changed.wait()
            if self._pools_changed.is_set():
                self._pools_changed.clear()
                gone = self.eip_sync.sync_pools()
                self._check_coverage()
                self._requeue_waiting()
                if gone:  # Services in a vanished pool need a new address
                    for key in self.services.keys():  # noqa: SIM118 (an Informer, not a dict)
                        self.queue.add(key)
                await self.eip_sync.report_problems()
                await self.bgp_ready.flush()
            if self.eip_sync.dirty and loop.time() >= next_flush:
                began = loop.time()
                await self.eip_sync.flush()
                # A big pool's status is costly for the apiserver (a 10k-entry `used`
                # map takes it ~0.5 s of CPU): pause ten times as long as the write took.
                pause = min(max(interval, 10 * (loop.time() - began)), 30.0)
                next_flush = loop.time() + pause


def _settle_heap() -> None:
    """Hide the long-lived objects from the cycle collector.

    Import-time objects (kubernetes_asyncio alone brings ~80k) and the caches of
    thousands of Services are scanned by every full collection: 60 ms pauses at 1k
    Services, several times that at 10k, each one a stall of every reconcile. Cached
    JSON has no reference cycles, so frozen objects are still freed by reference
    counting when the watch replaces them.
    """
    gc.collect()
    gc.freeze()


async def run(kube: client.Kube, settings: ControllerSettings,
              stop: asyncio.Event) -> int:
    """Run until `stop` is set (exit 0), or leadership is lost or a task that must not
    end ends (exit 1: the kubelet restarts the process)."""
    _settle_heap()
    ctl = Controller(kube, settings)
    tasks = supervisor.Supervisor(settings.registry)
    ctl.supervisor = tasks
    ratelimit.export(kube.limiter, settings.registry)
    requestmetrics.export(kube, settings.registry)
    server = health.HealthServer(settings.registry, ctl.ready, settings.health_host,
                                 settings.health_port, live=tasks.health)
    await server.start()
    for cache in ctl.informers():
        tasks.start(f"informer-{cache.kind.plural}", cache.run)
    tls: certs.WebhookCerts | None = None
    hooks: httpserve.Server | None = None
    if settings.webhook_port is not None:
        tls = certs.WebhookCerts(kube, settings.webhook_certs)
        hooks = httpserve.Server(
            ctl.webhook.serve, settings.webhook_host, settings.webhook_port, tls=tls.tls,
            keep_alive=True, max_body=webhook.MAX_REVIEW_BYTES, read_timeout=60.0,
            max_connections=256, name="webhook")
        tasks.start("webhook-certs", tls.run)
        # A port that cannot be bound is a configuration error: exit, say why.
        tasks.start("webhook", functools.partial(_serve_when_loaded, tls, hooks),
                    on_exit=supervisor.Exit.FATAL)
    tasks.start("lease", ctl.elector.run, on_exit=supervisor.Exit.FATAL)
    stopper = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(ctl.elector.lost.wait())
    became_leader = asyncio.create_task(ctl.elector.leading.wait())
    fatal = asyncio.create_task(tasks.fatal.wait())
    code = 0
    try:
        waiting: set[asyncio.Task[Any]] = {stopper, lost, became_leader, fatal}
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if became_leader in done and not done - {became_leader}:
                log.info("became leader", extra={"identity": settings.identity})
                tasks.start("lead", ctl.lead, on_exit=supervisor.Exit.FATAL)
                waiting = {stopper, lost, fatal}
                continue
            if stopper in done:
                break
            code = 1
            if lost in done:
                log.error("lost leadership, exiting", extra={"identity": settings.identity})
            else:
                log.error("exiting", extra={"identity": settings.identity,
                                            "reason": tasks.fatal_reason})
            break
    finally:
        for task in (stopper, lost, became_leader, fatal):
            task.cancel()
        await tasks.aclose()
        if code == 0 and ctl.elector.state is leases.State.LEADING:
            await ctl.eip_sync.flush()
            await ctl.elector.release()
        ctl.queue.close()
        ctl.stats.leader.set(0)
        if hooks is not None:
            await hooks.aclose()
        if tls is not None:
            tls.close()
        await server.aclose()
    return code


async def _serve_when_loaded(tls: certs.WebhookCerts, hooks: httpserve.Server) -> None:
    """Listen once a serving certificate is loaded: a TLS port without one would fail
    every handshake, which the apiserver reports less clearly than a refused connection."""
    await tls.loaded.wait()
    await hooks.start()
    log.info("webhook serving", extra={"op": "webhook", "port": hooks.port})
    await asyncio.Event().wait()  # serves until cancelled; returning would be a bug
