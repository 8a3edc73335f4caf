"""deploy/monitoring, checked with the real promtool (Debian's prometheus): the alert
rules parse, every alert fires on the series that mean trouble and stays quiet on
healthy ones (openelb-rules.test.yaml), the PrometheusRule carries exactly the same
rules; the Grafana dashboard is well formed and its queries parse; and every metric
the rules and the dashboard name is one the daemons really register."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from openelb import supervisor
from openelb.announce.liveness import udp
from openelb.controller import metrics as controller_metrics
from openelb.controller import webhook
from openelb.kube import informer, ratelimit, resources
from openelb.speaker import metrics as speaker_metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "openelb-rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"


def _promtool(*args: str, cwd: Path = MONITORING) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: hack/install.sh installs Debian's prometheus"
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_rules() -> None:
    assert "SUCCESS: 8 rules found" in _promtool("check", "rules", RULES.name)


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "openelb-rules.test.yaml")


def test_the_prometheusrule_carries_the_same_rules() -> None:
    plain = yaml.safe_load(RULES.read_text())
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"]


def _exported() -> set[str]:
    """Every metric name the controller and the speaker register."""
    registry = CollectorRegistry()
    controller_metrics.ControllerMetrics(registry)
    controller_metrics.export_waiting(registry, dict)
    controller_metrics.export_unannounced(registry, lambda: {"layer2": 0})
    caches = {kind.plural: informer.Informer(None, kind)  # type: ignore[arg-type]
              for kind in (resources.EIPS, resources.BGPPEERS, resources.SERVICES,
                           resources.NAMESPACES)}
    webhook.Webhook(eips=caches["eips"], bgppeers=caches["bgppeers"],
                    services=caches["services"],
                    namespaces=caches["namespaces"], lb_class=None, registry=registry)
    speaker = speaker_metrics.SpeakerMetrics(registry)
    speaker.watch_heartbeats(udp.Heartbeats("node-a", b"k" * 32, udp.HeartbeatSettings()))
    supervisor.Supervisor(registry)
    ratelimit.export(ratelimit.TokenBucket(1, 1), registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        # Exposed with their suffixes, even before a labelled child has a sample.
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_rules_use_is_exported() -> None:
    used = set(re.findall(r"\bopenelb_[a-z0-9_]+", RULES.read_text()))
    missing = used - _exported()
    assert not missing, f"rules use metrics no daemon exports: {sorted(missing)}"


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_the_dashboard_is_well_formed() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "openelb"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool has no query checker; a recording rule per query is checked instead."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(_queries())]}]}
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    assert "SUCCESS" in _promtool("check", "rules", "queries.yaml", cwd=tmp_path)


def test_every_metric_the_dashboard_shows_is_exported() -> None:
    used = {m for q in _queries() for m in re.findall(r"\bopenelb_[a-z0-9_]+", q)}
    missing = used - _exported()
    assert not missing, f"the dashboard shows metrics no daemon exports: {sorted(missing)}"
