"""The controller process: caches, leader election, replay, workers, status writer.

controller/ (DESIGN §2): wired by `openelb controller`. Informers for Services, Eips and
Namespaces start at once, so a standby keeps warm caches. On becoming leader it waits
for the caches, builds the pools, replays every Service that already holds an address
into the allocator (oldest first) before assigning anything, then reconciles all
Services with a few workers. Losing the Lease ends the process (a restart is the only
safe way to drop allocator state); SIGTERM stops the workers, flushes Eip status and
releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from openelb import health
from openelb.api import errors
from openelb.controller import eips, metrics, outcome, queue, services
from openelb.ipam import allocator
from openelb.ipam import errors as ipam_errors
from openelb.kube import client, events, informer, leases, resources
from openelb.kube import errors as kube_errors

__all__ = ["ControllerSettings", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    namespace: str = "openelb-system"  # where the Lease lives
    lease_name: str = "openelb-controller"
    identity: str = "openelb-controller"  # unique per replica (pod name)
    lb_class: str | None = None  # spec.loadBalancerClass we answer to, besides the annotation
    workers: int = 4  # concurrent reconciles (status writes are I/O bound)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    status_interval: float = 0.5  # Eip status writes are batched this often
    heartbeat_secret: str = "openelb-speaker-heartbeat"  # created if missing; "" = never
    health_host: str = "127.0.0.1"
    health_port: int = 8080
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
        self.alloc = allocator.Allocator()
        self.recorder = events.Recorder(kube, "openelb-controller", settings.identity)
        self.eip_sync = eips.EipSync(kube, self.eips, self.alloc, self.recorder, self.stats)
        self.reconciler = services.ServiceReconciler(
            kube, self.services, self.namespaces, self.alloc, self.recorder, self.stats,
            lb_class=settings.lb_class, pools_touched=self._pools_touched)
        self.elector = leases.LeaderElector(kube, leases.LeaseSettings(
            settings.namespace, settings.lease_name, settings.identity,
            settings.lease_duration, settings.renew_deadline, settings.retry_period))
        self._pools_changed = asyncio.Event()
        self.ready_since: float | None = None

    # ---- informer callbacks (hints only: handlers read the caches) ----------------------

    def _service_changed(self, key: str) -> None:
        if self._leading:
            self.queue.add(key)

    def _eip_changed(self, key: str) -> None:
        self._pools_changed.set()

    def _namespace_changed(self, key: str) -> None:
        if self._leading:
            for pending in list(self.reconciler.pending):
                if pending.split("/", 1)[0] == key:
                    self.queue.add(pending)

    def _pools_touched(self, names: set[str]) -> None:
        self.eip_sync.dirty.update(names)
        for key, error in list(self.reconciler.conflicts.items()):
            del error
            self.queue.add(key)  # a holder may have gone: try the claim again
        for key in list(self.reconciler.pending):
            self.queue.add(key)

    def ready(self) -> tuple[bool, str]:
        synced = all(i.synced.is_set() for i in (self.services, self.eips, self.namespaces))
        if not synced:
            return False, "caches not synced"
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
        await asyncio.gather(*(i.synced.wait() for i in
                               (self.services, self.eips, self.namespaces)))
        await self._ensure_heartbeat_secret()
        started = time.perf_counter()
        self.eip_sync.sync_pools()
        replay = []
        for raw in self.services.items():
            try:
                svc = self.reconciler.parse(raw)
            except errors.InvalidObject:
                continue  # its reconcile reports the problem
            if svc.wants_address and svc.assigned_ips:
                replay.append(svc)
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
        self._leading = True
        self.stats.leader.set(1)
        self.ready_since = time.monotonic()
        for key in self.services.keys():  # noqa: SIM118 (an Informer, not a dict)
            self.queue.add(key)
        for key in self.reconciler.pending:
            self.queue.add(key)
        async with asyncio.TaskGroup() as group:
            for _ in range(self.settings.workers):
                group.create_task(self._worker())
            group.create_task(self._pool_loop())

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
                self.queue.add_after(key, result.after)

    async def _pool_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pools_changed.wait(),
                                       self.settings.status_interval)
            if self._pools_changed.is_set():
                self._pools_changed.clear()
                gone = self.eip_sync.sync_pools()
                for key in list(self.reconciler.pending):
                    self.queue.add(key)
                if gone:  # Services in a vanished pool need a new address
                    for key in self.services.keys():  # noqa: SIM118 (an Informer, not a dict)
                        self.queue.add(key)
                await self.eip_sync.report_problems()
            await self.eip_sync.flush()


async def run(kube: client.Kube, settings: ControllerSettings,
              stop: asyncio.Event) -> int:
    """Run until `stop` is set (exit 0) or leadership is lost (exit 1)."""
    ctl = Controller(kube, settings)
    server = health.HealthServer(settings.registry, ctl.ready, settings.health_host,
                                 settings.health_port)
    await server.start()
    tasks = [asyncio.create_task(i.run(), name=f"informer-{i.kind.plural}")
             for i in (ctl.services, ctl.eips, ctl.namespaces)]
    elector = asyncio.create_task(ctl.elector.run(), name="lease")
    leading: asyncio.Task[None] | None = None
    stopper = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(ctl.elector.lost.wait())
    became_leader = asyncio.create_task(ctl.elector.leading.wait())
    code = 0
    try:
        waiting: set[asyncio.Task[Any]] = {stopper, lost, became_leader}
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if became_leader in done and leading is None:
                log.info("became leader", extra={"identity": settings.identity})
                leading = asyncio.create_task(ctl.lead(), name="lead")
                waiting = {stopper, lost, leading}
                continue
            if leading is not None and leading in done:
                leading.result()  # re-raise a crash of the leader loop
            if lost in done and stopper not in done:
                log.error("lost leadership, exiting", extra={"identity": settings.identity})
                code = 1
            break
    finally:
        for task in (leading, elector, stopper, lost, became_leader, *tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (leading, elector, *tasks) if t is not None),
                             return_exceptions=True)
        if code == 0 and ctl.elector.state is leases.State.LEADING:
            await ctl.eip_sync.flush()
            await ctl.elector.release()
        ctl.queue.close()
        ctl.stats.leader.set(0)
        await server.aclose()
    return code
