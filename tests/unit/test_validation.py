"""The one validator (validation.py): the verdicts the webhook, `openelb validate` and the
controller share, with the words a user reads."""

from __future__ import annotations

from typing import Any

from openelb import validation
from openelb.api import annotations, service
from tests.unit import factories

OLD_POOLS = [
    factories.pool("lan", "192.0.2.0/28", created="2026-01-01T00:00:00Z"),
    factories.pool("dc", "198.51.100.0/24", default=True, created="2026-01-02T00:00:00Z"),
]


def _eip(name: str, address: str, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if spec.pop("default", False):
        meta["annotations"] = {annotations.DEFAULT_EIP_ANNOTATION: "true"}
    return {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": meta,
            "spec": {"address": address, **spec}}


def _peer(name: str, address: str, selector: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"conf": {"peerAs": 64513, "neighborAddress": address}}
    if selector is not None:
        spec["nodeSelector"] = selector
    return {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": name}, "spec": spec}


def test_an_eip_overlapping_one_in_use_is_refused_naming_it() -> None:
    verdict = validation.check_eip(_eip("new", "192.0.2.8-192.0.2.20"), None, OLD_POOLS)
    assert verdict.error == "spec.address: 192.0.2.8-192.0.2.20 overlaps eip/lan"


def test_the_newcomer_is_refused_even_when_its_name_sorts_first() -> None:
    verdict = validation.check_eip(_eip("a", "198.51.100.7"), None, OLD_POOLS)
    assert verdict.error == "spec.address: 198.51.100.7 overlaps eip/dc"


def test_a_second_default_eip_is_refused() -> None:
    verdict = validation.check_eip(_eip("other", "203.0.113.0/28", default=True), None,
                                   OLD_POOLS)
    assert verdict.error == (f"metadata.annotations[{annotations.DEFAULT_EIP_ANNOTATION}]: "
                             "eip/dc is already the default Eip; only one may be")


def test_a_reversed_range_and_a_missing_interface_are_refused_alone() -> None:
    reversed_range = validation.check_eip(_eip("r", "192.0.2.20-192.0.2.10"), None, ())
    assert reversed_range.error == (
        "spec.address: range start 192.0.2.20 is after end 192.0.2.10")
    no_nic = validation.check_eip(_eip("l2", "203.0.113.0/28", protocol="layer2"), None, ())
    assert no_nic.error == "spec.interface: required when spec.protocol is layer2"


def test_the_address_is_immutable() -> None:
    verdict = validation.check_eip(_eip("lan", "192.0.2.0/27"), _eip("lan", "192.0.2.0/28"),
                                   OLD_POOLS)
    assert verdict.error == ("spec.address: is immutable (was 192.0.2.0/28); create a new "
                             "Eip instead")


def test_an_existing_problem_does_not_block_other_edits_of_that_eip() -> None:
    """An overlap that predates the webhook: disabling the broken pool must stay possible."""
    old = _eip("late", "192.0.2.4/30")
    edited = _eip("late", "192.0.2.4/30", disable=True)
    verdict = validation.check_eip(edited, old, OLD_POOLS)
    assert verdict.allowed
    assert verdict.warnings == ("spec.address: 192.0.2.4/30 overlaps eip/lan",)
    # ... but an edit that adds a problem is refused.
    worse = validation.check_eip(_eip("lan", "192.0.2.0/28", default=True),
                                 _eip("lan", "192.0.2.0/28"), OLD_POOLS)
    assert "already the default Eip" in worse.error


def test_updating_a_pool_does_not_compare_it_with_itself() -> None:
    same = validation.check_eip(_eip("lan", "192.0.2.0/28", priority=3),
                                _eip("lan", "192.0.2.0/28"), OLD_POOLS)
    assert same == validation.Verdict()


def test_a_duplicate_peer_from_the_same_nodes_is_refused() -> None:
    existing = [validation.bgp.BgpPeer.parse(_peer("tor", "192.0.2.254"))]
    twin = validation.check_bgppeer(_peer("tor2", "192.0.2.254"), existing)
    assert twin.error == ("spec.conf.neighborAddress: bgppeer/tor already peers with "
                          "192.0.2.254 from the same nodes; give the two different "
                          "spec.nodeSelector or merge them")
    rack_a = {"matchLabels": {"rack": "a"}}
    rack_b = {"matchLabels": {"rack": "b"}}
    racks = [validation.bgp.BgpPeer.parse(_peer("tor-a", "192.0.2.254", rack_a))]
    assert validation.check_bgppeer(_peer("tor-b", "192.0.2.254", rack_b), racks).allowed
    assert not validation.check_bgppeer(_peer("tor-a2", "192.0.2.254", rack_a), racks).allowed
    # An update of the peer itself is no duplicate.
    assert validation.check_bgppeer(_peer("tor", "192.0.2.254"), existing).allowed


def test_a_bgpconf_nobody_reads_is_accepted_with_a_warning() -> None:
    body = {"metadata": {"name": "mine"}, "spec": {"as": 64512}}
    verdict = validation.check_bgpconf(body)
    assert verdict.allowed
    assert verdict.warnings == ('metadata.name: only the BgpConf named "default" is used; '
                                "this one is ignored",)
    bad = validation.check_bgpconf({"metadata": {"name": "default"}, "spec": {"as": 0}})
    assert bad.error.startswith("spec.as: ")


def _service(ns: str = "shop", **notes: str) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": ns,
                         "annotations": {"lb.kubesphere.io/v1alpha1": "openelb", **notes}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}],
                     "selector": {"app": "web"}}}


def _check(raw: dict[str, Any], holders: dict[str, list[service.LbService]] | None = None,
           pool_list: list[Any] | None = None) -> validation.Verdict:
    held = holders or {}
    return validation.check_service(
        raw, lb_class=None, pool_list=OLD_POOLS if pool_list is None else pool_list,
        namespace_labels={}, holders=lambda ip: held.get(str(ip), []))


def test_service_warnings_use_the_controllers_words() -> None:
    assert _check(_service(**{annotations.POOL_ANNOTATION: "nope"})).warnings == (
        "eip/nope does not exist",)
    assert _check(_service(**{annotations.REQUESTED_IP_ANNOTATION: "203.0.113.9"})).warnings == (
        "203.0.113.9 is not inside any Eip",)
    bound = [*OLD_POOLS, factories.pool("team", "203.0.113.0/28", namespaces=["team"])]
    assert _check(_service(**{annotations.POOL_ANNOTATION: "team"}),
                  pool_list=bound).warnings == (
        "eip/team is bound to other namespaces, not shop",)
    assert _check(_service(**{annotations.POOL_ANNOTATION: "lan"})) == validation.Verdict()


def test_a_service_asking_for_a_held_address_is_warned_who_holds_it() -> None:
    holder = factories.svc("db", "shop", ip="192.0.2.5", assigned=["192.0.2.5"])
    verdict = _check(_service(**{annotations.REQUESTED_IP_ANNOTATION: "192.0.2.5"}),
                     holders={"192.0.2.5": [holder]})
    assert len(verdict.warnings) == 1
    assert verdict.warnings[0].startswith("192.0.2.5 cannot be shared with shop/db: ")
