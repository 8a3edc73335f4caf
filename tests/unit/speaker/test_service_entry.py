"""What the speaker's Service cache keeps: identity plus the parsed Service, or None."""

from __future__ import annotations

import json
from typing import Any

from openelb.api import service
from openelb.speaker import snapshots


def lb_service(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "demo", "uid": "u1", "resourceVersion": "9",
                     "annotations": {
                         "lb.kubesphere.io/v1alpha1": "openelb",
                         "kubectl.kubernetes.io/last-applied-configuration":
                             json.dumps({"spec": {"ports": [{"port": 80}] * 50}})}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}],
                 "externalTrafficPolicy": "Local", "ipFamilies": ["IPv4"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}},
    }
    raw.update(overrides)
    return raw


def test_keeps_identity_and_the_parsed_service_only() -> None:
    raw = lb_service()
    entry = snapshots.service_entry(raw, lb_class=None)
    assert entry["metadata"] == {"name": "web", "namespace": "demo", "uid": "u1",
                                 "resourceVersion": "9"}
    assert entry[snapshots.PARSED] == service.LbService.parse(raw)
    assert set(entry) == {"metadata", snapshots.PARSED}


def test_services_not_announced_keep_no_parsed_form() -> None:
    not_assigned = lb_service(status={})
    plain = {"metadata": {"name": "db", "namespace": "demo"}, "spec": {"type": "ClusterIP"}}
    other_class = lb_service()
    other_class["metadata"] = {"name": "x", "namespace": "demo"}
    other_class["spec"] = {**other_class["spec"], "loadBalancerClass": "example.com/other"}
    invalid = lb_service()
    invalid["spec"] = {**invalid["spec"], "loadBalancerIP": "not-an-ip"}
    for raw in (not_assigned, plain, other_class):
        assert snapshots.service_entry(raw, lb_class=None)[snapshots.PARSED] is None
    # A bad annotation is the controller's to report; the speaker just does not announce.
    entry = snapshots.service_entry(invalid, lb_class=None)
    assert entry[snapshots.PARSED] is None
    assert entry["metadata"]["name"] == "web"


def test_lb_class_opt_in_is_honoured() -> None:
    raw = lb_service()
    raw["metadata"] = {**raw["metadata"], "annotations": {}}
    raw["spec"] = {**raw["spec"], "loadBalancerClass": "openelb.io/lb"}
    assert snapshots.service_entry(raw, lb_class=None)[snapshots.PARSED] is None
    parsed = snapshots.service_entry(raw, lb_class="openelb.io/lb")[snapshots.PARSED]
    assert parsed is not None
    assert parsed.key == "demo/web"
