"""What openelb reads from a Service: ownership, requests, families, sharing."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.api import errors, service


def _svc(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }


OPT_IN = {"lb.kubesphere.io/v1alpha1": "openelb"}


def test_annotation_opts_in() -> None:
    parsed = service.LbService.parse(_svc(OPT_IN))
    assert parsed.wants_address
    assert parsed.key == "shop/web"
    assert not service.LbService.parse(_svc()).opted_in


def test_load_balancer_class_opts_in_only_when_it_is_ours() -> None:
    ours = _svc(loadBalancerClass="openelb.kubesphere.io/lb")
    assert service.LbService.parse(ours, lb_class="openelb.kubesphere.io/lb").opted_in
    assert not service.LbService.parse(ours).opted_in
    theirs = _svc(OPT_IN, loadBalancerClass="metallb.io/metallb")
    assert not service.LbService.parse(theirs, lb_class="openelb.kubesphere.io/lb").opted_in


def test_requests_pool_ips_and_families() -> None:
    parsed = service.LbService.parse(_svc(
        {**OPT_IN, "eip.openelb.kubesphere.io/v1alpha2": "v4pool, v6pool",
         "eip.openelb.kubesphere.io/v1alpha1": "192.0.2.5,2001:db8::5"},
        ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack",
        externalTrafficPolicy="Local", selector={"app": "web"},
    ))
    assert parsed.pool_names == ("v4pool", "v6pool")
    assert [str(i) for i in parsed.requested_ips] == ["192.0.2.5", "2001:db8::5"]
    assert parsed.families == (4, 6)
    assert parsed.traffic_policy is service.TrafficPolicy.LOCAL
    assert parsed.ports == frozenset({service.Port(80, "TCP")})


def test_single_stack_uses_the_first_family() -> None:
    parsed = service.LbService.parse(_svc(OPT_IN, ipFamilies=["IPv6", "IPv4"]))
    assert parsed.families == (6,)


def test_load_balancer_ip_is_read_as_a_request() -> None:
    parsed = service.LbService.parse(_svc(OPT_IN, loadBalancerIP="198.51.100.9"))
    assert [str(i) for i in parsed.requested_ips] == ["198.51.100.9"]


@pytest.mark.parametrize(
    "annotation",
    ["openelb.kubesphere.io/allow-shared-ip", "metallb.io/allow-shared-ip",
     "metallb.universe.tf/allow-shared-ip"],
)
def test_sharing_key_is_read_from_every_known_annotation(annotation: str) -> None:
    assert service.LbService.parse(_svc({**OPT_IN, annotation: "dns"})).sharing_key == "dns"


def test_status_ips_are_read_back() -> None:
    raw = _svc(OPT_IN)
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}, {"hostname": "x"}]}}
    assert [str(i) for i in service.LbService.parse(raw).assigned_ips] == ["192.0.2.5"]


@pytest.mark.parametrize(
    ("annotations", "spec", "message"),
    [
        ({"eip.openelb.kubesphere.io/v1alpha1": "192.0.2.500"}, {},
         'metadata.annotations[eip.openelb.kubesphere.io/v1alpha1]: "192.0.2.500" is not '
         "an IP address"),
        ({"eip.openelb.kubesphere.io/v1alpha1": "192.0.2.5,192.0.2.6"}, {},
         'metadata.annotations[eip.openelb.kubesphere.io/v1alpha1]: "192.0.2.5,192.0.2.6" '
         "asks for two IPv4 addresses; give at most one per family"),
        ({"eip.openelb.kubesphere.io/v1alpha1": "192.0.2.5"}, {"loadBalancerIP": "192.0.2.6"},
         "spec.loadBalancerIP: 192.0.2.6 differs from metadata.annotations"
         "[eip.openelb.kubesphere.io/v1alpha1] 192.0.2.5; set only one"),
    ],
    ids=["bad ip", "two of one family", "conflicting requests"],
)
def test_bad_requests_name_the_annotation(
    annotations: dict[str, str], spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.InvalidObject) as caught:
        service.LbService.parse(_svc({**OPT_IN, **annotations}, **spec))
    assert caught.value.message == message


def test_a_huge_bad_annotation_gives_a_bounded_message() -> None:
    """The attack run's 100,241-character annotation became one log line that long; the
    reason (webhook denial, Event, log) now stops at 512 characters and says so."""
    huge = "9" * 100_000
    with pytest.raises(errors.InvalidObject) as caught:
        service.LbService.parse(_svc({**OPT_IN, "eip.openelb.kubesphere.io/v1alpha1": huge}))
    whole = f'"{huge}" is not an IP address'
    assert caught.value.reason == (
        f"{whole[:errors.MAX_REASON]}... ({len(whole) - errors.MAX_REASON} more characters)")
