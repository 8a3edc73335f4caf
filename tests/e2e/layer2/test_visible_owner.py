"""Who answers for a layer-2 address is in the API (issue #17, item 2): each speaker
writes its node's NodeAnnouncement, `openelb status` reads it, and a failover moves the
address from the dead owner's record to the heir's.

A SIGKILLed speaker cannot clear its record: the record keeps the address until it is
three minutes old, and meanwhile the heir's record has it too. `openelb status` says
both (two nodes claim it) rather than hide either; the owner the LAN actually reaches
is the heir, which the test checks first.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

NODES = ("node-a", "node-b", "node-c")
REACH = ("can_reach:192.0.2.1", "can_reach:2001:db8:1::1")


async def _records(c: testenv_cluster.Cluster) -> dict[str, dict[str, Any]]:
    listing = await k8s.CustomObjectsApi(c.api).list_cluster_custom_object(
        "openelb.kubesphere.io", "v1alpha1", "nodeannouncements")
    return {i["metadata"]["name"]: i.get("status") or {} for i in listing["items"]}


async def _holders(c: testenv_cluster.Cluster, ip: str) -> set[str]:
    return {node for node, status in (await _records(c)).items()
            if ip in (status.get("layer2") or {})}


def _status_text(c: testenv_cluster.Cluster) -> str:
    done = subprocess.run([sys.executable, "-m", "openelb", "status", "--kubeconfig",
                           str(c.cp.kubeconfig)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout + done.stderr


async def test_the_owner_is_recorded_and_moves_with_a_failover(
        cluster: ClusterFactory) -> None:
    ns = lan.namespace()
    async with cluster(router=None) as c:
        vip = await lan.web(c, ns, "web", pool="lan", protocol="layer2", interface=REACH)
        owner = lan.expected_owner(vip, NODES)
        await lan.wait_for_owner(c, vip, owner)

        async def recorded(expected: set[str]) -> None:
            async def probe() -> tuple[bool, object]:
                holders = await _holders(c, vip)
                return holders == expected, holders

            await netlab.poll_until(f"{vip} recorded by {expected}", probe, 30.0)

        await recorded({owner})

        async def every_node() -> tuple[bool, object]:
            names = set(await _records(c))
            return names == set(NODES), names

        await netlab.poll_until("a record per node", every_node, 30.0)
        records = await _records(c)
        assert records[owner]["layer2"][vip] == f"{ns}/web"
        assert records[owner]["layer2Count"] == 1

        text = await asyncio.to_thread(_status_text, c)
        line = next(line for line in text.splitlines() if line.startswith(f"{ns}/web "))
        assert line.rstrip().endswith(f"answers ARP/NDP: {owner}"), text

        heir = lan.expected_owner(vip, [n for n in NODES if n != owner])
        c.speakers[owner].signal(signal.SIGKILL)
        await lan.wait_for_owner(c, vip, heir)
        await recorded({owner, heir})  # the dead speaker could not clear its record
        text = await asyncio.to_thread(_status_text, c)
        assert f"service/{ns}/web: 2 nodes claim {vip}" in text

        # A restarted speaker takes its address back and rewrites its record; the heir
        # lets go and says so.
        await c.restart_speaker(owner)
        await lan.wait_for_owner(c, vip, owner)
        await recorded({owner})
        text = await asyncio.to_thread(_status_text, c)
        line = next(line for line in text.splitlines() if line.startswith(f"{ns}/web "))
        assert line.rstrip().endswith(f"answers ARP/NDP: {owner}"), text
