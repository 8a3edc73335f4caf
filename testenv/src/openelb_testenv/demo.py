"""`openelb demo`: the whole system on one machine, narrated.

Test environment (DESIGN §5), wired by cli.py. Starts the real control plane, builds a
namespace lab (BIRD router, three nodes, a LAN client, a remote client; documentation
addresses only, oelb- namespaces only), runs the controller and three speakers,
creates a BGP pool and a layer-2 pool with one Service each, shows the addresses, the
router's ECMP next hops and HTTP answers from several nodes, then pulls the cable of
one node and measures how long each mode takes to route around it. Ends with a summary
table (and, with `summary_path`, the same facts as JSON for tests).
"""

import asyncio
import dataclasses
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openelb import cli, statusview
from openelb_testenv import cluster, controlplane, netlab

__all__ = ["DemoResult", "run"]

NAMESPACE = "demo"
BGP_POOL, LAN_POOL = "bgp-pool", "lan-pool"
HOLD_TIME = 3  # seconds: the demo's routers give up on a silent node this fast


@dataclasses.dataclass
class DemoResult:
    bgp_ip: str = ""
    lan_ip: str = ""
    assign_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    ecmp_next_hops: list[str] = dataclasses.field(default_factory=list)
    bgp_answering_nodes: list[str] = dataclasses.field(default_factory=list)
    lan_owner: str = ""
    failed_node: str = ""
    lan_new_owner: str = ""
    lan_failover_s: float | None = None
    bgp_failover_s: float | None = None
    bgp_next_hops_after: list[str] = dataclasses.field(default_factory=list)
    bgp_answering_after: list[str] = dataclasses.field(default_factory=list)
    status_healthy: bool = False  # `openelb status` said healthy once the cable was back


class _Narrator:
    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out
        self._t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        self._out(f"[{time.monotonic() - self._t0:6.1f}s] {text}")


async def _until(probe: Callable[[], Any], timeout: float, interval: float = 0.02) -> float:
    """Seconds until `await probe()` is truthy (raises TimeoutError)."""
    start = time.monotonic()
    while not await probe():
        if time.monotonic() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(interval)
    return time.monotonic() - start


async def run(out: Callable[[str], None], *, keep: bool = False,
              summary_path: Path | None = None) -> DemoResult:
    say = _Narrator(out)
    result = DemoResult()
    say("openelb demo: LoadBalancer Services on a simulated bare-metal network")
    started = time.monotonic()
    binaries = controlplane.Binaries.locate()
    async with controlplane.ControlPlane(binaries) as cp:
        say(f"control plane: kube-apiserver + etcd at {cp.server} "
            f"(up in {time.monotonic() - started:.1f} s)")
        settings = netlab.LabSettings(router="bird", nodes=3, ipv6=True,
                                      bgp=netlab.RouterConfig(hold_time=HOLD_TIME, keepalive=1))
        async with netlab.Lab(settings) as lab:
            nodes = {h.name: h for h in lab.nodes}
            say(f"lab {lab.run_id}: router {lab.router_host.ipv4} (BIRD, AS 64513), nodes "
                + ", ".join(f"{n} {h.ipv4}" for n, h in nodes.items())
                + f", LAN client {lab.lan_client.ipv4}, remote client {lab.remote_client.ipv4}")
            async with cluster.Cluster(cp, lab) as c:
                say("openelb: controller running; one speaker in each node's namespace")
                await c.bgp(hold_time=HOLD_TIME)
                await c.eip(BGP_POOL, "203.0.113.0/24")
                await c.eip(LAN_POOL, "192.0.2.200-192.0.2.220", protocol="layer2",
                            interface=f"can_reach:{lab.router_host.ipv4}")
                say(f"pools: eip/{BGP_POOL} 203.0.113.0/24 (BGP, AS 64512 -> router AS 64513), "
                    f"eip/{LAN_POOL} 192.0.2.200-192.0.2.220 (layer 2)")
                for name, pool in (("web-bgp", BGP_POOL), ("web-lan", LAN_POOL)):
                    t = time.monotonic()
                    await c.service(NAMESPACE, name, pool=pool)
                    (ip,) = await c.wait_for_ips(NAMESPACE, name)
                    result.assign_ms[name] = round((time.monotonic() - t) * 1000, 1)
                    if pool == BGP_POOL:
                        result.bgp_ip = ip
                    else:
                        result.lan_ip = ip
                    say(f"service {NAMESPACE}/{name}: EXTERNAL-IP {ip} "
                        f"(assigned in {result.assign_ms[name]:.0f} ms)")
                await c.serve_vips(result.bgp_ip, result.lan_ip)
                await _show_bgp(c, lab, result, say, nodes)
                await _show_layer2(c, lab, result, say, nodes)
                await _fail_a_node(c, lab, result, say, nodes)
                _summary(result, say, out)
                await _show_status(cp, result, say, out)
                if summary_path is not None:
                    summary_path.write_text(json.dumps(dataclasses.asdict(result), indent=2))
                if keep:
                    await _explore(lab, result, out, cp.kubeconfig)
    return result


async def _show_bgp(c: cluster.Cluster, lab: netlab.Lab, result: DemoResult,
                    say: _Narrator, nodes: dict[str, netlab.Host]) -> None:
    expected = {str(h.ipv4) for h in nodes.values()}
    await lab.router.wait_for_routes(f"{result.bgp_ip}/32", expected, 60, kernel=True)
    result.ecmp_next_hops = sorted(await lab.router.kernel_routes(f"{result.bgp_ip}/32"))
    say(f"router kernel: {result.bgp_ip}/32 via {', '.join(result.ecmp_next_hops)} (ECMP)")
    result.bgp_answering_nodes = sorted(await c.answering_nodes(
        result.bgp_ip, tries=20, timeout=1.0, pause=0.1))
    say(f"remote client -> http://{result.bgp_ip}: answered by "
        f"{', '.join(result.bgp_answering_nodes)} (20 requests)")


async def _show_layer2(c: cluster.Cluster, lab: netlab.Lab, result: DemoResult,
                       say: _Narrator, nodes: dict[str, netlab.Host]) -> None:
    by_mac = {h.mac: n for n, h in nodes.items()}

    async def resolved() -> bool:
        try:  # the first request makes the client ask who has the address
            await lab.http_get(lab.lan_client, result.lan_ip, timeout=1.0)
        except netlab.CommandFailed:
            return False
        entry = await lab.lan_client.neighbor(result.lan_ip)
        return entry is not None and entry.mac in by_mac

    await _until(resolved, 60, 0.2)
    entry = await lab.lan_client.neighbor(result.lan_ip)
    assert entry is not None
    assert entry.mac is not None
    result.lan_owner = by_mac[entry.mac]
    answered = (await lab.http_get(lab.lan_client, result.lan_ip)).strip()
    say(f"LAN client: {result.lan_ip} is at {entry.mac} = {result.lan_owner} "
        f"(the layer-2 owner); http answered by {answered}")


async def _fail_a_node(c: cluster.Cluster, lab: netlab.Lab, result: DemoResult,
                       say: _Narrator, nodes: dict[str, netlab.Host]) -> None:
    victim = nodes[result.lan_owner]
    result.failed_node = victim.name
    by_mac = {h.mac: n for n, h in nodes.items()}
    say(f"pulling the cable of {victim.name} (the layer-2 owner, and one BGP next hop) ...")
    await victim.set_link(False)

    async def lan_moved() -> bool:
        entry = await lab.lan_client.neighbor(result.lan_ip)
        if entry is None or entry.mac is None or by_mac.get(entry.mac) in (None, victim.name):
            return False
        try:
            body = (await lab.http_get(lab.lan_client, result.lan_ip, timeout=0.5)).strip()
        except netlab.CommandFailed:
            return False
        result.lan_new_owner = body
        return body != victim.name

    async def bgp_moved() -> bool:
        hops = await lab.router.kernel_routes(f"{result.bgp_ip}/32")
        return bool(hops) and str(victim.ipv4) not in hops

    lan, bgp = await asyncio.gather(_until(lan_moved, 60), _until(bgp_moved, 60),
                                    return_exceptions=True)
    if isinstance(lan, float):
        result.lan_failover_s = round(lan, 2)
        say(f"layer 2: LAN client reaches {result.lan_new_owner} after "
            f"{result.lan_failover_s:.2f} s (gratuitous ARP from the new owner)")
    else:
        say("layer 2: no failover within 60 s")
    if isinstance(bgp, float):
        result.bgp_failover_s = round(bgp, 2)
        result.bgp_next_hops_after = sorted(await lab.router.kernel_routes(
            f"{result.bgp_ip}/32"))
        result.bgp_answering_after = sorted(await c.answering_nodes(
            result.bgp_ip, tries=10, timeout=1.0, pause=0.1))
        say(f"BGP: router dropped {victim.ipv4} after {result.bgp_failover_s:.2f} s "
            f"(hold time {HOLD_TIME} s); next hops now "
            f"{', '.join(result.bgp_next_hops_after)}; remote http answered by "
            f"{', '.join(result.bgp_answering_after)}")
    else:
        say("BGP: the router kept the dead next hop for 60 s")
    await victim.set_link(True)


async def _show_status(cp: controlplane.ControlPlane, result: DemoResult, say: _Narrator,
                       out: Callable[[str], None]) -> None:
    """`openelb status` on the demo cluster, once healed from the cable pull (the node's
    sessions come back and it takes its layer-2 address back), or as it is after 60 s."""
    say("openelb status (what `kubectl openelb status` prints) ...")
    report = await cli.read_status(str(cp.kubeconfig))
    deadline = time.monotonic() + 60
    while not report.healthy and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        report = await cli.read_status(str(cp.kubeconfig))
    result.status_healthy = report.healthy
    out(statusview.render(report).rstrip("\n"))


def _summary(result: DemoResult, say: _Narrator, out: Callable[[str], None]) -> None:
    rows = [
        ("BGP service", f"{NAMESPACE}/web-bgp", result.bgp_ip),
        ("  assigned in", "", f"{result.assign_ms.get('web-bgp', 0):.0f} ms"),
        ("  ECMP next hops", "", ", ".join(result.ecmp_next_hops)),
        ("  nodes answering", "", ", ".join(result.bgp_answering_nodes)),
        ("  failover", f"{result.failed_node} cable pulled",
         f"{result.bgp_failover_s:.2f} s" if result.bgp_failover_s is not None else "none"),
        ("layer-2 service", f"{NAMESPACE}/web-lan", result.lan_ip),
        ("  assigned in", "", f"{result.assign_ms.get('web-lan', 0):.0f} ms"),
        ("  owner", "", result.lan_owner),
        ("  failover", f"to {result.lan_new_owner or '-'}",
         f"{result.lan_failover_s:.2f} s" if result.lan_failover_s is not None else "none"),
    ]
    say("summary")
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    out("-" * (width[0] + width[1] + 30))
    for what, where, value in rows:
        out(f"{what:<{width[0]}}  {where:<{width[1]}}  {value}")
    out("-" * (width[0] + width[1] + 30))


async def _explore(lab: netlab.Lab, result: DemoResult, out: Callable[[str], None],
                   kubeconfig: Path) -> None:
    out("")
    out("The lab stays up until you press Ctrl-C (or send SIGTERM). Try, as root:")
    out(f"  ip netns exec {lab.remote_client.netns} curl http://{result.bgp_ip}/")
    out(f"  ip netns exec {lab.lan_client.netns} curl http://{result.lan_ip}/")
    out(f"  ip netns exec {lab.router_host.netns} ip route show {result.bgp_ip}")
    out(f"  ip netns exec {lab.lan_client.netns} ip neigh show {result.lan_ip}")
    out(f"  openelb status --kubeconfig {kubeconfig}")
    out(f"  logs: {lab.workdir}")
    out("If this process is killed hard, remove leftovers with: openelb demo --teardown")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    out("tearing down ...")


def teardown() -> list[str]:
    """Remove lab namespaces (and their processes) left by a demo that was killed."""
    return netlab.remove_stale_namespaces(unclaimed=False)
