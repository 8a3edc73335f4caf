"""Never silent: a Service holding an address no node can announce says so (issue #11).

A BGP pool without the BgpConf `default`, or without any BgpPeer, hands out addresses
no router will ever learn. The Service still gets its address (a BgpConf may follow),
but carries a Warning (NotAnnounced) and the status condition
openelb.kubesphere.io/Announceable=False naming the pool and what is missing; once the
BGP objects exist the condition turns True. Services in pools that can be announced
never get the condition (no write per Service).
"""

from typing import Any

import pytest

from openelb.kube import resources
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

CONDITION = "openelb.kubesphere.io/Announceable"
GROUP = "network.kubesphere.io/v1alpha2"


async def _condition(cluster: harness.Cluster, name: str) -> dict[str, Any] | None:
    raw = await cluster.get_service(name)
    return next((c for c in ((raw or {}).get("status") or {}).get("conditions") or ()
                 if c.get("type") == CONDITION), None)


async def _wait_condition(cluster: harness.Cluster, name: str, status: str,
                          reason: str) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        found = await _condition(cluster, name)
        assert found is not None, "no Announceable condition"
        assert (found["status"], found["reason"]) == (status, reason), found
        return found

    return await harness.eventually(check, what=f"{name}: Announceable={status} ({reason})")


async def test_a_bgp_pool_nobody_can_announce_is_reported_until_bgp_is_configured(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("routed", "203.0.113.0/28")  # protocol bgp, the default
    await controllers.start()
    await cluster.create_service("web", pool="routed")
    ip = await cluster.wait_ip("web")

    warning = await cluster.wait_event("web", "NotAnnounced", "no BgpConf named default",
                                       event_type="Warning")
    assert "eip/routed" in warning["message"]
    assert ip in warning["message"]
    found = await _wait_condition(cluster, "web", "False", "NoBgpConf")
    assert "eip/routed" in found["message"]

    await cluster.kube.create(resources.BGPCONFS, {
        "apiVersion": GROUP, "kind": "BgpConf", "metadata": {"name": "default"},
        "spec": {"as": 64512}})
    await _wait_condition(cluster, "web", "False", "NoBgpPeer")
    await cluster.wait_event("web", "NotAnnounced", "no BgpPeer", event_type="Warning")

    await cluster.kube.create(resources.BGPPEERS, {
        "apiVersion": GROUP, "kind": "BgpPeer", "metadata": {"name": "tor"},
        "spec": {"conf": {"peerAs": 64513, "neighborAddress": "192.0.2.1"}}})
    await _wait_condition(cluster, "web", "True", "Announceable")
    assert await cluster.wait_ip("web") == ip  # the address never moved


async def test_a_service_in_a_pool_that_can_be_announced_gets_no_condition(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.kube.create(resources.EIPS, {
        "apiVersion": GROUP, "kind": "Eip", "metadata": {"name": "lan"},
        "spec": {"address": "192.0.2.16/28", "protocol": "layer2", "interface": "eth0"}})
    await cluster.create_eip("routed", "203.0.113.0/28")
    await controllers.start()
    await cluster.create_service("l2", pool="lan")
    await cluster.create_service("bgp", pool="routed")
    await cluster.wait_ip("l2")
    await _wait_condition(cluster, "bgp", "False", "NoBgpConf")  # the controller got here
    assert await _condition(cluster, "l2") is None
    assert [e for e in await cluster.events("l2") if e.get("reason") == "NotAnnounced"] == []
