"""Heartbeats go at the full rate only where layer-2 failover needs them (issue #13,
item 4), and failover is as fast as ever once a pool needs it.

Three speakers on one LAN, first with no layer-2 pool (as in a BGP-only cluster): once
they have heard each other, each sends its peers a heartbeat every far interval (2 s)
instead of every 0.25 s. A layer-2 pool on eth0 makes them share a segment: the full
rate returns, the owner answers the LAN client, and killing it moves the address to the
next node by the rule within the usual timeout.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

NODES = ("node-a", "node-b", "node-c")
WINDOW_S = 4.0


async def _sent(c: testenv_cluster.Cluster, node: str) -> dict[str, float]:
    return {scope: await c.speaker_metric(node, "openelb_heartbeat_sent_total",
                                          f'scope="{scope}"') for scope in ("near", "far")}


async def _rate(c: testenv_cluster.Cluster, node: str) -> dict[str, float]:
    """Heartbeats `node` sent per second over WINDOW_S, by scope."""
    before = await _sent(c, node)
    await asyncio.sleep(WINDOW_S)
    after = await _sent(c, node)
    return {scope: (after[scope] - before[scope]) / WINDOW_S for scope in before}


async def test_no_shared_pool_means_slow_heartbeats_and_a_pool_brings_back_failover(
        cluster: ClusterFactory) -> None:
    async with cluster(router=None) as c:
        # No layer-2 pool: after the grace period every peer is far.
        async def all_far() -> tuple[bool, object]:
            rate = await _rate(c, "node-a")
            return rate["near"] == 0, rate

        rate = await netlab.poll_until("node-a's peers all far", all_far, 30.0, interval=0)
        # Two peers, one heartbeat each every 2 s: 1 per second (0.25 s would be 8).
        assert rate["far"] <= 1.5, rate

        ns = lan.namespace()
        vip, owner, heir = await lan.settled_owner(c, ns, interface=("eth0", "eth0"),
                                                   nodes=NODES)

        async def near_again() -> tuple[bool, object]:
            rate = await _rate(c, heir)
            return rate["near"] >= 6 and rate["far"] == 0, rate

        await netlab.poll_until(f"{heir}'s peers near", near_again, 30.0, interval=0)
        c.speakers[owner].signal(signal.SIGKILL)
        # The 1 s timeout applies again: the heir answers well within the 10 s here.
        await lan.wait_for_client(c, vip, heir, timeout=10.0)
