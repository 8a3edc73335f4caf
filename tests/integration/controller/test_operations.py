"""DESIGN §7 operational surface of the controller: /metrics, /healthz, /readyz."""

from __future__ import annotations

import pytest

from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


async def test_metrics_count_addresses_per_pool_and_failures_by_reason(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("lan", "192.0.2.0/29")  # 6 usable addresses
    ctl = await controllers.start()
    await cluster.create_services(["web", "api"], pool="lan")
    await cluster.create_service("lost", pool="missing")
    await cluster.wait_ip("api")
    await cluster.wait_ip("web")
    await cluster.wait_event("lost", harness.ASSIGN_IP_FAILED, "eip/missing does not exist")

    async def exposed() -> None:
        assert await ctl.metric("openelb_addresses_total", {"eip": "lan"}) == 6
        assert await ctl.metric("openelb_addresses_in_use", {"eip": "lan"}) == 2
        assert await ctl.metric("openelb_allocation_failures_total",
                                {"reason": "unknownPool"}) >= 1

    await harness.eventually(exposed, what="pool and failure metrics")

    await cluster.delete_service("web")

    async def freed() -> None:
        assert await ctl.metric("openelb_addresses_in_use", {"eip": "lan"}) == 1

    await harness.eventually(freed, what="in-use metric after a release")


async def test_healthz_and_readyz_answer_for_leader_and_standby(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    leader = await controllers.start("leader")
    standby = await controllers.start("standby", wait="ready")
    for ctl, role in ((leader, "leading"), (standby, "standby")):
        status, text = await ctl.get("/healthz")
        assert status == 200, text
        assert text.startswith("ok; event-loop lag at most "), text
        status, text = await ctl.get("/readyz")
        assert status == 200
        assert text.startswith(role), text
    del cluster


async def test_freed_addresses_wake_only_the_services_waiting_for_them_and_warn_once(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """The attack run deleted 500 Services at once: every freed address re-queued every
    waiting Service and some 2,900 identical warnings followed. Now a free re-queues only
    Services that could use it, and a Service refused the same way again is not told
    again: each waiter carries one Warning, counted once."""
    await cluster.create_eip("small", "192.0.2.8/30")  # 2 usable addresses
    await cluster.create_eip("other", "198.51.100.4/32")  # 1 address
    ctl = await controllers.start()
    holders = [f"holder{i}" for i in range(2)]
    waiters = [f"waiter{i}" for i in range(6)]
    await cluster.create_services(holders, pool="small")
    await cluster.create_service("other-holder", pool="other")
    for name in (*holders, "other-holder"):
        await cluster.wait_ip(name)
    await cluster.create_services(waiters, pool="small")
    await cluster.create_service("other-waiter", pool="other")
    for name in (*waiters, "other-waiter"):
        await cluster.wait_event(name, harness.ASSIGN_IP_FAILED, "has no free")

    for name in holders:
        await cluster.delete_service(name)

    async def two_waiters_served() -> None:
        ips = await cluster.service_ips()
        assert len([w for w in waiters if ips.get(w)]) == 2, ips
        assert not ips.get("other-waiter")

    await harness.eventually(two_waiters_served, what="two waiters served")
    assert ctl.running
    for name in (*waiters, "other-waiter"):
        warnings = [e for e in await cluster.events(name)
                    if e.get("reason") == harness.ASSIGN_IP_FAILED]
        assert sum(int(e.get("count") or 1) for e in warnings) == 1, (name, warnings)
