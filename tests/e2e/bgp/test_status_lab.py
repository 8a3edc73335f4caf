"""`openelb status` against the BGP lab: what a user reads when all is well, when the
router's BGP daemon is cut, when it is back, and with a Service that waits for a pool
that does not exist (issue #17, item 1).

The real speakers write their sessions into BgpPeer status (state, reason, since when)
and their NodeAnnouncements (prefixes); the command reads only the apiserver, as the
admin, like `kubectl openelb status` would. The checks are on the lines a user reads.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}


def _status(kubeconfig: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "openelb", "status", "--kubeconfig",
                           kubeconfig], capture_output=True, text=True, timeout=60,
                          check=False)
    return done.returncode, done.stdout + done.stderr


def _section(text: str, title: str) -> list[str]:
    body = text.split(f"\n{title}\n", 1)[1]
    return body.split("\n\n", 1)[0].splitlines()


async def test_status_reads_healthy_then_cut_then_healthy(cluster: ClusterFactory) -> None:
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    async with cluster(router="bird", ipv6=False) as c:
        kubeconfig = str(c.cp.kubeconfig)
        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await c.lab.router.wait_for_routes(f"{vip}/32", set(NODES.values()), 60, kernel=True)

        async def reads(code: int, check: object) -> str:
            async def probe() -> tuple[bool, object]:
                got, text = await asyncio.to_thread(_status, kubeconfig)
                return got == code and check(text), text  # type: ignore[operator]

            return str(await netlab.poll_until(f"openelb status exits {code}", probe, 60.0,
                                               interval=1.0))

        def all_established(text: str) -> bool:
            rows = [r.split() for r in _section(text, "BGP SESSIONS")[1:]]
            return len(rows) == 3 and all(r[3] == "established" and r[5] == "1"
                                          for r in rows)

        healthy = await reads(0, all_established)
        assert healthy.startswith("openelb: healthy\n")
        header, *rows = _section(healthy, "BGP SESSIONS")
        assert header.split() == ["PEER", "NODE", "NEIGHBOR", "STATE", "FOR", "PREFIXES",
                                  "REASON"]
        assert sorted(r.split()[1] for r in rows) == sorted(NODES)
        for row in rows:
            peer, _, neighbor, state, since, prefixes, reason = row.split()
            assert (peer, neighbor, state, prefixes, reason) == (
                "router-0", "192.0.2.1", "established", "1", "-")
            assert since[-1] in "smhd", row  # how long it has been up
        (web,) = [r for r in _section(healthy, "SERVICES") if r.startswith(f"{ns}/web ")]
        assert web.split()[1:5] == [vip, "bgp-pool", "bgp", "assigned"]
        assert web.endswith("by BGP, nodes with a session: node-a, node-b, node-c")
        assert _section(healthy, "PROBLEMS") == ["  none"]

        await c.lab.router.stop()

        def all_cut(text: str) -> bool:
            # Down, and the speaker has told why (its reachability probe follows the
            # state change by a moment).
            rows = [r.split() for r in _section(text, "BGP SESSIONS")[1:]]
            return len(rows) == 3 and all(r[3] != "established" and r[6] != "-"
                                          for r in rows)

        cut = await reads(1, all_cut)
        assert cut.startswith("openelb: PROBLEMS FOUND\n")
        for row in _section(cut, "BGP SESSIONS")[1:]:
            _, node, _, state, since, prefixes, reason = row.split()
            assert prefixes == "-", row  # nothing is sent over a session that is down
            assert since[-1] in "smhd", row  # how long it has been down
            assert reason == "connectionRefused", row  # BIRD is gone, its host answers
        problems = "\n".join(_section(cut, "PROBLEMS"))
        for node in NODES:
            assert (f"BGP session of node {node} with bgppeer/router-0 is "
                    in problems), problems
        assert (f"service/{ns}/web: nobody announces {vip}: no node has an established "
                "BGP session") in problems

        await c.lab.router.start()
        back = await reads(0, all_established)
        assert _section(back, "PROBLEMS") == ["  none"]

        await c.service(ns, "lost", pool="nope")
        pending = await reads(1, lambda text: "pending: eip/nope does not exist" in text)
        (lost,) = [r for r in _section(pending, "SERVICES") if r.startswith(f"{ns}/lost ")]
        assert lost.split()[1:4] == ["-", "-", "-"]  # no address, pool or mode yet
        assert _section(pending, "PROBLEMS") == [
            f"  - service/{ns}/lost has no address: eip/nope does not exist"]
