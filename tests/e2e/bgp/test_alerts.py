"""The shipped alert rules on a real Prometheus (Debian's package) scraping a real
speaker: cutting the BGP session makes OpenelbBgpSessionDown fire, and bringing the
router back resolves it (issue #17, item 3).

Prometheus runs inside node-a's namespace, where the speaker serves /metrics on
loopback (the lab binds it to 127.0.0.1:18081), with deploy/monitoring/openelb-rules.yaml
as its rule file, unchanged, so the alert waits its `for: 1m` like in a cluster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

RULES = Path(__file__).resolve().parents[3] / "deploy" / "monitoring" / "openelb-rules.yaml"
PROMETHEUS_ADDR = "127.0.0.1:19090"  # inside node-a's namespace only


async def _get(host: netlab.Host, path: str) -> str | None:
    """The body of a 2xx answer, else None. Prometheus answers 503 in plain text
    until its TSDB is open, so --fail keeps that from reading as an answer."""
    done = await host.exec("curl", "--silent", "--fail", "--max-time", "3",
                           f"http://{PROMETHEUS_ADDR}{path}", check=False)
    return done.stdout if done.returncode == 0 and done.stdout else None


async def _api(host: netlab.Host, path: str) -> Any:
    body = await _get(host, path)
    return None if body is None else json.loads(body).get("data")


async def _session_alerts(host: netlab.Host) -> list[dict[str, Any]]:
    alerts = (await _api(host, "/api/v1/alerts") or {}).get("alerts") or []
    return [a for a in alerts if a["labels"].get("alertname") == "OpenelbBgpSessionDown"]


async def test_cutting_a_bgp_session_fires_the_session_down_alert(
        cluster: ClusterFactory) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus not found: hack/install.sh installs Debian's package"
    async with cluster(router="bird") as c:
        await c.bgp()
        host = c.lab.node("node-a")
        config = host.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "openelb-speaker", "static_configs": [{
                "targets": [testenv_cluster.SPEAKER_HEALTH_ADDR],
                "labels": {"instance": "node-a"}}]}],
        }))
        await host.spawn([prometheus, f"--config.file={config}",
                          f"--storage.tsdb.path={host.workdir / 'prometheus-data'}",
                          f"--web.listen-address={PROMETHEUS_ADDR}"])

        async def prometheus_ready() -> tuple[bool, object]:
            body = await _get(host, "/-/ready")
            return body is not None, body

        await netlab.poll_until("Prometheus ready", prometheus_ready, 60.0)

        async def session_up_scraped() -> tuple[bool, object]:
            found = await _api(host, "/api/v1/query?query=openelb_bgp_session_up")
            values = [r["value"][1] for r in (found or {}).get("result", [])]
            return values == ["1"], values

        await netlab.poll_until("Prometheus sees the session up", session_up_scraped, 90.0)
        assert await _session_alerts(host) == []

        await c.lab.router.stop()

        async def firing() -> tuple[bool, object]:
            alerts = await _session_alerts(host)
            return [a["state"] for a in alerts] == ["firing"], alerts

        await netlab.poll_until("OpenelbBgpSessionDown firing", firing, 150.0,
                                interval=2.0)
        (alert,) = await _session_alerts(host)
        assert alert["labels"]["instance"] == "node-a"
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"].startswith("BGP session ")

        await c.lab.router.start()

        async def resolved() -> tuple[bool, object]:
            alerts = await _session_alerts(host)
            return alerts == [], alerts

        await netlab.poll_until("the alert resolves", resolved, 90.0, interval=2.0)
