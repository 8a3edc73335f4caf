"""Migrating users never wait in silence: a Service still carrying Porter's opt-in
(`lb.kubesphere.io/v1alpha1: porter`) gets one Warning naming the value openelb serves,
and an address as soon as it is changed (issue #12, item 6)."""

import asyncio

import pytest

from openelb.api import annotations
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


async def test_a_porter_service_is_told_the_current_opt_in_and_served_once_changed(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    await controllers.start()
    await cluster.create_service("old", opt_in=False, extra_annotations={
        annotations.LB_ANNOTATION: "porter"})
    warning = await cluster.wait_event("old", "ObsoleteAnnotation", event_type="Warning")
    assert "lb.kubesphere.io/v1alpha1: openelb" in warning["message"]
    await cluster.patch_service("old", {"metadata": {"labels": {"touched": "yes"}}})
    await cluster.create_service("bystander")
    await cluster.wait_ip("bystander")  # the controller went past "old" again meanwhile
    await asyncio.sleep(0.5)
    told = [e for e in await cluster.events("old") if e.get("reason") == "ObsoleteAnnotation"]
    assert len(told) == 1
    assert (told[0].get("count") or 1) == 1  # said once, not on every change
    assert harness.ingress_ips(await cluster.get_service("old")) == ()

    await cluster.patch_service("old", {"metadata": {"annotations": {
        annotations.LB_ANNOTATION: annotations.LB_ANNOTATION_VALUE}}})
    assert await cluster.wait_ip("old")
