"""statusview.py: the report `openelb status` prints, from hand-written API objects."""

from __future__ import annotations

import datetime
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


def _record(node: str, layer2: dict[str, str], renewed: str) -> dict[str, Any]:
    return {"metadata": {"name": node},
            "status": {"layer2": layer2, "layer2Count": len(layer2), "renewTime": renewed}}


def test_layer2_owners_come_from_fresh_node_records() -> None:
    now = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    records = [_record("node-a", {"192.0.2.1": "shop/web"}, "2026-12-06T11:59:30Z"),
               _record("node-b", {"192.0.2.1": "shop/web"}, "2026-12-06T11:50:00Z")]
    report = statusview.build(eips=[_eip("lan", 14, 1)],
                              services=[_svc("web", "192.0.2.1", "lan")], bgpconfs=[],
                              bgppeers=[], events=[], announcements=records, now=now)
    (web,) = report.services
    assert web.announced == "answers ARP/NDP: node-a"  # node-b's record is stale
    assert ("node node-b's speaker has not renewed its NodeAnnouncement for 600 s: is it "
            "running?") in report.problems


def test_two_owners_or_none_are_problems() -> None:
    now = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    fresh = "2026-12-06T11:59:59Z"
    records = [_record("node-a", {"192.0.2.1": "shop/web"}, fresh),
               _record("node-b", {"192.0.2.1": "shop/web"}, fresh)]
    two = statusview.build(eips=[_eip("lan", 14, 1)],
                           services=[_svc("web", "192.0.2.1", "lan")], bgpconfs=[],
                           bgppeers=[], events=[], announcements=records, now=now)
    assert "service/shop/web: 2 nodes claim 192.0.2.1: node-a, node-b" in two.problems
    none = statusview.build(eips=[_eip("lan", 14, 1)],
                            services=[_svc("web", "192.0.2.1", "lan")], bgpconfs=[],
                            bgppeers=[], events=[],
                            announcements=[_record("node-c", {}, fresh)], now=now)
    assert "service/shop/web: no node answers ARP/NDP for 192.0.2.1" in none.problems


def test_sessions_show_how_long_they_have_been_up_or_down_and_prefixes_sent() -> None:
    now = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)
    peer = {"metadata": {"name": "tor"}, "status": {"nodesPeerStatus": {
        "node-a": {"peerState": {"sessionState": "BGP_FSM_ESTABLISHED",
                                 "neighborAddress": "192.0.2.254"},
                   "timersState": {"uptime": "2026-12-06T09:57:55Z",
                                   "downtime": "2026-12-06T09:50:00Z"}},
        "node-b": {"peerState": {"sessionState": "BGP_FSM_ACTIVE", "reason": "noAnswer",
                                 "neighborAddress": "192.0.2.254"},
                   "timersState": {"downtime": "2026-12-06T11:59:48Z"}}}}}
    records = [{"metadata": {"name": n}, "status": {"bgpPrefixes": 7,
                                                    "renewTime": "2026-12-06T11:59:30Z"}}
               for n in ("node-a", "node-b")]
    report = statusview.build(eips=[], services=[], bgpconfs=[], bgppeers=[peer], events=[],
                              announcements=records, now=now)
    a, b = report.sessions
    assert (a.state, a.since, a.age, a.prefixes) == (
        "BGP_FSM_ESTABLISHED", "2026-12-06T09:57:55Z", "2h02m", 7)
    assert (b.age, b.prefixes, b.reason) == ("12s", None, "noAnswer")
    text = statusview.render(report)
    assert "PEER  NODE    NEIGHBOR     STATE        FOR    PREFIXES  REASON" in text
    assert "tor   node-a  192.0.2.254  established  2h02m  7         -" in text
    assert "tor   node-b  192.0.2.254  active       12s    -         noAnswer" in text


def test_unannounced_counts_addresses_no_fresh_record_or_session_covers() -> None:
    """What the controller exports as openelb_addresses_unannounced{mode}."""
    now = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)
    fresh = {"metadata": {"name": "node-a"}, "status": {
        "renewTime": "2026-12-06T11:59:00Z", "layer2": {"192.0.2.10": "shop/web"},
        "vip": {"198.51.100.5": "shop/db"}}}
    stale = {"metadata": {"name": "node-b"}, "status": {
        "renewTime": "2026-12-06T11:50:00Z", "layer2": {"192.0.2.11": "shop/api"}}}
    addresses = {"lan": ["192.0.2.10", "192.0.2.11"], "vips": ["198.51.100.5"],
                 "dc": ["203.0.113.1", "203.0.113.2"]}
    modes = {"lan": "layer2", "vips": "vip", "dc": "bgp"}
    down = {"status": {"nodesPeerStatus": {"node-a": {"peerState": {
        "sessionState": "BGP_FSM_ACTIVE"}}}}}
    up = {"status": {"nodesPeerStatus": {"node-b": {"peerState": {
        "sessionState": "BGP_FSM_ESTABLISHED"}}}}}
    assert statusview.unannounced(addresses, modes, [fresh, stale], [down], now) == {
        "bgp": 2, "layer2": 1, "vip": 0}
    assert statusview.unannounced(addresses, modes, [fresh, stale], [down, up], now) == {
        "bgp": 0, "layer2": 1, "vip": 0}
    assert statusview.unannounced(addresses, modes, [], [up], now) == {
        "bgp": 0, "layer2": 2, "vip": 1}
