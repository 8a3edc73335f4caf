"""Kubernetes Events, written together with the matching log line.

kube/ (DESIGN §7, STYLE §2.11): `Recorder.record()` logs one structured line and posts a
core/v1 Event on the object, so logs and Events cannot disagree. Repeats of the same
(object, reason, message) within `dedupe_window` bump the count of the existing Event
instead of creating another. Failures to post are logged, never raised: an Event is
never worth failing a reconcile for.

`emit()` is the non-blocking form for hot paths (the speaker's announce loop): the log
line is written at once and the Event is posted by a background task, in order. A burst
of a thousand announcements then costs the announce path nothing; if `backlog` Events
are already waiting, further ones are logged only and counted in `dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openelb.kube import client, errors, resources

__all__ = ["ObjectRef", "Recorder"]

log = logging.getLogger("openelb.events")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    api_version: str
    name: str
    namespace: str = ""
    uid: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any], kind: str, api_version: str) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(kind, api_version, str(meta.get("name", "")),
                   str(meta.get("namespace") or ""), str(meta.get("uid") or ""))


class Recorder:
    def __init__(self, kube: client.Kube, component: str, host: str, *,
                 dedupe_window: float = 600.0, memory: int = 4096,
                 backlog: int = 10_000) -> None:
        self._kube = kube
        self._component = component
        self._host = host
        self._window = dedupe_window
        self._memory = memory
        self._recent: OrderedDict[tuple[str, ...], tuple[str, str, int, float]] = OrderedDict()
        self._backlog = backlog
        self._pending: asyncio.Queue[tuple[ObjectRef, str, str, str]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    async def record(self, ref: ObjectRef, event_type: str, event_reason: str, message: str,
                     **fields: Any) -> None:
        """Log `message` with `fields` and post it as an Event (`Normal`/`Warning`)."""
        self._log(ref, event_type, event_reason, message, fields)
        await self._post(ref, event_type, event_reason, message)

    def emit(self, ref: ObjectRef, event_type: str, event_reason: str, message: str,
             **fields: Any) -> None:
        """Like `record`, but the Event is posted in the background; never waits."""
        self._log(ref, event_type, event_reason, message, fields)
        if self._pending is None:
            self._pending = asyncio.Queue(self._backlog)
            self._worker = asyncio.create_task(self._drain(self._pending),
                                               name=f"events-{self._component}")
        try:
            self._pending.put_nowait((ref, event_type, event_reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event not recorded: backlog full", extra={
                "reason": event_reason, "backlog": self._backlog, "dropped": self.dropped})

    async def aclose(self, grace: float = 2.0) -> None:
        """Post what is waiting (for up to `grace` seconds), then stop the worker."""
        if self._pending is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._pending.join()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._pending = self._worker = None

    async def _drain(self, pending: asyncio.Queue[tuple[ObjectRef, str, str, str]]) -> None:
        while True:
            ref, event_type, reason, message = await pending.get()
            try:
                await self._post(ref, event_type, reason, message)
            finally:
                pending.task_done()

    @staticmethod
    def _log(ref: ObjectRef, event_type: str, reason: str, message: str,
             fields: Mapping[str, Any]) -> None:
        level = logging.WARNING if event_type == "Warning" else logging.INFO
        where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        log.log(level, message, extra={"event": reason, "object": f"{ref.kind.lower()}/{where}",
                                       **fields})

    async def _post(self, ref: ObjectRef, event_type: str, reason: str, message: str) -> None:
        namespace = ref.namespace or "default"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = (ref.uid or ref.name, ref.namespace, reason, message)
        seen = self._recent.get(key)
        try:
            if seen is not None and time.monotonic() - seen[3] < self._window:
                name, ns, count, _ = seen
                await self._kube.patch(resources.EVENTS, name,
                                       {"count": count + 1, "lastTimestamp": now},
                                       namespace=ns)
                self._remember(key, (name, ns, count + 1, time.monotonic()))
                return
            name = f"{ref.name}.{uuid.uuid4().hex[:16]}"
            await self._kube.create(resources.EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {"kind": ref.kind, "apiVersion": ref.api_version,
                                   "name": ref.name, "namespace": ref.namespace or None,
                                   "uid": ref.uid or None},
                "type": event_type, "reason": reason, "message": message[:1024],
                "source": {"component": self._component, "host": self._host},
                "reportingComponent": self._component, "reportingInstance": self._host,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            }, namespace)
            self._remember(key, (name, namespace, 1, time.monotonic()))
        except errors.KubeError as exc:
            log.warning("event not recorded", extra={"reason": reason, "error": str(exc)})

    def _remember(self, key: tuple[str, ...], value: tuple[str, str, int, float]) -> None:
        self._recent[key] = value
        self._recent.move_to_end(key)
        while len(self._recent) > self._memory:
            self._recent.popitem(last=False)
