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
        assert (status, text.strip()) == (200, "ok")
        status, text = await ctl.get("/readyz")
        assert status == 200
        assert text.startswith(role), text
    del cluster
