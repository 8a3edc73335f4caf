"""The one door to the kube-apiserver: raw-dict requests, paged lists, watches, patches.

kube/ (DESIGN §3): the only module that sends requests. HTTP goes through kube/http.py
(h11 on asyncio streams, see there for why not httpx/httpcore); where the server is and
who we are comes from kube/config.py.
Objects travel as plain JSON dicts: api/ parses what we need, and at 10k Services typed
client models cost several times the CPU and memory of the dicts we keep anyway (and a
typed Kubernetes client costs ~63 MB on import, more than the speaker's whole budget).
Errors are translated in kube/errors.py; no transport exception leaks out.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from openelb.kube import config, errors, http, ratelimit, resources

__all__ = ["MERGE_PATCH", "STRATEGIC_MERGE_PATCH", "Kube", "ListResult", "RawObject",
           "WatchEvent"]

RawObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
# Built-in kinds only: merges lists by their key (a condition by its type).
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[RawObject]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: RawObject


class Kube:
    """An apiserver connection pool. Close it with `aclose()`."""

    def __init__(self, connection: config.Connection, *, request_timeout: float = 30.0,
                 max_connections: int = 100,
                 limiter: ratelimit.TokenBucket | None = None) -> None:
        self._connection = connection
        self._timeout = request_timeout
        # Client-side ceiling on requests per second (None: none); see ratelimit.py.
        self.limiter = limiter
        # Watches hold a connection each; reconcilers share the rest.
        self._pool = http.Pool(connection.server, connection.tls,
                               max_connections=max_connections)
        # (method, HTTP status or "error" when no answer came) -> requests; exported as
        # openelb_kube_client_requests_total (kube/requestmetrics.py).
        self.responses: collections.Counter[tuple[str, str]] = collections.Counter()

    @classmethod
    async def from_kubeconfig(cls, path: str | None = None, *,
                              limiter: ratelimit.TokenBucket | None = None) -> Kube:
        """From a kubeconfig file, or the in-cluster ServiceAccount when `path` is None."""
        return cls(config.load(path), limiter=limiter)

    async def aclose(self) -> None:
        await self._pool.aclose()

    @staticmethod
    def _target(path: str, query: Mapping[str, str | int] | None) -> str:
        return f"{path}?{urlencode(query)}" if query else path

    def _headers(self, content_type: str | None = None) -> list[tuple[str, str]]:
        headers = [("Accept", "application/json"), ("User-Agent", "openelb")]
        authorization = self._connection.authorization()
        if authorization:
            headers.append(("Authorization", authorization))
        if content_type:
            headers.append(("Content-Type", content_type))
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> RawObject:
        """One request; returns the decoded JSON body or raises a kube error."""
        if self.limiter is not None:
            await self.limiter.acquire()
        content = None if body is None else json.dumps(body).encode()
        timeout = request_timeout or self._timeout
        try:
            with errors.translated():
                async with asyncio.timeout(timeout), self._pool.stream(
                    method, self._target(path, query),
                    self._headers(content_type if content is not None else None), content,
                    timeout=timeout, read_timeout=timeout,
                ) as response:
                    status, data = response.status, await response.aread()
                    retry_after = response.header("retry-after")
        except errors.KubeError:
            self.responses[(method, "error")] += 1
            raise
        self.responses[(method, str(status))] += 1
        if not 200 <= status <= 299:
            raise errors.from_status(status, data, retry_after)
        decoded: RawObject = json.loads(data) if data else {}
        return decoded

    # ---- reads -------------------------------------------------------------------------

    async def get(self, kind: resources.Resource, name: str, namespace: str | None = None
                  ) -> RawObject:
        return await self.request("GET", kind.path(namespace, name))

    async def list(self, kind: resources.Resource, *, page_size: int = 500,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> ListResult:
        """Every object of `kind`, fetched in pages, with the list's resourceVersion."""
        items: list[RawObject] = []
        version = ""
        async for page in self.list_pages(kind, page_size=page_size,
                                          label_selector=label_selector,
                                          field_selector=field_selector):
            items.extend(page.items)
            version = page.resource_version
        return ListResult(items, version)

    async def list_pages(self, kind: resources.Resource, *, page_size: int = 500,
                         label_selector: str | None = None,
                         field_selector: str | None = None) -> AsyncIterator[ListResult]:
        """The pages of one consistent list; the last page carries its resourceVersion.

        Lets a caller shrink each page before the next arrives: at 10k objects, holding
        every decoded page until the end doubles the peak memory of a relist.
        """
        query: dict[str, str | int] = {"limit": page_size}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        while True:
            page = await self.request("GET", kind.path(), query=query, request_timeout=120)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            yield ListResult(page.get("items") or [], "" if token else
                             str(meta.get("resourceVersion", "")))
            if not token:
                return
            query["continue"] = token

    async def watch(self, kind: resources.Resource, resource_version: str, *,
                    timeout_seconds: int = 300,
                    on_open: Callable[[], None] | None = None) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version`, with bookmarks, until the server ends it.

        Raises errors.Gone when the version is too old (410): the caller relists.
        `on_open` is called once the server has accepted the watch (a quiet watch is
        a healthy one). A line that is not a watch event raises errors.Retryable.
        """
        query: dict[str, str | int] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        if self.limiter is not None:
            await self.limiter.acquire()
        with errors.translated():
            async with self._pool.stream(
                "GET", self._target(kind.path(), query), self._headers(),
                timeout=self._timeout, read_timeout=timeout_seconds + 30,
            ) as response:
                if not 200 <= response.status <= 299:
                    raise errors.from_status(response.status, await response.aread(),
                                             response.header("retry-after"))
                if on_open is not None:
                    on_open()
                pending = b""
                async for chunk in response.aiter_bytes():
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield self._watch_event(line)

    @staticmethod
    def _watch_event(line: bytes) -> WatchEvent:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("object") or {}, dict):
            raise errors.Retryable(0, "MalformedWatchEvent",
                                   f"not a watch event: {line[:200]!r}")
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            raise errors.from_status(int(status.get("code", 500)), json.dumps(status))
        return WatchEvent(str(event.get("type")), event.get("object") or {})

    # ---- writes ------------------------------------------------------------------------

    async def create(self, kind: resources.Resource, body: RawObject,
                     namespace: str | None = None) -> RawObject:
        return await self.request("POST", kind.path(namespace), body=body)

    async def replace(self, kind: resources.Resource, body: RawObject,
                      namespace: str | None = None, subresource: str | None = None
                      ) -> RawObject:
        name = body["metadata"]["name"]
        return await self.request("PUT", kind.path(namespace, name, subresource), body=body)

    async def patch(self, kind: resources.Resource, name: str, patch: Any, *,
                    namespace: str | None = None, subresource: str | None = None,
                    content_type: str = MERGE_PATCH) -> RawObject:
        return await self.request(
            "PATCH", kind.path(namespace, name, subresource), body=patch,
            content_type=content_type,
        )

    async def delete(self, kind: resources.Resource, name: str,
                     namespace: str | None = None) -> RawObject:
        return await self.request("DELETE", kind.path(namespace, name))
