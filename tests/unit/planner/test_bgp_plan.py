"""What a node announces over BGP, and to whom (DESIGN §4, §6), on hand-made snapshots."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from openelb.api import bgp, nodes
from openelb.planner import bgp as bgp_plan
from openelb.planner import eligibility, snapshot
from tests.unit.factories import pool, svc

CONF = bgp.BgpConf.parse({"metadata": {"name": "default"}, "spec": {"as": 64512}})


def _peer(name: str = "tor", address: str = "192.0.2.1", **spec: Any) -> bgp.BgpPeer:
    return bgp.BgpPeer.parse({"metadata": {"name": name},
                              "spec": {"conf": {"peerAs": 64513, "neighborAddress": address},
                                       **spec}})


def _node(name: str, ip: str, *, ready: bool = True, labels: dict[str, str] | None = None,
          unavailable: bool = False) -> nodes.NodeInfo:
    v6 = ipaddress.ip_address(f"2001:db8:1::{ip.rsplit('.', 1)[1]}")
    return nodes.NodeInfo(name, labels or {}, ready, unavailable, (ipaddress.ip_address(ip), v6))


NODES = {n.name: n for n in (_node("node-a", "192.0.2.11"), _node("node-b", "192.0.2.12"))}
WEB = svc("web", pool="bgp", assigned=["203.0.113.5"])


def _snap(node: str = "node-a", **kw: Any) -> snapshot.Snapshot:
    base: dict[str, Any] = {
        "node": node, "nodes": NODES, "services": (WEB,),
        "pools": {"bgp": pool("bgp", "203.0.113.0/24")},
        "bgp_conf": CONF, "bgp_peers": (_peer(),),
    }
    base.update(kw)
    return snapshot.Snapshot(**base)


def test_node_announces_itself_as_next_hop_to_every_selected_peer() -> None:
    plan = bgp_plan.plan_bgp(_snap())
    assert plan.speaker == bgp_plan.GlobalSpec("192.0.2.11", 64512, 179, ())
    assert [str(p.address) for p in plan.peers] == ["192.0.2.1"]
    assert plan.routes["192.0.2.1"] == frozenset({bgp_plan.Route(
        ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("192.0.2.11"))})
    other = bgp_plan.plan_bgp(_snap("node-b"))
    assert {r.next_hop for r in other.routes["192.0.2.1"]} == {ipaddress.ip_address("192.0.2.12")}


@pytest.mark.parametrize(
    ("node", "why"),
    [
        (_node("node-a", "192.0.2.11", ready=False), eligibility.Skip.NODE_NOT_READY),
        (_node("node-a", "192.0.2.11", unavailable=True),
         eligibility.Skip.NODE_NETWORK_UNAVAILABLE),
        (_node("node-a", "192.0.2.11",
               labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
         eligibility.Skip.NODE_EXCLUDED),
    ],
    ids=["not ready", "network unavailable", "excluded"],
)
def test_ineligible_node_announces_nothing_and_says_why(
    node: nodes.NodeInfo, why: eligibility.Skip
) -> None:
    plan = bgp_plan.plan_bgp(_snap(nodes={**NODES, "node-a": node}))
    assert plan.routes["192.0.2.1"] == frozenset()
    assert plan.skipped == {"default/web": why}


def test_local_traffic_policy_announces_only_where_endpoints_are() -> None:
    local = svc("web", pool="bgp", assigned=["203.0.113.5"], local=True)
    endpoints = {"default/web": frozenset({"node-b"})}
    on_a = bgp_plan.plan_bgp(_snap(services=(local,), endpoints=endpoints))
    on_b = bgp_plan.plan_bgp(_snap("node-b", services=(local,), endpoints=endpoints))
    assert on_a.skipped == {"default/web": eligibility.Skip.NO_READY_ENDPOINT}
    assert on_b.announced == {"default/web": frozenset({ipaddress.ip_address("203.0.113.5")})}


def test_layer2_pool_addresses_are_not_announced_over_bgp() -> None:
    l2 = svc("lan", pool="l2", assigned=["192.0.2.200"])
    pools = {"bgp": pool("bgp", "203.0.113.0/24"), "l2": pool("l2", "192.0.2.192/26")}
    pools["l2"] = __import__("dataclasses").replace(pools["l2"], protocol="layer2")
    plan = bgp_plan.plan_bgp(_snap(services=(WEB, l2), pools=pools))
    assert set(plan.announced) == {"default/web"}


def test_peer_node_selector_and_cni_label() -> None:
    rack1 = _peer("rack1", "192.0.2.1", nodeSelector={"matchLabels": {"rack": "r1"}})
    cni = bgp.BgpPeer.parse({"metadata": {"name": "calico",
                                          "labels": {"openelb.kubesphere.io/cni": "calico"}},
                             "spec": {"conf": {"peerAs": 1, "neighborAddress": "192.0.2.9"}}})
    labelled = {**NODES, "node-a": _node("node-a", "192.0.2.11", labels={"rack": "r1"})}
    on_a = bgp_plan.plan_bgp(_snap(nodes=labelled, bgp_peers=(rack1, cni)))
    on_b = bgp_plan.plan_bgp(_snap("node-b", nodes=labelled, bgp_peers=(rack1, cni)))
    assert [p.name for p in on_a.peers] == ["rack1"]
    assert on_b.peers == ()
    assert on_b.skipped == {"default/web": eligibility.Skip.NO_PEERS}


def test_rack_as_and_configured_router_id() -> None:
    conf = bgp.BgpConf.parse({"metadata": {"name": "default"},
                              "spec": {"as": 64512, "asPerRack": {"r1": 65001},
                                       "routerId": "198.51.100.1", "listenPort": 17900}})
    labelled = {**NODES, "node-a": _node("node-a", "192.0.2.11",
                                          labels={"openelb.kubesphere.io/rack": "r1"})}
    plan = bgp_plan.plan_bgp(_snap(nodes=labelled, bgp_conf=conf))
    assert plan.speaker == bgp_plan.GlobalSpec("198.51.100.1", 65001, 17900, ())
    assert plan.peers[0].local_as == 65001


def test_without_the_default_bgpconf_nothing_is_announced() -> None:
    other = bgp.BgpConf.parse({"metadata": {"name": "other"}, "spec": {"as": 1}})
    for conf in (None, other):
        plan = bgp_plan.plan_bgp(_snap(bgp_conf=conf))
        assert plan.speaker is None
        assert plan.skipped == {"default/web": eligibility.Skip.NO_BGP_CONF}


def test_ipv6_prefixes_go_to_peers_with_the_ipv6_family() -> None:
    v6 = svc("v6", pool="bgp6", assigned=["2001:db8:100::5"], families=(6,))
    pools = {"bgp6": pool("bgp6", "2001:db8:100::/120")}
    v4_peer = _peer("v4", "192.0.2.1")
    v6_peer = _peer("v6", "2001:db8:1::1")
    plan = bgp_plan.plan_bgp(_snap(services=(v6,), pools=pools, bgp_peers=(v4_peer, v6_peer)))
    assert plan.routes["192.0.2.1"] == frozenset()
    (route,) = plan.routes["2001:db8:1::1"]
    assert str(route.prefix) == "2001:db8:100::5/128"
    assert str(route.next_hop) == "2001:db8:1::11"


def test_peer_settings_are_carried_to_the_session() -> None:
    peer = _peer(conf={"peerAs": 64513, "neighborAddress": "192.0.2.1", "authPassword": "pw"},
                 timers={"config": {"holdTime": "9"}}, ebgpMultihop={"enabled": True,
                 "multihopTtl": 4}, transport={"passiveMode": True, "remotePort": 1179},
                 gracefulRestart={"enabled": True, "restartTime": 60})
    (spec,) = bgp_plan.plan_bgp(_snap(bgp_peers=(peer,))).peers
    assert (spec.password, spec.hold_time, spec.multihop_ttl, spec.passive, spec.remote_port,
            spec.graceful_restart) == ("pw", 9.0, 4, True, 1179, 60)
