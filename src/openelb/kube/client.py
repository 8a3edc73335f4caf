"""The one door to the kube-apiserver: raw-dict requests, paged lists, watches, patches.

kube/ (DESIGN §3): the only module that sends requests. Built on kubernetes_asyncio
(an established async client: kubeconfig/in-cluster loading, TLS, token auth) but
calling its generic `call_api` with `_preload_content=False` and decoding JSON
ourselves: at 10k Services, building the library's typed model objects costs several
times the CPU and memory of the plain dicts we keep anyway (api/ parses what we need).
Errors are translated in kube/errors.py; nothing from the library leaks out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from openelb.kube import errors, resources

__all__ = ["Kube", "ListResult", "RawObject", "WatchEvent"]

RawObject = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
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
    """An apiserver connection. Owns its ApiClient; close it with `aclose()`."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout: float = 30.0) -> None:
        self._api = api
        self._timeout = request_timeout

    @classmethod
    async def from_kubeconfig(cls, path: str | None = None) -> Kube:
        """From a kubeconfig file, or the in-cluster ServiceAccount when `path` is None."""
        configuration = k8s.Configuration()
        with errors.translated():
            if path:
                await k8s_config.load_kube_config(
                    config_file=path, client_configuration=configuration
                )
            else:
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
        return cls(k8s.ApiClient(configuration=configuration))

    async def aclose(self) -> None:
        await self._api.close()

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
        with errors.translated():
            response = await self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout or self._timeout,
            )
            try:
                data = await response.read()
            finally:
                response.release()
        if not 200 <= response.status <= 299:
            raise errors.from_status(response.status, data)
        decoded: RawObject = json.loads(data) if data else {}
        return decoded

    # ---- reads -------------------------------------------------------------------------

    async def get(self, kind: resources.Resource, name: str, namespace: str | None = None
                  ) -> RawObject:
        return await self.request("GET", kind.path(namespace, name))

    async def list(self, kind: resources.Resource, *, page_size: int = 500,
                   label_selector: str | None = None) -> ListResult:
        """Every object of `kind`, fetched in pages, with the list's resourceVersion."""
        items: list[RawObject] = []
        version = ""
        async for page in self.list_pages(kind, page_size=page_size,
                                          label_selector=label_selector):
            items.extend(page.items)
            version = page.resource_version
        return ListResult(items, version)

    async def list_pages(self, kind: resources.Resource, *, page_size: int = 500,
                         label_selector: str | None = None) -> AsyncIterator[ListResult]:
        """The pages of one consistent list; the last page carries its resourceVersion.

        Lets a caller shrink each page before the next arrives: at 10k objects, holding
        every decoded page until the end doubles the peak memory of a relist.
        """
        query: dict[str, str | int] = {"limit": page_size}
        if label_selector:
            query["labelSelector"] = label_selector
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
                    timeout_seconds: int = 300) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version`, with bookmarks, until the server ends it.

        Raises errors.Gone when the version is too old (410): the caller relists.
        """
        query: dict[str, str | int] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        with errors.translated():
            response = await self._api.call_api(
                kind.path(), "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout_seconds + 30,
            )
            try:
                if not 200 <= response.status <= 299:
                    raise errors.from_status(response.status, await response.read())
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise errors.from_status(int(status.get("code", 500)), json.dumps(status))
                    yield WatchEvent(str(event.get("type")), event.get("object") or {})
            finally:
                response.release()

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
