"""Load YAML manifests and apply them to a cluster with server-side apply (DESIGN §5).

Test environment, outside DESIGN §3's runtime layers; the integration fixtures install
deploy/crds and deploy/rbac with it, and the demo will too. It knows generic Kubernetes
only: finding the REST path of an apiVersion/kind through discovery, server-side apply,
waiting until CRDs are Established. What the manifests contain is not its business.

    ManifestError          root of this module's errors
     ├── UnknownKind       the apiserver serves no resource for an apiVersion/kind
     └── NotEstablished    a CRD did not become Established (or usable) in time
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s

from openelb_testenv import controlplane

__all__ = [
    "FIELD_MANAGER",
    "ManifestError",
    "NotEstablished",
    "Resource",
    "UnknownKind",
    "apply",
    "install",
    "load",
    "resource_for",
    "wait_established",
    "wait_served",
]

#: The field manager that owns what this module applies.
FIELD_MANAGER = "openelb-testenv"

_OBJECT = {200: "object", 201: "object"}


class ManifestError(Exception):
    """Root of the errors this module raises."""


class UnknownKind(ManifestError):
    """The apiserver serves no resource for this apiVersion and kind."""

    def __init__(self, api_version: str, kind: str) -> None:
        self.api_version = api_version
        self.kind = kind
        super().__init__(f"the apiserver serves no {kind} in {api_version}")


class NotEstablished(ManifestError):
    """These CRDs were not Established within the timeout."""

    def __init__(self, names: Sequence[str], timeout: float) -> None:
        self.names = list(names)
        self.timeout = timeout
        super().__init__(f"CRDs not Established after {timeout:g}s: {', '.join(names)}")


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """Where the objects of one apiVersion/kind live in the REST API."""

    api_version: str
    plural: str
    namespaced: bool

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ManifestError(f"{self.plural} are namespaced: a namespace is required")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def load(*paths: Path) -> list[dict[str, Any]]:
    """The objects in these YAML files; a directory stands for its *.yaml files, sorted."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    objects: list[dict[str, Any]] = []
    for file in files:
        with file.open() as stream:
            for document in yaml.safe_load_all(stream):
                if document is None:
                    continue
                if not isinstance(document, dict) or "kind" not in document:
                    raise ManifestError(f"{file}: a document is not a Kubernetes object")
                objects.append(document)
    return objects


async def _get(api: k8s.ApiClient, path: str) -> dict[str, Any]:
    result: dict[str, Any] = await api.call_api(
        path,
        "GET",
        header_params={"Accept": "application/json"},
        response_types_map=_OBJECT,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    return result


async def resource_for(api: k8s.ApiClient, api_version: str, kind: str) -> Resource:
    """Find the resource serving `kind` in `api_version` through discovery."""
    listing_path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    try:
        listing = await _get(api, listing_path)
    except k8s.ApiException as exc:
        if exc.status == 404:
            raise UnknownKind(api_version, kind) from exc
        raise
    for entry in listing.get("resources", []):
        if entry.get("kind") == kind and "/" not in entry["name"]:
            return Resource(api_version, entry["name"], bool(entry["namespaced"]))
    raise UnknownKind(api_version, kind)


async def apply(
    api: k8s.ApiClient,
    objects: Iterable[dict[str, Any]],
    *,
    field_manager: str = FIELD_MANAGER,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Server-side apply each object in order (forcing conflicts); return what was stored.

    With `dry_run` the apiserver validates and admits each object fully (schema,
    defaulting, admission) but stores nothing: how deploy/ is proven valid."""
    resources: dict[tuple[str, str], Resource] = {}
    applied: list[dict[str, Any]] = []
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key not in resources:
            resources[key] = await resource_for(api, *key)
        metadata = obj.get("metadata", {})
        path = resources[key].path(metadata["name"], metadata.get("namespace"))
        stored: dict[str, Any] = await api.call_api(
            path,
            "PATCH",
            query_params=[("fieldManager", field_manager), ("force", "true"),
                          *([("dryRun", "All")] if dry_run else [])],
            header_params={
                "Accept": "application/json",
                "Content-Type": "application/apply-patch+yaml",
            },
            body=obj,
            response_types_map=_OBJECT,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        applied.append(stored)
    return applied


async def wait_established(api: k8s.ApiClient, names: Sequence[str], within: float) -> None:
    """Return once every named CRD is Established; raise NotEstablished after `within` s."""
    extensions = k8s.ApiextensionsV1Api(api)
    pending = list(names)
    try:
        async with asyncio.timeout(within):
            while pending:
                crd = await extensions.read_custom_resource_definition(pending[0])
                conditions = (crd.status.conditions if crd.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    pending.pop(0)
                else:
                    await asyncio.sleep(0.1)
    except TimeoutError as exc:
        raise NotEstablished(pending, within) from exc


async def wait_served(api: k8s.ApiClient, crds: Sequence[dict[str, Any]], within: float) -> None:
    """Return once a list request succeeds for every served version of these CRDs
    that needs no conversion webhook (`warm_versions`).

    Established only means the names are accepted: the apiserver answers 429 "storage
    is (re)initializing" or 404 until the resource's storage is ready. A version served
    through a conversion webhook lists only while that webhook answers, which is not
    this function's business.
    """
    paths = [
        Resource(
            f"{crd['spec']['group']}/{version['name']}",
            crd["spec"]["names"]["plural"],
            namespaced=False,
        ).path()
        for crd in crds
        for version in controlplane.warm_versions(crd)
    ]
    try:
        async with asyncio.timeout(within):
            for path in paths:
                while True:
                    try:
                        await _get(api, path)
                        break
                    except k8s.ApiException as exc:
                        if exc.status not in (404, 429, 503):
                            raise
                    await asyncio.sleep(0.1)
    except TimeoutError as exc:
        raise NotEstablished([crd["metadata"]["name"] for crd in crds], within) from exc


async def install(api: k8s.ApiClient, *paths: Path, within: float = 60.0) -> list[dict[str, Any]]:
    """Apply the manifests in `paths`; return once the CRDs among them can be used."""
    applied = await apply(api, load(*paths))
    crds = [obj for obj in applied if obj["kind"] == "CustomResourceDefinition"]
    await wait_established(api, [crd["metadata"]["name"] for crd in crds], within)
    await wait_served(api, crds, within)
    return applied
