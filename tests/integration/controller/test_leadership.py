"""DESIGN §2, §4: one active controller; a standby takes over without duplicating addresses.

Two controller processes with different identities share one Lease. Killing the leader
outright (SIGKILL) leaves the Lease to expire; stopping it (SIGTERM) hands it over at once.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from openelb.kube import resources
from tests.integration.controller import harness
from tests.integration.controller.conftest import CONTROLLER_NAMESPACE, Controllers

pytestmark = pytest.mark.controlplane

SHORT_LEASE = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")
# Long enough that only an explicit release lets the standby in within the wait below.
LONG_LEASE = ("--lease-duration", "120", "--renew-deadline", "60", "--retry-period", "0.5")


async def test_standby_takes_over_a_killed_leader_and_no_address_is_given_twice(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """SIGKILL the leader while 300 Services are being created: all end assigned, once."""
    await cluster.create_eip("main", "198.18.0.0/22", default=True)
    first = await controllers.start("first", *SHORT_LEASE)
    standby = await controllers.start("standby", *SHORT_LEASE, wait="ready")
    assert not await standby.is_leading()

    names = [f"svc-{i:03d}" for i in range(300)]
    creating = asyncio.create_task(cluster.create_services(names, concurrency=4))

    async def some_assigned() -> None:
        ips = await cluster.service_ips()
        assert sum(1 for v in ips.values() if v) >= 50, "fewer than 50 assigned"

    await harness.eventually(some_assigned, interval=0.05, what="50 Services assigned")
    assert not creating.done(), "all Services were created before the leader was killed"
    first.component.kill()  # SIGKILL: no release, the Lease must expire
    await standby.wait_leading()
    await creating

    ips = await cluster.wait_all_assigned(len(names))
    flat = [ip for v in ips.values() for ip in v]
    assert len(flat) == len(set(flat)), "an address was given twice"
    assert standby.running


async def test_sigterm_hands_the_lease_to_the_standby(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """A stopped leader releases the Lease: the standby leads long before it would expire."""
    await cluster.create_eip("main", "192.0.2.0/28", default=True)
    first = await controllers.start("first", *LONG_LEASE)
    standby = await controllers.start("standby", *LONG_LEASE, wait="ready")
    await cluster.create_service("before")
    await cluster.wait_ip("before")

    first.signal(signal.SIGTERM)
    assert await first.wait_exit() == 0
    await standby.wait_leading(timeout=60)
    lease = await cluster.kube.get(resources.LEASES, controllers.lease_name,
                                   CONTROLLER_NAMESPACE)
    assert lease["spec"]["holderIdentity"] == "standby"

    await cluster.create_service("after")
    assert await cluster.wait_ip("after") == "192.0.2.2"
    assert harness.ingress_ips(await cluster.get_service("before")) == ("192.0.2.1",)
