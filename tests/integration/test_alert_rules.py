"""deploy/monitoring's alert rules, checked by the real promtool (Debian's prometheus):
they parse, every alert fires on the series that mean trouble and stays quiet on
healthy ones (openelb-rules.test.yaml), every metric they use is one the daemons
export, and the PrometheusRule carries exactly the same rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from openelb import supervisor
from openelb.controller import metrics as controller_metrics
from openelb.speaker import metrics as speaker_metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "openelb-rules.yaml"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: hack/install.sh installs Debian's prometheus"
    done = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_rules() -> None:
    assert "SUCCESS: 7 rules found" in _promtool("check", "rules", RULES.name)


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
    speaker_metrics.SpeakerMetrics(registry)
    supervisor.Supervisor(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":  # exposed with the suffix, even with no sample yet
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_rules_use_is_exported() -> None:
    used = set(re.findall(r"\bopenelb_[a-z0-9_]+", RULES.read_text()))
    missing = used - _exported()
    assert not missing, f"rules use metrics no daemon exports: {sorted(missing)}"
