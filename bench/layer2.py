"""Benchmark of layer-2 mode (issue 6): failover time, assignment -> gratuitous ARP, speaker
memory. Prints JSON (also written to bench/results/layer2.json); asserts nothing.

Starts its own etcd + kube-apiserver, a namespace lab whose router only forwards (no BGP)
with three nodes, the controller and one `openelb speaker` per node (openelb_testenv),
a layer-2 Eip in the LAN and Services until each node (up to `--rounds` of them) owns
one (owners follow the documented rule, docs/layer2.md). Every node carries the Service
addresses on lo and serves HTTP answering its own name. Then:

1. failover, `--rounds` times: SIGKILL the speaker owning one of the addresses (the
   victims rotate over the nodes) and measure, from the LAN client, the time until its
   neighbour entry for the address holds the new owner's MAC AND an HTTP request is
   answered by the new owner (`failover_s`); also until the new owner's first gratuitous
   ARP on the client's wire (tcpdump timestamps, same clock). Then restart the killed
   speaker, wait until it owns its address again and the client is back on it, and let
   its gratuitous repeats finish before the next round. The same kill is timed from the
   remote client behind the router too (`remote_failover_s`: until its HTTP is answered
   by the new owner, i.e. until the router's neighbour entry moved, `router_neighbour_s`).
   The handback is read from the
   speakers' claim/release log lines: how long nobody answered for the address
   (`handback_unanswered_s`, make before break: 0) and how long both did;
2. graceful restart, `--graceful-rounds` times: SIGTERM the owner's speaker (as a
   rolling update does) and time until the LAN client is on the heir (`moved_s`), then
   restart it; `unanswered_s` (from the claim/release log lines) covers the whole
   cycle there and back;
3. assignment -> first gratuitous ARP, `--garp-samples` times: create a Service, take the
   moment its status.loadBalancer.ingress appears on a watch (the Service status
   written), and the tcpdump timestamp of the first gratuitous ARP for that address in
   the LAN client;
4. each speaker's peak RSS (VmHWM), read before each kill and at the end;
5. the idle cost of liveness: each speaker's CPU share over `--idle-seconds` with
   nothing changing, and the heartbeats one node sends and receives (tcpdump on UDP
   7473: datagrams per second, UDP payload bytes).

Only the speaker is killed in (1): the node itself keeps the address on lo and keeps
serving, so HTTP never fails; the figure is how long the LAN keeps sending to the old
node after its speaker died (what a dead node would cost). Heartbeat settings are the
defaults (`--heartbeat-timeout 1.0 --heartbeat-interval 0.25`) unless given.

Needs root (network namespaces) and the control plane built by hack/build-control-plane.sh.
Run: .venv/bin/python bench/layer2.py   (--rounds 20 --garp-samples 10)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import platform
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch

from openelb.planner import ownership
from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import controlplane, netlab

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "layer2.json"
NAMESPACE = "bench-l2"
POOL = "192.0.2.128-192.0.2.254"  # inside the lab's LAN 192.0.2.0/24 (nodes .11-.99, client .100)
INTERFACE = "can_reach:192.0.2.1"
# tcpdump -n -e -tt: "<epoch> <src mac> > <dst mac>, ethertype ARP ..., length N: <packet>"
_LINE = re.compile(r"^(?P<at>\d+\.\d+) (?P<src>[0-9a-f:]{17}) > ")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "p95": round(percentile(values, 0.95), 3), "max": round(max(values), 3)}


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of `pid`, MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` so far."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


async def idle_costs(c: testenv_cluster.Cluster, seconds: float) -> dict[str, Any]:
    """Each speaker's CPU share while nothing changes (heartbeats only), and the
    heartbeat traffic one node sends and receives (UDP 7473 on its eth0)."""
    host = c.lab.nodes[0]
    before = {n: cpu_seconds(p.pid) for n, p in c.speakers.items()}
    lines = await host.capture("udp port 7473", seconds)
    after = {n: cpu_seconds(p.pid) for n, p in c.speakers.items()}
    cpu = {n: round(100 * (after[n] - b) / seconds, 2)
           for n, b in before.items() if b is not None and after.get(n) is not None}
    sizes_out, sizes_in = [], []
    for line in lines:
        match = re.search(r"length (\d+)$", line)
        if match is None:
            continue
        (sizes_out if f"{host.ipv4}.7473 >" in line else sizes_in).append(int(match[1]))
    return {
        "seconds": seconds,
        "speaker_cpu_percent": dict(sorted(cpu.items())),
        "heartbeats_node": host.name,
        "heartbeats_out_per_s": round(len(sizes_out) / seconds, 1),
        "heartbeats_in_per_s": round(len(sizes_in) / seconds, 1),
        "heartbeat_udp_payload_bytes": round(statistics.mean(sizes_out + sizes_in), 1)
        if sizes_out or sizes_in else None,
    }


def garps(lines: list[str], ip: str) -> list[tuple[float, str]]:
    """(epoch, source MAC) of each gratuitous ARP for `ip` in tcpdump output. The
    speaker's leaves the target hardware address zero and tcpdump prints nothing there;
    keepalived's (bench/vip.py) sets it to broadcast, which tcpdump prints after the
    address: `Request who-has <ip> (ff:ff:ff:ff:ff:ff) tell <ip>, length 28`."""
    needle = re.compile(rf"Request who-has {re.escape(ip)} (?:\([0-9a-f:]{{17}}\) )?"
                        rf"tell {re.escape(ip)},")
    found = []
    for line in lines:
        if needle.search(line) and (match := _LINE.match(line)):
            found.append((float(match["at"]), match["src"]))
    return found


class StatusWatch:
    """Timestamps the first appearance of each Service's ingress IP, from a watch."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.assigned: dict[str, tuple[str, float]] = {}  # name -> (ip, epoch seen)
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="status-watch")

    async def _run(self) -> None:
        core = k8s.CoreV1Api(self.api)
        while True:
            stream = watch.Watch().stream(core.list_namespaced_service, NAMESPACE,
                                          timeout_seconds=300)
            async for event in stream:
                seen = time.time()
                svc = event["object"]
                ingress = (svc.status.load_balancer.ingress or []) if svc.status else []
                ips = [i.ip for i in ingress if i.ip]
                if ips and svc.metadata.name not in self.assigned:
                    self.assigned[svc.metadata.name] = (ips[0], seen)
                    self.changed.set()

    async def wait(self, name: str, timeout: float = 30.0) -> tuple[str, float]:
        deadline = time.monotonic() + timeout
        while name not in self.assigned:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{NAMESPACE}/{name} got no address in {timeout}s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.changed.wait()
        return self.assigned[name]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclasses.dataclass(frozen=True, slots=True)
class Takeover:
    """What the LAN client saw of one takeover, in seconds from the fault."""

    neighbour_s: float  # its neighbour entry holds the new node's MAC
    failover_s: float  # and HTTP answers from the new node
    first_garp_s: float | None  # the new node's first gratuitous ARP on its wire
    off_old_s: float | None = None  # its entry no longer holds the old node's MAC


class Bench:
    def __init__(self, c: testenv_cluster.Cluster, capture: netlab.Capture) -> None:
        self.c = c
        self.capture = capture
        self.client = c.lab.lan_client
        self.nodes = [host.name for host in c.lab.nodes]
        self.by_mac = {host.mac: host.name for host in c.lab.nodes}
        self.hwm: dict[str, float] = {}

    async def client_view(self, ip: str) -> tuple[str | None, str | None]:
        try:
            body: str | None = (await self.c.lab.http_get(self.client, ip, timeout=1.0)).strip()
        except netlab.CommandFailed:
            body = None
        entry = await self.client.neighbor(ip)
        return (self.by_mac.get(entry.mac) if entry and entry.mac else None), body

    async def wait_stable(self, ip: str, node: str, timeout: float = 60.0) -> None:
        """Speakers agree that `node` owns `ip`, and the client reaches it there."""

        async def probe() -> tuple[bool, object]:
            owners = await self.c.layer2_owners(ip)
            if owners != {node}:
                return False, {"owners": owners}
            view = await self.client_view(ip)
            return view == (node, node), {"owners": owners, "client": view}

        await netlab.poll_until(f"{ip} owned by {node}", probe, timeout, self.c.speaker_logs, 0.1)

    def sample_hwm(self) -> None:
        for name, process in self.c.speakers.items():
            if process.running and (mb := vm_hwm_mb(process.pid)) is not None:
                self.hwm[name] = max(self.hwm.get(name, 0.0), mb)

    async def takeover(self, ip: str, new: str, timeout: float = 30.0
                       ) -> tuple[float, float, float | None]:
        """(neighbour_s, failover_s, first_garp_s) from now until the client's entry for
        `ip` holds `new`'s MAC and HTTP answers from `new`. Call right after the fault."""
        seen = await self.watch_takeover(ip, new, time.time(), time.monotonic(),
                                         timeout=timeout)
        return seen.neighbour_s, seen.failover_s, seen.first_garp_s

    async def watch_takeover(self, ip: str, new: str, started_wall: float, started: float,
                             *, old: str | None = None, timeout: float = 30.0) -> Takeover:
        """Seconds from the fault (at `started_wall` epoch, `started` monotonic) until
        the client's neighbour entry for `ip` holds `new`'s MAC and HTTP answers from
        `new`, and to `new`'s first gratuitous ARP; with `old`, also until the entry no
        longer holds `old`'s MAC (whichever node it holds then)."""
        new_mac = self.c.lab.node(new).mac
        old_mac = self.c.lab.node(old).mac if old is not None else None
        off_s: float | None = None
        neighbour_s: float | None = None
        last: object = None
        while True:
            if time.monotonic() - started > timeout:
                raise netlab.WaitTimeout(f"takeover of {ip} by {new}", timeout, last,
                                         self.c.speaker_logs())
            if neighbour_s is None:
                entry = await self.client.neighbor(ip)
                last = entry
                mac = entry.mac if entry is not None else None
                if off_s is None and old_mac is not None and mac not in (None, old_mac):
                    off_s = time.monotonic() - started
                if mac == new_mac:
                    neighbour_s = time.monotonic() - started
            if neighbour_s is not None:
                try:
                    last = (await self.c.lab.http_get(self.client, ip, timeout=1.0)).strip()
                except netlab.CommandFailed as exc:
                    last = str(exc)
                if last == new:
                    failover_s = time.monotonic() - started
                    break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # let tcpdump's last lines land
        first = next((at - started_wall for at, mac in garps(self.capture.lines(), ip)
                      if mac == new_mac and at >= started_wall), None)
        return Takeover(neighbour_s, failover_s, first, off_s)


    async def remote_takeover(self, ip: str, new: str, started: float,
                              timeout: float = 30.0) -> tuple[float | None, float]:
        """From behind the router, seconds from the fault (`started`, monotonic) until
        the router's neighbour entry for `ip` holds `new`'s MAC, and until the remote
        client's HTTP is answered by `new`. Only the speaker was killed, so the old node
        keeps answering HTTP: the remote client moves exactly when the router's ARP
        (or NDP) entry does (its locktime and the gratuitous ARPs decide)."""
        router, remote = self.c.lab.router_host, self.c.lab.remote_client
        new_mac = self.c.lab.node(new).mac
        router_s: float | None = None
        last: object = None
        while True:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise netlab.WaitTimeout(f"remote takeover of {ip} by {new}", timeout, last,
                                         self.c.speaker_logs())
            if router_s is None:
                entry = await router.neighbor(ip)
                if entry is not None and entry.mac == new_mac:
                    router_s = time.monotonic() - started
            try:
                last = (await self.c.lab.http_get(remote, ip, timeout=1.0)).strip()
            except netlab.CommandFailed as exc:
                last = str(exc)
            if last == new:
                return router_s, time.monotonic() - started
            await asyncio.sleep(0.01)


def owner_of(ip: str, nodes: list[str]) -> str:
    chosen = ownership.owner(ipaddress.ip_address(ip), nodes)
    assert chosen is not None
    return chosen


async def services_per_node(c: testenv_cluster.Cluster, watcher: StatusWatch,
                            nodes: list[str], wanted: int) -> dict[str, str]:
    """Create Services until `wanted` nodes own one; node -> its Service's address."""
    mine: dict[str, str] = {}
    for index in range(80):
        await c.service(NAMESPACE, f"web-{index}", pool="lan")
        ip, _ = await watcher.wait(f"web-{index}")
        node = owner_of(ip, nodes)
        mine.setdefault(node, ip)
        if len(mine) >= wanted:
            return mine
    raise RuntimeError(f"after 80 Services only {len(mine)} nodes own one: {mine}")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    binaries = controlplane.Binaries.locate(REPO)
    settings = testenv_cluster.ClusterSettings(heartbeat_timeout=args.heartbeat_timeout,
                                               heartbeat_interval=args.heartbeat_interval)
    async with controlplane.ControlPlane(binaries, controlplane.Settings()) as cp, \
            netlab.Lab(netlab.LabSettings(router=None, nodes=args.nodes, ipv6=False)) as lab:
        c = testenv_cluster.Cluster(cp, lab, settings)
        watcher: StatusWatch | None = None
        try:
            await c.start()
            await c.ensure_namespace(NAMESPACE)
            await c.eip("lan", POOL, protocol="layer2", interface=INTERFACE)
            watcher = StatusWatch(c.api)
            watcher.start()
            capture = await lab.lan_client.start_capture("arp")
            b = Bench(c, capture)
            vips = await services_per_node(c, watcher, b.nodes,
                                           min(len(b.nodes), max(args.rounds, 1)))
            victims = [n for n in b.nodes if n in vips]
            await c.serve_vips(*(ip[0] for ip in watcher.assigned.values()))
            for node, ip in vips.items():
                await b.wait_stable(ip, node)

            def round_robin(index: int) -> tuple[str, str, str]:
                """(victim, its address, the heir by the rule) for round `index`."""
                victim = victims[index % len(victims)]
                ip = vips[victim]
                return victim, ip, owner_of(ip, [n for n in b.nodes if n != victim])

            rounds = []
            for index in range(args.rounds):
                victim, ip, heir = round_robin(index)
                await b.wait_stable(ip, victim)
                b.sample_hwm()
                if args.remote:
                    # The router's neighbour entry points at the owner before the kill.
                    await b.remote_takeover(ip, victim, time.monotonic())
                killed = time.monotonic()
                c.speakers[victim].signal(signal.SIGKILL)
                remote = (b.remote_takeover(ip, heir, killed) if args.remote
                          else asyncio.sleep(0, (None, None)))
                (neighbour_s, failover_s, garp_s), (router_s, remote_s) = await asyncio.gather(
                    b.takeover(ip, heir), remote)
                restarted, restarted_wall = time.monotonic(), time.time()
                await c.restart_speaker(victim)
                await b.wait_stable(ip, victim)
                back_s = time.monotonic() - restarted
                unanswered_s, overlap_s = handback(c, ip, victim, heir, restarted_wall)
                rounds.append({"victim": victim, "heir": heir, "ip": ip,
                               "failover_s": round(failover_s, 3),
                               "neighbour_s": round(neighbour_s, 3),
                               "first_garp_s": None if garp_s is None else round(garp_s, 3),
                               "remote_failover_s": None if remote_s is None
                               else round(remote_s, 3),
                               "router_neighbour_s": None if router_s is None
                               else round(router_s, 3),
                               "restart_to_back_s": round(back_s, 3),
                               "handback_unanswered_s": unanswered_s,
                               "handback_both_answering_s": overlap_s})
                print(f"round {index + 1}/{args.rounds}: {rounds[-1]}", file=sys.stderr)
                await asyncio.sleep(args.settle)  # the returning owner's repeats finish

            graceful = []
            for index in range(args.graceful_rounds):
                victim, ip, heir = round_robin(index)
                await b.wait_stable(ip, victim)
                since = time.time()
                stopping = asyncio.create_task(c.speakers[victim].stop())  # SIGTERM
                neighbour_s, moved_s, garp_s = await b.takeover(ip, heir)
                await stopping
                await c.restart_speaker(victim)
                await b.wait_stable(ip, victim)
                graceful.append({"victim": victim, "heir": heir, "ip": ip,
                                 "moved_s": round(moved_s, 3),
                                 "neighbour_s": round(neighbour_s, 3),
                                 "first_garp_s": None if garp_s is None else round(garp_s, 3),
                                 "unanswered_s": unanswered_total(c, ip, since)})
                print(f"graceful {index + 1}/{args.graceful_rounds}: {graceful[-1]}",
                      file=sys.stderr)
                await asyncio.sleep(args.settle)

            samples = []
            for index in range(args.garp_samples):
                name = f"garp-{index}"
                created = time.time()
                await c.service(NAMESPACE, name, pool="lan")
                ip, assigned_at = await watcher.wait(name)

                async def first_garp(ip: str = ip, after: float = created
                                     ) -> tuple[bool, object]:
                    found = [at for at, _ in garps(capture.lines(), ip) if at >= after]
                    return bool(found), found[0] if found else None

                garp_at = await netlab.poll_until(f"gratuitous ARP for {ip}", first_garp,
                                                  30.0, c.speaker_logs, 0.02)
                assert isinstance(garp_at, float)
                samples.append({"ip": ip, "owner": owner_of(ip, b.nodes),
                                "create_to_status_s": round(assigned_at - created, 4),
                                "status_to_garp_s": round(garp_at - assigned_at, 4)})
                print(f"garp {index + 1}/{args.garp_samples}: {samples[-1]}", file=sys.stderr)
                await asyncio.sleep(0.5)
            idle = await idle_costs(c, args.idle_seconds)
            b.sample_hwm()
            await capture.stop()
        finally:
            if watcher is not None:
                await watcher.aclose()
            await c.aclose()

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "nodes": args.nodes,
        "heartbeat": {"timeout_s": args.heartbeat_timeout,
                      "interval_s": args.heartbeat_interval},
        "failover": {
            "rounds": len(rounds),
            "failover_s": summary([r["failover_s"] for r in rounds]),
            "neighbour_s": summary([r["neighbour_s"] for r in rounds]),
            "first_garp_s": summary([r["first_garp_s"] for r in rounds
                                     if r["first_garp_s"] is not None]),
            # The same kills seen from the remote client behind the router.
            "remote_failover_s": summary([r["remote_failover_s"] for r in rounds
                                          if r["remote_failover_s"] is not None]),
            "router_neighbour_s": summary([r["router_neighbour_s"] for r in rounds
                                           if r["router_neighbour_s"] is not None]),
            "restart_to_back_s": summary([r["restart_to_back_s"] for r in rounds]),
            "handback_unanswered_s": summary([r["handback_unanswered_s"] for r in rounds]),
            "handback_both_answering_s": summary([r["handback_both_answering_s"]
                                                  for r in rounds]),
            "targets": {"median_s": 2.0, "p95_s": 3.0},
            "each": rounds,
        },
        "graceful_restart": {
            "rounds": len(graceful),
            "moved_s": summary([r["moved_s"] for r in graceful]),
            "first_garp_s": summary([r["first_garp_s"] for r in graceful
                                     if r["first_garp_s"] is not None]),
            "unanswered_s": summary([r["unanswered_s"] for r in graceful]),
            "each": graceful,
        },
        "assignment_to_garp": {
            "status_to_garp_s": summary([s["status_to_garp_s"] for s in samples]),
            "create_to_status_s": summary([s["create_to_status_s"] for s in samples]),
            "target_s": 0.1,
            "each": samples,
        },
        "speaker_peak_rss_mb": dict(sorted(b.hwm.items())),
        "idle": idle,
    }


def handback(c: testenv_cluster.Cluster, ip: str, owner: str, heir: str, since: float
             ) -> tuple[float, float]:
    """From the speakers' logs, once `owner` restarted at epoch `since` and took `ip`
    back from `heir`: (seconds nobody answered for it, seconds both did)."""
    later = [(at, node, kind) for at, node, kind in c.layer2_claim_history(ip) if at >= since]
    claimed = min(at for at, node, kind in later if (node, kind) == (owner, "claim"))
    released = min(at for at, node, kind in later if (node, kind) == (heir, "release"))
    return unanswered_total(c, ip, since), round(max(0.0, released - claimed), 3)


def unanswered_total(c: testenv_cluster.Cluster, ip: str, since: float) -> float:
    """Seconds since epoch `since` in which no speaker answered for `ip`."""
    return round(sum(end - start for start, end in c.layer2_unanswered(ip, since)), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="owner kills")
    parser.add_argument("--graceful-rounds", type=int, default=10,
                        help="owner SIGTERM + restart (a rolling update)")
    parser.add_argument("--garp-samples", type=int, default=10)
    parser.add_argument("--no-remote", dest="remote", action="store_false",
                        help="time failovers from the LAN client only (no remote client "
                             "polling through the router at the same time)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--heartbeat-timeout", type=float, default=1.0)
    parser.add_argument("--heartbeat-interval", type=float, default=0.25)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait after an owner is back, before the next kill")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="how long to measure the idle CPU and heartbeat traffic")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/layer2.py needs root (network namespaces)", file=sys.stderr)
        return 2
    result = asyncio.run(bench(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
