"""The namespace lab and its three router flavours, before openelb's speaker is involved.

A stub speaker (BIRD in each node namespace announcing static prefixes with next hop
self, routers.BirdSpeaker) stands in for openelb's speaker, so a failure here is the
lab's or a router flavour's, never openelb's.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from openelb_testenv import netlab, routers
from tests.e2e.conftest import LabFactory

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

VIP4 = "203.0.113.10/32"
VIP6 = "2001:db8:3::10/128"


async def _speakers(
    net: netlab.Lab,
    prefixes: Sequence[str] = (VIP4, VIP6),
    *,
    hold_time: int = 9,
    keepalive: int = 3,
) -> list[routers.BirdSpeaker]:
    """Start a stub speaker on every node, announcing `prefixes`."""
    speakers = [
        routers.BirdSpeaker(node, prefixes, hold_time=hold_time, keepalive=keepalive)
        for node in net.nodes
    ]
    for speaker in speakers:
        await speaker.start()
    return speakers


def _v4(hosts: Sequence[netlab.Host]) -> set[str]:
    return {str(host.ipv4) for host in hosts}


def _v6(hosts: Sequence[netlab.Host]) -> set[str]:
    return {str(host.ipv6) for host in hosts}


# --- routing ------------------------------------------------------------------------------


async def test_router_installs_one_ecmp_route_through_every_announcing_node(
    lab: LabFactory, router_flavour: str
) -> None:
    """Three nodes announce one /32 and one /128 -> three next hops each, in the FIB too."""
    async with lab(router=router_flavour) as net:
        await _speakers(net)
        await net.router.wait_for_sessions()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))
        await net.router.wait_for_routes(VIP6, _v6(net.nodes))
        # GoBGP's routes() is its RIB; the kernel follows through the lab's FIB sync.
        await net.router.wait_for_routes(VIP4, _v4(net.nodes), kernel=True, timeout=5)
        await net.router.wait_for_routes(VIP6, _v6(net.nodes), kernel=True, timeout=5)


async def test_a_node_that_stops_announcing_loses_its_next_hop(
    lab: LabFactory, router_flavour: str
) -> None:
    """SIGTERM makes BIRD close its session (Cease): the router withdraws that path only."""
    async with lab(router=router_flavour) as net:
        speakers = await _speakers(net)
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))
        await speakers[0].announce([VIP6])
        await net.router.wait_for_routes(VIP4, _v4(net.nodes[1:]), timeout=10)
        await speakers[1].stop()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes[2:]), timeout=10)
        await net.router.wait_for_routes(VIP6, _v6([net.nodes[0], net.nodes[2]]), timeout=10)


async def test_hold_timer_drops_a_node_whose_cable_is_pulled(
    lab: LabFactory, router_flavour: str
) -> None:
    """With a 3 s hold time, a silent node's path is gone within a few seconds."""
    bgp = netlab.RouterConfig(hold_time=3, keepalive=1)
    async with lab(router=router_flavour, bgp=bgp, ipv6=False) as net:
        await _speakers(net, [VIP4], hold_time=3, keepalive=1)
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))
        await net.nodes[0].set_link(False)
        started = time.monotonic()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes[1:]), timeout=15)
        assert time.monotonic() - started < 10
        await net.nodes[0].set_link(True)
        await net.router.wait_for_routes(VIP4, _v4(net.nodes), timeout=30)


async def test_router_restart_relearns_every_route(lab: LabFactory, router_flavour: str) -> None:
    async with lab(router=router_flavour) as net:
        await _speakers(net)
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))
        await net.router.restart()
        await net.router.wait_for_sessions()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))
        await net.router.wait_for_routes(VIP6, _v6(net.nodes))
        await net.router.wait_for_routes(VIP4, _v4(net.nodes), kernel=True, timeout=5)


async def test_a_router_that_never_holds_its_config_fails_its_start_saying_why(
    lab: LabFactory,
) -> None:
    """A gobgpd running another config than the lab's (here another router id) answers
    its API but never holds ours: start() fails naming what it waited for, what it saw,
    and where the daemon's main goroutine was (its SIGQUIT stack dump)."""

    class OtherRouterId(routers.Gobgp):
        def render(self) -> str:
            ours = f'router-id = "{self.config.router_id}"'
            return super().render().replace(ours, 'router-id = "192.0.2.254"')

    async with lab(router="gobgp", nodes=1, start_router=False) as net:
        router = OtherRouterId(net.router_host, net.router.config)
        router.load_timeout = 3.0
        with pytest.raises(netlab.NetlabError) as failed:
            await router.start()
        text = str(failed.value)
        assert f"gobgp holds its config (AS {netlab.ROUTER_ASN}, router id 192.0.2.1," in text
        assert "'router_id': '192.0.2.254'" in text
        assert "main goroutine" in text
        assert "goroutine 1 [" in text
        assert not router.running


async def test_gobgp_stops_even_when_a_rib_change_lands_as_it_stops(lab: LabFactory) -> None:
    """The FIB mirror's loop waits for RIB changes with a timeout. A change signalled in
    the same loop iteration as the stop once swallowed the loop's cancellation (Python
    3.11's wait_for, CPython gh-86296), and stop() hung for ever: the router-restart
    test's pytest timeouts of issue #18. It happens here every time on that code."""
    async with lab(router="gobgp", nodes=1) as net:
        router = net.router
        assert isinstance(router, routers.Gobgp)
        fib = router.fib
        assert fib is not None
        async with asyncio.timeout(20):
            await fib.synced.wait()  # its loop now waits for the next change
        fib.wake.set()
        async with asyncio.timeout(20):
            await router.stop()
        assert router.fib is None
        assert not router.running


async def test_md5_sessions_come_up_only_with_the_right_password(
    lab: LabFactory, router_flavour: str
) -> None:
    a, b = netlab.LAN_V4[11], netlab.LAN_V4[12]
    bgp = netlab.RouterConfig(
        peers=(netlab.Peer(a, password="s3cret"), netlab.Peer(b, password="s3cret"))
    )
    async with lab(router=router_flavour, nodes=2, ipv6=False, bgp=bgp) as net:
        node_a, node_b = net.nodes
        router = netlab.Peer(netlab.LAN_V4[1], remote_as=netlab.ROUTER_ASN, password="s3cret")
        wrong = netlab.Peer(netlab.LAN_V4[1], remote_as=netlab.ROUTER_ASN, password="wrong")
        await routers.BirdSpeaker(node_a, [VIP4], neighbors=[router]).start()
        await routers.BirdSpeaker(node_b, [VIP4], neighbors=[wrong]).start()
        await net.router.wait_for_sessions(peers=[a])
        await net.router.wait_for_routes(VIP4, {str(a)})
        with pytest.raises(netlab.WaitTimeout):
            await net.router.wait_for_sessions(peers=[b], timeout=6)


async def test_add_path_receive_and_passive_peers_still_make_ecmp(
    lab: LabFactory, router_flavour: str
) -> None:
    """The optional knobs render into a config the daemon accepts and that still works."""
    peers = tuple(netlab.Peer(netlab.LAN_V4[11 + i], passive=True) for i in range(3))
    bgp = netlab.RouterConfig(peers=peers, add_path_receive=True)
    async with lab(router=router_flavour, ipv6=False, bgp=bgp) as net:
        await _speakers(net, [VIP4])
        await net.router.wait_for_sessions()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes))


# --- traffic ------------------------------------------------------------------------------


async def _answers(net: netlab.Lab, client: netlab.Host, ip: str, count: int) -> set[str]:
    return {await net.http_get(client, ip) for _ in range(count)}


async def test_clients_reach_the_nodes_through_the_router_on_every_path(
    lab: LabFactory, router_flavour: str
) -> None:
    """With the VIP on every node's lo, requests spread over the ECMP next hops."""
    async with lab(router=router_flavour) as net:
        await _speakers(net)
        for node in net.nodes:
            await node.add_vip("203.0.113.10")
            await node.add_vip("2001:db8:3::10")
            await node.serve_http()
        await net.router.wait_for_routes(VIP4, _v4(net.nodes), kernel=True)
        await net.router.wait_for_routes(VIP6, _v6(net.nodes), kernel=True)
        names = {node.name for node in net.nodes}
        for client in (net.remote_client, net.lan_client):
            for vip in ("203.0.113.10", "2001:db8:3::10"):
                seen = await _answers(net, client, vip, 20)
                assert seen <= names
                assert len(seen) >= 2, f"{client.name} -> {vip} reached only {seen}"


async def test_lan_client_learns_node_macs_and_capture_shows_arp(lab: LabFactory) -> None:
    async with lab(router=None) as net:
        node = net.nodes[0]
        await node.serve_http()
        capture = await net.lan_client.start_capture("arp or icmp6")
        assert await net.http_get(net.lan_client, str(node.ipv4)) == node.name
        assert await net.http_get(net.lan_client, str(node.ipv6)) == node.name
        lines = await capture.stop()
        assert any(f"Reply {node.ipv4} is-at {node.mac}" in line for line in lines), lines
        assert any("neighbor advertisement" in line for line in lines), lines
        for ip in node.addresses:
            entry = await net.lan_client.neighbor(ip)
            assert entry is not None
            assert entry.mac == node.mac


async def test_a_vip_on_a_nodes_lo_is_not_answered_for_on_the_lan(lab: LabFactory) -> None:
    """Like kube-proxy, the lab sets arp_ignore: only a layer-2 speaker may claim a LAN VIP."""
    async with lab(router=None, nodes=1) as net:
        node = net.nodes[0]
        await node.add_vip("192.0.2.50")
        await node.serve_http()
        capture = await net.lan_client.start_capture("arp")
        with pytest.raises(netlab.CommandFailed):
            await net.http_get(net.lan_client, "192.0.2.50", timeout=1.5)
        lines = await capture.stop()
        assert any("who-has 192.0.2.50" in line for line in lines), lines
        assert not [line for line in lines if "Reply 192.0.2.50" in line]
        entry = await net.lan_client.neighbor("192.0.2.50")
        assert entry is None or entry.mac is None


async def test_remote_client_reaches_lan_hosts_through_a_plain_router(lab: LabFactory) -> None:
    async with lab(router=None) as net:
        node = net.nodes[1]
        await node.serve_http(8080)
        assert await net.http_get(net.remote_client, str(node.ipv4), 8080) == node.name
        assert await net.http_get(net.remote_client, str(node.ipv6), 8080) == node.name


# --- the host's apiserver -------------------------------------------------------------------


@pytest.fixture
async def loopback_server() -> AsyncIterator[int]:
    """A tiny HTTP server on the root namespace's 127.0.0.1 (stands in for the apiserver)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\npong")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_relay_reaches_the_hosts_loopback_from_a_node(
    lab: LabFactory, loopback_server: int, tmp_path: Path
) -> None:
    async with lab(router=None) as net:
        node_a, node_b = net.nodes[:2]
        port = await net.apiserver_relay(node_a, loopback_server)
        assert port == loopback_server
        other = await net.apiserver_relay(node_b, loopback_server, port=6443)
        for node, in_ns in ((node_a, port), (node_b, other)):
            result = await node.exec(
                "curl", "-sS", "--noproxy", "*", "--max-time", "5", f"http://127.0.0.1:{in_ns}/"
            )
            assert result.stdout == "pong"

        source = tmp_path / "kubeconfig"
        server = f"https://127.0.0.1:{loopback_server}"
        source.write_text(json.dumps({"clusters": [{"name": "c", "cluster": {"server": server}}]}))
        copy = await net.node_kubeconfig(net.nodes[2], source)
        written = json.loads(copy.read_text())
        assert written["clusters"][0]["cluster"]["server"] == server
        result = await net.nodes[2].exec(
            "curl", "-sS", "--noproxy", "*", "--max-time", "5", f"http://127.0.0.1:{port}/"
        )
        assert result.stdout == "pong"


# --- leaving nothing behind -----------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


async def _pids_in(netns: str) -> list[int]:
    result = await netlab.run(["ip", "netns", "pids", netns])
    return [int(pid) for pid in result.stdout.split()]


async def test_lab_leaves_no_namespace_process_or_file_behind(lab: LabFactory) -> None:
    """Even when the test body fails inside `async with`."""
    net = lab(router="bird")
    pids: list[int] = []

    async def fail_inside() -> None:
        async with net:
            await _speakers(net, [VIP4])
            await net.nodes[0].serve_http()
            await net.lan_client.start_capture("arp")
            for netns in net.namespaces:
                pids.extend(await _pids_in(netns))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert len(pids) >= 5
    prefix = f"{netlab.PREFIX}{net.run_id}-"
    assert not [ns for ns in netlab.list_namespaces() if ns.startswith(prefix)]

    async def processes_gone() -> tuple[bool, object]:
        alive = [pid for pid in pids if not _gone(pid)]
        return not alive, alive

    await netlab.poll_until("lab processes gone", processes_gone, 5.0)
    assert not net.workdir.exists()
    assert not net.lock_path.exists()


async def test_cancelling_a_lab_while_it_starts_removes_what_was_built(lab: LabFactory) -> None:
    net = lab(router="frr")
    task = asyncio.ensure_future(net.start())

    async def half_built() -> tuple[bool, object]:
        return len(net.namespaces) >= 3, net.namespaces

    await netlab.poll_until("half the lab built", half_built, 10.0, interval=0.005)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    prefix = f"{netlab.PREFIX}{net.run_id}-"
    assert not [ns for ns in netlab.list_namespaces() if ns.startswith(prefix)]


async def test_stale_namespaces_of_crashed_runs_are_removed_and_others_kept(
    lab: LabFactory,
) -> None:
    """A crashed run left its (unheld) lock file; live labs and unclaimed names stay."""
    dead = f"dead{os.getpid() % 10000}"
    crashed = f"{netlab.PREFIX}{dead}-node-a"
    unclaimed = f"{netlab.PREFIX}other{os.getpid() % 10000}-x"
    for netns in (crashed, unclaimed):
        await netlab.run(["ip", "netns", "add", netns])
    lock = netlab.LOCK_DIR / f"{dead}.lock"
    lock.write_text("1\n")
    try:
        async with lab(router=None, nodes=1) as net:
            removed = netlab.remove_stale_namespaces()
            assert crashed in removed
            assert unclaimed not in removed
            assert not lock.exists()
            assert not set(net.namespaces) & set(removed)
            assert set(net.namespaces) <= set(netlab.list_namespaces())
    finally:
        for netns in (crashed, unclaimed):
            if netns in netlab.list_namespaces():
                netlab.delete_namespace(netns)
        lock.unlink(missing_ok=True)


def test_only_prefixed_namespaces_are_ever_touched() -> None:
    with pytest.raises(netlab.NetlabError, match="refusing"):
        netlab.delete_namespace("default")
    with pytest.raises(netlab.NetlabError, match="refusing"):
        netlab.delete_namespace("oelb-../../etc")
