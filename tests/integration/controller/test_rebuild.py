"""Start-up replay (DESIGN §4, STYLE §2.9): the Services' statuses are the record.

A new leader replays every Service that already holds an address, oldest first, before
it assigns anything. Two Services whose statuses claim one address (a bug elsewhere,
or a restore from backup) are not "fixed" by moving one of them silently.
"""

import pytest

from openelb.api import annotations
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


async def test_of_two_services_claiming_one_address_the_older_keeps_it(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """The newer claimant gets a Warning and stays on its claim; it gets the IP once free."""
    await cluster.create_eip("lan", "192.0.2.0/28", default=True)
    # Created in this order; equal creation timestamps (1 s resolution) fall back to the
    # key, which orders them the same way.
    await cluster.create_service("first")
    await cluster.create_service("second")
    await cluster.create_service("other")
    await cluster.write_status("first", ["192.0.2.5"])
    await cluster.write_status("second", ["192.0.2.5"])
    await cluster.write_status("other", ["192.0.2.9"])

    await controllers.start()
    warning = await cluster.wait_event("second", harness.ASSIGN_IP_FAILED,
                                       event_type="Warning")
    assert (f"192.0.2.5 is already used by {cluster.namespace}/first"
            in warning["message"])


    async def first_adopted() -> None:
        raw = await cluster.get_service("first")
        assert raw is not None
        assert raw["metadata"].get("labels", {}).get(annotations.EIP_LABEL) == "lan"
        assert annotations.FINALIZER in raw["metadata"].get("finalizers", [])
        assert harness.ingress_ips(raw) == ("192.0.2.5",)

    await harness.eventually(first_adopted, what="first keeps 192.0.2.5, labelled")
    await cluster.create_service("fresh")
    assert await cluster.wait_ip("fresh") == "192.0.2.1"  # .5 and .9 are held
    assert harness.ingress_ips(await cluster.get_service("other")) == ("192.0.2.9",)
    raw = await cluster.get_service("second")
    assert set(harness.ingress_ips(raw)) <= {"192.0.2.5"}, "silently given another address"
    assert not (raw or {}).get("metadata", {}).get("labels"), "labelled as if assigned"

    await cluster.delete_service("first")
    await cluster.wait_event("second", harness.ASSIGN_IP, "assigned 192.0.2.5 from eip/lan")
    assert harness.ingress_ips(await cluster.get_service("second")) == ("192.0.2.5",)
