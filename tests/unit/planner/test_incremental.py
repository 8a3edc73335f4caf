"""The incremental planners give exactly the plans of the from-scratch functions.

Rounds change what a speaker sees as it would: Services appear, go, stay the very same
object or are replaced by a new one (an edit, or an equal copy), endpoint sets move,
nodes join, die and come back, addresses are held for joining owners, and BGP peers
come and go. After every round Layer2Planner.plan equals ownership.plan_layer2 and
BgpPlanner.plan equals bgp.plan_bgp on the same snapshot.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.api import bgp, nodes, service
from openelb.planner import bgp as bgp_plan
from openelb.planner import incremental, ownership, snapshot
from tests.unit.factories import pool, svc

NODE_NAMES = [f"node-{c}" for c in "abcdef"]
LAN = dataclasses.replace(pool("lan", "192.0.2.0/25"), protocol="layer2", interface="eth0")
ROUTED = dataclasses.replace(pool("routed", "192.0.2.128/25"), protocol="bgp")
IPS = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.200", "192.0.2.201"]
CONF = bgp.BgpConf.parse({"metadata": {"name": "default"}, "spec": {"as": 64512}})
PEERS = tuple(bgp.BgpPeer.parse({"metadata": {"name": f"tor-{i}"}, "spec": {
    "conf": {"peerAs": 64513, "neighborAddress": f"203.0.113.{i + 1}"}}}) for i in range(2))

# Eight Services; two pairs share an address (a Cluster pair and a Local pair with
# one selector, as the sharing rules require).
SERVICES = [
    svc(f"svc-{i}", assigned=[IPS[i % len(IPS)]], local=i in (2, 7), selector={"app": "x"})
    for i in range(8)
]

_NEW = "new"  # this round's Service is a new object (an edit or an equal copy)
SERVICE_STATE = st.sampled_from(["absent", "same", _NEW])
ROUND = st.fixed_dictionaries({
    "names": st.sets(st.sampled_from(NODE_NAMES), min_size=1),
    "live": st.sets(st.sampled_from(NODE_NAMES)),
    "joining": st.sets(st.sampled_from(NODE_NAMES), max_size=2),
    "held": st.sets(st.sampled_from(IPS[:3]), max_size=2),
    "services": st.lists(SERVICE_STATE, min_size=len(SERVICES), max_size=len(SERVICES)),
    "edit_ports": st.booleans(),
    "endpoints": st.lists(st.sets(st.sampled_from(NODE_NAMES)), min_size=2, max_size=2),
    "new_endpoint_objects": st.booleans(),
    "peers": st.integers(min_value=0, max_value=2),
    "me_ready": st.booleans(),
})


def _nodes(names: set[str], me: str, me_ready: bool) -> dict[str, nodes.NodeInfo]:
    return {n: nodes.NodeInfo(n, {}, n != me or me_ready, False,
                              (ipaddress.ip_address(f"198.51.100.{i + 1}"),))
            for i, n in enumerate(sorted(names))}


class _World:
    """The objects a speaker's caches hold, kept across rounds like the caches do."""

    def __init__(self) -> None:
        self.current: dict[int, service.LbService] = {}
        self.endpoints: dict[str, frozenset[str]] = {}

    def step(self, r: dict[str, Any]) -> snapshot.Snapshot:
        for index, state in enumerate(r["services"]):
            base = SERVICES[index]
            if state == "absent":
                self.current.pop(index, None)
            elif state == _NEW or index not in self.current:
                ports = frozenset({service.Port(81)}) if r["edit_ports"] else base.ports
                self.current[index] = dataclasses.replace(base, ports=ports)
        for slot, key in enumerate(("default/svc-2", "default/svc-7")):
            wanted = frozenset(r["endpoints"][slot])
            if r["new_endpoint_objects"] or self.endpoints.get(key) != wanted:
                self.endpoints[key] = frozenset(wanted)  # a new object, maybe equal
        me = sorted(r["names"])[0]
        return snapshot.Snapshot(
            node=me, nodes=_nodes(r["names"], me, r["me_ready"]),
            services=tuple(self.current[i] for i in sorted(self.current)),
            pools={"lan": LAN, "routed": ROUTED}, endpoints=dict(self.endpoints),
            bgp_conf=CONF, bgp_peers=PEERS[:r["peers"]])


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=8))
def test_incremental_plans_equal_plans_from_scratch(rounds: list[dict[str, Any]]) -> None:
    world = _World()
    layer2 = ownership.Layer2Planner(depth=3)
    routes = bgp_plan.BgpPlanner()
    for r in rounds:
        snap = world.step(r)
        live, joining = frozenset(r["live"]), frozenset(r["joining"]) & frozenset(r["live"])
        held = frozenset(ipaddress.ip_address(ip) for ip in r["held"])
        serving = {n: frozenset({"lan"}) for n in sorted(r["names"])[1:2]}
        assert layer2.plan(snap, live, serving, joining, held) == ownership.plan_layer2(
            snap, live, serving, joining, held)
        assert routes.plan(snap) == bgp_plan.plan_bgp(snap)


def test_an_unchanged_round_plans_nothing_again() -> None:
    """Identity says unchanged: the same objects in a new round are not planned again;
    a new object (even an equal copy) is; a gone Service is reported gone."""
    tracker = incremental.ServiceTracker()
    web, db = SERVICES[0], SERVICES[1]
    first = tracker.delta((web, db), {}, "ctx")
    assert (len(first.changed), first.reset) == (2, True)
    same = tracker.delta((web, db), {}, "ctx")
    assert (same.changed, same.removed, same.reset) == ((), (), False)
    copy = dataclasses.replace(db)
    edited = tracker.delta((web, copy), {}, "ctx")
    assert (edited.changed, edited.removed) == ((copy,), ())
    gone = tracker.delta((copy,), {}, "ctx")
    assert (gone.changed, gone.removed) == ((), ("default/svc-0",))
    assert tracker.delta((copy,), {}, "other").reset
