"""Benchmark of VIP mode (issue 11): failover time, status -> gratuitous ARP, memory of
the speaker and its keepalived; the same figures of layer-2 mode beside them. Prints
JSON (also written to bench/results/vip.json); asserts nothing.

Starts its own etcd + kube-apiserver, a namespace lab whose router only forwards (no BGP)
with three nodes, the controller and one `openelb speaker` per node (openelb_testenv);
each speaker runs the real keepalived (VRRP, unicast between the nodes). A VIP Eip
(`spec.protocol: vip`, interface eth0) in the LAN and Services until each node (up to
`--rounds` of them) is VRRP master of one address: the master is the node the layer-2
ownership rule names (priorities 250, 249, ...). Every node carries the Service
addresses on lo and serves HTTP answering its own name; only the master has the address
on eth0, so only it answers ARP. Then:

1. failover, `--rounds` times: SIGKILL the speaker of the VRRP master of one address
   (the victims rotate over the nodes; its keepalived gets SIGTERM with it and resigns,
   priority 0) and measure, from the LAN client, the time until its neighbour entry for
   the address holds the new master's MAC AND an HTTP request is answered by the new
   master (`failover_s`); also until the entry first holds another MAC than the
   victim's (`client_off_victim_s`: a backup that became master too for a moment may
   get the client first), until the new master's first gratuitous ARP on the
   client's wire (tcpdump timestamps, same clock), and until the victim's keepalived
   has exited (`victim_keepalived_gone_s`). Then restart the killed speaker, wait until
   it is master again (after the preempt delay) and the client is back on it
   (`restart_to_back_s`), and let the gratuitous repeats finish before the next round;
2. status -> first gratuitous ARP, `--garp-samples` times: create a Service, take the
   moment its status.loadBalancer.ingress appears on a watch (the Service status
   written), and the tcpdump timestamp of the first gratuitous ARP for that address in
   the LAN client (whoever sent it), and of the first one from the master the rule
   names (a backup whose keepalived reloaded first may become master for a moment,
   until the rule's master preempts after the preempt delay; `first_master_not_owner`
   counts those samples). keepalived's gratuitous ARPs are printed by tcpdump with a
   target MAC, which bench/layer2.py's garps() reads too;
3. peak RSS (VmHWM) of each speaker and of its keepalived processes (the parent and its
   VRRP child, from the pid files in `<node>/speaker/vip/`), read after the start,
   before each kill and at the end; per node the largest seen for each of the three,
   and their sum. The parent and the child share pages (the child is forked), so the
   sum of RSS counts those twice; `pss_end_mb` (proportional set size, at the end)
   counts them once.

Layer 2 beside it: bench/layer2.py runs as a subprocess once this lab is gone, with
the same `--rounds`, `--garp-samples` and `--nodes` (and `--graceful-rounds 0`: there is
no VIP counterpart here), writing to a temporary file; its whole JSON is embedded under
"layer2" and the matching figures side by side under "side_by_side". A separate run of
the very script that produces bench/results/layer2.json measures layer 2 exactly as it
is documented, with its own control plane and lab, and never while the VIP lab runs.
(bench/results/layer2.json itself is not touched.) `--no-layer2` skips it. The
helpers both need (Bench: the client's view; summary, vm_hwm_mb, owner_of) are
imported from bench/layer2.py, as bench/statuswatch.py is (bench/ is on sys.path when
a script there runs).

Only the speaker is killed in (1): the node itself keeps the address on lo and keeps
serving, so HTTP never fails; the figure is how long the LAN keeps sending to the old
node after its speaker died. VRRP timing is the speaker's defaults (advert_int 0.2 s,
preempt_delay 5 s) unless `--vrrp-advert-interval` / `--vrrp-preempt-delay` are given.

Needs root (network namespaces), keepalived and tcpdump, and the control plane built by
hack/build-control-plane.sh.
Run: .venv/bin/python bench/vip.py   (--rounds 20 --garp-samples 10)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import layer2
from openelb.kube import client
from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import controlplane, netlab
from statuswatch import StatusWatch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "vip.json"
NAMESPACE = "bench-vip"
POOL = "192.0.2.128-192.0.2.254"  # inside the lab's LAN 192.0.2.0/24 (nodes .11-.99, client .100)
INTERFACE = "eth0"  # every lab node's LAN interface


def keepalived_pids(host: netlab.Host) -> dict[str, int]:
    """{"keepalived": parent pid, "vrrp": VRRP child pid} of the keepalived the speaker
    on `host` runs, from its pid files; running ones only (an orphan that exited may
    stay a zombie: the sandbox's init does not reap)."""
    found = {}
    for role, name in (("keepalived", "keepalived.pid"), ("vrrp", "vrrp.pid")):
        try:
            pid = int((host.workdir / "speaker" / "vip" / name).read_text().split()[0])
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name") == "keepalived" and not fields.get("State", "").startswith("Z"):
            found[role] = pid
    return found


async def keepalived_gone(host: netlab.Host, since: float, timeout: float = 10.0
                          ) -> float | None:
    """Seconds from epoch `since` until no keepalived of `host`'s speaker runs (it gets
    SIGTERM when its speaker dies, resigns and exits); None if one still runs after
    `timeout`."""
    while keepalived_pids(host):
        if time.time() - since > timeout:
            return None
        await asyncio.sleep(0.01)
    return round(time.time() - since, 3)


def pss_mb(pid: int) -> float | None:
    """Proportional set size of `pid` now (shared pages split among their users), MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


class VipBench(layer2.Bench):
    """bench/layer2.py's Bench (the client's view) with the VRRP master as the speakers'
    view of who holds an address, keepalived in the memory figures, and a takeover
    that also notes when the client left the victim."""

    def __init__(self, c: testenv_cluster.Cluster, capture: netlab.Capture) -> None:
        super().__init__(c, capture)
        self.peaks: dict[str, dict[str, float]] = {}  # node -> role -> VmHWM MiB

    async def wait_stable(self, ip: str, node: str, timeout: float = 60.0) -> None:
        """Only `node` says it is VRRP master of `ip`, and the client reaches it there."""

        async def probe() -> tuple[bool, object]:
            masters = await self.c.vip_masters(ip)
            if masters != {node}:
                return False, {"masters": masters}
            view = await self.client_view(ip)
            return view == (node, node), {"masters": masters, "client": view}

        await netlab.poll_until(f"{ip} mastered by {node}", probe, timeout,
                                self.c.speaker_logs, 0.1)

    async def takeover_from(self, ip: str, old: str, new: str, since_wall: float,
                            since: float) -> dict[str, float | None]:
        """layer2.Bench's takeover from the fault (epoch `since_wall`, monotonic
        `since`), plus `client_off_victim_s`: until the client's neighbour entry no
        longer holds `old`'s MAC (whichever node it holds then answers, as every node
        serves the address)."""
        seen = await self.watch_takeover(ip, new, since_wall, since, old=old)
        return {"failover_s": round(seen.failover_s, 3),
                "neighbour_s": round(seen.neighbour_s, 3),
                "client_off_victim_s": None if seen.off_old_s is None
                else round(seen.off_old_s, 3),
                "first_garp_s": None if seen.first_garp_s is None
                else round(seen.first_garp_s, 3)}

    def pids(self, node: str) -> dict[str, int]:
        found = {}
        speaker = self.c.speakers.get(node)
        if speaker is not None and speaker.running:
            found["speaker"] = speaker.pid
        return found | keepalived_pids(self.c.lab.node(node))

    def sample_hwm(self) -> None:
        for node in self.nodes:
            peaks = self.peaks.setdefault(node, {})
            for role, pid in self.pids(node).items():
                if (mb := layer2.vm_hwm_mb(pid)) is not None:
                    peaks[role] = max(peaks.get(role, 0.0), mb)

    def rss_report(self) -> dict[str, dict[str, float | None]]:
        report = {}
        for node in self.nodes:
            peaks = self.peaks.get(node, {})
            pss = {role: pss_mb(pid) for role, pid in self.pids(node).items()}
            keepalived = [peaks[r] for r in ("keepalived", "vrrp") if r in peaks]
            report[node] = {
                "speaker": peaks.get("speaker"),
                "keepalived_parent": peaks.get("keepalived"),
                "keepalived_vrrp": peaks.get("vrrp"),
                "keepalived_total": round(sum(keepalived), 1) if keepalived else None,
                "sum": round(sum(peaks.values()), 1),
                "pss_end_mb": round(sum(v for v in pss.values() if v is not None), 1),
            }
        return report


async def services_per_node(c: testenv_cluster.Cluster, watcher: StatusWatch,
                            nodes: list[str], wanted: int) -> dict[str, str]:
    """Create Services until `wanted` nodes are the rule's master of one; node -> its
    Service's address."""
    mine: dict[str, str] = {}
    for index in range(80):
        name = f"web-{index}"
        await c.service(NAMESPACE, name, pool="vips")
        await watcher.wait_for({name}, 30.0)
        ip = watcher.ips[name]
        mine.setdefault(layer2.owner_of(ip, nodes), ip)
        if len(mine) >= wanted:
            return mine
    raise RuntimeError(f"after 80 Services only {len(mine)} nodes master one: {mine}")


async def bench_vip(args: argparse.Namespace) -> dict[str, Any]:
    binaries = controlplane.Binaries.locate(REPO)
    vrrp_args: list[str] = []
    if args.vrrp_advert_interval is not None:
        vrrp_args += ["--vrrp-advert-interval", str(args.vrrp_advert_interval)]
    if args.vrrp_preempt_delay is not None:
        vrrp_args += ["--vrrp-preempt-delay", str(args.vrrp_preempt_delay)]
    settings = testenv_cluster.ClusterSettings(speaker_args=tuple(vrrp_args),
                                               log_level=args.log_level)
    async with controlplane.ControlPlane(binaries, controlplane.Settings()) as cp, \
            netlab.Lab(netlab.LabSettings(
                router=None, nodes=args.nodes, ipv6=False,
                keep_workdir=os.environ.get("OPENELB_LAB_KEEP") == "1")) as lab:
        c = testenv_cluster.Cluster(cp, lab, settings)
        kube: client.Kube | None = None
        watcher: StatusWatch | None = None
        try:
            await c.start()
            await c.ensure_namespace(NAMESPACE)
            await c.eip("vips", POOL, protocol="vip", interface=INTERFACE)
            kube = await client.Kube.from_kubeconfig(str(cp.kubeconfig))
            watcher = StatusWatch(kube, NAMESPACE, clock=time.time)
            await watcher.start()
            capture = await lab.lan_client.start_capture("arp")
            b = VipBench(c, capture)
            vips = await services_per_node(c, watcher, b.nodes,
                                           min(len(b.nodes), max(args.rounds, 1)))
            victims = [n for n in b.nodes if n in vips]
            await c.serve_vips(*watcher.ips.values())
            for node, ip in vips.items():
                await b.wait_stable(ip, node)
            b.sample_hwm()

            rounds: list[dict[str, Any]] = []
            for index in range(args.rounds):
                victim = victims[index % len(victims)]
                ip = vips[victim]
                heir = layer2.owner_of(ip, [n for n in b.nodes if n != victim])
                await b.wait_stable(ip, victim)
                b.sample_hwm()
                killed_wall, killed = time.time(), time.monotonic()
                c.speakers[victim].signal(signal.SIGKILL)
                moved = await b.takeover_from(ip, victim, heir, killed_wall, killed)
                gone_s = await keepalived_gone(lab.node(victim), killed_wall)
                restarted = time.monotonic()
                await c.restart_speaker(victim)
                await b.wait_stable(ip, victim)
                back_s = time.monotonic() - restarted
                rounds.append({"victim": victim, "heir": heir, "ip": ip, **moved,
                               "restart_to_back_s": round(back_s, 3),
                               "victim_keepalived_gone_s": gone_s})
                print(f"vip round {index + 1}/{args.rounds}: {rounds[-1]}", file=sys.stderr)
                await asyncio.sleep(args.settle)  # the returning master's repeats finish

            samples: list[dict[str, Any]] = []
            for index in range(args.garp_samples):
                name = f"garp-{index}"
                created = time.time()
                await c.service(NAMESPACE, name, pool="vips")
                await watcher.wait_for({name}, 30.0)
                ip, assigned_at = watcher.ips[name], watcher.seen[name]
                owner = layer2.owner_of(ip, b.nodes)
                owner_mac = lab.node(owner).mac

                async def first_garps(ip: str = ip, after: float = created,
                                      owner_mac: str = owner_mac) -> tuple[bool, object]:
                    found = [(at, mac) for at, mac in layer2.garps(capture.lines(), ip)
                             if at >= after]
                    mine = [at for at, mac in found if mac == owner_mac]
                    return bool(mine), (found[0] if found else None, mine[0] if mine else None)

                seen = await netlab.poll_until(f"gratuitous ARP for {ip} from {owner}",
                                               first_garps, 30.0, c.speaker_logs, 0.02)
                assert isinstance(seen, tuple)
                (first_at, first_mac), owner_at = seen
                samples.append({"ip": ip, "owner": owner,
                                "first_garp_from": b.by_mac.get(first_mac, first_mac),
                                "create_to_status_s": round(assigned_at - created, 4),
                                "status_to_garp_s": round(first_at - assigned_at, 4),
                                "status_to_owner_garp_s": round(owner_at - assigned_at, 4)})
                print(f"vip garp {index + 1}/{args.garp_samples}: {samples[-1]}",
                      file=sys.stderr)
                await asyncio.sleep(0.5)
            b.sample_hwm()
            restarts = {n: await c.speaker_metric(n, "openelb_keepalived_restarts_total")
                        for n in b.nodes}
            rss = b.rss_report()
            await capture.stop()
        finally:
            if watcher is not None:
                await watcher.aclose()
            if kube is not None:
                await kube.aclose()
            await c.aclose()

    return {
        "failover_s": layer2.summary([r["failover_s"] for r in rounds]),
        "neighbour_s": layer2.summary([r["neighbour_s"] for r in rounds]),
        "client_off_victim_s": layer2.summary([r["client_off_victim_s"] for r in rounds
                                               if r["client_off_victim_s"] is not None]),
        "first_garp_s": layer2.summary([r["first_garp_s"] for r in rounds
                                        if r["first_garp_s"] is not None]),
        "restart_to_back_s": layer2.summary([r["restart_to_back_s"] for r in rounds]),
        "victim_keepalived_gone_s": layer2.summary([r["victim_keepalived_gone_s"]
                                                    for r in rounds
                                                    if r["victim_keepalived_gone_s"]
                                                    is not None]),
        "failover_rounds": rounds,
        "status_to_garp_ms": layer2.summary(ms([s["status_to_garp_s"] for s in samples])),
        "status_to_owner_garp_ms": layer2.summary(ms([s["status_to_owner_garp_s"]
                                                      for s in samples])),
        "create_to_status_ms": layer2.summary(ms([s["create_to_status_s"] for s in samples])),
        # Samples whose first master was not the rule's (it preempts after the delay).
        "first_master_not_owner": sum(s["first_garp_from"] != s["owner"] for s in samples),
        "garp_samples": samples,
        "rss_mb": rss,
        # Counted by the speakers running at the end (a restarted speaker starts at 0).
        "keepalived_restarts": restarts,
    }


async def bench_layer2(args: argparse.Namespace) -> dict[str, Any]:
    """bench/layer2.py with the same counts, as a subprocess; its JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-vip-") as tmp:
        output = Path(tmp) / "layer2.json"
        argv = [sys.executable, str(REPO / "bench" / "layer2.py"),
                "--rounds", str(args.rounds), "--garp-samples", str(args.garp_samples),
                "--graceful-rounds", "0", "--nodes", str(args.nodes),
                "--output", str(output)]
        print(f"layer2: {' '.join(argv[1:])}", file=sys.stderr)
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
        code = await process.wait()
        if code != 0 or not output.exists():
            return {"error": f"bench/layer2.py exited with code {code}", "argv": argv[1:]}
        result: dict[str, Any] = json.loads(output.read_text())
        result["argv"] = argv[1:]
        return result


def side_by_side(vip: dict[str, Any], l2: dict[str, Any]) -> dict[str, Any]:
    """The figures both modes have, {"vip": ..., "layer2": ...} each."""
    failover = l2.get("failover", {})
    garp = l2.get("assignment_to_garp", {}).get("status_to_garp_s", {})
    rows: dict[str, Any] = {}
    for key in ("median", "p95", "max"):
        rows[f"failover_{key}_s"] = {"vip": vip["failover_s"].get(key),
                                     "layer2": failover.get("failover_s", {}).get(key)}
    rows["first_garp_median_s"] = {"vip": vip["first_garp_s"].get("median"),
                                   "layer2": failover.get("first_garp_s", {}).get("median")}
    rows["restart_to_back_median_s"] = {
        "vip": vip["restart_to_back_s"].get("median"),
        "layer2": failover.get("restart_to_back_s", {}).get("median")}
    for key in ("median", "p95"):
        l2_ms = garp.get(key)
        rows[f"status_to_garp_{key}_ms"] = {
            "vip": vip["status_to_garp_ms"].get(key),
            "layer2": None if l2_ms is None else round(l2_ms * 1000, 1)}
    l2_rss = l2.get("speaker_peak_rss_mb", {})
    rows["peak_rss_per_node_mb"] = {
        node: {"vip_speaker": figures["speaker"], "vip_keepalived": figures["keepalived_total"],
               "vip_sum": figures["sum"], "layer2_speaker": l2_rss.get(node)}
        for node, figures in vip["rss_mb"].items()}
    return rows


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    vip = await bench_vip(args)
    vip_s = time.monotonic() - started
    l2 = None if args.no_layer2 else await bench_layer2(args)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "nodes": args.nodes,
        "vrrp": {"advert_int_s": args.vrrp_advert_interval or 0.2,
                 "preempt_delay_s": 5.0 if args.vrrp_preempt_delay is None
                 else args.vrrp_preempt_delay},
        "rounds": args.rounds,
        "garp_samples": args.garp_samples,
        "vip": vip,
    }
    if l2 is not None:
        result["layer2"] = l2
        if "error" not in l2:
            result["side_by_side"] = side_by_side(vip, l2)
    total_s = time.monotonic() - started
    result["run_s"] = {"vip": round(vip_s, 1), "layer2": round(total_s - vip_s, 1),
                       "total": round(total_s, 1)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="master kills")
    parser.add_argument("--garp-samples", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--vrrp-advert-interval", type=float, default=None,
                        help="passed to every speaker (default: the speaker's, 0.2 s)")
    parser.add_argument("--vrrp-preempt-delay", type=float, default=None,
                        help="passed to every speaker (default: the speaker's, 5 s)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait after a master is back, before the next kill")
    parser.add_argument("--log-level", default="info",
                        help="the daemons' (debug: keepalived's own lines in speaker.log)")
    parser.add_argument("--no-layer2", action="store_true",
                        help="skip the layer-2 run (bench/layer2.py) beside it")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/vip.py needs root (network namespaces)", file=sys.stderr)
        return 2
    result = asyncio.run(bench(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    return 1 if "error" in result.get("layer2", {}) else 0


if __name__ == "__main__":
    sys.exit(main())
