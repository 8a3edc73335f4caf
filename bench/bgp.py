"""Benchmark of BGP mode against a real BIRD (issue 5). Prints JSON; asserts nothing.

Starts its own etcd + kube-apiserver, a namespace lab (BIRD router, three nodes, IPv4
and IPv6) and an openelb Cluster (the controller and one `openelb speaker` per node),
with one IPv4 and one IPv6 BgpPeer to the router. The router's kernel FIB is followed
with `ip monitor route` in its namespace: every route message is stamped when it
arrives, so "present" means the kernel has it, not that BIRD learned it. Then:

a. latency: 100 IPv4 Services, one after the other; for each, from the moment a watch
   sees its status.loadBalancer.ingress written to the moment the router's kernel has
   the /32, first with one next hop and then with all three (p50/p90/p99/max);
b. scale: 1,000 IPv6 Services created at once (IPv4 documentation space has only 254
   addresses outside the lab's subnets, so these are /128s from 2001:db8:3::/112):
   time until every status is written and until the kernel has every /128 via all
   three nodes;
c. memory: peak RSS (VmHWM) of each speaker, its ExaBGP and ExaBGP's API bridge,
   with the 1,100 routes in place;
d. SIGTERM: a speaker is terminated (five tries, rotating over the nodes): time until
   the router's kernel drops that node from one Service's /32, from each prefix and
   from the last of the 1,100; then the speaker restarts, and the time until every
   route has all its next hops again.

Targets (issue 5; the memory budget re-set by issue 14): (a) p99 <= 300 ms, (d) <= 500 ms,
(c) <= 100 MB per node with the ExaBGP engine.
Run: .venv/bin/python bench/bgp.py   (JSON also written to bench/results/bgp.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openelb.api import annotations
from openelb.kube import client, resources
from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import controlplane, netlab
from statuswatch import StatusWatch

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "bench" / "results" / "bgp.json"
NAMESPACE = "bench-bgp"
POOL_V4 = "203.0.113.0/24"
POOL_V6 = "2001:db8:3::/112"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {f"p{int(f * 100)}": round(percentile(values, f) * 1000, 1)
            for f in (0.5, 0.9, 0.99)} | {"max": round(max(values) * 1000, 1), "n": len(values)}


def service_body(name: str, family: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {annotations.LB_ANNOTATION: annotations.LB_ANNOTATION_VALUE,
                                     "eip.openelb.kubesphere.io/v1alpha2": f"bench-{family}"}},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                 "externalTrafficPolicy": "Cluster",
                 "ipFamilies": ["IPv4" if family == "v4" else "IPv6"],
                 "ipFamilyPolicy": "SingleStack",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "selector": {"app": name}},
    }


# --- what the router's kernel has -------------------------------------------------------


class RouteMonitor:
    """`ip monitor route` in the router namespace: next hops per prefix, as they change.

    Each message line is stamped (time.monotonic) as it arrives. A message replaces the
    prefix's next hops (BIRD installs merged ECMP routes whole); `Deleted` empties them.
    """

    def __init__(self, host: netlab.Host) -> None:
        self.host = host
        self.hops: dict[str, set[str]] = {}
        self.first_seen: dict[str, float] = {}  # prefix -> first time it had a next hop
        self.full_at: dict[str, float] = {}  # prefix -> last time it reached `full` hops
        self.history: list[tuple[float, str, frozenset[str]]] = []  # (when, prefix, hops)
        self.full = 3
        self.changed = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            "ip", "-n", self.host.netns, "monitor", "route",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        current: str | None = None
        while line := await self._process.stdout.readline():
            now = time.monotonic()
            text = line.decode(errors="replace")
            words = text.split()
            if not words:
                continue
            if text[0].isspace():  # "\tnexthop via X dev eth0 weight 1"
                if current is not None and "via" in words:
                    self._set(current, self.hops[current] | {words[words.index("via") + 1]},
                              now)
                continue
            deleted = words[0] == "Deleted"
            if deleted:
                words = words[1:]
            if "proto" not in words or words[words.index("proto") + 1] != "bird":
                current = None
                continue
            current = str(ipaddress.ip_network(words[0]))
            hops = set() if deleted else ({words[words.index("via") + 1]}
                                          if "via" in words else set())
            self._set(current, hops, now)

    def _set(self, prefix: str, hops: set[str], now: float) -> None:
        before = self.hops.get(prefix, set())
        self.hops[prefix] = hops
        self.history.append((now, prefix, frozenset(hops)))
        if hops and prefix not in self.first_seen:
            self.first_seen[prefix] = now
        if len(hops) >= self.full and len(before) < self.full:
            self.full_at[prefix] = now
        self.changed.set()

    async def wait(self, what: str, condition: Callable[[], bool], timeout: float) -> float:
        """Wait until `condition()` holds; returns time.monotonic() when it first did."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"router kernel: {what} not reached in {timeout:g}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self.changed.wait()
        return time.monotonic()

    async def aclose(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- when statuses are written ----------------------------------------------------------




# --- processes --------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _role(pid: int) -> str | None:
    line = _cmdline(pid)
    return ("bridge" if "nc.openbsd " in line else
            "exabgp" if " -m exabgp server " in line else
            "speaker" if "openelb speaker" in line else None)


def speaker_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the speaker, its ExaBGP and the API bridge."""
    found = {"speaker": 0.0, "exabgp": 0.0, "bridge": 0.0}
    for process in _descendants(pid):
        role = _role(process)
        if role is not None:
            found[role] += cpu_seconds(process)
    return found


def speaker_memory(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM, MB) of the speaker, its ExaBGP and the API bridge, and the sum."""
    roles = {"speaker": 0, "exabgp": 0, "bridge": 0}
    for process in _descendants(pid):
        role = _role(process)
        if role is not None:
            roles[role] += _status_kb(process, "VmHWM")
    result = {name: round(kb / 1024, 1) for name, kb in roles.items()}
    result["total"] = round(sum(roles.values()) / 1024, 1)
    return result


# --- the benchmark ----------------------------------------------------------------------


async def bench(latency_count: int, scale_count: int, sigterm_tries: int,
                log_dir: Path) -> dict[str, Any]:
    binaries = controlplane.Binaries.locate(REPO)
    cp_settings = controlplane.Settings(log_dir=log_dir)
    lab_settings = netlab.LabSettings(router="bird", nodes=3, ipv6=True,
                                      keep_workdir=os.environ.get("OPENELB_LAB_KEEP") == "1")
    async with controlplane.ControlPlane(binaries, cp_settings) as cp, \
            netlab.Lab(lab_settings) as lab, testenv_cluster.Cluster(cp, lab) as c:
        kube = await client.Kube.from_kubeconfig(str(cp.kubeconfig))
        nodes = {host.name: host for host in lab.nodes}
        v4_hops = {str(h.ipv4) for h in lab.nodes}
        v6_hops = {str(h.ipv6) for h in lab.nodes}
        await c.ensure_namespace(NAMESPACE)
        await c.bgp(peers=[str(lab.router_host.ipv4), str(lab.router_host.ipv6)])
        await c.eip("bench-v4", POOL_V4)
        await c.eip("bench-v6", POOL_V6)
        await lab.router.wait_for_sessions(timeout=60)
        monitor = RouteMonitor(lab.router_host)
        await monitor.start()
        watch = StatusWatch(kube, NAMESPACE)
        await watch.start()

        def prefix(name: str) -> str:
            return str(ipaddress.ip_network(watch.ips[name]))

        def speaker_rss() -> float:
            """The largest current RSS (MB) of the three speaker processes themselves."""
            return round(max(_status_kb(c.speakers[n].pid, "VmRSS") for n in nodes) / 1024, 1)

        rss_phases = {"idle": speaker_rss()}

        # a. status -> route, one Service at a time.
        first_hop: list[float] = []
        all_hops: list[float] = []
        from_create: list[float] = []
        latency_names = [f"lat-{i:03d}" for i in range(latency_count)]
        for name in latency_names:
            sent = time.monotonic()
            await kube.create(resources.SERVICES, service_body(name, "v4"), NAMESPACE)
            await watch.wait_for({name}, 30)
            net = prefix(name)
            await monitor.wait(f"{net} via 3 nodes",
                               lambda net=net: monitor.hops.get(net) == v4_hops, 30)
            first_hop.append(monitor.first_seen[net] - watch.seen[name])
            all_hops.append(monitor.full_at[net] - watch.seen[name])
            from_create.append(monitor.full_at[net] - sent)

        rss_phases[f"after_{latency_count}_services"] = speaker_rss()

        # b. 1,000 Services at once.
        scale_names = [f"scale-{i:04d}" for i in range(scale_count)]
        gate = asyncio.Semaphore(16)

        async def create(name: str) -> None:
            async with gate:
                await kube.create(resources.SERVICES, service_body(name, "v6"), NAMESPACE)

        def cpu_now() -> dict[str, float]:
            found = {name: cpu_seconds(pid) for name, pid in cp.pids().items()}
            assert c.controller is not None
            found["controller"] = cpu_seconds(c.controller.pid)
            found["bird"] = sum(cpu_seconds(p.pid) for p in lab.router.processes)
            found["bench"] = cpu_seconds(os.getpid())
            for name in nodes:
                for role, spent in speaker_cpu(c.speakers[name].pid).items():
                    found[f"{name}/{role}"] = spent
            return found

        cpu_before = cpu_now()
        began = time.monotonic()
        await asyncio.gather(*(create(n) for n in scale_names))
        created_s = time.monotonic() - began
        await watch.wait_for(set(scale_names), 600)
        statuses_s = max(watch.seen[n] for n in scale_names) - began
        scale_prefixes = {prefix(n) for n in scale_names}
        done = await monitor.wait(
            f"{scale_count} /128 via 3 nodes",
            lambda: all(monitor.hops.get(p) == v6_hops for p in scale_prefixes), 600)
        routes_s = done - began
        cpu_spent = {name: round(spent - cpu_before.get(name, 0.0), 1)
                     for name, spent in cpu_now().items()}
        scale_latency = [monitor.full_at[prefix(n)] - watch.seen[n] for n in scale_names]

        # c. memory with every route in place.
        await asyncio.sleep(2)
        memory = {name: speaker_memory(c.speakers[name].pid) for name in nodes}
        rss_phases[f"after_{latency_count + scale_count}_services"] = speaker_rss()

        # d. SIGTERM -> withdrawn at the router; restart -> everything back.
        probe = prefix(latency_names[0])
        every_prefix = {prefix(n) for n in latency_names} | scale_prefixes
        withdraw_one: list[float] = []
        withdraw_each: list[float] = []
        withdraw_all: list[float] = []
        back_all: list[float] = []
        exits: list[float] = []
        for attempt in range(sigterm_tries):
            node = sorted(nodes)[attempt % len(nodes)]
            gone = {str(nodes[node].ipv4), str(nodes[node].ipv6)}
            process = c.speakers[node]
            began = time.monotonic()
            process.signal(signal.SIGTERM)
            at = await monitor.wait(f"{probe} without {node}",
                                    lambda gone=gone: not (monitor.hops.get(probe, set()) & gone),
                                    30)
            withdraw_one.append(at - began)
            at = await monitor.wait(
                f"every prefix without {node}",
                lambda gone=gone: not any(monitor.hops.get(p, set()) & gone
                                          for p in every_prefix), 60)
            withdraw_all.append(at - began)
            lost: dict[str, float] = {}
            for when, net, hops in monitor.history:
                if when >= began and net in every_prefix and not hops & gone:
                    lost.setdefault(net, when - began)
            withdraw_each.extend(lost.values())
            await process.wait(30)
            exits.append(time.monotonic() - began)
            began = time.monotonic()
            await c.start_speaker(node)
            at = await monitor.wait(
                "every prefix via 3 nodes again",
                lambda: all(len(monitor.hops.get(p, ())) == 3 for p in every_prefix), 300)
            back_all.append(at - began)

        await watch.aclose()
        await monitor.aclose()

    peak = max(m["total"] for m in memory.values())
    return {
        "benchmark": "bgp",
        "router": "bird",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "a_status_to_route": {
            "services": latency_count,
            # From the status on a watch to the /32 in the router's kernel.
            "first_next_hop_ms": summary_ms(first_hop),
            "all_3_next_hops_ms": summary_ms(all_hops),
            # From sending the create (adds the controller's assignment).
            "create_to_all_3_next_hops_ms": summary_ms(from_create),
        },
        "b_scale": {
            "services": scale_count,
            "family": "IPv6 /128 (IPv4 documentation space is too small)",
            "create_all_s": round(created_s, 3),
            "all_statuses_s": round(statuses_s, 3),
            "all_routes_via_3_nodes_s": round(routes_s, 3),
            "routes_after_last_status_s": round(done - max(watch.seen[n] for n in scale_names),
                                                3),
            "status_to_all_3_next_hops_ms": summary_ms(scale_latency),
            # CPU seconds each process spent from the first create to the last route.
            "cpu_s": cpu_spent,
        },
        "c_peak_rss_mb": {"per_node": memory, "max_total": peak,
                          # Current RSS of the speaker process alone at each phase.
                          "speaker_now_by_phase": rss_phases},
        "d_sigterm": {
            "tries": sigterm_tries,
            # One Service's /32 (the first of part a) loses the node's next hop.
            "probe_withdrawn_ms": summary_ms(withdraw_one),
            # Each of the 1,100 prefixes, over all tries.
            "each_prefix_withdrawn_ms": summary_ms(withdraw_each),
            # The last of them (the router's kernel has then dropped the node entirely).
            "every_prefix_withdrawn_ms": summary_ms(withdraw_all),
            "process_exited_ms": summary_ms(exits),
            "restart_to_every_route_back_ms": summary_ms(back_all),
        },
        "targets": {"a_p99_ms": 300, "d_withdraw_ms": 500, "c_rss_mb": 100},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency-count", type=int, default=100)
    parser.add_argument("--scale-count", type=int, default=1000)
    parser.add_argument("--sigterm-tries", type=int, default=5)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the servers' logs here")
    parser.add_argument("--no-save", action="store_true",
                        help=f"do not write {RESULT.relative_to(REPO)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openelb-bench-") as scratch:
        log_dir = args.log_dir or Path(scratch)
        log_dir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(bench(args.latency_count, args.scale_count, args.sigterm_tries,
                                   log_dir))
    text = json.dumps(result, indent=2) + "\n"
    sys.stdout.write(text)
    if not args.no_save:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
