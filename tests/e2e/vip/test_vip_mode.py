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

import asyncio
import ipaddress
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s

from openelb.planner import vip as vip_plan
from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = pytest.mark.root

NODES = ("node-a", "node-b", "node-c")
HOW = "as VRRP master"

RecordProperty = Callable[[str, object], None]


def _namespace() -> str:
    return lan.namespace()


async def _web(c: testenv_cluster.Cluster, ns: str, name: str = "web", *, v6: bool = False,
               local: bool = False) -> str:
    """A VIP pool in the LAN (interface eth0 on every node) and one Service from it."""
    return await lan.web(c, ns, name, pool="vips", protocol="vip",
                         interface=("eth0", "eth0"), v6=v6, local=local)


async def wait_for_master(c: testenv_cluster.Cluster, ip: str, expected: str | None,
                          timeout: float = 30.0) -> None:
    """Poll until exactly `expected` reports itself VRRP master of `ip`."""
    await lan.wait_for_reporting(c, ip, expected, c.vip_masters, "vrrp master", timeout)


async def _settled(c: testenv_cluster.Cluster, ns: str, *, v6: bool = False,
                   client: bool = True) -> tuple[str, str, str]:
    """A VIP Service whose master is the node the rule names (and, with `client`, the
    LAN client reaches it there): (address, master, the next node by the rule)."""
    vip = await _web(c, ns, v6=v6)
    master = lan.expected_owner(vip, NODES)
    heir = lan.expected_owner(vip, lan.others(NODES, master))
    await wait_for_master(c, vip, master)
    if client:
        await lan.wait_for_client(c, vip, master)
    return vip, master, heir


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
        vip, master, _ = await _settled(c, ns)
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


def _keepalived_pids(c: testenv_cluster.Cluster, node: str) -> list[int]:
    """keepalived's parent and VRRP child on `node`, from their pid files, running
    ones only (an orphan that exited stays a zombie here: this sandbox's init does not
    reap)."""
    found = []
    for name in ("keepalived.pid", "vrrp.pid"):
        path = c.lab.node(node).workdir / "speaker" / "vip" / name
        try:
            pid = int(path.read_text().split()[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            continue
        status = dict(line.split(":\t", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
        if status.get("Name") == "keepalived" and not status.get("State", "").startswith("Z"):
            found.append(pid)
    return found


async def test_a_killed_masters_speaker_takes_keepalived_with_it(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """SIGKILL the master's speaker: its keepalived stops with it (priority 0, the
    address leaves its eth0), the next node by the rule becomes master and the LAN
    client follows. The speaker restarts: after the preempt delay its keepalived
    takes the address back, once."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, heir = await _settled(c, ns)
        assert len(_keepalived_pids(c, master)) == 2  # parent and VRRP child, no checker

        capture = await c.lab.lan_client.start_capture("arp")
        failover = await lan.measure_takeover(
            c, vip, master, heir, lambda: c.speakers[master].signal(signal.SIGKILL), capture)
        _record(record_property, "sigkill", failover)
        await wait_for_master(c, vip, heir)

        async def gone() -> tuple[bool, object]:
            pids = _keepalived_pids(c, master)
            return pids == [], pids

        await netlab.poll_until("keepalived gone with its speaker", gone, 10.0,
                                c.speaker_logs)
        assert await _holders(c, vip) == {heir}

        await c.restart_speaker(master)
        back = await lan.measure_takeover(c, vip, heir, master, lambda: None, capture,
                                          timeout=45.0)
        _record(record_property, "restart_back", back)
        await wait_for_master(c, vip, master)
        assert await _holders(c, vip) == {master}
        await capture.stop()


async def test_cutting_the_masters_link_moves_the_vip_and_back(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """Pull the master's cable: the backups stop hearing it and the next node by the
    rule takes the address; the client follows. Plug it back: the higher priority
    wins again and the client is moved back."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, heir = await _settled(c, ns)
        host = c.lab.node(master)

        capture = await c.lab.lan_client.start_capture("arp")
        failover = await lan.measure_takeover(c, vip, master, heir,
                                              lambda: host.set_link(False), capture)
        _record(record_property, "link_cut", failover)
        back = await lan.measure_takeover(c, vip, heir, master,
                                          lambda: host.set_link(True), capture, timeout=45.0)
        _record(record_property, "link_restored", back)
        await wait_for_master(c, vip, master)
        assert await _holders(c, vip) == {master}
        await capture.stop()


async def test_ipv6_master_answers_ndp_and_fails_over(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """The same over IPv6: VRRP between the nodes' IPv6 addresses, the client resolves
    the address to the master's MAC by NDP, and a SIGKILL moves it to the next node."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, heir = await _settled(c, ns, v6=True)
        bodies, macs, _ = await lan.fresh_resolutions(c, vip, "icmp6")
        assert bodies == [master] * 5
        assert macs == {c.lab.node(master).mac}

        capture = await c.lab.lan_client.start_capture("icmp6")
        failover = await lan.measure_takeover(
            c, vip, master, heir, lambda: c.speakers[master].signal(signal.SIGKILL), capture)
        _record(record_property, "ipv6_sigkill", failover)
        await capture.stop()
        await wait_for_master(c, vip, heir)


async def test_etp_local_candidates_are_the_endpoint_nodes(cluster: ClusterFactory) -> None:
    """externalTrafficPolicy: Local: no node holds the address without a ready
    endpoint; the endpoint's node becomes master, and when the endpoint moves the
    address follows it."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns, "local", local=True)
        await asyncio.sleep(2.0)  # several advert intervals: nobody may take it
        assert await c.vip_masters(vip) == set()
        assert await _holders(c, vip) == set()

        await c.set_endpoints(ns, "local", ["node-b"])
        await wait_for_master(c, vip, "node-b")
        await lan.wait_for_client(c, vip, "node-b")

        await c.set_endpoints(ns, "local", ["node-c"])
        await wait_for_master(c, vip, "node-c")
        await lan.wait_for_client(c, vip, "node-c")
        assert await _holders(c, vip) == {"node-c"}


async def test_an_unrelated_vip_keeps_its_master_while_others_come_and_go(
        cluster: ClusterFactory) -> None:
    """Services are added to and removed from the VIP pool (keepalived reloads on every
    node): the first Service's address never changes master and no node announces it
    again on the wire."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, _ = await _settled(c, ns)
        await _wait_for_event_from(c, ns, vip, master)
        events_before = await lan.announce_events(c, ns, vip, HOW)

        capture = await c.lab.lan_client.start_capture("arp")
        story_from = time.time()
        for name in ("second", "third"):
            await c.service(ns, name, pool="vips")
            (other,) = await c.wait_for_ips(ns, name)
            await wait_for_master(c, other, lan.expected_owner(other, NODES))
        await k8s.CoreV1Api(c.api).delete_namespaced_service("second", ns)
        await asyncio.sleep(2.0)  # reloads done everywhere, several advert intervals
        lines = await lan.finish(capture)
        again = [f for f in lan.announcements(lines, vip) if f.at >= story_from]
        assert again == []
        assert await c.vip_masters(vip) == {master}
        assert await lan.announce_events(c, ns, vip, HOW) == events_before


async def test_a_keepalived_killed_outright_is_restarted_and_reported(
        cluster: ClusterFactory) -> None:
    """SIGKILL the master's keepalived (parent and VRRP child, as the OOM killer
    would): the speaker removes the address keepalived left on eth0, a backup takes
    over, the speaker starts keepalived again, says so (KeepalivedFailed Event on the
    Node, restarts metric) and, after the preempt delay, the master is back."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, heir = await _settled(c, ns, client=False)
        pids = _keepalived_pids(c, master)
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        await wait_for_master(c, vip, heir)
        await lan.wait_for_client(c, vip, heir)

        async def restarted() -> tuple[bool, object]:
            count = await c.speaker_metric(master, "openelb_keepalived_restarts_total")
            return count >= 1, count

        await netlab.poll_until("keepalived restart counted", restarted, 30.0,
                                c.speaker_logs)
        assert await _holders(c, vip) == {heir}  # the dead one's leftover was removed
        await wait_for_master(c, vip, master, timeout=45.0)
        await lan.wait_for_client(c, vip, master)

        async def reported() -> tuple[bool, object]:
            listed = await k8s.CoreV1Api(c.api).list_namespaced_event("default")
            found = [e.message for e in listed.items if e.reason == "KeepalivedFailed"
                     and e.involved_object.name == master]
            return bool(found), found

        await netlab.poll_until("KeepalivedFailed Event on the Node", reported, 15.0,
                                c.speaker_logs)


async def test_another_clusters_vrrp_with_our_ids_changes_nothing(
        cluster: ClusterFactory) -> None:
    """Another cluster's keepalived on the same LAN (multicast VRRP, the default) uses
    the very virtual_router_id of our address with a top priority, for an address of
    its own: our unicast instances never hear it, our master keeps our address, and
    the other cluster's master keeps its own."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, _ = await _settled(c, ns, client=False)
        system = await k8s.CoreV1Api(c.api).read_namespace("kube-system")
        vrid = vip_plan.vrids(system.metadata.uid, [ipaddress.ip_address(vip)])[
            ipaddress.ip_address(vip)]
        neighbour = c.lab.lan_client
        workdir = neighbour.workdir / "foreign-keepalived"
        workdir.mkdir()
        interface = (await neighbour.ip_json("-4", "route", "get", vip))[0]["dev"]
        conf = workdir / "keepalived.conf"
        conf.write_text(
            "global_defs {\n    vrrp_version 3\n    max_auto_priority -1\n}\n"
            f"vrrp_instance foreign {{\n    state BACKUP\n    interface {interface}\n"
            f"    virtual_router_id {vrid}\n    priority 254\n    advert_int 0.2\n"
            "    virtual_ipaddress {\n        192.0.2.250/32\n    }\n}\n")
        foreign = await neighbour.spawn(
            ["keepalived", "--dont-fork", "--log-console", "--vrrp", "-G", "-B", "-f",
             str(conf), "-p", str(workdir / "k.pid"), "-r", str(workdir / "v.pid")],
            workdir / "keepalived.log", name="foreign-keepalived")
        try:
            async def foreign_master() -> tuple[bool, object]:
                out = await neighbour.exec("ip", "-o", "addr", "show", "dev", interface)
                return " 192.0.2.250/" in out.stdout, out.stdout

            await netlab.poll_until("the other cluster's master", foreign_master, 15.0,
                                    c.speaker_logs)
            await asyncio.sleep(2.0)  # ten of its adverts
            assert await c.vip_masters(vip) == {master}
            assert await _holders(c, vip) == {master}
            await lan.wait_for_client(c, vip, master, timeout=5.0)
        finally:
            await foreign.stop()


async def _vip_warnings(c: testenv_cluster.Cluster, ns: str) -> list[str]:
    listed = await k8s.CoreV1Api(c.api).list_namespaced_event(ns)
    return [e.message for e in listed.items if e.reason == "VipNotServed"]


async def test_a_node_without_keepalived_or_the_interface_says_so_and_others_serve(
        cluster: ClusterFactory) -> None:
    """The rule's owner of the address cannot hold it: first its keepalived is missing,
    then its interface. Each time it posts a Warning on the Service naming itself and
    why, and the next node by the rule holds the address; the client reaches it."""
    ns = _namespace()
    async with cluster(router=None) as c:
        probe_ip = lan.POOL_V4.split("-")[0]  # the controller hands out the first address
        owner = lan.expected_owner(probe_ip, NODES)
        heir = lan.expected_owner(probe_ip, lan.others(NODES, owner))
        await c.speakers[owner].stop()
        await c.start_speaker(owner, "--keepalived", "/nonexistent/keepalived")
        vip = await _web(c, ns)
        assert vip == probe_ip
        await wait_for_master(c, vip, heir)
        await lan.wait_for_client(c, vip, heir)

        def warned(text: str) -> Callable[[], Awaitable[tuple[bool, object]]]:
            async def probe() -> tuple[bool, object]:
                found = await _vip_warnings(c, ns)
                return any(f"node {owner} " in m and text in m for m in found), found
            return probe

        await netlab.poll_until("Warning: keepalived missing", warned(
            "keepalived not found"), 15.0, c.speaker_logs)

        host = c.lab.node(owner)
        await host.ip("link", "set", "dev", "eth0", "down")
        await host.ip("link", "set", "dev", "eth0", "name", "lan0")
        await host.ip("link", "set", "dev", "lan0", "up")
        await c.restart_speaker(owner)  # with keepalived this time
        await netlab.poll_until("Warning: interface missing", warned(
            "interface 'eth0' (eip/vips spec.interface) not found"), 15.0, c.speaker_logs)
        await asyncio.sleep(1.0)
        assert await c.vip_masters(vip) == {heir}
        await lan.wait_for_client(c, vip, heir, timeout=5.0)


async def test_a_crash_looping_keepalived_never_takes_the_vip_back(
        cluster: ClusterFactory) -> None:
    """The master's keepalived is killed outright again and again, each time soon after
    it restarts (within the preempt delay): the backup that took over keeps the
    address the whole time, and the crashing node announces nothing on the wire."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip, master, heir = await _settled(c, ns, client=False)
        capture = await c.lab.lan_client.start_capture("arp")
        for pid in _keepalived_pids(c, master):
            os.kill(pid, signal.SIGKILL)
        await wait_for_master(c, vip, heir)
        loop_from = time.time()
        for _ in range(3):
            async def restarted() -> tuple[bool, object]:
                pids = _keepalived_pids(c, master)
                return len(pids) == 2, pids

            await netlab.poll_until("keepalived restarted", restarted, 45.0, c.speaker_logs)
            await asyncio.sleep(1.5)  # up, hearing the heir, inside its preempt delay
            assert await c.vip_masters(vip) == {heir}
            for pid in _keepalived_pids(c, master):
                os.kill(pid, signal.SIGKILL)
        lines = await lan.finish(capture)
        from_master = [f for f in lan.announcements(lines, vip)
                       if f.at >= loop_from and f.source == c.lab.node(master).mac]
        assert from_master == []
        assert await c.vip_masters(vip) == {heir}
        assert await c.speaker_metric(master, "openelb_keepalived_restarts_total") >= 3
