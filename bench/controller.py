"""Benchmark of the controller on a real control plane (issue 4). Prints JSON; asserts nothing.

Starts its own etcd + kube-apiserver (openelb_testenv), installs the CRDs and RBAC, and
runs `openelb controller` as a child process under the openelb-controller
ServiceAccount. Then, as the admin:

1. creates N LoadBalancer Services in one namespace as fast as the apiserver takes them
   (`--concurrency` creates in flight), while a watch timestamps the moment each one's
   status.loadBalancer.ingress appears;
2. reports the time until all N hold an address, p50/p90/p99/max of create→status
   latency (from sending the create request to seeing the status on the watch), and
   the controller's peak RSS (VmHWM);
3. stops the controller (SIGTERM) and starts a new one with the N Services in place:
   time until /readyz answers 200 as leader, and until one new Service is assigned;
   that process's peak RSS too;
4. catch-up: stops it, clears every Service's status, pool label and finalizer (as if
   the Services had been created while no controller ran), starts a third controller
   and times how long it takes to assign all of them, with no creates competing for
   the apiserver. This phase also reports what an assignment costs the apiserver: the
   controller's requests per assignment by method (its openelb_kube_client_requests_total)
   and the CPU seconds kube-apiserver and etcd spent per 1,000 assignments.

The apiserver's own cost per Service create grows with the number of Services (its
ClusterIP allocator recounts every allocated address for a metric on each create), so
at 10k `create_all_s` is bounded by the apiserver; `assigned_after_last_create_s` and
the catch-up rate show the controller's part.

Run: .venv/bin/python bench/controller.py --count 1000   (and --count 10000)
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from openelb.api import annotations
from openelb.kube import client, resources
from openelb.kube import errors as kube_errors
from openelb_testenv import clients, components, controlplane, manifests
from statuswatch import StatusWatch

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
POOL = "198.18.0.0/15"  # RFC 2544 benchmarking range: 131,070 usable addresses


def service_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {annotations.LB_ANNOTATION: annotations.LB_ANNOTATION_VALUE}},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "selector": {"app": name}},
    }


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM)."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(values: list[float]) -> dict[str, float]:
    return {f"p{int(f * 100)}": round(percentile(values, f) * 1000, 1)
            for f in (0.5, 0.9, 0.99)} | {"max": round(max(values) * 1000, 1)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]




async def wait_ready(port: int, process: components.Component, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if not process.running:
                raise RuntimeError(f"controller exited:\n{process.log_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200 and (await response.text()).startswith("lead"):
                        return
            if time.monotonic() > deadline:
                raise TimeoutError("controller not ready")
            await asyncio.sleep(0.02)


async def create_all(kube: client.Kube, names: list[str], concurrency: int
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """Create the Services; returns when each create was sent and when it was answered."""
    sent: dict[str, float] = {}
    created: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with gate:
            for _ in range(20):
                sent[name] = time.perf_counter()
                try:
                    await kube.create(resources.SERVICES, service_body(name), NAMESPACE)
                    created[name] = time.perf_counter()
                    return
                except kube_errors.Retryable as exc:
                    await asyncio.sleep(exc.after)

    await asyncio.gather(*(one(n) for n in names))
    return sent, created


async def bench(count: int, workers: int, concurrency: int, log_dir: Path,
                profile: Path | None) -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    binaries = controlplane.Binaries.locate(REPO)
    settings = controlplane.Settings(log_dir=log_dir)
    async with controlplane.ControlPlane(binaries, settings) as cp, \
            clients.admin_client(cp) as admin:
        await manifests.install(admin, REPO / "deploy" / "crds", REPO / "deploy" / "rbac")
        kube = await client.Kube.from_kubeconfig(str(cp.kubeconfig))
        await kube.create(resources.NAMESPACES, {"metadata": {"name": NAMESPACE}})
        await kube.create(resources.EIPS, {
            "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": "bench",
                         "annotations": {annotations.DEFAULT_EIP_ANNOTATION: "true"}},
            "spec": {"address": POOL}})
        # BGP configured, so the pool can be announced: the Services get what a working
        # install gives them (no NotAnnounced Warning or condition on each).
        await kube.create(resources.BGPCONFS, {
            "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf",
            "metadata": {"name": "default"}, "spec": {"as": 64512}})
        await kube.create(resources.BGPPEERS, {
            "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": "tor"}, "spec": {"conf": {
                "peerAs": 64513, "neighborAddress": "192.0.2.254"}}})
        kubeconfig = await components.token_kubeconfig(
            cp, admin, "openelb-system", "openelb-controller", log_dir / "controller.kubeconfig")

        def controller(tag: str) -> tuple[components.Component, int]:
            port = components.free_port()
            process = components.Component(
                f"controller-{tag}",
                ["controller", "--kubeconfig", str(kubeconfig), "--identity", tag,
                 "--health-addr", f"127.0.0.1:{port}", "--workers", str(workers),
                 "--webhook-addr", "off"],
                log_dir / f"controller-{tag}.log")
            if profile is not None:  # cProfile writes its stats when the process exits
                process.argv[1:3] = ["-m", "cProfile", "-o", f"{profile}.{tag}", "-m",
                                     "openelb"]
            return process, port

        first, port = controller("first")
        began = time.perf_counter()
        await first.start()
        await wait_ready(port, first, 60)
        empty_ready_s = time.perf_counter() - began
        rss_idle = rss_mb(first.pid)

        # 1. N creates in a tight loop while the controller assigns.
        watch = StatusWatch(kube, NAMESPACE, clock=time.perf_counter, poll=1.0)
        await watch.start()
        names = [f"svc-{i:05d}" for i in range(count)]
        servers = cp.pids()
        pids = {"kube-apiserver": servers["kube-apiserver"], "etcd": servers["etcd"],
                "controller": first.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu_before["bench"] = own_cpu_seconds()
        began = time.perf_counter()
        sent, created = await create_all(kube, names, concurrency)
        created_s = time.perf_counter() - began
        await watch.wait_for(set(names), timeout=max(300.0, count / 10))
        all_assigned_s = max(watch.seen.values()) - began
        cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in pids.items()}
        cpu["bench"] = round(own_cpu_seconds() - cpu_before["bench"], 1)
        latencies = [watch.seen[n] - created[n] for n in names]
        from_send = [watch.seen[n] - sent[n] for n in names]
        from_watch = [watch.seen[n] - watch.appeared[n] for n in names]
        rss_first = peak_rss_mb(first.pid)
        await asyncio.sleep(2)  # let the Eip status flush settle before stopping
        stop_began = time.perf_counter()
        await first.stop()
        stop_s = time.perf_counter() - stop_began

        # 2. A restart with the N Services in place: ready, then a new Service assigned.
        again, port = controller("again")
        began = time.perf_counter()
        await again.start()
        await wait_ready(port, again, 300)
        restart_ready_s = time.perf_counter() - began
        _, created_probe = await create_all(kube, ["probe"], 1)
        await watch.wait_for({"probe"}, timeout=300)
        restart_assign_s = watch.seen["probe"] - began
        probe_latency_s = watch.seen["probe"] - created_probe["probe"]
        await asyncio.sleep(1)
        rss_again = peak_rss_mb(again.pid)
        await again.stop()

        # 3. Catch-up: the N+1 Services lost their status while no controller ran (as on
        #    a fresh install); a new controller assigns them all with no creates competing.
        await clear_statuses(kube, [*names, "probe"])
        watch.seen.clear()
        catch_up, port = controller("catch-up")
        servers = {"kube-apiserver": servers["kube-apiserver"], "etcd": servers["etcd"]}
        server_cpu = {name: cpu_seconds(pid) for name, pid in servers.items()}
        began = time.perf_counter()
        await catch_up.start()
        await watch.wait_for({*names, "probe"}, timeout=max(300.0, count / 10))
        catch_up_s = max(watch.seen.values()) - began
        await asyncio.sleep(1)  # the Events of the last assignments are posted after
        per_1000 = {name: round((cpu_seconds(pid) - server_cpu[name]) * 1000 / (count + 1), 2)
                    for name, pid in servers.items()}
        requests = await requests_by_method(port)
        rss_catch_up = peak_rss_mb(catch_up.pid)
        await catch_up.stop()
        await watch.aclose()

    return {
        "benchmark": "controller",
        "count": count,
        "workers": workers,
        "create_concurrency": concurrency,
        # Other work on the machine skews every number: the 1-minute load average at
        # the start and the end of the run says how much.
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_start": load_start, "loadavg_end": round(os.getloadavg()[0], 2)},
        "controller_ready_empty_s": round(empty_ready_s, 3),
        "controller_idle_rss_mb": rss_idle,
        "create_all_s": round(created_s, 3),
        "create_rate_per_s": round(count / created_s, 1),
        "all_assigned_s": round(all_assigned_s, 3),
        "assigned_after_last_create_s": round(all_assigned_s - created_s, 3),
        # From the create's answer (the Service exists) to its status on the watch.
        "latency_ms": summary(latencies),
        # The same from sending the create: adds the apiserver's queueing of creates.
        "latency_from_send_ms": summary(from_send),
        # From the Service's first appearance on a watch to its status on the watch.
        "latency_on_watch_ms": summary(from_watch),
        "cpu_s_during_creates": cpu,
        "controller_peak_rss_mb": rss_first,
        "stop_s": round(stop_s, 3),
        "restart": {
            "ready_s": round(restart_ready_s, 3),
            "first_new_assignment_s": round(restart_assign_s, 3),
            "new_service_latency_ms": round(probe_latency_s * 1000, 1),
            "peak_rss_mb": rss_again,
        },
        "catch_up": {
            "services": count + 1,
            "all_assigned_s": round(catch_up_s, 3),
            "rate_per_s": round((count + 1) / catch_up_s, 1),
            "peak_rss_mb": rss_catch_up,
            # Every request the controller sent in this phase (start-up lists and
            # watches included), per assignment.
            "requests_per_assignment": {m: round(n / (count + 1), 2)
                                        for m, n in sorted(requests.items())},
            "server_cpu_s_per_1000_assignments": per_1000,
        },
        "targets": {"p99_ms_at_1000": 100, "assigned_10000_s": 60, "rss_mb": 200},
    }


async def clear_statuses(kube: client.Kube, names: list[str]) -> None:
    gate = asyncio.Semaphore(32)

    async def clear(name: str) -> None:
        async with gate:
            await kube.patch(resources.SERVICES, name,
                             {"status": {"loadBalancer": {"ingress": None}}},
                             namespace=NAMESPACE, subresource="status")
            await kube.patch(resources.SERVICES, name, {"metadata": {
                "labels": {annotations.EIP_LABEL: None}, "finalizers": None}},
                namespace=NAMESPACE)

    await asyncio.gather(*(clear(n) for n in names))


async def requests_by_method(port: int) -> dict[str, float]:
    """The controller's openelb_kube_client_requests_total, summed by method."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: controller\r\n\r\n")
    text = (await reader.read()).decode()
    writer.close()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("openelb_kube_client_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            method = labels.split('method="', 1)[1].split('"', 1)[0]
            found[method] = found.get(method, 0.0) + float(value)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32, help="controller --workers")
    parser.add_argument("--concurrency", type=int, default=16, help="creates in flight")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the controllers under cProfile, stats to PROFILE.<tag>")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the servers' and the controller's logs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openelb-bench-") as scratch:
        log_dir = args.log_dir or Path(scratch)
        log_dir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(bench(args.count, args.workers, args.concurrency, log_dir,
                                   args.profile))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
