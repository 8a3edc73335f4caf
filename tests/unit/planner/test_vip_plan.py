"""VIP mode's plan: every node agrees on the VRRP instances, their ids and priorities,
and the master is the node the layer-2 ownership rule picks."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from openelb.api import nodes
from openelb.planner import eligibility, ownership, snapshot, vip
from tests.unit.factories import pool, svc

NODES = ("node-a", "node-b", "node-c")
VIPS = dataclasses.replace(pool("vips", "192.0.2.0/24"), protocol="vip", interface="eth0")
VIPS6 = dataclasses.replace(pool("vips6", "2001:db8::/120"), protocol="vip", interface="eth0")
LAN = dataclasses.replace(pool("lan", "198.51.100.0/24"), protocol="layer2", interface="eth0")


def _nodes(v6: bool = True) -> dict[str, nodes.NodeInfo]:
    return {n: nodes.NodeInfo(n, {}, True, False, (
        ipaddress.ip_address(f"203.0.113.{11 + i}"),
        *((ipaddress.ip_address(f"2001:db8:1::{11 + i}"),) if v6 else ())))
        for i, n in enumerate(NODES)}


def _snap(node: str, services: tuple, **kw: object) -> snapshot.Snapshot:
    base: dict[str, object] = {"nodes": _nodes(), "pools": {"vips": VIPS, "vips6": VIPS6,
                                                            "lan": LAN}}
    base.update(kw)
    return snapshot.Snapshot(node=node, services=services, **base)  # type: ignore[arg-type]


def test_each_address_has_one_instance_per_candidate_and_one_top_priority() -> None:
    services = tuple(svc(f"s{i}", assigned=[f"192.0.2.{10 + i}"]) for i in range(12))
    plans = {n: vip.plan_vip(_snap(n, services), "cluster-a") for n in NODES}
    for i in range(12):
        ip = ipaddress.ip_address(f"192.0.2.{10 + i}")
        mine = {n: next(x for x in p.instances if x.ip == ip) for n, p in plans.items()}
        assert len({x.vrid for x in mine.values()}) == 1  # every node agrees
        top = max(mine, key=lambda n: mine[n].priority)
        assert top == ownership.owner(ip, NODES) == mine[top].master
        assert sorted(x.priority for x in mine.values()) == [150, 200, 250]
        for n, x in mine.items():
            others = {a for m, info in _nodes().items() if m != n
                      for a in info.internal_ips if a.version == 4}
            assert set(x.peers) == others
            assert x.source not in x.peers
    masters = {x.master for p in plans.values() for x in p.instances}
    assert len(masters) > 1  # addresses spread over the nodes


def test_layer2_and_bgp_addresses_get_no_instance() -> None:
    services = (svc("l2", assigned=["198.51.100.5"]), svc("bgp", assigned=["203.0.113.99"]))
    assert vip.plan_vip(_snap("node-a", services), "c").instances == frozenset()


def test_ipv6_instances_run_between_ipv6_node_addresses() -> None:
    plan = vip.plan_vip(_snap("node-a", (svc("s", assigned=["2001:db8::10"]),)), "c")
    (inst,) = plan.instances
    assert inst.source.version == 6
    assert all(p.version == 6 for p in inst.peers)


def test_a_node_without_an_address_of_the_family_is_no_candidate() -> None:
    plan = vip.plan_vip(_snap("node-a", (svc("s", assigned=["2001:db8::10"]),),
                              nodes=_nodes(v6=False)), "c")
    assert plan.instances == frozenset()
    assert plan.skipped == {"default/s": eligibility.Skip.NO_NODE_ADDRESS}


def test_local_policy_makes_only_endpoint_nodes_candidates() -> None:
    service = svc("s", assigned=["192.0.2.10"], local=True)
    endpoints = {"default/s": frozenset({"node-b"})}
    a = vip.plan_vip(_snap("node-a", (service,), endpoints=endpoints), "c")
    b = vip.plan_vip(_snap("node-b", (service,), endpoints=endpoints), "c")
    assert a.instances == frozenset()
    assert a.skipped == {"default/s": eligibility.Skip.NO_READY_ENDPOINT}
    (inst,) = b.instances
    assert inst.peers == ()
    assert inst.master == "node-b"


def test_a_vip_pool_without_interface_is_skipped_loudly() -> None:
    bare = dataclasses.replace(VIPS, interface="")
    plan = vip.plan_vip(_snap("node-a", (svc("s", assigned=["192.0.2.10"]),),
                              pools={"vips": bare}), "c")
    assert plan.instances == frozenset()
    assert plan.skipped == {"default/s": eligibility.Skip.NO_INTERFACE}


@given(st.sets(st.integers(0, 2**32 - 1), max_size=300), st.text(max_size=8))
def test_vrids_are_unique_per_family_and_only_the_excess_gets_none(
        values: set[int], cluster: str) -> None:
    ips = [ipaddress.IPv4Address(v) for v in values]
    found = vip.vrids(cluster, ips)
    assert len(set(found.values())) == len(found) == min(len(ips), 255)
    assert all(1 <= v <= 255 for v in found.values())


def test_two_clusters_pick_different_ids_for_most_addresses() -> None:
    ips = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(10, 30)]
    a, b = vip.vrids("cluster-a", ips), vip.vrids("cluster-b", ips)
    assert sum(a[ip] == b[ip] for ip in ips) <= 3  # ~20/255 expected by chance


def test_an_unrelated_address_keeps_its_id_when_another_is_added() -> None:
    ips = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(10, 20)]
    before = vip.vrids("c", ips)
    after = vip.vrids("c", [*ips, ipaddress.ip_address("192.0.2.200")])
    kept = sum(before[ip] == after[ip] for ip in ips)
    assert kept >= len(ips) - 1  # only a colliding neighbour may move


def test_priorities_are_distinct_and_the_first_backups_far_apart() -> None:
    nodes_ = [f"n{i}" for i in range(60)]
    ranks = vip.priorities(ipaddress.ip_address("192.0.2.10"), nodes_)
    ordered = sorted(ranks.values(), reverse=True)
    assert ordered[:6] == [250, 200, 150, 100, 50, 49]
    assert ordered[-1] == 1
    assert len(set(ordered[:50])) == 50
    assert min(ordered) >= 1
