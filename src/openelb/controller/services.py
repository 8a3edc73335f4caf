"""Reconciles one Service key: assign, keep or release its addresses and write them back.

controller/ (DESIGN §2, §4, §6). Reads the informer caches, asks ipam's Allocator for a
decision, and writes the outcome through kube/: `status.loadBalancer.ingress`, the
label `eip.openelb.kubesphere.io/v1alpha2`, the finalizer, and Events AssignIP /
AssignIPFailed / ReleaseIP (with the log line from the same call). Leader only.

A Service that rebuild found holding an address someone older holds (`conflicts`) is
never silently given another: it gets a Warning until the address frees up or the user
asks for a different one (DESIGN §4).

Writes are cheap and few: the status goes first (it is what a user waits for), guarded
by the resourceVersion the decision was made on, then label and finalizer guarded by
the version the status write returned. The versions a write made obsolete are
remembered until the watch shows a newer one, so the echo of our own write (the cache
still showing the old object for a moment) causes no second round of writes. An
address is released from the allocator only once the Service no longer shows it.
"""


import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from openelb.api import annotations, errors, service
from openelb.controller import metrics, outcome
from openelb.ipam import allocator, coverage
from openelb.ipam import errors as ipam_errors
from openelb.kube import client, events, informer, resources
from openelb.kube import errors as kube_errors

__all__ = ["ServiceReconciler"]

log = logging.getLogger(__name__)

ANNOUNCEABLE: Final = "openelb.kubesphere.io/Announceable"  # Service status condition
NOT_ANNOUNCED: Final = "NotAnnounced"  # its Warning Event
OBSOLETE_ANNOTATION: Final = "ObsoleteAnnotation"
SHARING_BROKEN: Final = "SharingBroken"
ASSIGN_IP: Final = "AssignIP"
ASSIGN_IP_FAILED: Final = "AssignIPFailed"
RELEASE_IP: Final = "ReleaseIP"


def _ref(raw: Mapping[str, Any]) -> events.ObjectRef:
    return events.ObjectRef.of(raw, "Service", "v1")


class ServiceReconciler:
    """Owns the Service side of the controller's state; one per leadership term."""

    def __init__(
        self,
        kube: client.Kube,
        services: informer.Informer,
        namespaces: informer.Informer,
        alloc: allocator.Allocator,
        recorder: events.Recorder,
        stats: metrics.ControllerMetrics,
        *,
        lb_class: str | None,
        pools_touched: Callable[[set[str], frozenset[allocator.IP]], None],
        gap_of: Callable[[str], coverage.Gap | None] = lambda pool: None,
    ) -> None:
        self._kube = kube
        self._services = services
        self._namespaces = namespaces
        self._alloc = alloc
        self._recorder = recorder
        self._stats = stats
        self._lb_class = lb_class
        self._pools_touched = pools_touched
        self._gap_of = gap_of
        # Services told once that Porter's opt-in value is not ours.
        self._pointed: set[str] = set()
        # key -> the NotAnnounced Warning last posted for it.
        self._unannounced: dict[str, str] = {}
        # Keys refused an address -> the (pools, addresses) whose freeing could help;
        # retried when one of those frees, and whenever pools or namespaces change.
        self.pending: dict[str, tuple[frozenset[str], frozenset[allocator.IP]]] = {}
        # key -> the last Warning posted for it: an unchanged one is not posted again.
        self._warned: dict[str, str] = {}
        # Keys whose status claims an address an older Service holds (from rebuild).
        self.conflicts: dict[str, ipam_errors.AllocationError] = {}
        # key -> resourceVersions our own writes replaced; the cache may lag behind them.
        self._outdated: dict[str, set[str]] = {}
        # key -> when it started waiting for an address (pending or conflicting), for
        # openelb_service_pending_longest_seconds (the ServicePending alert).
        self.waiting_since: dict[str, float] = {}

    def parse(self, raw: Mapping[str, Any]) -> service.LbService:
        return service.LbService.parse(raw, lb_class=self._lb_class)

    async def reconcile(self, key: str) -> outcome.Outcome:
        started = time.perf_counter()
        try:
            return await self._reconcile(key)
        except kube_errors.Conflict:
            return outcome.Retry(after=0.05)  # our view was stale; re-read and redo
        except kube_errors.NotFound:
            return outcome.Done()  # deleted while we worked; its delete event follows
        except kube_errors.Retryable as exc:
            # An overloaded apiserver (429), a 5xx or a dropped connection: the queue
            # retries after what the server asked (Retry-After) or its own backoff.
            log.warning("service write deferred", extra={
                "service": key, "error": str(exc), "after": exc.after})
            return outcome.Retry(after=exc.after)
        except kube_errors.Forbidden as exc:
            # RBAC answers 403 for a moment while a restarted apiserver warms up, and
            # an admin may fix a missing grant: retry slowly rather than give up.
            log.warning("service write forbidden", extra={"service": key, "error": str(exc)})
            return outcome.Retry(after=10.0)
        except kube_errors.KubeError as exc:
            log.error("service write refused", extra={"service": key, "error": str(exc)})
            return outcome.GaveUp(reason=type(exc).__name__)
        finally:
            self._stats.reconcile_seconds.labels("service").observe(
                time.perf_counter() - started)
            if key in self.pending or key in self.conflicts:
                self.waiting_since.setdefault(key, time.monotonic())
            else:
                self.waiting_since.pop(key, None)

    async def _reconcile(self, key: str) -> outcome.Outcome:
        raw = self._services.get(key)
        if raw is None:
            self._release(key)
            self.pending.pop(key, None)
            self._warned.pop(key, None)
            self.conflicts.pop(key, None)
            self._outdated.pop(key, None)
            self._unannounced.pop(key, None)
            self._pointed.discard(key)
            return outcome.Done()
        outdated = self._outdated.get(key)
        if outdated is not None:
            if (raw.get("metadata") or {}).get("resourceVersion") in outdated:
                # The cache still shows what our last write replaced; the watch event of
                # that write is on its way and queues this key again.
                return outcome.Done()
            del self._outdated[key]
        try:
            svc = self.parse(raw)
        except errors.InvalidObject as exc:
            await self._warn(raw, exc.message, reason="invalidService")
            return outcome.GaveUp(reason="invalidService")
        if not svc.wants_address:
            return await self._let_go(raw, svc)
        resolved = False  # a contested claim that now holds: say so in an Event
        if key in self.conflicts and not self._asks_elsewhere(svc):
            kept, error = self._alloc.claim(svc)
            if error is not None and kept is None:
                self.conflicts[key] = error
                await self._warn(raw, f"{error.message}; keeping the Service pending",
                                 reason=error.reason)
                return outcome.GaveUp(reason=error.reason)
            resolved = True
        self.conflicts.pop(key, None)
        namespace = self._namespaces.get(svc.namespace) or {}
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        before = self._alloc.assignment(key)
        try:
            got = self._alloc.assign(svc, labels)
        except ipam_errors.AllocationError as exc:
            self.pending[key] = self._alloc.waits_on(svc, labels)
            self._stats.allocation_failures.labels(exc.reason).inc()
            await self._warn(raw, exc.message, reason=exc.reason)
            return outcome.GaveUp(reason=exc.reason)
        self.pending.pop(key, None)
        self._warned.pop(key, None)
        touched = {p for p in got.pools if p}
        freed: frozenset[allocator.IP] = frozenset()
        if before is not None:
            touched.update(p for p in before.pools if p)
            freed = frozenset(before.ips) - frozenset(got.ips)
        if before != got:
            self._pools_touched(touched, freed)
        await self._explain_moves(raw, svc, before, got)
        version = await self._write(raw, svc, got, announce=resolved)
        await self._report_coverage(raw, svc, got, version)
        return outcome.Done()

    async def _report_coverage(self, raw: Mapping[str, Any], svc: service.LbService,
                               got: allocator.Assignment, version: str) -> None:
        """DESIGN "never silent": an address from a pool nothing can announce gets a
        Warning and the condition Announceable=False; the condition turns True again
        once the pool can be announced. Services that never had the problem are not
        written to (10k Services, no 10k writes)."""
        gap = next((g for p in dict.fromkeys(got.pools) if p
                    and (g := self._gap_of(p)) is not None), None)
        current = next((c for c in (raw.get("status") or {}).get("conditions") or ()
                        if c.get("type") == ANNOUNCEABLE), None)
        if gap is None and current is None:
            return
        status, reason = ("False", gap.reason) if gap else ("True", "Announceable")
        message = (f"{gap.message}; nothing answers {', '.join(map(str, got.ips))}"
                   if gap else "a mode can announce every address of this Service")
        if gap is not None and self._unannounced.get(svc.key) != message:
            self._unannounced[svc.key] = message
            await self._recorder.record(_ref(raw), "Warning", NOT_ANNOUNCED, message,
                                        service=svc.key, reason=gap.reason)
        elif gap is None:
            self._unannounced.pop(svc.key, None)
        if current is not None and (current.get("status"), current.get("reason"),
                                    current.get("message")) == (status, reason, message):
            return
        since = (current or {}).get("lastTransitionTime")
        if current is None or current.get("status") != status or not since:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        condition = {"type": ANNOUNCEABLE, "status": status, "reason": reason,
                     "message": message, "lastTransitionTime": since}
        # Strategic merge by condition type: other controllers' conditions stay.
        await self._kube.patch(resources.SERVICES, svc.name, {
            "metadata": {"resourceVersion": version},
            "status": {"conditions": [condition]}}, namespace=svc.namespace,
            subresource="status", content_type=client.STRATEGIC_MERGE_PATCH)

    async def _explain_moves(self, raw: Mapping[str, Any], svc: service.LbService,
                             before: allocator.Assignment | None,
                             got: allocator.Assignment) -> None:
        """A Service moved off an address others still share, because an edit of its own
        broke the sharing rules, is told which rule (the others keep the address)."""
        if before is None:
            return
        for ip in before.ips:
            if ip in got.ips or svc.requested_for(ip.version) not in (None, ip):
                continue
            refusal = self._alloc.sharing_refusal(svc, ip)
            if refusal is None:
                continue
            moved_to = next((str(new) for new in got.ips if new.version == ip.version), "")
            await self._recorder.record(
                _ref(raw), "Warning", SHARING_BROKEN,
                f"no longer shares {ip} with {refusal.holder}: {refusal.why}; "
                f"moved to {moved_to or 'no address'}",
                service=svc.key, ip=str(ip), holder=refusal.holder)

    @staticmethod
    def _asks_elsewhere(svc: service.LbService) -> bool:
        """The user now requests IPs other than the contested ones: honour that."""
        return bool(svc.requested_ips) and set(svc.requested_ips) != set(svc.assigned_ips)

    async def _write(self, raw: Mapping[str, Any], svc: service.LbService,
                     got: allocator.Assignment, *, announce: bool = False) -> str:
        """Status, label and finalizer as `got` says; the resourceVersion written last."""
        meta = raw.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        wanted_ips = [str(ip) for ip in got.ips]
        current_ips = [str(ip) for ip in svc.assigned_ips]
        pool_label = next((p for p in got.pools if p), "")
        if wanted_ips != current_ips:
            ingress = [{"ip": ip} for ip in wanted_ips]
            version = await self._patch(svc, version, {"status": {"loadBalancer": {
                "ingress": ingress}}}, subresource="status")
            announce = True
        labels = meta.get("labels") or {}
        finalizers = list(meta.get("finalizers") or [])
        meta_patch: dict[str, Any] = {}
        if labels.get(annotations.EIP_LABEL) != pool_label:
            meta_patch["labels"] = {annotations.EIP_LABEL: pool_label or None}
        if annotations.FINALIZER not in finalizers:
            meta_patch["finalizers"] = [*finalizers, annotations.FINALIZER]
        if meta_patch:
            version = await self._patch(svc, version, {"metadata": meta_patch})
        if announce:
            pools = ", ".join(f"eip/{p}" for p in dict.fromkeys(got.pools) if p)
            await self._recorder.record(
                _ref(raw), "Normal", ASSIGN_IP,
                f"assigned {', '.join(wanted_ips)} from {pools}",
                service=svc.key, ip=",".join(wanted_ips), eip=pool_label)
        self._stats.services_assigned.set(len(self._alloc))
        return version

    async def _patch(self, svc: service.LbService, version: str, patch: dict[str, Any], *,
                     subresource: str | None = None) -> str:
        """Merge-patch guarded by `version`; returns the new version, remembers the old."""
        body = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": version}}
        written = await self._kube.patch(resources.SERVICES, svc.name, body,
                                         namespace=svc.namespace, subresource=subresource)
        self._outdated.setdefault(svc.key, set()).add(version)
        return str((written.get("metadata") or {}).get("resourceVersion") or "")

    async def _let_go(self, raw: Mapping[str, Any], svc: service.LbService) -> outcome.Outcome:
        """Not (or no longer) ours: clear what we wrote, drop the finalizer, then release.

        The allocator keeps the address until the writes succeeded, so it is never handed
        to another Service while this one still shows it (a failed write retries all).
        """
        held = self._alloc.assignment(svc.key)
        self.pending.pop(svc.key, None)
        self._warned.pop(svc.key, None)
        self.conflicts.pop(svc.key, None)
        meta = raw.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        if held is not None and not svc.deleting and svc.is_load_balancer:
            ours = {str(ip) for ip in held.ips}
            ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get(
                "ingress") or []
            kept = [e for e in ingress if e.get("ip") not in ours]
            if kept != ingress:
                version = await self._patch(svc, version, {"status": {"loadBalancer": {
                    "ingress": kept}}}, subresource="status")
        finalizers = list(meta.get("finalizers") or [])
        labels = meta.get("labels") or {}
        meta_patch: dict[str, Any] = {}
        if annotations.FINALIZER in finalizers:
            meta_patch["finalizers"] = [f for f in finalizers if f != annotations.FINALIZER]
        if annotations.EIP_LABEL in labels:
            meta_patch["labels"] = {annotations.EIP_LABEL: None}
        if meta_patch:
            version = await self._patch(svc, version, {"metadata": meta_patch})
        if held is not None:
            self._release(svc.key)
            why = ("being deleted" if svc.deleting else
                   "no longer type LoadBalancer" if not svc.is_load_balancer else
                   "no longer handled by openelb")
            await self._recorder.record(
                _ref(raw), "Normal", RELEASE_IP,
                f"released {', '.join(str(ip) for ip in held.ips)}: {why}",
                service=svc.key, ip=",".join(str(ip) for ip in held.ips), reason=why)
        await self._point_porter_users_on(raw, svc)
        return outcome.Done()

    async def _point_porter_users_on(self, raw: Mapping[str, Any],
                                     svc: service.LbService) -> None:
        """A LoadBalancer Service with Porter's opt-in value (`lb.kubesphere.io/v1alpha1:
        porter`, OpenELB's name before 0.4) is not ours, but must not wait in silence: a
        Warning names the value to set. Not honoured as an alias: a Porter still running
        in the cluster would then fight openelb over the same Services."""
        notes = (raw.get("metadata") or {}).get("annotations") or {}
        if (not svc.is_load_balancer or svc.deleting
                or notes.get(annotations.LB_ANNOTATION) != annotations.PORTER_VALUE):
            return
        message = (f"{annotations.LB_ANNOTATION}: {annotations.PORTER_VALUE} is Porter's "
                   f"opt-in; openelb serves Services annotated {annotations.LB_ANNOTATION}: "
                   f"{annotations.LB_ANNOTATION_VALUE}")
        if svc.key in self._pointed:
            return
        self._pointed.add(svc.key)
        await self._recorder.record(_ref(raw), "Warning", OBSOLETE_ANNOTATION, message,
                                    service=svc.key, annotation=annotations.LB_ANNOTATION)

    def _release(self, key: str) -> None:
        held = self._alloc.assignment(key)
        if held is None:
            return
        self._alloc.release(key)
        self._pools_touched({p for p in held.pools if p}, frozenset(held.ips))
        self._stats.services_assigned.set(len(self._alloc))
        log.info("address released", extra={"service": key,
                                            "ip": ",".join(str(i) for i in held.ips)})

    async def _warn(self, raw: Mapping[str, Any], message: str, *, reason: str) -> None:
        """Post an AssignIPFailed Warning, unless this Service was told exactly that
        last time (a retry that fails the same way says nothing new)."""
        meta = raw.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if self._warned.get(key) == message:
            return
        self._warned[key] = message
        await self._recorder.record(_ref(raw), "Warning", ASSIGN_IP_FAILED, message,
                                    service=key, reason=reason)
