"""kube/leases.py against the real kube-apiserver: a replica takes a Lease that nobody
renews once its own lease duration has passed, whatever duration the Lease claims, and
never takes one that its holder keeps renewing (DESIGN §2, issue #19)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client as k8s

from openelb.kube import client, leases, resources

LEASE = "openelb-controller"
FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


@contextlib.asynccontextmanager
async def electing(kube: client.Kube, namespace: str, identity: str
                   ) -> AsyncIterator[leases.LeaderElector]:
    elector = leases.LeaderElector(kube, leases.LeaseSettings(namespace, LEASE, identity, **FAST))
    task = asyncio.create_task(elector.run())
    try:
        yield elector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_forged_lease_claiming_years_expires_after_our_own_duration(
        admin: k8s.ApiClient, admin_kube: client.Kube, namespace: str) -> None:
    """What a stolen speaker token did before its Lease rights were removed: another
    holder, leaseDurationSeconds 2e9. A replica takes over once 2 s (its own duration)
    pass without a renewal, instead of waiting 63 years."""
    await k8s.CoordinationV1Api(admin).create_namespaced_lease(namespace, {
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 2_000_000_000}})
    async with electing(admin_kube, namespace, "replica-a") as elector:
        async with asyncio.timeout(30):
            await elector.leading.wait()
        lease = await admin_kube.get(resources.LEASES, LEASE, namespace)
        assert lease["spec"]["holderIdentity"] == "replica-a"
        assert lease["spec"]["leaseDurationSeconds"] == 2


async def test_a_lease_its_holder_renews_is_never_taken(
        admin_kube: client.Kube, namespace: str) -> None:
    async with electing(admin_kube, namespace, "replica-a") as leader:
        async with asyncio.timeout(30):
            await leader.leading.wait()
        async with electing(admin_kube, namespace, "replica-b") as standby:
            # Three of the standby's lease durations, while the leader renews.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3 * FAST["lease_duration"]):
                    await standby.leading.wait()
            assert standby.state is leases.State.FOLLOWING
        assert leader.state is leases.State.LEADING
