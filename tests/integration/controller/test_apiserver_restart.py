"""The controller rides out a kube-apiserver restart: it reconnects and converges.

The control plane is shared by the session, so the apiserver is always started again,
even when the test fails half-way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openelb_testenv import controlplane
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane

# The Lease outlives the outage, so the leader keeps leading instead of exiting to be
# restarted (which is what losing the Lease means, and is tested elsewhere).
PATIENT_LEASE = ("--lease-duration", "120", "--renew-deadline", "90", "--retry-period", "1")


@pytest.fixture
async def apiserver(control_plane: controlplane.ControlPlane
                    ) -> AsyncIterator[controlplane.ControlPlane]:
    """The session's control plane; its apiserver is running again after the test."""
    yield control_plane
    if control_plane.pids().get("kube-apiserver") is None:
        await control_plane.start_apiserver()


async def test_controller_reconnects_after_an_apiserver_restart_and_converges(
        cluster: harness.Cluster, controllers: Controllers,
        apiserver: controlplane.ControlPlane) -> None:
    await cluster.create_eip("main", "192.0.2.0/26", default=True)
    ctl = await controllers.start("a", *PATIENT_LEASE)
    await cluster.create_services([f"before-{i}" for i in range(10)])
    before = await cluster.wait_all_assigned(10)

    await apiserver.stop_apiserver()
    await ctl.component.wait_for_log("watch failed, retrying")
    assert ctl.running
    await apiserver.start_apiserver()
    # Created at once, while the controller is still reconnecting.

    await cluster.create_services([f"after-{i}" for i in range(10)])
    await cluster.delete_service("before-3")
    await cluster.wait_gone("before-3")
    after = await cluster.wait_all_assigned(19)
    assert {n: after[n] for n in before if n != "before-3"} == {
        n: ips for n, ips in before.items() if n != "before-3"}
    flat = [ip for ips in after.values() for ip in ips]
    assert len(flat) == len(set(flat))
    assert ctl.running
    assert await ctl.is_leading()


async def test_health_tells_an_apiserver_outage_from_a_broken_process(
        cluster: harness.Cluster, controllers: Controllers,
        apiserver: controlplane.ControlPlane) -> None:
    """Issue #13: while the apiserver is gone /readyz says which watch has been failing
    and for how long; /healthz stays ok (restarting the controller would not bring the
    apiserver back, and would drop the Lease); afterwards it is ready again on its own."""
    await cluster.create_eip("main", "192.0.2.0/26", default=True)
    ctl = await controllers.start("a", *PATIENT_LEASE, "--stale-after", "5")
    await apiserver.stop_apiserver()

    async def unready() -> str:
        status, text = await ctl.get("/readyz")
        assert status == 503, text
        assert text.startswith("watch of "), text
        assert " failing for " in text, text
        return text

    text = await harness.eventually(unready, timeout=60, what="/readyz names the watch")
    status, live = await ctl.get("/healthz")
    assert status == 200, live
    assert live.startswith("ok; event-loop lag at most"), live
    await apiserver.start_apiserver()
    await ctl.wait_leading()
    await cluster.create_service("after")
    await cluster.wait_ip("after")
    assert ctl.running
    assert "failing for" in text


async def test_a_deletion_hidden_by_compaction_is_found_by_the_relist(
        cluster: harness.Cluster, controllers: Controllers,
        apiserver: controlplane.ControlPlane) -> None:
    """Issue #13: a Service removed behind the apiserver's back (straight from etcd,
    while the apiserver is down) with etcd compacted past it: no watch event can ever
    say so, only a relist finds it gone. Here the relist comes from the 403s a
    restarted apiserver answers while its RBAC cache fills, or from the 410 Gone of a
    watch resuming below the compaction (tests/integration/test_informer_faults.py
    pins that path down); either way the address is released, and a new Service
    asking for exactly that address gets it."""
    await cluster.create_eip("main", "192.0.2.0/26", default=True)
    ctl = await controllers.start("a", *PATIENT_LEASE)
    await cluster.create_services([f"s{i}" for i in range(5)])
    before = await cluster.wait_all_assigned(5)
    (hidden_ip,) = before["s1"]

    await apiserver.stop_apiserver()
    await ctl.component.wait_for_log("watch failed, retrying")
    await apiserver.etcd_delete(f"/registry/services/specs/{cluster.namespace}/s1")
    await apiserver.etcd_compact()
    await apiserver.start_apiserver()

    await cluster.create_service("claimant", ip=hidden_ip)
    assert await cluster.wait_ip("claimant") == hidden_ip
    after = await cluster.service_ips()
    assert {n: after[n] for n in before if n != "s1"} == {
        n: ips for n, ips in before.items() if n != "s1"}
    assert ctl.running
