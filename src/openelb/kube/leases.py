"""Leader election on a coordination.k8s.io Lease, safe against stale holders.

kube/ (DESIGN §2); used by the controller so that exactly one replica allocates. Every
write carries the resourceVersion that was read, so a replica acting on a stale view
gets Conflict and never becomes a second leader. Expiry is judged on this replica's
monotonic clock from when it last saw the Lease change (not from timestamps written by
another host), so clock skew between nodes cannot shorten a lease, and a Lease's own
`leaseDurationSeconds` counts only up to this replica's `lease_duration`, so a forged
Lease claiming years expires like any other.

States: FOLLOWING -> LEADING -> (LOST | RELEASED). A leader that cannot renew within
`renew_deadline` steps down; the caller must stop allocating at once.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from openelb.kube import client, errors, resources

__all__ = ["LeaderElector", "LeaseSettings", "State"]

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    FOLLOWING = "following"
    LEADING = "leading"
    LOST = "lost"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0  # how long a silent leader keeps the lease
    renew_deadline: float = 10.0  # a leader unable to renew this long steps down
    retry_period: float = 2.0  # how often to try to acquire / renew


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquire, hold and release one Lease. `clock` is monotonic seconds (injectable)."""

    def __init__(self, kube: client.Kube, settings: LeaseSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self.settings = settings
        self._clock = clock
        self.state = State.FOLLOWING
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._observed: tuple[str, float] = ("", 0.0)  # (resourceVersion, seen at)
        self._last_renew = 0.0
        self._lease: client.RawObject | None = None

    def _transition(self, new: State, reason: str) -> None:
        if new is self.state:
            return
        log.info("leader election state", extra={
            "op": "lease", "old": str(self.state), "new": str(new), "reason": reason,
            "lease": f"{self.settings.namespace}/{self.settings.name}",
            "identity": self.settings.identity})
        self.state = new
        if new is State.LEADING:
            self.leading.set()
        if new in (State.LOST, State.RELEASED):
            self.leading.clear()
            self.lost.set()

    def _in(self, state: State) -> bool:
        return self.state is state

    async def run(self) -> None:
        """Try to lead until cancelled, or until leadership is lost (then return)."""
        while self._in(State.FOLLOWING):
            await self._try_acquire()
            if not self._in(State.LEADING):
                await asyncio.sleep(self.settings.retry_period)
        while self._in(State.LEADING):
            await asyncio.sleep(self.settings.retry_period)
            await self._renew()

    async def _try_acquire(self) -> None:
        s = self.settings
        try:
            lease = await self._kube.get(resources.LEASES, s.name, s.namespace)
        except errors.NotFound:
            await self._create()
            return
        except errors.KubeError as exc:
            log.warning("lease read failed", extra={"op": "lease", "error": str(exc)})
            return
        version = lease["metadata"]["resourceVersion"]
        if version != self._observed[0]:
            self._observed = (version, self._clock())
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        # Trust a Lease's duration only up to our own: every replica writes ours, so a
        # longer one is forged (issue #19: 2e9 s stopped IP assignment) or stale config.
        duration = min(float(spec.get("leaseDurationSeconds") or s.lease_duration),
                       s.lease_duration)
        expired = self._clock() - self._observed[1] > duration
        if holder and holder != s.identity and not expired:
            return
        await self._write(lease, acquiring=holder != s.identity)

    async def _create(self) -> None:
        s = self.settings
        now = _now_micro()
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {"holderIdentity": s.identity,
                     "leaseDurationSeconds": int(s.lease_duration),
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }
        try:
            self._lease = await self._kube.create(resources.LEASES, body, s.namespace)
        except errors.KubeError as exc:  # Conflict: another replica created it first
            log.info("lease create lost", extra={"op": "lease", "error": str(exc)})
            return
        self._last_renew = self._clock()
        self._transition(State.LEADING, "created")

    async def _write(self, lease: client.RawObject, *, acquiring: bool) -> None:
        s = self.settings
        now = _now_micro()
        spec = dict(lease.get("spec") or {})
        if acquiring:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=s.identity, renewTime=now,
                    leaseDurationSeconds=int(s.lease_duration))
        body = {**lease, "spec": spec}  # carries the resourceVersion we read
        try:
            self._lease = await self._kube.replace(resources.LEASES, body, s.namespace)
        except errors.KubeError as exc:
            log.info("lease write refused", extra={"op": "lease", "error": str(exc)})
            return
        self._last_renew = self._clock()
        self._transition(State.LEADING, "acquired" if acquiring else "renewed")

    async def _renew(self) -> None:
        s = self.settings
        lease = self._lease
        try:
            if lease is None:
                raise errors.Conflict(409, "Conflict", "no lease to renew")
            spec = {**(lease.get("spec") or {}), "renewTime": _now_micro()}
            self._lease = await self._kube.replace(
                resources.LEASES, {**lease, "spec": spec}, s.namespace
            )
            self._last_renew = self._clock()
        except errors.Conflict as exc:
            # Someone else wrote the Lease: we are not the leader any more.
            self._transition(State.LOST, f"conflict: {exc.message}")
        except errors.KubeError as exc:
            if self._clock() - self._last_renew > s.renew_deadline:
                self._transition(State.LOST, f"renew deadline passed: {exc}")
            else:
                log.warning("lease renew failed", extra={"op": "lease", "error": str(exc)})

    async def release(self) -> None:
        """Give the Lease up so a standby takes over at once (on SIGTERM)."""
        if self.state is not State.LEADING or self._lease is None:
            return
        spec = {**(self._lease.get("spec") or {}), "holderIdentity": "",
                "leaseDurationSeconds": 1, "renewTime": _now_micro()}
        try:
            await self._kube.replace(
                resources.LEASES, {**self._lease, "spec": spec}, self.settings.namespace
            )
        except errors.KubeError as exc:
            log.warning("lease release failed", extra={"op": "lease", "error": str(exc)})
        self._transition(State.RELEASED, "released")
