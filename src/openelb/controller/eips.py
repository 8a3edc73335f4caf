"""Keeps the allocator's pools in step with the Eip objects, and Eip status current.

controller/ (DESIGN §2, §6). On every Eip change `sync_pools()` re-parses all Eips
(an Eip that stops parsing keeps its last good pool, so no Service loses its address
to a typo), marks deleting Eips disabled, adds our finalizer to live Eips and removes it
from deleting ones once no Service holds their addresses (OpenELB's behaviour).
`flush()` writes the status of pools marked dirty, skipping unchanged ones, so status
writes stay cheap at 10k Services. Leader only.
"""


import dataclasses
import logging

from openelb.api import annotations, eip, errors
from openelb.controller import conditions, metrics
from openelb.ipam import allocator, pools
from openelb.kube import client, events, informer, resources
from openelb.kube import errors as kube_errors

__all__ = ["EipSync", "pool_signature"]

log = logging.getLogger(__name__)

INVALID_EIP = "InvalidEip"
USED_TRUNCATED = "StatusUsedTruncated"


class EipSync:
    def __init__(self, kube: client.Kube, eips: informer.Informer, alloc: allocator.Allocator,
                 recorder: events.Recorder, stats: metrics.ControllerMetrics) -> None:
        self._kube = kube
        self._eips = eips
        self._alloc = alloc
        self._recorder = recorder
        self._stats = stats
        self._last_good: dict[str, pools.Pool] = {}
        self._reported: dict[str, str] = {}  # eip -> problem text already posted
        self._invalid: dict[str, str] = {}  # eip -> why it does not parse
        self._exported: set[str] = set()  # eips with metric series
        self._truncated: set[str] = set()  # eips whose status.used is cut, already told
        self.dirty: set[str] = set()

    def sync_pools(self) -> set[str]:
        """Rebuild the pool set from the cache; returns names of pools that vanished."""
        found: dict[str, pools.Pool] = {}
        self._invalid = {}
        for raw in self._eips.items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            try:
                pool = pools.Pool.from_eip(eip.Eip.parse(raw))
            except errors.InvalidObject as exc:
                self._invalid[name] = exc.message
                pool_or_none = self._last_good.get(name)
                if pool_or_none is None:
                    continue
                pool = pool_or_none
            if (raw.get("metadata") or {}).get("deletionTimestamp"):
                pool = dataclasses.replace(pool, disabled=True)  # no new assignments
            found[name] = pool
        gone = set(self._last_good) - set(found)
        self._last_good = found
        self._alloc.set_pools(found.values(), self._invalid)
        self.dirty.update(found)
        for name in gone & self._exported:
            self._stats.addresses_total.remove(name)
            self._stats.addresses_in_use.remove(name)
            self._exported.discard(name)
        return gone

    async def report_problems(self) -> None:
        """Post a Warning on each Eip that is invalid alone or together with others."""
        problems = {n: p.message for n, p in self._alloc.problems.items()}
        problems.update(self._invalid)
        for name, text in problems.items():
            if self._reported.get(name) == text:
                continue
            raw = self._eips.get(name)
            if raw is None:
                continue
            self._reported[name] = text
            await self._recorder.record(
                events.ObjectRef.of(raw, "Eip", "network.kubesphere.io/v1alpha2"),
                "Warning", INVALID_EIP, text, eip=name)
        for name in set(self._reported) - set(problems):
            del self._reported[name]

    async def flush(self) -> None:
        """Write status and finalizers of dirty pools; failures stay dirty for next time."""
        for name in sorted(self.dirty):
            self.dirty.discard(name)
            try:
                await self._flush_one(name)
            except kube_errors.NotFound:
                continue
            except kube_errors.KubeError as exc:
                log.warning("eip status not written", extra={"eip": name, "error": str(exc)})
                self.dirty.add(name)

    def _ready(self, name: str, raw: client.RawObject) -> dict[str, object]:
        """The Ready condition: why a pool is or is not handing out addresses."""
        generation = (raw.get("metadata") or {}).get("generation")
        problem = self._alloc.problems.get(name)
        if name in self._invalid:
            return conditions.ready(False, "Invalid", self._invalid[name], generation)
        if problem is not None:
            return conditions.ready(False, "Conflict", problem.message, generation)
        if (raw.get("spec") or {}).get("disable"):
            return conditions.ready(True, "Disabled", "assigns no new addresses; addresses "
                                    "in use are kept and announced", generation)
        return conditions.ready(True, "Accepted", "addresses are assigned from this pool",
                                generation)

    async def _flush_one(self, name: str) -> None:
        raw = self._eips.get(name)
        if raw is None:
            return
        if name not in self._alloc.pool_map:
            if name in self._invalid:  # never parsed: no pool, but the user must see why
                await self._write_conditions(name, raw)
            return
        status = self._alloc.pool_status(name)
        if status.used_truncated and name not in self._truncated:
            self._truncated.add(name)
            await self._recorder.record(
                events.ObjectRef.of(raw, "Eip", "network.kubesphere.io/v1alpha2"),
                "Warning", USED_TRUNCATED,
                f"status.used lists the lowest {len(status.used)} of {status.usage} addresses "
                "in use (an Eip must stay under etcd's object size limit); status.usage and "
                "each Service's status are complete", eip=name)
        elif not status.used_truncated:
            self._truncated.discard(name)
        self._stats.addresses_total.labels(name).set(status.pool_size)
        self._stats.addresses_in_use.labels(name).set(status.usage)
        self._exported.add(name)
        wanted = {
            "occupied": status.occupied, "usage": status.usage,
            "poolSize": status.pool_size, "used": status.used,
            "firstIP": status.first_ip, "lastIP": status.last_ip,
            "ready": status.ready and name not in self._invalid,
            "v4": status.v4,
        }
        # The finalizer goes first: its patch carries the cached resourceVersion, which a
        # status write just before would have made stale (a 409 on every new Eip).
        meta = raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting and status.usage == 0 and annotations.FINALIZER in finalizers:
            keep = [f for f in finalizers if f != annotations.FINALIZER]
            await self._kube.patch(resources.EIPS, name, {"metadata": {
                "finalizers": keep, "resourceVersion": meta.get("resourceVersion")}})
            log.info("eip released", extra={"eip": name, "reason": "no Service holds it"})
            return  # going away: no status worth writing
        if not deleting and annotations.FINALIZER not in finalizers:
            await self._kube.patch(resources.EIPS, name, {"metadata": {
                "finalizers": [*finalizers, annotations.FINALIZER],
                "resourceVersion": meta.get("resourceVersion")}})
        current = raw.get("status") or {}
        ready = conditions.merged(current.get("conditions"), self._ready(name, raw))
        wanted["conditions"] = ready if ready is not None else current.get("conditions")
        if any(current.get(k, _MISSING) != v for k, v in wanted.items()):
            # One JSON-patch `add` replaces the whole status: a merge patch would keep
            # addresses freed since the last write in `used`.
            await self._kube.patch(
                resources.EIPS, name, [{"op": "add", "path": "/status", "value": wanted}],
                subresource="status", content_type=client.JSON_PATCH)


    async def _write_conditions(self, name: str, raw: client.RawObject) -> None:
        current = (raw.get("status") or {}).get("conditions")
        ready = conditions.merged(current, self._ready(name, raw))
        if ready is not None:
            await self._kube.patch(resources.EIPS, name, {"status": {"conditions": ready}},
                                   subresource="status")


_MISSING = object()


def pool_signature(raw: client.RawObject | None) -> tuple[object, ...]:
    """What of an Eip object can change its pool: spec (generation), deletion, default.

    Status and finalizers cannot; our own status writes should not re-sync the pools.
    """
    if raw is None:
        return ()
    meta = raw.get("metadata") or {}
    default = (meta.get("annotations") or {}).get(annotations.DEFAULT_EIP_ANNOTATION)
    return (meta.get("uid"), meta.get("generation"), meta.get("deletionTimestamp"), default)
