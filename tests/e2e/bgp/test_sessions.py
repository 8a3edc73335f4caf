"""BGP sessions end to end: passwords, node selection, peers added live, IPv6, status.

Each story runs three real `openelb speaker`s (one per node namespace), the controller
and the real apiserver against BIRD (one router flavour is enough here: these stories
are about what the speaker does with its sessions; test_bgp_mode.py covers the
flavours). Waits poll with generous timeouts; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

GROUP, VERSION = "network.kubesphere.io", "v1alpha2"
NODE_ASN = netlab.NODE_ASN
NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}
NODES_V6 = {"node-a": "2001:db8:1::11", "node-b": "2001:db8:1::12", "node-c": "2001:db8:1::13"}
EVERY_NODE = set(NODES.values())
ESTABLISHED = "BGP_FSM_ESTABLISHED"
PASSWORD = "s3cret-md5"  # what the router expects from every node
SELECT_LABEL = "bgp.example.com/peer-with"


def _namespace() -> str:
    return f"e2e-{uuid.uuid4().hex[:6]}"


async def _hops(c: testenv_cluster.Cluster, prefix: str, expected: set[str],
                timeout: float = 60.0) -> None:
    await c.lab.router.wait_for_routes(prefix, expected, timeout, kernel=True)


async def _status(c: testenv_cluster.Cluster, plural: str, name: str) -> dict[str, Any]:
    obj = await k8s.CustomObjectsApi(c.api).get_cluster_custom_object(
        GROUP, VERSION, plural, name)
    return dict(obj.get("status") or {})


async def _peer_states(c: testenv_cluster.Cluster, peer: str) -> dict[str, str]:
    """Node -> sessionState, as the speakers wrote them into BgpPeer `peer`'s status."""
    nodes = (await _status(c, "bgppeers", peer)).get("nodesPeerStatus") or {}
    return {node: str(((entry or {}).get("peerState") or {}).get("sessionState", ""))
            for node, entry in nodes.items()}


async def _wait_peer_states(c: testenv_cluster.Cluster, peer: str,
                            expected: dict[str, str], timeout: float = 60.0) -> None:
    async def probe() -> tuple[bool, object]:
        seen = await _peer_states(c, peer)
        return seen == expected, seen

    await netlab.poll_until(f"bgppeer/{peer} nodesPeerStatus == {expected}", probe, timeout)


async def _bird_since(c: testenv_cluster.Cluster) -> dict[str, str]:
    """BGP protocol -> `Since` column of `birdc show protocols` (ms resolution): it
    changes whenever the session goes down or comes up again."""
    text = await c.lab.router.birdc("show", "protocols")  # type: ignore[attr-defined]
    since = {}
    for line in text.splitlines():
        match = re.match(r"^(peer_\S+)\s+BGP\s+\S+\s+\S+\s+(\S+)", line)
        if match:
            since[match.group(1)] = match.group(2)
    return since


# --- TCP MD5 ------------------------------------------------------------------------------


async def test_md5_wrong_password_never_establishes_and_right_one_does(
    cluster: ClusterFactory,
) -> None:
    """The router wants a password from every node. With a wrong authPassword no session
    ever comes up, no route is learned and every node's BgpPeer status says so; with
    the right one (the same BgpPeer, edited) all three sessions and next hops appear."""
    peers = tuple(netlab.Peer(ipaddress.ip_address(ip), password=PASSWORD)
                  for ip in NODES.values())
    ns = _namespace()
    async with cluster(router="bird", ipv6=False,
                       bgp=netlab.RouterConfig(peers=peers)) as c:
        await c.bgp(password="not-the-password")
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")

        # Every speaker reports the session, and none of them as established.
        async def all_nodes_report() -> tuple[bool, object]:
            seen = await _peer_states(c, "router-0")
            return set(seen) == set(NODES), seen

        await netlab.poll_until("every node reports bgppeer/router-0", all_nodes_report, 60)
        # Several connection attempts of both sides (router retries every 2 s): none
        # may get through the kernel's TCP-MD5 check.
        for _ in range(20):
            sessions = await c.lab.router.sessions()
            assert netlab.SessionState.ESTABLISHED not in sessions.values(), sessions
            states = await _peer_states(c, "router-0")
            assert set(states) == set(NODES), states
            assert ESTABLISHED not in states.values(), states
            assert await c.lab.router.kernel_routes(f"{vip}/32") == set()
            await asyncio.sleep(0.5)

        # The right password: the same BgpPeer, edited.
        await c.bgp(password=PASSWORD)
        await c.lab.router.wait_for_sessions(peers=EVERY_NODE, timeout=60)
        await _hops(c, f"{vip}/32", EVERY_NODE)
        await _wait_peer_states(c, "router-0", dict.fromkeys(NODES, ESTABLISHED))


# --- nodeSelector -------------------------------------------------------------------------


async def test_node_selector_picks_which_nodes_peer(cluster: ClusterFactory) -> None:
    """A BgpPeer selecting 2 of 3 nodes gives exactly their 2 next hops, and only they
    report status; moving the label from one node to the third moves the next hop."""
    ns = _namespace()
    async with cluster(router="bird", ipv6=False) as c:
        for name in ("node-a", "node-b"):
            await c.register_node(c.lab.node(name), labels={SELECT_LABEL: "router"})
        await c.bgp(nodeSelector={"matchLabels": {SELECT_LABEL: "router"}})
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")

        await _hops(c, f"{vip}/32", {NODES["node-a"], NODES["node-b"]})
        await _wait_peer_states(c, "router-0", {"node-a": ESTABLISHED, "node-b": ESTABLISHED})
        sessions = await c.lab.router.sessions()
        assert sessions[NODES["node-c"]] != netlab.SessionState.ESTABLISHED, sessions

        # node-c gains the label, node-b loses it (its peer is removed from its ExaBGP).
        await c.register_node(c.lab.node("node-c"), labels={SELECT_LABEL: "router"})
        await c.register_node(c.lab.node("node-b"))
        await _hops(c, f"{vip}/32", {NODES["node-a"], NODES["node-c"]})
        await _wait_peer_states(c, "router-0", {"node-a": ESTABLISHED, "node-c": ESTABLISHED})


# --- a second peer ------------------------------------------------------------------------


async def test_adding_a_second_peer_does_not_reset_the_first(cluster: ClusterFactory) -> None:
    """With IPv4 sessions up and a /32 learned from every node, an IPv6 BgpPeer is added:
    the IPv6 sessions come up, while the IPv4 sessions keep their established-since time
    at the router and the /32 never loses a next hop meanwhile."""
    ns = _namespace()
    async with cluster(router="bird") as c:
        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await _hops(c, f"{vip}/32", EVERY_NODE)
        await c.lab.router.wait_for_sessions(peers=EVERY_NODE)
        before = await _bird_since(c)
        v4_protocols = {name for name in before if name.startswith("peer_192_0_2_")}
        assert len(v4_protocols) == 3, before

        seen: list[set[str]] = []

        async def watch() -> None:
            while True:
                seen.append(await c.lab.router.kernel_routes(f"{vip}/32"))
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            await c.bgp(peers=[str(c.lab.router_host.ipv6)], name_prefix="router-v6")
            await c.lab.router.wait_for_sessions(peers=set(NODES_V6.values()), timeout=60)
            await _wait_peer_states(c, "router-v6-0", dict.fromkeys(NODES, ESTABLISHED))
        finally:
            watcher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watcher
        after = await _bird_since(c)
        assert {p: after[p] for p in v4_protocols} == {p: before[p] for p in v4_protocols}
        assert seen
        assert all(hops == EVERY_NODE for hops in seen), seen
        await _wait_peer_states(c, "router-0", dict.fromkeys(NODES, ESTABLISHED))


# --- IPv6 ---------------------------------------------------------------------------------


async def test_ipv6_service_gets_a_128_through_every_node(cluster: ClusterFactory) -> None:
    """An IPv6 Eip and an IPv6-only Service, announced over an IPv6 session to the
    router's 2001:db8:1::1: the router has the /128 via all three nodes, and HTTP over
    IPv6 from the remote client reaches more than one node."""
    ns = _namespace()
    async with cluster(router="bird") as c:
        await c.bgp(peers=[str(c.lab.router_host.ipv6)])
        await c.eip("bgp-pool-v6", "2001:db8:3::/120")
        await c.service(ns, "web6", pool="bgp-pool-v6", families=("IPv6",))
        (vip,) = await c.wait_for_ips(ns, "web6")
        assert ipaddress.ip_address(vip) in ipaddress.ip_network("2001:db8:3::/120")

        await _hops(c, f"{vip}/128", set(NODES_V6.values()))
        await c.serve_vips(vip)
        assert len(await c.answering_nodes(vip)) >= 2


# --- status -------------------------------------------------------------------------------


async def test_every_node_writes_its_conf_and_peer_status(cluster: ClusterFactory) -> None:
    """BgpConf `default` lists each node's router id (its InternalIP) and AS; the BgpPeer
    lists each node's established session, with the addresses and ASes it uses."""
    async with cluster(router="bird", ipv6=False) as c:
        await c.bgp()
        await c.lab.router.wait_for_sessions(peers=EVERY_NODE)
        expected_conf = {node: {"routerId": ip, "as": NODE_ASN} for node, ip in NODES.items()}

        async def conf_status() -> tuple[bool, object]:
            seen = (await _status(c, "bgpconfs", "default")).get("nodesConfStatus")
            return seen == expected_conf, seen

        await netlab.poll_until("bgpconf/default nodesConfStatus", conf_status, 60)
        await _wait_peer_states(c, "router-0", dict.fromkeys(NODES, ESTABLISHED))
        peers = (await _status(c, "bgppeers", "router-0"))["nodesPeerStatus"]
        for node, ip in NODES.items():
            state = peers[node]["peerState"]
            assert state["neighborAddress"] == str(c.lab.router_host.ipv4), state
            assert (state["peerAs"], state["localAs"]) == (netlab.ROUTER_ASN, NODE_ASN), state
            assert state["routerId"] == ip, state


async def test_a_new_router_id_resets_the_sessions_and_the_routes_come_back(
    cluster: ClusterFactory,
) -> None:
    """BgpConf `routerId` changes on live sessions: every node re-establishes under the
    new id (the status says so) and announces its /32 again (ExaBGP keeps routes per
    session identity, so the speaker must send them anew)."""
    ns = _namespace()
    async with cluster(router="bird", ipv6=False) as c:
        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await _hops(c, f"{vip}/32", EVERY_NODE)
        before = await _bird_since(c)

        await c.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "BgpConf",
                       "metadata": {"name": "default"},
                       "spec": {"as": NODE_ASN, "routerId": "192.0.2.250"}})

        async def reestablished() -> tuple[bool, object]:
            now = await _bird_since(c)
            sessions = await c.lab.router.sessions()
            return all(now[p] != before[p] for p in before) and all(
                s == netlab.SessionState.ESTABLISHED for s in sessions.values()), now

        await netlab.poll_until("every session re-established", reestablished, 60)
        await _hops(c, f"{vip}/32", EVERY_NODE)
        expected_conf = {node: {"routerId": "192.0.2.250", "as": NODE_ASN} for node in NODES}
        assert (await _status(c, "bgpconfs", "default"))["nodesConfStatus"] == expected_conf


# --- a peer that cannot be reached says why ---------------------------------------------


async def _peer_reasons(c: testenv_cluster.Cluster, peer: str) -> dict[str, str]:
    nodes = (await _status(c, "bgppeers", peer)).get("nodesPeerStatus") or {}
    return {node: str(((entry or {}).get("peerState") or {}).get("reason", ""))
            for node, entry in nodes.items()}


async def test_a_peer_that_cannot_be_reached_says_why_in_its_status(
        cluster: ClusterFactory) -> None:
    """Before, such a BgpPeer only showed BGP_FSM_IDLE (issue #19). Now each node writes
    why: the router's BGP daemon is down (connectionRefused), no host has the address
    (noRoute: ARP gets no answer), the address is the node's own (neighborIsThisNode).
    The reason clears once the session comes up."""
    async with cluster(router="bird") as c:
        await c.bgp()
        await _wait_peer_states(c, "router-0", dict.fromkeys(NODES, ESTABLISHED))
        await c.bgp(peers=["192.0.2.99"], name_prefix="nobody")
        await c.bgp(peers=[NODES["node-a"]], name_prefix="itself",
                    nodeSelector={"matchLabels": {"kubernetes.io/hostname": "node-a"}})
        await c.lab.router.stop()
        expected = {
            "router-0": dict.fromkeys(NODES, "connectionRefused"),
            "nobody-0": dict.fromkeys(NODES, "noRoute"),
            "itself-0": {"node-a": "neighborIsThisNode"},
        }

        async def reasons() -> tuple[bool, object]:
            seen = {peer: await _peer_reasons(c, peer) for peer in expected}
            return seen == expected, seen

        await netlab.poll_until("every unreachable peer's reason", reasons, 60.0)

        await c.lab.router.start()
        await _wait_peer_states(c, "router-0", dict.fromkeys(NODES, ESTABLISHED))

        async def cleared() -> tuple[bool, object]:
            seen = await _peer_reasons(c, "router-0")
            return seen == dict.fromkeys(NODES, ""), seen

        await netlab.poll_until("reason cleared once established", cleared, 30.0)
