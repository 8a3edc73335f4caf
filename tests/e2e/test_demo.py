"""README's first command ends in `openelb demo`: it must work as written, unattended."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def test_demo_assigns_announces_and_fails_over(tmp_path: Path) -> None:
    """The demo's summary shows both addresses, >=2 ECMP next hops, HTTP from several
    nodes, and a failover in both modes after a node's cable is pulled."""
    summary = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "openelb", "demo", "--summary-json", str(summary)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    facts = json.loads(summary.read_text())
    assert facts["bgp_ip"].startswith("203.0.113.")
    assert facts["lan_ip"].startswith("192.0.2.2")
    assert len(facts["ecmp_next_hops"]) >= 2
    assert len(facts["bgp_answering_nodes"]) >= 2
    assert facts["lan_failover_s"] is not None
    assert facts["lan_new_owner"] not in ("", facts["failed_node"])
    assert facts["bgp_failover_s"] is not None
    assert facts["failed_node"] not in facts["bgp_answering_after"]
    assert "summary" in result.stdout
    assert "ECMP next hops" in result.stdout
    # Once the cable is back, `openelb status` on the demo cluster reads healthy, with
    # every node's session up and both Services announced.
    assert facts["status_healthy"] is True
    status = result.stdout.split("openelb: healthy\n", 1)[1]
    sessions = status.split("BGP SESSIONS\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(sessions) == 3  # one session per node with the router
    assert all(row.split()[3] == "established" for row in sessions), sessions
    assert "by BGP, nodes with a session: node-a, node-b, node-c" in status
    assert "answers ARP/NDP: " in status
