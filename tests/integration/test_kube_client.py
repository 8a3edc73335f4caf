"""kube/client.py + kube/config.py against the real kube-apiserver: every credential
form a kubeconfig can carry, TLS verification, errors by type, and watch streaming."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb.kube import client, config, errors, resources
from openelb_testenv import clients, controlplane


def admin_document(cp: controlplane.ControlPlane) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cp.kubeconfig.read_text())
    return document


def b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


@contextlib.asynccontextmanager
async def connected(path: Path, document: dict[str, Any] | None = None
                    ) -> AsyncIterator[client.Kube]:
    """A Kube from the kubeconfig at `path` (written from `document` first, if given)."""
    if document is not None:
        path.write_text(json.dumps(document))
    kube = await client.Kube.from_kubeconfig(str(path))
    try:
        yield kube
    finally:
        await kube.aclose()


async def namespaces_seen(kube: client.Kube) -> set[str]:
    listed = await kube.list(resources.NAMESPACES)
    return {item["metadata"]["name"] for item in listed.items}


async def test_admin_kubeconfig_with_certificate_files(
        control_plane: controlplane.ControlPlane) -> None:
    async with connected(control_plane.kubeconfig) as kube:
        assert "kube-system" in await namespaces_seen(kube)


async def test_inline_certificate_data(control_plane: controlplane.ControlPlane,
                                       tmp_path: Path) -> None:
    document = admin_document(control_plane)
    cluster = document["clusters"][0]["cluster"]
    user = document["users"][0]["user"]
    cluster["certificate-authority-data"] = b64(cluster.pop("certificate-authority"))
    user["client-certificate-data"] = b64(user.pop("client-certificate"))
    user["client-key-data"] = b64(user.pop("client-key"))
    async with connected(tmp_path / "inline.kubeconfig", document) as kube:
        assert "kube-system" in await namespaces_seen(kube)


async def test_token_and_token_file(control_plane: controlplane.ControlPlane,
                                    admin: k8s.ApiClient, tmp_path: Path) -> None:
    # The controller's ServiceAccount may list Services cluster-wide but not Secrets.
    token = await clients.request_token(admin, "openelb-system", "openelb-controller",
                                        expiration_seconds=3600)
    document = admin_document(control_plane)
    (tmp_path / "token").write_text(token)
    for user in ({"token": token}, {"tokenFile": "token"}):
        document["users"][0]["user"] = user
        async with connected(tmp_path / "sa.kubeconfig", document) as kube:
            await kube.list(resources.SERVICES)
            with pytest.raises(errors.Forbidden):
                await kube.list(resources.Resource("", "v1", "configmaps", "ConfigMap", True))


async def test_wrong_token_is_refused_by_type(control_plane: controlplane.ControlPlane,
                                              tmp_path: Path) -> None:
    document = admin_document(control_plane)
    document["users"][0]["user"] = {"token": "not-a-token"}
    async with connected(tmp_path / "bad.kubeconfig", document) as kube:
        with pytest.raises(errors.Forbidden) as caught:
            await kube.get(resources.NAMESPACES, "default")
        assert caught.value.status == 401


async def test_a_server_certificate_from_another_ca_is_not_trusted(
        control_plane: controlplane.ControlPlane, tmp_path: Path) -> None:
    document = admin_document(control_plane)
    # Trust only the system roots: the testenv's private CA signed the server certificate.
    document["clusters"][0]["cluster"].pop("certificate-authority")
    async with connected(tmp_path / "untrusted.kubeconfig", document) as kube:
        with pytest.raises(errors.Retryable, match="CERTIFICATE_VERIFY_FAILED"):
            await kube.get(resources.NAMESPACES, "default")


async def test_not_found_conflict_and_invalid_by_type(
        control_plane: controlplane.ControlPlane, namespace: str) -> None:
    async with connected(control_plane.kubeconfig) as kube:
        with pytest.raises(errors.NotFound):
            await kube.get(resources.SERVICES, "absent", namespace)
        body = {"metadata": {"name": "cm"}, "data": {"a": "1"}}
        configmaps = resources.Resource("", "v1", "configmaps", "ConfigMap", True)
        await kube.create(configmaps, body, namespace)
        with pytest.raises(errors.Conflict):
            await kube.create(configmaps, body, namespace)
        with pytest.raises(errors.Invalid) as caught:
            await kube.create(configmaps, {"metadata": {"name": "Bad_Name"}}, namespace)
        assert "Bad_Name" in caught.value.message
        patched = await kube.patch(configmaps, "cm", {"data": {"b": "2"}}, namespace=namespace)
        assert patched["data"] == {"a": "1", "b": "2"}


async def test_watch_streams_changes_in_order(control_plane: controlplane.ControlPlane,
                                              namespace: str) -> None:
    configmaps = resources.Resource("", "v1", "configmaps", "ConfigMap", True)
    async with connected(control_plane.kubeconfig) as kube:
        start = (await kube.list(configmaps)).resource_version
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for event in kube.watch(configmaps, start, timeout_seconds=30):
                meta = event.object.get("metadata", {})
                if meta.get("namespace") == namespace:
                    seen.append((event.type, meta["name"]))
                if len(seen) == 3:
                    return

        watcher = asyncio.create_task(watch())
        await kube.create(configmaps, {"metadata": {"name": "w"}}, namespace)
        await kube.patch(configmaps, "w", {"data": {"k": "v"}}, namespace=namespace)
        await kube.delete(configmaps, "w", namespace)
        async with asyncio.timeout(30):
            await watcher
        assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_in_cluster_account(control_plane: controlplane.ControlPlane,
                                  admin: k8s.ApiClient, tmp_path: Path) -> None:
    # What a Pod sees: the mounted token and CA files, the address in the environment.
    token = await clients.request_token(admin, "openelb-system", "openelb-speaker",
                                        expiration_seconds=3600)
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_bytes(Path(str(control_plane.ca_file)).read_bytes())
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    connection = config.in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": host,
                                              "KUBERNETES_SERVICE_PORT": port})
    kube = client.Kube(connection)
    try:
        await kube.list(resources.ENDPOINTSLICES)  # the speaker may
        with pytest.raises(errors.Forbidden):  # and may not touch Services' status
            await kube.patch(resources.SERVICES, "kubernetes", {"status": {}},
                             namespace="default", subresource="status")
    finally:
        await kube.aclose()
