"""statusview.py: the report `openelb status` prints, from hand-written API objects."""

from __future__ import annotations

from typing import Any

from openelb import statusview
from openelb.api import annotations


def _svc(name: str, ip: str | None, pool: str) -> dict[str, Any]:
    status = {"loadBalancer": {"ingress": [{"ip": ip}]}} if ip else {}
    return {"metadata": {"name": name, "namespace": "shop",
                         "annotations": {annotations.LB_ANNOTATION: "openelb"},
                         "labels": {annotations.EIP_LABEL: pool}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}, "status": status}


def _eip(name: str, size: int, used: int, protocol: str = "layer2") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"address": "192.0.2.0/28", "protocol": protocol, "interface": "eth0"},
            "status": {"poolSize": size, "usage": used, "ready": True,
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "Accepted", "message": "ok"}]}}


def _event(reason: str, host: str, when: str) -> dict[str, Any]:
    return {"reason": reason, "lastTimestamp": when, "source": {"host": host},
            "involvedObject": {"kind": "Service", "namespace": "shop", "name": "web"}}


def test_the_newest_announcement_event_is_quoted() -> None:
    events = [_event("AnnounceIP", "node-a", "2026-12-06T10:00:00Z"),
              _event("WithdrawIP", "node-a", "2026-12-06T10:05:00Z"),
              _event("AnnounceIP", "node-b", "2026-12-06T10:05:01Z")]
    report = statusview.build(eips=[_eip("lan", 14, 1)], services=[_svc("web", "192.0.2.1",
                                                                         "lan")],
                              bgpconfs=[], bgppeers=[], events=events)
    (web,) = report.services
    assert web.announced == "last announced by node node-b (Event)"
    assert report.healthy
    assert statusview.render(report).startswith("openelb: healthy\n")


def test_a_nearly_full_pool_and_an_unannounced_address_are_problems() -> None:
    report = statusview.build(
        eips=[_eip("lan", 10, 9), _eip("dc", 10, 1, protocol="bgp")],
        services=[_svc("web", "192.0.2.1", "dc")], bgpconfs=[], bgppeers=[], events=[])
    assert "eip/lan is 9 of 10 used" in report.problems
    (web,) = report.services
    assert web.announced == "no node has an established BGP session"
    assert ("service/shop/web: nobody announces 192.0.2.1: no node has an established "
            "BGP session") in report.problems
