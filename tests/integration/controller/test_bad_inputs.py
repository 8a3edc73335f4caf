"""DESIGN §4 "bad objects are isolated": a Service that cannot be served says why and waits.

Each case is a Service the controller must refuse. It gets a Warning Event
(AssignIPFailed) whose message names the cause, stays pending, and gets an address as
soon as the user fixes the cause; a well-formed bystander Service is served all along
and the controller process never exits.
"""

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from openelb.api import annotations
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


@dataclasses.dataclass(frozen=True)
class Case:
    desc: str
    service: dict[str, Any]  # options of Cluster.create_service
    says: str  # in the Warning's message; {ns} is the test namespace
    fix: Callable[[harness.Cluster], Awaitable[None]]
    gets: str  # the address it holds once fixed
    setup: Callable[[harness.Cluster], Awaitable[None]] | None = None


async def create_outside_pool(cluster: harness.Cluster) -> None:
    await cluster.create_eip("late", "203.0.113.48/28")


async def create_missing_pool(cluster: harness.Cluster) -> None:
    await cluster.create_eip("missing", "203.0.113.64/28")


async def hold_fallback_ip(cluster: harness.Cluster) -> None:
    # Assigned, not requested: two Services that both request one IP may share it.
    await cluster.create_service("holder", pool="fallback")
    assert await cluster.wait_ip("holder") == "198.51.100.1"


async def delete_holder(cluster: harness.Cluster) -> None:
    await cluster.delete_service("holder")


async def fill_small_pool(cluster: harness.Cluster) -> None:
    await cluster.create_eip("small", "192.0.2.10", namespaces=[cluster.namespace])
    await cluster.create_service("holder")
    await cluster.wait_ip("holder")


async def add_second_pool(cluster: harness.Cluster) -> None:
    await cluster.create_eip("more", "192.0.2.20-192.0.2.29", namespaces=[cluster.namespace])


async def bind_pool_elsewhere(cluster: harness.Cluster) -> None:
    await cluster.create_eip("red", "192.0.2.32/29", namespace_selector={"team": "red"})


async def label_namespace(cluster: harness.Cluster) -> None:
    await cluster.label_namespace(cluster.namespace, {"team": "red"})


async def create_loopback_pool(cluster: harness.Cluster) -> None:
    await cluster.create_eip("loop", "127.0.0.0/8")


async def replace_loopback_pool(cluster: harness.Cluster) -> None:
    await cluster.delete_eip("loop")
    await cluster.create_eip("loop", "203.0.113.80/28")


async def correct_annotation(cluster: harness.Cluster) -> None:
    await cluster.patch_service("bad", {"metadata": {"annotations": {
        annotations.REQUESTED_IP_ANNOTATION: "198.51.100.7"}}})


CASES = [
    Case("requested IP outside every pool", {"ip": "203.0.113.50"},
         "203.0.113.50 is not inside any Eip", create_outside_pool, "203.0.113.50"),
    Case("unknown pool", {"pool": "missing"},
         "eip/missing does not exist", create_missing_pool, "203.0.113.65"),
    Case("requested IP taken", {"ip": "198.51.100.1"},
         "198.51.100.1 is already used by {ns}/holder", delete_holder, "198.51.100.1",
         setup=hold_fallback_ip),
    Case("pool exhausted", {},
         "eip/small has no free IPv4 address", add_second_pool, "192.0.2.20",
         setup=fill_small_pool),
    Case("pool bound to other namespaces", {"pool": "red"},
         "eip/red is bound to other namespaces, not {ns}", label_namespace, "192.0.2.33",
         setup=bind_pool_elsewhere),
    Case("pool in loopback addresses", {"pool": "loop"},
         "eip/loop is invalid: spec.address: 127.0.0.0/8 reaches into 127.0.0.0/8, loopback",
         replace_loopback_pool, "203.0.113.81", setup=create_loopback_pool),
    Case("requested IP annotation not an IP", {"ip": "198.51.100.x"},
         f'metadata.annotations[{annotations.REQUESTED_IP_ANNOTATION}]: '
         '"198.51.100.x" is not an IP address', correct_annotation, "198.51.100.7"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
async def test_a_refused_service_says_why_waits_and_is_served_once_fixed(
        case: Case, cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("fallback", "198.51.100.0/28")
    ctl = await controllers.start()
    if case.setup is not None:
        await case.setup(cluster)

    await cluster.create_service("bad", **case.service)
    warning = await cluster.wait_event("bad", harness.ASSIGN_IP_FAILED,
                                       event_type="Warning")
    assert case.says.format(ns=cluster.namespace) in warning["message"]
    await cluster.create_service("bystander", pool="fallback")
    assert await cluster.wait_ip("bystander") != case.gets
    assert not harness.ingress_ips(await cluster.get_service("bad")), "refused, yet assigned"

    await case.fix(cluster)
    assert await cluster.wait_ip("bad") == case.gets
    assert ctl.running
    assert await ctl.metric("openelb_allocation_failures_total") >= (
        0 if "not an IP" in case.says else 1)
