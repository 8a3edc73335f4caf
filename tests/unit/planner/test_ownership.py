"""One owner per layer-2 address, agreed by every speaker, moving as little as possible."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.api import nodes
from openelb.planner import eligibility, ownership, snapshot
from tests.unit.factories import pool, svc

IPS = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(100, 200)]
NODE_NAMES = [f"node-{c}" for c in "abcdefgh"]


def _nodes(*names: str) -> dict[str, nodes.NodeInfo]:
    return {n: nodes.NodeInfo(n, {}, True, False, (ipaddress.ip_address("192.0.2.11"),))
            for n in names}


LAN = dataclasses.replace(pool("lan", "192.0.2.0/24"), protocol="layer2", interface="eth0")


def _snap(node: str, services: tuple, names: tuple[str, ...] = ("node-a", "node-b", "node-c"),
          **kw: object) -> snapshot.Snapshot:
    return snapshot.Snapshot(node=node, nodes=_nodes(*names), services=services,
                             pools={"lan": LAN}, **kw)  # type: ignore[arg-type]


@given(st.sets(st.sampled_from(NODE_NAMES), min_size=1))
def test_every_speaker_computes_the_same_owner(candidates: set[str]) -> None:
    ip = IPS[0]
    ordered = sorted(candidates)
    assert ownership.owner(ip, ordered) == ownership.owner(ip, ordered[::-1])
    assert ownership.owner(ip, candidates) in candidates


@settings(max_examples=50)
@given(st.sets(st.sampled_from(NODE_NAMES[:-1]), min_size=2))
def test_adding_a_node_moves_only_addresses_it_wins(candidates: set[str]) -> None:
    before = {ip: ownership.owner(ip, candidates) for ip in IPS}
    after = {ip: ownership.owner(ip, candidates | {NODE_NAMES[-1]}) for ip in IPS}
    moved = [ip for ip in IPS if before[ip] != after[ip]]
    assert all(after[ip] == NODE_NAMES[-1] for ip in moved)


def test_exactly_one_node_claims_each_address() -> None:
    services = tuple(svc(f"s{i}", assigned=[f"192.0.2.{100 + i}"]) for i in range(20))
    live = frozenset({"node-a", "node-b", "node-c"})
    claims = [ownership.plan_layer2(_snap(n, services), live, {}).claims
              for n in sorted(live)]
    claimed = [c.ip for per_node in claims for c in per_node]
    assert sorted(claimed) == sorted(ipaddress.ip_address(f"192.0.2.{100 + i}")
                                     for i in range(20))
    assert all(c.interface == "eth0" and c.pool == "lan" for per in claims for c in per)


def test_a_dead_speaker_loses_its_addresses_to_the_others() -> None:
    web = svc("web", assigned=["192.0.2.150"])
    live = frozenset({"node-a", "node-b", "node-c"})
    first = ownership.plan_layer2(_snap("node-a", (web,)), live, {}).owners[IPS[50]]
    survivors = live - {first}
    new_owner = ownership.plan_layer2(_snap("node-a", (web,)), survivors, {}).owners[IPS[50]]
    assert new_owner in survivors


def test_local_policy_owner_has_an_endpoint_and_follows_it() -> None:
    web = svc("web", assigned=["192.0.2.150"], local=True)
    live = frozenset({"node-a", "node-b", "node-c"})
    for where in ("node-a", "node-c"):
        plan = ownership.plan_layer2(
            _snap("node-a", (web,), endpoints={"default/web": frozenset({where})}), live, {})
        assert plan.owners[IPS[50]] == where


def test_a_node_that_cannot_reach_the_interface_is_never_owner() -> None:
    web = svc("web", assigned=["192.0.2.150"])
    live = frozenset({"node-a", "node-b"})
    serving = {"node-a": frozenset(), "node-b": frozenset({"lan"})}
    plan = ownership.plan_layer2(_snap("node-a", (web,)), live, serving)
    assert plan.owners[IPS[50]] == "node-b"
    assert plan.skipped == {"default/web": eligibility.Skip.NOT_OWNER}


def _claimed(node: str, services: tuple, live: frozenset[str], joining: frozenset[str],
             held: frozenset) -> set:
    snap = _snap(node, services, tuple(NODE_NAMES[:4]))
    plan = ownership.plan_layer2(snap, live, {}, joining, held)
    return {c.ip for c in plan.claims}


def test_the_holder_keeps_an_address_until_its_joining_owner_claims() -> None:
    """Make before break: node-b returns and owns 192.0.2.150 by the rule, but claims
    nothing in its hold-down; node-a, which holds the address, keeps answering until
    node-b says it claims, and lets go then. node-c, which holds nothing, never claims."""
    web = svc("web", assigned=["192.0.2.150"])
    ip = IPS[50]
    live = frozenset({"node-a", "node-b", "node-c"})
    owner = ownership.owner(ip, live)
    holder, bystander = sorted(live - {owner})
    held = frozenset({ip})
    assert _claimed(holder, (web,), live, frozenset({owner}), held) == {ip}
    assert _claimed(bystander, (web,), live, frozenset({owner}), frozenset()) == set()
    assert _claimed(holder, (web,), live, frozenset(), held) == set()
    assert _claimed(owner, (web,), live, frozenset(), frozenset()) == {ip}


def test_an_address_kept_for_a_joining_owner_is_marked_kept_not_owned() -> None:
    """The holder must not defend it: the owner's first announcement is the handover."""
    web = svc("web", assigned=["192.0.2.150"])
    ip = IPS[50]
    live = frozenset({"node-a", "node-b", "node-c"})
    owner = ownership.owner(ip, live)
    holder = sorted(live - {owner})[0]
    nodes = tuple(NODE_NAMES[:4])
    keeping = ownership.plan_layer2(_snap(holder, (web,), nodes), live, {},
                                    frozenset({owner}), frozenset({ip}))
    assert keeping.kept == {ip}
    assert {c.ip for c in keeping.claims} == {ip}
    owning = ownership.plan_layer2(_snap(owner, (web,), nodes), live, {})
    assert owning.kept == frozenset()
    assert {c.ip for c in owning.claims} == {ip}


@settings(max_examples=200)
@given(live=st.sets(st.sampled_from(NODE_NAMES[:4]), min_size=1),
       joining=st.sets(st.sampled_from(NODE_NAMES[:4])),
       holders=st.lists(st.sampled_from([None, *NODE_NAMES[:4]]), min_size=10, max_size=10))
def test_keeping_for_a_joining_owner_never_makes_two_claimants(
        live: set[str], joining: set[str], holders: list[str | None]) -> None:
    """Whatever joins and whoever holds what (one holder at most per address, as after
    any earlier round), the nodes that may claim (not joining) claim each address at
    most once, and an address whose owner is joining stays answered if it was."""
    services = tuple(svc(f"s{i}", assigned=[str(IPS[i])]) for i in range(10))
    nodes_live = frozenset(live)
    joining_live = frozenset(joining) & nodes_live
    counts = dict.fromkeys(IPS[:10], 0)
    for node in nodes_live - joining_live:
        held = frozenset(IPS[i] for i, h in enumerate(holders) if h == node)
        for ip in _claimed(node, services, nodes_live, joining_live - {node}, held):
            counts[ip] += 1
    for i, ip in enumerate(IPS[:10]):
        assert counts[ip] <= 1
        owner = ownership.owner(ip, nodes_live)
        holder = holders[i]
        if owner in joining_live and holder in nodes_live - joining_live:
            assert counts[ip] == 1


def test_a_holder_that_lost_its_endpoint_does_not_keep_for_a_joining_owner() -> None:
    """ETP=Local: the endpoint moved to node-b, which is joining; node-a, which held the
    address, has no endpoint any more and lets go at once instead of keeping it."""
    web = svc("web", assigned=["192.0.2.150"], local=True)
    live = frozenset({"node-a", "node-b", "node-c"})
    snap = _snap("node-a", (web,), endpoints={"default/web": frozenset({"node-b"})})
    plan = ownership.plan_layer2(snap, live, {}, frozenset({"node-b"}), frozenset({IPS[50]}))
    assert plan.claims == frozenset()
    assert plan.owners[IPS[50]] == "node-b"


ROUND = st.tuples(
    st.sets(st.sampled_from(NODE_NAMES), min_size=1),  # the cluster's nodes this round
    st.sets(st.sampled_from(NODE_NAMES)),  # live by heartbeats
    st.dictionaries(st.sampled_from(NODE_NAMES),  # a Local Service's endpoints
                    st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=6), st.integers(min_value=1, max_value=4))
def test_rankings_change_nothing_but_the_cost(rounds: list, depth: int) -> None:
    """The memo kept across rounds (nodes joining, dying, coming back; Local endpoints
    moving) gives exactly the plan computed from scratch, with any depth."""
    memo = ownership.Rankings(depth=depth)
    cluster = svc("web", ip="192.0.2.101", assigned=["192.0.2.101"])
    local = svc("db", ip="192.0.2.102", assigned=["192.0.2.102"], local=True)
    for names, live, endpoint_flags in rounds:
        ordered = tuple(sorted(names))
        endpoints = {local.key: frozenset(n for n, up in endpoint_flags.items() if up)}
        snap = _snap(ordered[0], (cluster, local), ordered, endpoints=endpoints)
        fresh = ownership.plan_layer2(snap, frozenset(live), {})
        memoised = ownership.plan_layer2(snap, frozenset(live), {}, rankings=memo)
        assert memoised == fresh
