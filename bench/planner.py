"""Benchmark of the speaker's pure planning (issue 13): the cost of one plan round at
scale. Prints JSON (also written to bench/results/planner.json); asserts nothing.

Builds a Snapshot by hand (no apiserver, no network): `--nodes` Ready nodes, `--pools`
Eips (half layer 2, half BGP, each a /18 of 198.18.0.0/15, the RFC 2544 benchmarking
range), `--services` Services spread over the pools, each holding one address, a tenth
of them externalTrafficPolicy Local with endpoints on three nodes. Then times, on
node-0's point of view, `--rounds` times each:

- `layer2_full_ms`: planner.ownership.plan_layer2 over everything (every node live and
  serving every pool) from scratch (a fresh memo: every address hashed);
- `bgp_full_ms`: planner.bgp.plan_bgp likewise (a BgpConf and one BgpPeer);
- `snapshot_ms`: building the Snapshot value itself (its PoolIndex);
- `layer2_memo_ms`: the same with the `Rankings` memo a speaker keeps across rounds
  (warm: what a round costs when nothing moved);
- `node_down_layer2_ms`: with the warm memo, a round after one node died;
- `one_change_layer2_ms`: with the warm memo, a round of plan_layer2 after one Service
  changed (a full pass over every Service);
- `incremental_one_change_{layer2,bgp}_ms`: what the speaker runs, the incremental
  planners (ownership.Layer2Planner, bgp.BgpPlanner), warm, each round after one
  Service changed (an edit of svc-0, alternating between two versions): the issue's
  5 ms figure;
- `incremental_unchanged_{layer2,bgp}_ms`: the same with nothing changed (a round
  woken by something that touches no Service).

Run: .venv/bin/python bench/planner.py   (--services 10000 --nodes 100 --pools 20)
"""

import argparse
import dataclasses
import ipaddress
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from openelb.api import addresses, bgp, service
from openelb.api import nodes as node_info
from openelb.ipam import pools as ipam_pools
from openelb.planner import bgp as bgp_plan
from openelb.planner import ownership, snapshot

REPO = Path(__file__).resolve().parents[1]
BASE = int(ipaddress.ip_address("198.18.0.0"))


def build(services: int, node_count: int, pool_count: int) -> snapshot.Snapshot:
    nodes = {f"node-{i}": node_info.NodeInfo(
        f"node-{i}", {}, True, False,
        (ipaddress.ip_address(f"203.0.113.{i % 250 + 1}"),)) for i in range(node_count)}
    size = 2 ** 17 // pool_count
    pools = {}
    for index in range(pool_count):
        first = ipaddress.ip_address(BASE + index * size)
        last = ipaddress.ip_address(BASE + (index + 1) * size - 1)
        pools[f"pool-{index}"] = ipam_pools.Pool(
            name=f"pool-{index}", declared=addresses.parse_address(f"{first}-{last}"),
            protocol="layer2" if index % 2 == 0 else "bgp", interface="eth0",
            created=f"2026-01-01T00:00:{index:02d}Z")
    svcs, endpoints = [], {}
    for index in range(services):
        pool = index % pool_count
        ip = ipaddress.ip_address(BASE + pool * size + 1 + index // pool_count)
        local = index % 10 == 0
        svc = service.LbService(
            namespace="bench", name=f"svc-{index}", ports=frozenset({service.Port(80)}),
            traffic_policy=(service.TrafficPolicy.LOCAL if local
                            else service.TrafficPolicy.CLUSTER),
            assigned_ips=(ip,))
        svcs.append(svc)
        if local:
            endpoints[svc.key] = frozenset(f"node-{(index + k) % node_count}" for k in range(3))
    conf = bgp.BgpConf.parse({"metadata": {"name": "default"}, "spec": {"as": 64512}})
    peer = bgp.BgpPeer.parse({"metadata": {"name": "tor"}, "spec": {
        "conf": {"peerAs": 64513, "neighborAddress": "203.0.113.254"}}})
    return snapshot.Snapshot(node="node-0", nodes=nodes, services=tuple(svcs), pools=pools,
                             endpoints=endpoints, bgp_conf=conf, bgp_peers=(peer,))


def timed(fn: Any, rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(samples), 2),
            "max_ms": round(max(samples), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "planner.json")
    args = parser.parse_args()
    snap = build(args.services, args.nodes, args.pools)
    live = frozenset(snap.nodes)
    layer2_pools = frozenset(n for n, p in snap.pools.items() if p.protocol == "layer2")
    serving = dict.fromkeys(snap.nodes, layer2_pools)
    layer2 = timed(lambda: ownership.plan_layer2(snap, live, serving), args.rounds)
    plan = ownership.plan_layer2(snap, live, serving)
    memo = ownership.Rankings()
    ownership.plan_layer2(snap, live, serving, rankings=memo)  # warm it
    memoised = timed(lambda: ownership.plan_layer2(snap, live, serving, rankings=memo),
                     args.rounds)
    survivors = live - {"node-7"}
    node_down = timed(lambda: ownership.plan_layer2(snap, survivors, serving, rankings=memo),
                      args.rounds)
    changed = dataclasses.replace(snap, services=(
        dataclasses.replace(snap.services[0], ports=frozenset({service.Port(81)})),
        *snap.services[1:]))
    result = {
        "benchmark": "planner", "services": args.services, "nodes": args.nodes,
        "pools": args.pools, "rounds": args.rounds,
        "layer2_full_ms": layer2,
        "layer2_memo_ms": memoised,
        "node_down_layer2_ms": node_down,
        "bgp_full_ms": timed(lambda: bgp_plan.plan_bgp(snap), args.rounds),
        "snapshot_ms": timed(lambda: build_index(snap), args.rounds),
        "one_change_layer2_ms": timed(
            lambda: ownership.plan_layer2(changed, live, serving, rankings=memo),
            args.rounds),
        **incremental(snap, changed, live, serving, args.rounds),
        "layer2_addresses_owned_by_node_0": len(plan.claims),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def incremental(snap: snapshot.Snapshot, changed: snapshot.Snapshot, live: frozenset[str],
                serving: dict[str, frozenset[str]], rounds: int) -> dict[str, Any]:
    """The incremental planners, warm, on rounds alternating between `snap` and
    `changed` (one Service differs), and on unchanged rounds."""
    layer2, routes = ownership.Layer2Planner(), bgp_plan.BgpPlanner()
    layer2.plan(snap, live, serving)
    routes.plan(snap)
    turns = [changed, snap]

    def flip() -> snapshot.Snapshot:
        turns.reverse()
        return turns[0]

    figures = {
        "incremental_one_change_layer2_ms": timed(
            lambda: layer2.plan(flip(), live, serving), rounds * 4),
        "incremental_one_change_bgp_ms": timed(lambda: routes.plan(flip()), rounds * 4),
        "incremental_unchanged_layer2_ms": timed(
            lambda: layer2.plan(turns[0], live, serving), rounds * 4),
        "incremental_unchanged_bgp_ms": timed(lambda: routes.plan(turns[0]), rounds * 4),
    }
    # The same answers as from scratch (a property test holds this too).
    assert layer2.plan(turns[0], live, serving) == ownership.plan_layer2(turns[0], live,
                                                                         serving)
    assert routes.plan(turns[0]) == bgp_plan.plan_bgp(turns[0])
    return figures


def build_index(snap: snapshot.Snapshot) -> None:
    snapshot.Snapshot(node=snap.node, nodes=snap.nodes, services=snap.services,
                      pools=snap.pools, endpoints=snap.endpoints, bgp_conf=snap.bgp_conf,
                      bgp_peers=snap.bgp_peers)


if __name__ == "__main__":
    raise SystemExit(main())
