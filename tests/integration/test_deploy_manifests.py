"""Everything in deploy/ is accepted by a real apiserver (server-side dry-run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s

from openelb.testenv import manifests

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def test_deploy_components_pass_server_side_dry_run(admin: k8s.ApiClient) -> None:
    """The controller Deployment, speaker DaemonSet and metrics Services validate against
    the real API schema (the CRDs and RBAC are installed by the session fixture)."""
    objects = manifests.load(DEPLOY / "components")
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert ("DaemonSet", "openelb-speaker") in kinds
    assert ("Deployment", "openelb-controller") in kinds
    stored = await manifests.apply(admin, objects, dry_run=True)
    assert len(stored) == len(objects)
    deployment = next(o for o in stored if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "openelb-controller"
    daemonset = next(o for o in stored if o["kind"] == "DaemonSet")
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
    caps = daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert set(caps["capabilities"]["add"]) >= {"NET_ADMIN", "NET_RAW"}


async def test_dry_run_stores_nothing(admin: k8s.ApiClient) -> None:
    await manifests.apply(admin, manifests.load(DEPLOY / "components"), dry_run=True)
    apps = k8s.AppsV1Api(admin)
    listed = await apps.list_namespaced_deployment("openelb-system")
    assert [d.metadata.name for d in listed.items] == []


async def test_a_broken_manifest_is_refused_by_dry_run(admin: k8s.ApiClient) -> None:
    """Guards the first test: dry-run really validates (a restartPolicy that does not exist)."""
    (deployment,) = [o for o in manifests.load(DEPLOY / "components")
                     if o["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["restartPolicy"] = "Sometimes"
    with pytest.raises(k8s.ApiException) as refused:
        await manifests.apply(admin, [deployment], dry_run=True)
    assert refused.value.status in (400, 422)
