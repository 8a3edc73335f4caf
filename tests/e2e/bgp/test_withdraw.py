"""SIGTERM withdraws a speaker's routes at once, whatever the session negotiated.

A speaker that exits closes its sessions, and a router drops the routes of a closed
session at once — unless graceful restart was negotiated: then the router keeps them
as stale for the restart time (here 120 s), so the speaker must withdraw them itself
before it goes. BIRD is graceful-restart aware by default. Waits poll with generous
timeouts (well below the restart time); nothing asserts on elapsed time.
"""

from __future__ import annotations

import signal
import uuid

import pytest

from tests.e2e.conftest import ClusterFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

NODES = {"node-a": "192.0.2.11", "node-b": "192.0.2.12", "node-c": "192.0.2.13"}
EVERY_NODE = set(NODES.values())


@pytest.mark.parametrize("graceful_restart", [False, True], ids=["plain", "graceful-restart"])
async def test_sigterm_withdraws_before_exit(cluster: ClusterFactory,
                                             graceful_restart: bool) -> None:
    """Three next hops; SIGTERM to node-a's speaker -> its next hop leaves the router's
    kernel long before a graceful-restart helper would have dropped stale routes."""
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    extra = ({"gracefulRestart": {"enabled": True, "restartTime": 120}}
             if graceful_restart else {})
    async with cluster(router="bird", ipv6=False) as c:
        await c.bgp(**extra)
        await c.eip("bgp-pool", "203.0.113.0/24")
        await c.service(ns, "web", pool="bgp-pool")
        (vip,) = await c.wait_for_ips(ns, "web")
        await c.lab.router.wait_for_routes(f"{vip}/32", EVERY_NODE, 60, kernel=True)

        c.speakers["node-a"].signal(signal.SIGTERM)
        assert await c.speakers["node-a"].wait(30) == 0
        await c.lab.router.wait_for_routes(f"{vip}/32", EVERY_NODE - {NODES["node-a"]}, 30,
                                           kernel=True)
