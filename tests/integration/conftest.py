"""Fixtures for the integration level: a real kube-apiserver + etcd (DESIGN §5).

One control plane serves the whole session, with deploy/crds and deploy/rbac installed.
Each test gets a fresh namespace with a unique name, and after each test every
cluster-scoped openelb object (Eip, BgpConf, BgpPeer) is removed, finalizers included.
Components are tested under their own identities through `sa_client`, which returns an
ApiClient holding a TokenRequest token for a ServiceAccount.

If the binaries are not built the session fails (never skips) and says to run
hack/build-control-plane.sh. Set OPENELB_CONTROLPLANE_LOGS=<dir> to keep the servers'
logs after the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb.kube import client
from openelb_testenv import clients, controlplane

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"
RBAC = REPO / "deploy" / "rbac"
GROUP = "network.kubesphere.io"
OPENELB_NAMESPACE = "openelb-system"
CONTROLLER_SA = "openelb-controller"
SPEAKER_SA = "openelb-speaker"
# Cluster-scoped openelb kinds that tests may leave behind: (plural, served version).
CLUSTER_KINDS = (("eips", "v1alpha2"), ("bgpconfs", "v1alpha2"), ("bgppeers", "v1alpha2"))

SaClientFactory = Callable[[str, str], Awaitable[k8s.ApiClient]]


@pytest.fixture
async def admin(control_plane: controlplane.ControlPlane) -> AsyncIterator[k8s.ApiClient]:
    """An ApiClient acting as the cluster admin (system:masters)."""
    async with clients.admin_client(control_plane) as api:
        yield api


@pytest.fixture
async def admin_kube(control_plane: controlplane.ControlPlane) -> AsyncIterator[client.Kube]:
    """Our own kube client (openelb.kube) acting as the cluster admin."""
    kube = await client.Kube.from_kubeconfig(str(control_plane.kubeconfig))
    try:
        yield kube
    finally:
        await kube.aclose()


@pytest.fixture
async def sa_client(
    control_plane: controlplane.ControlPlane, admin: k8s.ApiClient
) -> AsyncIterator[SaClientFactory]:
    """A factory: `await sa_client(namespace, name)` -> ApiClient acting as that ServiceAccount."""
    made: list[k8s.ApiClient] = []

    async def make(namespace: str, name: str) -> k8s.ApiClient:
        api = await clients.service_account_client(control_plane, admin, namespace, name)
        made.append(api)
        return api

    try:
        yield make
    finally:
        for api in made:
            await api.close()


@pytest.fixture
async def as_controller(sa_client: SaClientFactory) -> k8s.ApiClient:
    """An ApiClient acting as the openelb controller's ServiceAccount."""
    return await sa_client(OPENELB_NAMESPACE, CONTROLLER_SA)


@pytest.fixture
async def as_speaker(sa_client: SaClientFactory) -> k8s.ApiClient:
    """An ApiClient acting as the openelb speaker's ServiceAccount."""
    return await sa_client(OPENELB_NAMESPACE, SPEAKER_SA)


@pytest.fixture
async def namespace(admin: k8s.ApiClient) -> AsyncIterator[str]:
    """A fresh namespace with a unique openelb-test-* name, deleted afterwards.

    There is no kube-controller-manager, so a deleted namespace stays Terminating with
    its contents; unique names keep tests apart all the same.
    """
    name = f"openelb-test-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(admin)
    await core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        await core.delete_namespace(name)


async def _patiently(call: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    """`call()`, again while the apiserver answers 429: a test that changed a CRD (the
    webhook tests switch its conversion) leaves its storage re-initialising for a
    moment, and the apiserver asks to retry after `Retry-After`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await call()
        except k8s.ApiException as exc:
            if exc.status != 429 or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(1.0)


@pytest.fixture(autouse=True)
async def _remove_cluster_scoped_openelb_objects(
    control_plane: controlplane.ControlPlane,
) -> AsyncIterator[None]:
    """After each test, delete every Eip, BgpConf and BgpPeer, finalizers included."""
    yield
    async with clients.admin_client(control_plane) as api:
        custom = k8s.CustomObjectsApi(api)
        for plural, version in CLUSTER_KINDS:
            listing: dict[str, Any] = await _patiently(functools.partial(
                custom.list_cluster_custom_object, GROUP, version, plural))
            for item in listing["items"]:
                name = item["metadata"]["name"]
                if item["metadata"].get("finalizers"):
                    await custom.patch_cluster_custom_object(
                        GROUP,
                        version,
                        plural,
                        name,
                        {"metadata": {"finalizers": None}},
                        _content_type="application/merge-patch+json",
                    )
                with contextlib.suppress(k8s.ApiException):
                    await custom.delete_cluster_custom_object(GROUP, version, plural, name)
