"""Faults the speaker recovers from on its own, visible while they last (issue #13, item 5).

ExaBGP killed under a running speaker: the speaker's /readyz says so (and /healthz does
not ask for a restart: the speaker restarts ExaBGP itself), ExaBGP comes back, the
session is re-established and the router's kernel holds the route via that node again.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (
                task / "children").exists() else []
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def _exabgp_of(speaker_pid: int) -> int:
    for pid in _descendants(speaker_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"exabgp" in arg for arg in argv):
            return pid
    raise AssertionError(f"no ExaBGP under speaker pid {speaker_pid}")


async def test_exabgp_killed_is_restarted_and_the_route_comes_back(
        cluster: ClusterFactory) -> None:
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    async with cluster(router="bird") as c:
        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        every = set(NODES.values())
        await c.lab.router.wait_for_routes(f"{vip}/32", every, 60, kernel=True)

        victim = _exabgp_of(c.speakers["node-a"].pid)
        os.kill(victim, signal.SIGKILL)

        async def unready() -> tuple[bool, object]:
            code, body = await c.speaker_probe("node-a", "/readyz")
            return (code == "503" and "exabgp not running" in body), (code, body)

        await netlab.poll_until("node-a's /readyz names ExaBGP", unready, 20.0,
                                interval=0.05)
        code, body = await c.speaker_probe("node-a", "/healthz")
        assert code == "200", body  # the speaker restarts ExaBGP: no pod restart needed

        async def ready_again() -> tuple[bool, object]:
            code, body = await c.speaker_probe("node-a", "/readyz")
            return code == "200", (code, body)

        await netlab.poll_until("node-a ready again", ready_again, 60.0)
        assert _exabgp_of(c.speakers["node-a"].pid) != victim
        await c.lab.router.wait_for_routes(f"{vip}/32", every, 60, kernel=True)
        assert c.speakers["node-a"].running
