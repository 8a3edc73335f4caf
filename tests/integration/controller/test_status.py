"""`openelb status` against the real apiserver with a controller running (issue #17):
the content a user reads, not only the exit code.

The speakers' part of the cluster state is written here as speakers write it: the
per-node BGP session status of a BgpPeer, and an AnnounceIP Event of a layer-2 owner.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openelb.kube import resources
from openelb_testenv import controlplane
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

GROUP = "network.kubesphere.io/v1alpha2"


def _status(kubeconfig: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "openelb", "status", "--kubeconfig",
                           str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


async def _session(cluster: harness.Cluster, node: str, state: str, reason: str) -> None:
    """What the speaker on `node` writes into the BgpPeer's status."""
    await cluster.kube.patch(resources.BGPPEERS, "tor", {"status": {"nodesPeerStatus": {
        node: {"peerState": {"neighborAddress": "192.0.2.254", "peerAs": 64513,
                             "sessionState": state, "reason": reason or None}}}}},
        subresource="status")


async def test_status_shows_pools_services_sessions_and_every_problem(
        cluster: harness.Cluster, controllers: Controllers,
        control_plane: controlplane.ControlPlane) -> None:
    kube = cluster.kube
    await controllers.start()
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    await kube.create(resources.EIPS, {"apiVersion": GROUP, "kind": "Eip",
                                       "metadata": {"name": "office"},
                                       "spec": {"address": "198.51.100.0/28",
                                                "protocol": "layer2", "interface": "eth0"}})
    await cluster.create_eip("late", "192.0.2.8/29")  # overlaps lan: not ready
    await kube.create(resources.BGPCONFS, {"apiVersion": GROUP, "kind": "BgpConf",
                                           "metadata": {"name": "default"},
                                           "spec": {"as": 64512}})
    await kube.create(resources.BGPPEERS, {"apiVersion": GROUP, "kind": "BgpPeer",
                                           "metadata": {"name": "tor"}, "spec": {"conf": {
                                               "peerAs": 64513,
                                               "neighborAddress": "192.0.2.254"}}})
    await cluster.create_service("web")
    await cluster.create_service("arp", pool="office")
    await cluster.create_service("lost", pool="nope")
    web = await cluster.wait_ip("web")
    arp = await cluster.wait_ip("arp")
    await cluster.wait_event("lost", harness.ASSIGN_IP_FAILED)
    await _session(cluster, "node-a", "BGP_FSM_ESTABLISHED", "")
    await _session(cluster, "node-b", "BGP_FSM_ACTIVE", "connectionRefused")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await kube.create(resources.EVENTS, {  # as node-c's speaker posts it
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "arp.announce", "namespace": cluster.namespace},
        "involvedObject": {"kind": "Service", "apiVersion": "v1",
                           "namespace": cluster.namespace, "name": "arp"},
        "reason": "AnnounceIP", "type": "Normal",
        "message": f"announcing {arp} from node node-c by ARP/NDP (layer-2 owner)",
        "source": {"component": "openelb-speaker", "host": "node-c"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1}, cluster.namespace)

    async def settled() -> str:
        code, text = await asyncio.to_thread(_status, control_plane.kubeconfig)
        assert code == 1, text  # problems were found
        assert "pools not ready yet" not in text
        assert "eip/late is not ready: spec.address: 192.0.2.8/29 overlaps eip/lan" in text
        return text

    text = await harness.eventually(settled, what="status shows the late pool's conflict")
    ns = cluster.namespace
    lines = text.splitlines()
    assert lines[0] == "openelb: PROBLEMS FOUND"
    header = next(line for line in lines if line.startswith("NAME "))
    assert header.split() == ["NAME", "MODE", "RANGE", "SIZE", "USED", "FREE", "READY"]
    lan = next(line for line in lines if line.startswith("lan (default)"))
    assert lan.split()[2:8] == ["bgp", "192.0.2.0/28", "14", "1", "13", "yes"]
    assert lan.index("bgp") == header.index("MODE")  # columns line up
    office = next(line for line in lines if line.startswith("office "))
    assert office.split()[1:6] == ["layer2", "198.51.100.0/28", "14", "1", "13"]
    web_line = next(line for line in lines if line.startswith(f"{ns}/web "))
    assert web_line.split()[1:5] == [web, "lan", "bgp", "assigned"]
    assert "by BGP, nodes with a session: node-a" in web_line
    arp_line = next(line for line in lines if line.startswith(f"{ns}/arp "))
    assert "last announced by node node-c (Event)" in arp_line
    lost_line = next(line for line in lines if line.startswith(f"{ns}/lost "))
    assert "pending: eip/nope does not exist" in lost_line
    session_b = next(line for line in lines if line.startswith("tor ") and "node-b" in line)
    # No downtime written by this stand-in speaker, and no prefixes while not up.
    assert session_b.split() == ["tor", "node-b", "192.0.2.254", "active", "-", "-",
                                 "connectionRefused"]
    problems = text.split("PROBLEMS\n", 1)[1]
    assert f"service/{ns}/lost has no address: eip/nope does not exist" in problems
    assert ("BGP session of node node-b with bgppeer/tor is active (connectionRefused)"
            in problems)

    code, out = await asyncio.to_thread(_status, control_plane.kubeconfig, "-o", "json")
    assert code == 1
    data: dict[str, Any] = json.loads(out)
    assert data["healthy"] is False
    assert {p["name"]: p["ready"] for p in data["pools"]}["lan"] == "yes"


async def test_the_leader_counts_addresses_nobody_announces(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """openelb_addresses_unannounced (issue #17, the OpenelbAddressUnannounced alert):
    a layer-2 address that no node's NodeAnnouncement lists counts, until a speaker's
    fresh record lists it; a BGP address counts while no node has a session."""
    kube = cluster.kube
    ctl = await controllers.start()
    await kube.create(resources.EIPS, {"apiVersion": GROUP, "kind": "Eip",
                                       "metadata": {"name": "office"},
                                       "spec": {"address": "198.51.100.0/28",
                                                "protocol": "layer2", "interface": "eth0"}})
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    await cluster.create_service("arp", pool="office")
    await cluster.create_service("web")
    arp = await cluster.wait_ip("arp")
    await cluster.wait_ip("web")

    async def counted(mode: str, value: float) -> None:
        async def check() -> None:
            got = await ctl.metric("openelb_addresses_unannounced", {"mode": mode})
            assert got == value, (mode, got)

        await harness.eventually(check, what=f"{value} {mode} addresses unannounced")

    await counted("layer2", 1)
    await counted("bgp", 1)

    node = f"node-{cluster.namespace[-6:]}"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await kube.create(resources.NODE_ANNOUNCEMENTS, {  # as that node's speaker writes it
        "apiVersion": "openelb.kubesphere.io/v1alpha1", "kind": "NodeAnnouncement",
        "metadata": {"name": node},
        "status": {"renewTime": now, "layer2": {arp: f"{cluster.namespace}/arp"},
                   "layer2Count": 1}})
    try:
        await counted("layer2", 0)
        await counted("bgp", 1)  # still no BGP session anywhere
    finally:
        await kube.delete(resources.NODE_ANNOUNCEMENTS, node)
