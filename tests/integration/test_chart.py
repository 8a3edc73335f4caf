"""charts/openelb: helm lints it, its defaults render exactly deploy/ (one source), its
CRDs are deploy/crds byte for byte, and what it renders with other values is accepted
by the real apiserver (issue #16, item 4). helm is built from its Go module by
hack/build-helm.sh (cached like the control plane)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from openelb_testenv import clients, controlplane, manifests

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "openelb"
DEPLOY = REPO / "deploy"


def _helm() -> str:
    done = subprocess.run(["bash", str(REPO / "hack" / "build-helm.sh"), "--print-path"],
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def _run(*argv: str) -> str:
    done = subprocess.run([_helm(), *argv], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _render(*values: str, crds: bool = False) -> list[dict[str, Any]]:
    text = _run("template", "openelb", str(CHART), "--namespace", "openelb-system",
                *(["--include-crds"] if crds else []), *values)
    return [d for d in yaml.safe_load_all(text) if d]


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], str(meta.get("namespace", "")), meta["name"]


def test_helm_lints_the_chart() -> None:
    out = _run("lint", str(CHART), "--strict")
    assert "0 chart(s) failed" in out


def test_the_defaults_render_deploy_exactly() -> None:
    rendered = {_key(o): o for o in _render("--set", "namespace.create=true")}
    wanted = {_key(o): o for o in manifests.load(DEPLOY / "rbac", DEPLOY / "components")}
    assert rendered.keys() == wanted.keys()
    for key, obj in wanted.items():
        assert rendered[key] == obj, key


def test_the_chart_crds_are_deploys() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert chart_crds == sorted(p.name for p in (DEPLOY / "crds").glob("*.yaml"))
    for name in chart_crds:
        assert (CHART / "crds" / name).read_bytes() == (DEPLOY / "crds" / name).read_bytes()


async def test_other_values_render_objects_the_apiserver_accepts(
        admin: k8s.ApiClient) -> None:
    objects = _render("--set", "controller.replicas=3", "--set", "image.tag=9.9.9",
                      "--set", "controller.webhook.certMode=external",
                      "--set", "speaker.healthPort=9474", "--set", "speaker.heartbeatPort=9473",
                      "--set-json", 'speaker.nodeSelector={"openelb.example.com/lb":"yes"}')
    stored = await manifests.apply(admin, objects, dry_run=True)
    assert len(stored) == len(objects)
    deployment = next(o for o in stored if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "openelb/openelb:9.9.9"
    assert "--webhook-cert-mode=external" in container["args"]
    daemonset = next(o for o in stored if o["kind"] == "DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"openelb.example.com/lb": "yes"}
    assert "--heartbeat-port=9473" in spec["containers"][0]["args"]
    assert spec["containers"][0]["ports"][0]["containerPort"] == 9474


def test_the_alert_rules_come_with_the_chart_when_asked() -> None:
    rules = [o for o in _render("--set", "monitoring.prometheusRule.enabled=true")
             if o["kind"] == "PrometheusRule"]
    wanted = yaml.safe_load((DEPLOY / "monitoring" / "prometheusrule.yaml").read_text())
    assert [r["spec"] for r in rules] == [wanted["spec"]]


def test_the_dashboard_comes_with_the_chart_when_asked() -> None:
    maps = [o for o in _render("--set", "monitoring.grafanaDashboard.enabled=true")
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "openelb-grafana-dashboard"]
    wanted = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    assert [json.loads(m["data"]["openelb.json"]) for m in maps] == [wanted]
    assert maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert not [o for o in _render() if o["kind"] == "ConfigMap"]  # off by default


async def test_helm_installs_upgrades_and_uninstalls_on_a_real_apiserver(
        controlplane_binaries: controlplane.Binaries) -> None:
    """`helm install` for real, on a control plane of its own (the session's already
    holds deploy/'s objects, which helm would rightly refuse to adopt): every object is
    created (the namespace with its Pod Security label), an upgrade changes the image,
    and an uninstall removes the release's objects. Nothing runs the Pods here (no
    kubelet: #16's stretch item)."""
    async with controlplane.ControlPlane(controlplane_binaries,
                                         controlplane.Settings()) as cp:
        kubeconfig = ("--kubeconfig", str(cp.kubeconfig), "--namespace", "openelb-system")
        # docs/install.md's command: helm stores the release in its namespace before it
        # creates anything, so the chart's own labelled Namespace can only be adopted.
        _run("install", "openelb", str(CHART), *kubeconfig, "--create-namespace",
             "--set", "namespace.create=true", "--take-ownership")
        async with clients.admin_client(cp) as api:
            apps = k8s.AppsV1Api(api)
            deployment = await apps.read_namespaced_deployment(
                "openelb-controller", "openelb-system")
            assert deployment.spec.template.spec.containers[0].image == "openelb/openelb:0.1.0"
            await apps.read_namespaced_daemon_set("openelb-speaker", "openelb-system")
            namespace = await k8s.CoreV1Api(api).read_namespace("openelb-system")
            assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == (
                "privileged")
            crds = await k8s.ApiextensionsV1Api(api).list_custom_resource_definition()
            assert {"eips.network.kubesphere.io", "bgpconfs.network.kubesphere.io",
                    "bgppeers.network.kubesphere.io",
                    "nodeannouncements.openelb.kubesphere.io"} <= {
                c.metadata.name for c in crds.items}

            _run("upgrade", "openelb", str(CHART), *kubeconfig, "--set",
                 "namespace.create=true", "--set", "image.tag=0.1.1")
            deployment = await apps.read_namespaced_deployment(
                "openelb-controller", "openelb-system")
            assert deployment.spec.template.spec.containers[0].image == "openelb/openelb:0.1.1"
            history = json.loads(_run("history", "openelb", *kubeconfig, "-o", "json"))
            assert [h["revision"] for h in history] == [1, 2]

            _run("uninstall", "openelb", *kubeconfig)
            left = await apps.list_namespaced_deployment("openelb-system")
            assert left.items == []
            roles = await k8s.RbacAuthorizationV1Api(api).list_cluster_role()
            assert not [r for r in roles.items if r.metadata.name.startswith("openelb-")]
