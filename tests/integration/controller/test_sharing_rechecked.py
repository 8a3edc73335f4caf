"""Sharing is checked again when a sharer changes (issue #12, item 6): the Service whose
edit broke MetalLB's rules moves to another address, with an AssignIP Event and a
SharingBroken Warning naming the rule; the other keeps the shared one. Here the edit
makes one of two Cluster Services Local while both select the same pods, a mix MetalLB
refuses."""

import pytest

from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

KEY = {"openelb.kubesphere.io/allow-shared-ip": "web"}


async def test_the_service_that_breaks_the_sharing_rules_moves_the_other_stays(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    await controllers.start()
    await cluster.create_service("http", extra_annotations=KEY, port=80)
    await cluster.create_service("https", extra_annotations=KEY, port=443)
    shared = await cluster.wait_ip("http")
    assert await cluster.wait_ip("https") == shared
    await cluster.patch_service("https", {"spec": {"selector": {"app": "http"}}})

    await cluster.patch_service("https", {"spec": {"externalTrafficPolicy": "Local"}})

    async def moved() -> str:
        ips = harness.ingress_ips(await cluster.get_service("https"))
        assert ips, "no address"
        assert ips[0] != shared, "still on the shared address"
        return ips[0]

    new = await harness.eventually(moved, what="https moves off the shared address")
    event = await cluster.wait_event("https", "AssignIP", new)
    assert new in event["message"]
    why = await cluster.wait_event("https", "SharingBroken", event_type="Warning")
    assert why["message"] == (
        f"no longer shares {shared} with {cluster.namespace}/http: externalTrafficPolicy "
        f"Local cannot share an IP with Cluster; moved to {new}")
    assert [e for e in await cluster.events("http") if e.get("reason") == "SharingBroken"] == []
    assert harness.ingress_ips(await cluster.get_service("http")) == (shared,)
