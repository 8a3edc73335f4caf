"""The Eip side (DESIGN §6, OpenELB's documented behaviour): status, finalizer, disable.

The controller keeps each Eip's status current, holds its finalizer while any Service
uses its addresses, and stops handing out addresses from a disabled or deleting Eip
while the Services that already hold one keep it.
"""

from typing import Any

import pytest

from openelb.api import annotations
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


async def wait_status(cluster: harness.Cluster, name: str, **wanted: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        raw = await cluster.get_eip(name)
        assert raw is not None, f"eip/{name} is gone"
        status = raw.get("status") or {}
        differ = {k: (status.get(k), v) for k, v in wanted.items() if status.get(k) != v}
        assert not differ, f"eip/{name} status differs (got, wanted): {differ}"
        return raw

    return await harness.eventually(check, what=f"eip/{name} status")


async def test_eip_status_tracks_size_range_family_and_every_holder(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    ns = cluster.namespace
    await cluster.create_eip("lan", "192.0.2.0/28")
    await cluster.create_eip("tiny", "192.0.2.100-192.0.2.101")
    await controllers.start()
    raw = await wait_status(cluster, "lan", usage=0, poolSize=14, firstIP="192.0.2.1",
                            lastIP="192.0.2.14", v4=True, ready=True, occupied=False)
    assert annotations.FINALIZER in raw["metadata"]["finalizers"]
    assert not raw["status"].get("used")

    await cluster.create_service("web", pool="lan")
    await cluster.create_service("api", pool="lan", ip="192.0.2.7")
    await cluster.wait_ip("web")
    await cluster.wait_ip("api")
    await wait_status(cluster, "lan", usage=2, poolSize=14,
                      used={"192.0.2.1": f"{ns}/web", "192.0.2.7": f"{ns}/api"})

    await cluster.create_services(["a", "b"], pool="tiny")
    await cluster.wait_ip("b")
    await wait_status(cluster, "tiny", usage=2, poolSize=2, occupied=True)

    await cluster.delete_service("web")
    await wait_status(cluster, "lan", usage=1, used={"192.0.2.7": f"{ns}/api"})


async def test_deleting_an_eip_waits_for_its_services_which_keep_their_addresses(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("lan", "192.0.2.0/28")
    await controllers.start()
    await cluster.create_services(["web", "api"], pool="lan")
    kept = {"web": await cluster.wait_ip("web"), "api": await cluster.wait_ip("api")}
    await wait_status(cluster, "lan", usage=2)

    await cluster.delete_eip("lan")
    raw = await cluster.get_eip("lan")
    assert raw is not None
    assert raw["metadata"].get("deletionTimestamp"), "not Terminating"
    await cluster.create_service("late", pool="lan")
    await cluster.wait_event("late", harness.ASSIGN_IP_FAILED,
                             "eip/lan is disabled and takes no new assignments")
    for name, ip in kept.items():
        assert harness.ingress_ips(await cluster.get_service(name)) == (ip,)
    assert await cluster.get_eip("lan") is not None, "deleted while Services use it"

    await cluster.delete_service("web")
    await cluster.wait_gone("web")
    assert await cluster.get_eip("lan") is not None, "deleted while a Service uses it"
    await cluster.delete_service("api")

    async def gone() -> None:
        assert await cluster.get_eip("lan") is None, "eip/lan still exists"

    await harness.eventually(gone, what="eip/lan gone")
    assert not harness.ingress_ips(await cluster.get_service("late"))


async def test_a_disabled_eip_keeps_existing_addresses_and_refuses_new_services(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    await controllers.start()
    await cluster.create_service("web")
    assert await cluster.wait_ip("web") == "192.0.2.1"

    await cluster.patch_eip("lan", {"spec": {"disable": True}})
    await cluster.create_service("late")
    await cluster.wait_event("late", harness.ASSIGN_IP_FAILED,
                             "eip/lan is disabled and takes no new assignments",
                             event_type="Warning")
    await cluster.patch_service("web", {"metadata": {"labels": {"touched": "yes"}}})
    await cluster.create_service("named", pool="lan")
    await cluster.wait_event("named", harness.ASSIGN_IP_FAILED, "eip/lan is disabled")
    assert harness.ingress_ips(await cluster.get_service("web")) == ("192.0.2.1",)
    assert not harness.ingress_ips(await cluster.get_service("late"))

    await cluster.patch_eip("lan", {"spec": {"disable": False}})
    served = {await cluster.wait_ip("late"), await cluster.wait_ip("named")}
    assert served == {"192.0.2.2", "192.0.2.3"}  # waiting Services, in no promised order
    assert harness.ingress_ips(await cluster.get_service("web")) == ("192.0.2.1",)
