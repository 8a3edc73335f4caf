"""DESIGN §6 pool choice, through real Services, and release in every way a Service lets go.

Each story runs the controller as its own process under its ServiceAccount; the test
acts as the admin and only reads what the controller wrote: the status, the pool label,
the finalizer, the Events and the Eip's status.
"""

import pytest

from openelb.api import annotations
from tests.integration.controller import harness
from tests.integration.controller.conftest import Controllers

pytestmark = pytest.mark.controlplane


async def assert_assigned(cluster: harness.Cluster, name: str, ip: str, pool: str, *,
                          namespace: str | None = None) -> None:
    """The Service holds `ip` from `pool`: status, label, finalizer and AssignIP Event."""
    got = await cluster.wait_ip(name, namespace=namespace)
    assert got == ip

    async def marked() -> None:  # the status goes first, label and finalizer right after
        raw = await cluster.get_service(name, namespace=namespace)
        assert raw is not None
        meta = raw["metadata"]
        assert (meta.get("labels") or {}).get(annotations.EIP_LABEL) == pool
        assert annotations.FINALIZER in (meta.get("finalizers") or [])

    await harness.eventually(marked, what=f"pool label and finalizer on {name}")
    await cluster.wait_event(name, harness.ASSIGN_IP, f"assigned {ip} from eip/{pool}",
                             namespace=namespace, event_type="Normal")


async def assert_released(cluster: harness.Cluster, name: str, ip: str, why: str, *,
                          namespace: str | None = None) -> None:
    """Status cleared, label and finalizer gone (or the Service gone), ReleaseIP Event."""

    async def check() -> None:
        raw = await cluster.get_service(name, namespace=namespace)
        if raw is None:
            return  # deleted: the finalizer was removed
        meta = raw["metadata"]
        assert not harness.ingress_ips(raw), f"status still holds {harness.ingress_ips(raw)}"
        assert annotations.EIP_LABEL not in (meta.get("labels") or {}), "pool label kept"
        assert annotations.FINALIZER not in (meta.get("finalizers") or []), "finalizer kept"

    await harness.eventually(check, what=f"service {name} released")
    await cluster.wait_event(name, harness.RELEASE_IP, f"released {ip}: {why}",
                             namespace=namespace, event_type="Normal")


async def eip_usage(cluster: harness.Cluster, name: str) -> int:
    raw = await cluster.get_eip(name)
    assert raw is not None
    return int((raw.get("status") or {}).get("usage", -1))


async def wait_usage(cluster: harness.Cluster, name: str, usage: int) -> None:
    async def check() -> None:
        assert await eip_usage(cluster, name) == usage

    await harness.eventually(check, what=f"eip/{name} usage {usage}")


async def test_named_pool_is_used_and_freed_when_the_service_is_deleted(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """A Service naming eip/lan gets lan's first usable address, not the default pool's."""
    await cluster.create_eip("lan", "192.0.2.0/28")
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await controllers.start()

    await cluster.create_service("web", pool="lan")
    await assert_assigned(cluster, "web", "192.0.2.1", "lan")  # OpenELB #425: .0 skipped
    await wait_usage(cluster, "lan", 1)

    await cluster.delete_service("web")
    await assert_released(cluster, "web", "192.0.2.1", "being deleted")
    await cluster.wait_gone("web")
    await wait_usage(cluster, "lan", 0)


async def test_requested_ip_annotation_picks_the_pool_holding_it_and_type_change_frees_it(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """The IP asked for in eip.openelb.kubesphere.io/v1alpha1 decides the pool."""
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await cluster.create_eip("dmz", "192.0.2.10-192.0.2.19")
    await controllers.start()

    await cluster.create_service("web", ip="192.0.2.15")
    await assert_assigned(cluster, "web", "192.0.2.15", "dmz")

    await cluster.patch_service("web", {"spec": {"type": "ClusterIP"}})
    await assert_released(cluster, "web", "192.0.2.15", "no longer type LoadBalancer")
    await wait_usage(cluster, "dmz", 0)


async def test_spec_load_balancer_ip_picks_the_pool_holding_it_and_opting_out_frees_it(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """The legacy spec.loadBalancerIP requests an address just like the annotation."""
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await cluster.create_eip("dmz", "192.0.2.10-192.0.2.19")
    await controllers.start()

    await cluster.create_service("web", load_balancer_ip="192.0.2.12")
    await assert_assigned(cluster, "web", "192.0.2.12", "dmz")

    await cluster.patch_service(
        "web", {"metadata": {"annotations": {annotations.LB_ANNOTATION: None}}})
    await assert_released(cluster, "web", "192.0.2.12", "no longer handled by openelb")
    await wait_usage(cluster, "dmz", 0)


async def test_namespace_pools_go_by_priority_and_a_full_one_is_skipped(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """Pools bound to the namespace win over the default; lower priority first, full last."""
    ns = cluster.namespace
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await cluster.create_eip("second", "192.0.2.20-192.0.2.29", namespaces=[ns], priority=5)
    await cluster.create_eip("first", "192.0.2.10", namespaces=[ns], priority=1)
    await controllers.start()

    await cluster.create_service("one")
    await assert_assigned(cluster, "one", "192.0.2.10", "first")
    await cluster.create_service("two")  # "first" holds one address and is full now
    await assert_assigned(cluster, "two", "192.0.2.20", "second")

    await cluster.delete_service("one")
    await assert_released(cluster, "one", "192.0.2.10", "being deleted")
    await cluster.create_service("three")  # "first" has room again and wins
    await assert_assigned(cluster, "three", "192.0.2.10", "first")


async def test_namespace_selector_binds_a_pool_to_labelled_namespaces_only(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    blue = await cluster.create_namespace({"team": "blue"})
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await cluster.create_eip("blue-pool", "192.0.2.32/29", namespace_selector={"team": "blue"})
    await controllers.start()

    await cluster.create_service("web", namespace=blue)
    await assert_assigned(cluster, "web", "192.0.2.33", "blue-pool", namespace=blue)
    await cluster.create_service("web")  # the test's own namespace carries no label
    await assert_assigned(cluster, "web", "198.51.100.1", "fallback")

    await cluster.delete_service("web", namespace=blue)
    await assert_released(cluster, "web", "192.0.2.33", "being deleted", namespace=blue)


async def test_a_service_naming_no_pool_gets_the_default_pool(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    await cluster.create_eip("plain", "192.0.2.0/28")
    await cluster.create_eip("fallback", "198.51.100.0/28", default=True)
    await controllers.start()

    await cluster.create_service("web")
    await assert_assigned(cluster, "web", "198.51.100.1", "fallback")
    await cluster.create_service("api")
    await assert_assigned(cluster, "api", "198.51.100.2", "fallback")

    await cluster.patch_service(
        "api", {"metadata": {"annotations": {annotations.LB_ANNOTATION: None}}})
    await assert_released(cluster, "api", "198.51.100.2", "no longer handled by openelb")


async def test_a_pool_bound_to_another_namespace_is_never_used_here(
        cluster: harness.Cluster, controllers: Controllers) -> None:
    """Even as the only pool with room, a pool bound elsewhere serves no one here."""
    elsewhere = await cluster.create_namespace()
    await cluster.create_eip("theirs", "192.0.2.0/28", namespaces=[elsewhere])
    await cluster.create_eip("fallback", "198.51.100.1", default=True)
    await controllers.start()

    await cluster.create_service("web")
    await assert_assigned(cluster, "web", "198.51.100.1", "fallback")
    await cluster.create_service("api")  # the default is full; "theirs" is not an option
    await cluster.wait_event("api", harness.ASSIGN_IP_FAILED,
                             "eip/fallback has no free IPv4 address", event_type="Warning")
    await cluster.create_service("web", namespace=elsewhere)
    await assert_assigned(cluster, "web", "192.0.2.1", "theirs", namespace=elsewhere)
    raw = await cluster.get_service("api")
    assert not harness.ingress_ips(raw)
