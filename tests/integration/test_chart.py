"""charts/openelb: helm lints it, its defaults render exactly deploy/ (one source), its
CRDs are deploy/crds byte for byte, and what it renders with other values is accepted
by the real apiserver (issue #16, item 4). helm is built from its Go module by
hack/build-helm.sh (cached like the control plane)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from openelb_testenv import manifests

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
