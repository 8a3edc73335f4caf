"""VIP mode end to end: keepalived (VRRP, unicast between the nodes) holds each address
on the node the layer-2 ownership rule names, and a backup takes over when it dies
(issue 11, docs/vip.md).

Each story runs the real apiserver, the controller and one `openelb speaker` per node
namespace; each speaker runs the real keepalived. Service addresses come from the LAN;
every node carries them on lo with arp_ignore=1 (as kube-proxy's IPVS mode leaves them),
so only the node where keepalived put the address on eth0 answers ARP/NDP. The LAN
client checks what a user would: its neighbour entry and which node answers HTTP.
Takeover times are recorded as test properties, never asserted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from openelb.testenv import cluster as testenv_cluster
from openelb.testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = pytest.mark.root

NODES = ("node-a", "node-b", "node-c")
POOL_V4 = "192.0.2.200-192.0.2.220"
POOL_V6 = "2001:db8:1::200-2001:db8:1::220"
HOW = "as VRRP master"

RecordProperty = Callable[[str, object], None]


def _namespace() -> str:
    return f"e2e-{uuid.uuid4().hex[:6]}"


async def _web(c: testenv_cluster.Cluster, ns: str, name: str = "web", *, v6: bool = False,
               local: bool = False) -> str:
    """A VIP pool in the LAN (interface eth0 on every node) and one Service from it."""
    pool = "vips6" if v6 else "vips"
    await c.eip(pool, POOL_V6 if v6 else POOL_V4, protocol="vip", interface="eth0")
    await c.service(ns, name, pool=pool, local=local, families=("IPv6",) if v6 else ("IPv4",))
    (vip,) = await c.wait_for_ips(ns, name)
    await c.serve_vips(vip)
    return vip


async def wait_for_master(c: testenv_cluster.Cluster, ip: str, expected: str | None,
                          timeout: float = 30.0) -> None:
    """Poll until exactly `expected` reports itself VRRP master of `ip`."""
    wanted = {expected} if expected else set()

    async def probe() -> tuple[bool, object]:
        masters = await c.vip_masters(ip)
        return masters == wanted, masters

    await netlab.poll_until(f"vrrp master of {ip} == {expected}", probe, timeout,
                            c.speaker_logs, interval=0.1)


async def _holders(c: testenv_cluster.Cluster, ip: str) -> set[str]:
    """The nodes whose eth0 carries `ip` (where keepalived put it)."""
    found = set()
    for host in c.lab.nodes:
        out = await host.exec("ip", "-o", "addr", "show", "dev", "eth0", timeout=10.0)
        if f" {ip}/" in out.stdout:
            found.add(host.name)
    return found


def _record(record_property: RecordProperty, prefix: str, failover: lan.Failover) -> None:
    for key, value in failover.properties(prefix):
        record_property(key, value)
    print(f"{prefix}: {failover}")


async def test_the_master_holds_the_vip_and_the_lan_client_reaches_it(
        cluster: ClusterFactory) -> None:
    """keepalived on the node the ownership rule names is master: the address is on its
    eth0 only, the LAN client resolves it to that node's MAC and HTTP answers from it,
    and its AnnounceIP Event names it. (The speakers start one after another: the first
    keepalived up may hold the address until the owner's preempt delay has passed.)"""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        master = lan.expected_owner(vip, NODES)
        await wait_for_master(c, vip, master)
        await lan.wait_for_client(c, vip, master)
        assert await _holders(c, vip) == {master}
        bodies, macs, _ = await lan.fresh_resolutions(c, vip, "arp")
        assert bodies == [master] * 5
        assert macs == {c.lab.node(master).mac}
        await _wait_for_event_from(c, ns, vip, master)


async def _wait_for_event_from(c: testenv_cluster.Cluster, ns: str, vip: str,
                               node: str) -> None:
    async def probe() -> tuple[bool, object]:
        counts = await lan.announce_events(c, ns, vip, HOW)
        return counts.get(node, 0) >= 1, counts

    await netlab.poll_until(f"AnnounceIP Event for {vip} from {node}", probe, 15.0,
                            c.speaker_logs, interval=0.2)
