"""DESIGN §4 IP stability: restarts never move an address that is still valid.

One story on 1,000 assigned Services. Between controller restarts the cluster changes
in ways that must not matter to them: nothing at all, an unrelated Eip appears, a Service
in the middle is deleted while no controller runs, the pools' priorities swap. After
each restart the controller must converge (a new canary Service gets an address and
every Service was reconciled) with every surviving Service on the address it had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

COUNT = 1000
# RFC 2544's benchmarking range: like the documentation ranges, never routed, and big
# enough for 1,000 addresses.
MAIN = "198.18.0.0/21"
SPARE = "198.18.8.0/24"


@dataclasses.dataclass(frozen=True)
class Step:
    desc: str
    change: Callable[[harness.Cluster], Awaitable[None]]  # made while no controller runs
    gone: str | None = None  # a Service the change deletes
    canary_pool: str = "main"


async def nothing(cluster: harness.Cluster) -> None:
    del cluster


async def add_unrelated_eip(cluster: harness.Cluster) -> None:
    await cluster.create_eip("unrelated", "203.0.113.0/24", default=True)


async def delete_middle_service(cluster: harness.Cluster) -> None:
    await cluster.delete_service("svc-0500")  # our finalizer keeps it until released


async def swap_priorities(cluster: harness.Cluster) -> None:
    await cluster.patch_eip("spare", {"spec": {"priority": 0}})


STEPS = [
    Step("a plain restart moves nothing and writes nothing", nothing),
    Step("an unrelated default Eip appears: nothing moves", add_unrelated_eip),
    Step("svc-0500 is deleted while no controller runs: it is released, nothing else moves",
         delete_middle_service, gone="svc-0500"),
    Step("the spare pool now has the better priority: new Services go there, old ones stay",
         swap_priorities, canary_pool="spare"),
]


async def converged(cluster: harness.Cluster, ctl: harness.Controller, canary: str,
                    services: int) -> tuple[str, str]:
    """Wait until a new Service is assigned and every existing one was reconciled."""
    await cluster.create_service(canary)
    ip, pool = await cluster.wait_assigned(canary, timeout=120)

    async def all_reconciled() -> None:
        done = await ctl.metric("openelb_reconcile_total", {"kind": "service"})
        assert done >= services, f"{done:g} of {services} reconciled"

    await harness.eventually(all_reconciled, timeout=120, what="every Service reconciled")
    return ip, pool


async def test_restarts_never_move_an_assigned_address(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    ns = cluster.namespace
    await cluster.create_eip("main", MAIN, namespaces=[ns], priority=1)
    await cluster.create_eip("spare", SPARE, namespaces=[ns], priority=2)
    ctl = await controllers.start()
    names = [f"svc-{i:04d}" for i in range(COUNT)]
    await cluster.create_services(names, concurrency=32)
    before = await cluster.wait_all_assigned(COUNT, timeout=180)
    assert len(set(before.values())) == COUNT, "duplicate addresses"

    for number, step in enumerate(STEPS):
        assert await ctl.stop() == 0, f"{step.desc}: controller exited badly"
        versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"]
                    for s in await cluster.list_services(ns)}
        await step.change(cluster)
        ctl = await controllers.start()
        canary = f"canary-{number}"
        canary_ip, canary_pool = await converged(cluster, ctl, canary, len(before) + 1)
        if step.gone:
            await cluster.wait_gone(step.gone)
            del before[step.gone]
        raw_after = await cluster.list_services(ns)
        after = {s["metadata"]["name"]: harness.ingress_ips(s) for s in raw_after}
        moved = {n: (ips, after.get(n)) for n, ips in before.items() if after.get(n) != ips}
        assert not moved, f"{step.desc}: {len(moved)} moved, e.g. {list(moved.items())[:5]}"
        assert canary_pool == step.canary_pool, step.desc
        if number == 0:
            rewritten = [s["metadata"]["name"] for s in raw_after
                         if s["metadata"]["name"] in versions
                         and s["metadata"]["resourceVersion"] != versions[s["metadata"]["name"]]]
            assert not rewritten, f"{step.desc}: {len(rewritten)} Services were written"
        all_ips = [ip for ips in after.values() for ip in ips]
        assert len(all_ips) == len(set(all_ips)), f"{step.desc}: duplicate addresses"
        before = {**before, canary: (canary_ip,)}
