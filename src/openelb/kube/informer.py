"""Informer-style cache of one resource: paged list, then watch; relist on 410 Gone.

kube/ (DESIGN §3); used by controller/ and speaker/. Keeps the current objects as raw
dicts (managedFields dropped: they are most of an object's size and nobody here reads
them) keyed by `namespace/name` (or `name`), and calls `on_change(key)` for every
object that appeared, changed or vanished, including deletes synthesised when a relist
no longer contains an object; a callback that raises is logged as a bug and the cache
goes on. `stale_for()` says how long list/watch has been failing, for /readyz. The
callback gets only the key: handlers read the cache (level-based, STYLE §2.9).
Reconnects with capped exponential backoff. Cached objects have their keys and short
strings interned (half the memory at 10k Services), and an optional `transform` keeps
only the fields a reader needs (the speaker's Node cache).
A cache that was transformed must never be written back whole.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openelb.kube import client, errors, resources

__all__ = ["Informer", "object_key", "staleness"]

log = logging.getLogger(__name__)


def object_key(obj: Mapping[str, object]) -> str:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ""
    name = str(meta.get("name", ""))
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace else name


Transform = Callable[[client.RawObject], client.RawObject]


def _slim(obj: client.RawObject, transform: Transform | None = None) -> client.RawObject:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    compacted: client.RawObject = _compact(transform(obj) if transform else obj)
    return compacted


def _compact(value: Any) -> Any:
    """The same JSON value with keys and short strings interned.

    Every decoded object carries its own copy of each key ("metadata", "namespace", ...)
    and of repeated values ("TCP", "LoadBalancer", namespace names): interning them
    halves the memory of a 10k-Service cache. Interned strings are freed with their
    last user, so unique values cost nothing extra.
    """
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _INTERN_MAX:
        return sys.intern(value)
    return value


_INTERN_MAX = 64


class Informer:
    """A watched, always-current cache of every object of one kind."""

    def __init__(
        self,
        kube: client.Kube,
        kind: resources.Resource,
        on_change: Callable[[str], None] = lambda key: None,
        *,
        watch_timeout: int = 300,
        max_backoff: float = 10.0,
        transform: Transform | None = None,
    ) -> None:
        self.kind = kind
        self._transform = transform
        self._kube = kube
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._cache: dict[str, client.RawObject] = {}
        self._resource_version = ""
        self.synced = asyncio.Event()
        self.relists = 0  # how often a full list ran (start, 410 Gone, errors)
        self.listed_at = 0.0  # time.monotonic() when the last full list completed
        # Freshness: since when list/watch keeps failing (None while it works), and why.
        self.failing_since: float | None = None
        self.last_error = ""
        self.callback_errors = 0  # on_change raised (a bug); the cache went on

    def get(self, key: str) -> client.RawObject | None:
        return self._cache.get(key)

    def items(self) -> list[client.RawObject]:
        return list(self._cache.values())

    def keys(self) -> list[str]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    async def run(self) -> None:
        """List and watch until cancelled; never raises anything but CancelledError."""
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                backoff = 0.2  # a watch that ended normally: reconnect at once
            except errors.Gone:
                log.info("watch expired, relisting", extra={"op": "watch",
                                                            "reason": "gone",
                                                            "kind": self.kind.plural})
                need_list = True
            except errors.KubeError as exc:
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.last_error = str(exc)
                log.warning("watch failed, retrying", extra={
                    "op": "watch", "kind": self.kind.plural, "error": str(exc),
                    "after": round(backoff, 2)})
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self._max_backoff)
                if isinstance(exc, errors.Forbidden):
                    need_list = True

    def stale_for(self) -> float:
        """Seconds list/watch has been failing (0 while it works)."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since

    def _fresh(self) -> None:
        self.failing_since = None

    def _notify(self, key: str) -> None:
        """Tell the owner; a bug in its callback is logged and never ends the cache."""
        try:
            self._on_change(key)
        except Exception:
            self.callback_errors += 1
            log.exception("change callback crashed", extra={
                "op": "watch", "kind": self.kind.plural, "key": key, "bug": True})

    async def _relist(self) -> None:
        fresh: dict[str, client.RawObject] = {}
        version = ""
        async for page in self._kube.list_pages(self.kind):
            for obj in page.items:
                key = object_key(obj)
                cached = self._cache.get(key)
                # An unchanged object keeps its cached copy: a relist then costs no
                # second copy of the cache.
                same = cached is not None and _version(cached) == _version(obj)
                fresh[key] = (cached if same and cached is not None
                              else _slim(obj, self._transform))
            version = page.resource_version
        self.relists += 1
        self.listed_at = time.monotonic()
        old = self._cache
        self._cache = fresh
        self._resource_version = version
        changed = [k for k, o in fresh.items() if _version(old.get(k)) != _version(o)]
        vanished = [k for k in old if k not in fresh]  # synthesised deletes
        self._fresh()
        self.synced.set()
        for key in (*changed, *vanished):
            self._notify(key)

    async def _watch(self) -> None:
        async for event in self._kube.watch(
            self.kind, self._resource_version, timeout_seconds=self._watch_timeout,
            on_open=self._fresh,
        ):
            version = _version(event.object)
            if version:
                self._resource_version = version
            if event.type == "BOOKMARK":
                continue
            key = object_key(event.object)
            if event.type == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = _slim(event.object, self._transform)
            log.debug("watch event", extra={"op": "watch", "event": event.type,
                                            "kind": self.kind.plural, "key": key})
            self._notify(key)


def staleness(informers: Iterable[Informer], limit: float) -> str:
    """Why these caches cannot be trusted now: the first whose list/watch has been
    failing for more than `limit` seconds, with its error; "" when all are fresh."""
    for cache in informers:
        stale = cache.stale_for()
        if stale > limit:
            return (f"watch of {cache.kind.plural} failing for {stale:.0f} s: "
                    f"{cache.last_error}")
    return ""


def _version(obj: Mapping[str, object] | None) -> str:
    if obj is None:
        return ""
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion", "")) if isinstance(meta, Mapping) else ""
