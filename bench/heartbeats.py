"""Benchmark: do heartbeats keep time while the speaker plans? (issue #13, item 3).
Prints JSON (also written to bench/results/heartbeats.json); asserts nothing.

A lighter stand-in for a speaker at scale, in one process on loopback: the real
`Heartbeats` (announce/liveness/udp.py) sends to one peer every 0.25 s on the event
loop, while that same loop runs plan rounds on a Snapshot of `--services` Services x
`--nodes` nodes (bench/planner.py's), one round every `--round-every` seconds (a busy
minute's churn is several per second). A receiver thread bound to the peer's address
timestamps every heartbeat; the figure is how late each one arrives against the
0.25 s schedule (interval minus 0.25 s, clamped at 0), for three storms:

- `idle`: no planning at all (the floor: the loop and the kernel);
- `incremental`: each round is what the speaker runs, the incremental planners after
  one Service changed (ownership.Layer2Planner, bgp.BgpPlanner);
- `full_replan`: each round plans every Service from scratch (plan_layer2 and plan_bgp
  with a warm memo), what a round cost before the planners were incremental.

A heartbeat later than the timeout minus the interval (0.75 s by default) would make
peers count the node dead: the figure to watch is the max.

Run: .venv/bin/python bench/heartbeats.py   (--services 10000 --nodes 100 --seconds 20)
"""

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import planner as planner_bench  # bench/planner.py: the same snapshot
from openelb.announce.liveness import udp
from openelb.api import service
from openelb.planner import bgp as bgp_plan
from openelb.planner import ownership, snapshot

REPO = Path(__file__).resolve().parents[1]
PEER = "127.0.0.2"  # the receiver's own address: more specific than the sender's 0.0.0.0


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver(threading.Thread):
    """Timestamps every datagram to PEER:port (a thread: the loop under test is busy)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind((PEER, port))
        self.sock.settimeout(0.2)
        self.arrivals: list[float] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.sock.recv(2048)
            except TimeoutError:
                continue
            self.arrivals.append(time.monotonic())


def _lateness(arrivals: list[float], interval: float) -> dict[str, float]:
    late = sorted(max(0.0, b - a - interval) * 1000 for a, b in itertools.pairwise(arrivals))
    return {"heartbeats": len(arrivals),
            "p50_ms": round(statistics.median(late), 2),
            "p99_ms": round(late[min(len(late) - 1, int(len(late) * 0.99))], 2),
            "max_ms": round(late[-1], 2)}


async def _storm(seconds: float, every: float, plan_round: Callable[[], None] | None,
                 settings: udp.HeartbeatSettings) -> tuple[dict[str, float], float]:
    receiver = Receiver(settings.port)
    receiver.start()
    beats = udp.Heartbeats("node-0", b"k" * 32, settings)
    await beats.start()
    beats.set_peers({"node-1": PEER})
    rounds, spent = 0, 0.0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(every)
            if plan_round is not None:
                began = time.perf_counter()
                plan_round()  # on the loop, as the speaker's plan loop does
                spent += time.perf_counter() - began
                rounds += 1
    finally:
        await beats.aclose()
        receiver.running = False
        receiver.join()
        receiver.sock.close()
    return _lateness(receiver.arrivals, settings.interval), (spent / rounds * 1000
                                                             if rounds else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--round-every", type=float, default=0.05,
                        help="seconds between two plan rounds (the speaker's debounce)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                        "heartbeats.json")
    args = parser.parse_args()
    snap = planner_bench.build(args.services, args.nodes, args.pools)
    changed = dataclasses.replace(snap, services=(
        dataclasses.replace(snap.services[0], ports=frozenset({service.Port(81)})),
        *snap.services[1:]))
    live = frozenset(snap.nodes)
    layer2_pools = frozenset(n for n, p in snap.pools.items() if p.protocol == "layer2")
    serving = dict.fromkeys(snap.nodes, layer2_pools)
    turns = [changed, snap]

    def flip() -> snapshot.Snapshot:
        turns.reverse()
        return turns[0]

    layer2, routes = ownership.Layer2Planner(), bgp_plan.BgpPlanner()
    layer2.plan(snap, live, serving)
    routes.plan(snap)
    memo = ownership.Rankings()
    ownership.plan_layer2(snap, live, serving, rankings=memo)

    def incremental() -> None:
        now = flip()
        layer2.plan(now, live, serving)
        routes.plan(now)

    def full() -> None:
        now = flip()
        ownership.plan_layer2(now, live, serving, rankings=memo)
        bgp_plan.plan_bgp(now)

    result: dict[str, Any] = {
        "benchmark": "heartbeats", "services": args.services, "nodes": args.nodes,
        "pools": args.pools, "seconds_each": args.seconds, "round_every_s": args.round_every,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    for name, plan_round in (("idle", None), ("incremental", incremental),
                             ("full_replan", full)):
        settings = udp.HeartbeatSettings(port=_port())
        lateness, round_ms = asyncio.run(_storm(args.seconds, args.round_every, plan_round,
                                                settings))
        result[name] = {"heartbeat_lateness": lateness, "plan_round_ms": round(round_ms, 2)}
        print(f"{name}: {result[name]}", file=sys.stderr)
    result["limit_ms"] = round((udp.HeartbeatSettings().timeout
                                - udp.HeartbeatSettings().interval) * 1000)
    json.dump(result, sys.stdout, indent=2)
    print()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
