"""Everything in deploy/ is accepted by a real apiserver (server-side dry-run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s

from openelb_testenv import manifests

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


async def test_the_speaker_pod_is_admitted_by_pod_security_only_where_we_allow_it(
        admin: k8s.ApiClient, namespace: str) -> None:
    """openelb-system is labelled for Pod Security `privileged`: a speaker pod (host
    network, NET_ADMIN) is admitted there, and refused in a namespace that enforces
    baseline, with the reason the kubelet would never show."""
    (daemonset,) = [o for o in manifests.load(DEPLOY / "components")
                    if o["kind"] == "DaemonSet"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "speaker-probe"},
           "spec": daemonset["spec"]["template"]["spec"]}
    system = await k8s.CoreV1Api(admin).read_namespace("openelb-system")
    assert system.metadata.labels["pod-security.kubernetes.io/enforce"] == "privileged"
    await k8s.CoreV1Api(admin).create_namespaced_pod("openelb-system", pod, dry_run="All")
    await k8s.CoreV1Api(admin).patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "baseline"}}})
    elsewhere = {**pod, "spec": {k: v for k, v in pod["spec"].items()
                                 if k != "serviceAccountName"}}
    # No controller-manager here makes the namespace's default ServiceAccount.
    await k8s.CoreV1Api(admin).create_namespaced_service_account(
        namespace, {"metadata": {"name": "default"}})
    with pytest.raises(k8s.ApiException) as refused:
        await k8s.CoreV1Api(admin).create_namespaced_pod(namespace, elsewhere,
                                                         dry_run="All")
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body
