"""BGP mode end to end: real routers learn every node's own next hop (DESIGN §4).

Each story runs against BIRD, FRR and GoBGP in a namespace lab with three node
namespaces, each running a real `openelb speaker`, the controller and the real apiserver.
Waits poll with generous timeouts; nothing asserts on elapsed time.
"""

from __future__ import annotations

import signal
import uuid

import pytest

from openelb_testenv import cluster as testenv_cluster
from tests.e2e.conftest import ClusterFactory

pytestmark = pytest.mark.root

NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}
EVERY_NODE = set(NODES.values())


async def _hops(c: testenv_cluster.Cluster, prefix: str, expected: set[str],
                timeout: float = 60.0) -> None:
    assert c.lab.router is not None
    await c.lab.router.wait_for_routes(prefix, expected, timeout, kernel=True)


@pytest.mark.parametrize("router_flavour", ["bird", "frr", "gobgp"])
async def test_bgp_story(cluster: ClusterFactory, router_flavour: str) -> None:
    """Assign -> 3 ECMP next hops and HTTP from several nodes; ETP=Local follows the
    endpoints; delete withdraws; SIGKILL drops one next hop within the hold time and a
    restart brings it back; SIGTERM withdraws promptly; a router restart relearns all."""
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    async with cluster(router=router_flavour) as c:
        await c.bgp()
        await c.eip("bgp-pool", "203.0.113.0/24")

        # A Service gets an address; every node announces itself.
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await _hops(c, f"{vip}/32", EVERY_NODE)
        await c.serve_vips(vip)
        assert len(await c.answering_nodes(vip)) >= 2

        # externalTrafficPolicy Local: only the node with an endpoint, and it follows.
        await c.service(ns, "local", pool="bgp-pool", local=True)
        (local_vip,) = await c.wait_for_ips(ns, "local")
        await c.set_endpoints(ns, "local", ["node-b"])
        await _hops(c, f"{local_vip}/32", {NODES["node-b"]})
        await c.set_endpoints(ns, "local", ["node-c"])
        await _hops(c, f"{local_vip}/32", {NODES["node-c"]})

        # Deleting the Service withdraws its route everywhere.
        await c.delete_service(ns, "local")
        await _hops(c, f"{local_vip}/32", set())

        # SIGKILL: the session dies with the process; the router drops node-a's path
        # when the hold time (9 s) expires. A restarted speaker announces again.
        c.speakers["node-a"].signal(signal.SIGKILL)
        await _hops(c, f"{vip}/32", EVERY_NODE - {NODES["node-a"]})
        await c.restart_speaker("node-a")
        await _hops(c, f"{vip}/32", EVERY_NODE)

        # SIGTERM: the speaker withdraws before it exits.
        c.speakers["node-b"].signal(signal.SIGTERM)
        assert await c.speakers["node-b"].wait(30) == 0
        await _hops(c, f"{vip}/32", EVERY_NODE - {NODES["node-b"]}, timeout=10)
        await c.restart_speaker("node-b")
        await _hops(c, f"{vip}/32", EVERY_NODE)

        # The router restarts: everything is learned again.
        assert c.lab.router is not None
        await c.lab.router.restart()
        await _hops(c, f"{vip}/32", EVERY_NODE, timeout=90)
        events = await c.events(ns, "AnnounceIP")
        assert any("from node node-a over BGP" in e for e in events), events
