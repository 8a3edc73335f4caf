"""Layer-2 mode end to end: one node answers ARP/NDP for each address, and the next
one takes over at once when it dies (DESIGN §4, issue 6, docs/layer2.md).

Each story runs the real apiserver, the controller and one `openelb speaker` per node
namespace, in a lab whose router only forwards (no BGP). Service addresses come from
the LAN itself; every node carries them on lo with arp_ignore=1 (as kube-proxy leaves
them), so only the speaker that owns an address answers for it. The LAN client checks
what a user would: its neighbour entry, which node answers HTTP, and tcpdump.

Takeover times are recorded as test properties (printed at the end of the run), never
asserted; waits poll with generous timeouts. The owner is always the one the
documented rule names (highest sha256("<node>#<ip>") among the live eligible nodes).
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import time
from collections.abc import Callable

import pytest

from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab
from tests.e2e.conftest import ClusterFactory
from tests.e2e.layer2 import lan

pytestmark = pytest.mark.root

NODES = ("node-a", "node-b", "node-c")
POOL_V4 = lan.POOL_V4
REACH_V4 = "can_reach:192.0.2.1"  # the router: resolves to each node's eth0
REACH_V6 = "can_reach:2001:db8:1::1"
STABLE_S = 3.0  # how long a settled owner is watched for flapping

RecordProperty = Callable[[str, object], None]


def _namespace() -> str:
    return lan.namespace()


async def _web(c: testenv_cluster.Cluster, ns: str, name: str = "web", *, v6: bool = False,
               local: bool = False) -> str:
    """A layer-2 pool in the LAN and one Service from it, served on every node."""
    return await lan.web(c, ns, name, pool="lan", protocol="layer2",
                         interface=(REACH_V4, REACH_V6), v6=v6, local=local)


def _record(record_property: RecordProperty, prefix: str, failover: lan.Failover) -> None:
    for key, value in failover.properties(prefix):
        record_property(key, value)
    print(f"{prefix}: {failover}")


async def test_the_owner_alone_answers_and_the_lan_client_reaches_it(
        cluster: ClusterFactory) -> None:
    """The LAN client resolves the Service IP to the owner's MAC and HTTP works; five
    fresh resolutions are answered by that one MAC only; the AnnounceIP Event and the
    owner's metric name the same node."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        owner = lan.expected_owner(vip, NODES)
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)

        bodies, macs, replies = await lan.fresh_resolutions(c, vip, "arp")
        assert bodies == [owner] * 5
        assert macs == {c.lab.node(owner).mac}
        assert replies >= 5

        assert await c.layer2_owners(vip) == {owner}
        assert (await lan.announce_events(c, ns, vip)).get(owner, 0) >= 1


async def test_a_killed_owner_fails_over_and_takes_the_address_back_once(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """SIGKILL the owner's speaker: the next node by the rule announces, the client's
    neighbour entry and HTTP move to it. The killed speaker restarts: the address moves
    back to it once (it wins the rule again once live) and then stays."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        owner = lan.expected_owner(vip, NODES)
        heir = lan.expected_owner(vip, lan.others(NODES, owner))
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)
        before = await lan.announce_events(c, ns, vip)

        capture = await c.lab.lan_client.start_capture("arp")
        story_from = time.time()
        failover = await lan.measure_takeover(
            c, vip, owner, heir, lambda: c.speakers[owner].signal(signal.SIGKILL), capture)
        _record(record_property, "sigkill", failover)
        await lan.wait_for_owner(c, vip, heir)
        await lan.wait_for_announce_events(c, ns, vip, {heir: 1}, since=before)
        heir_holds_from = time.time()

        await c.restart_speaker(owner)
        back = await lan.measure_takeover(c, vip, heir, owner, lambda: None, capture)
        _record(record_property, "restart_back", back)
        await lan.wait_for_owner(c, vip, owner)
        await asyncio.sleep(STABLE_S)
        assert await c.layer2_owners(vip) == {owner}
        runs = lan.owner_runs(await lan.finish(capture), vip, c, story_from)
        record_property("ownership_changes_on_wire", runs)
        print(f"announcements on the wire, in order: {runs}")
        assert runs == [heir, owner]
        await lan.wait_for_announce_events(c, ns, vip, {heir: 1, owner: 1}, since=before)
        # Make before break: the heir answered until the returning owner claimed.
        assert c.layer2_unanswered(vip, heir_holds_from) == []
        later = [(at, node, kind) for at, node, kind in c.layer2_claim_history(vip)
                 if at >= heir_holds_from]
        claimed = next(at for at, node, kind in later if (node, kind) == (owner, "claim"))
        released = next(at for at, node, kind in later if (node, kind) == (heir, "release"))
        record_property("handback_both_answering_s", round(released - claimed, 3))


# Seconds after the owner's claim at which the "while announcing" story stops it: inside
# the claim's gratuitous repeats (3 more, 0.5 s apart, the speaker's defaults).
REPEATING_AT_S = 0.4


@pytest.mark.parametrize("announcing", [False, True], ids=["settled", "while-announcing"])
async def test_a_restarted_owner_hands_over_and_takes_back_without_a_gap(
        cluster: ClusterFactory, record_property: RecordProperty, announcing: bool) -> None:
    """`restart_speaker` on the live owner (SIGTERM, start again), as a rolling update
    does: its last heartbeat says it leaves, the next node takes over at once, and the
    restarted speaker takes the address back once settled. Make before break both ways:
    the address is never unanswered, and it moves exactly there and back.

    "while-announcing" stops the owner while its claim is still being repeated: a
    leaving speaker sends no gratuitous ARP after it said it leaves, so the LAN is never
    pulled back from the heir (it was, once: a, c, a, c on the wire)."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        owner = lan.expected_owner(vip, NODES)
        heir = lan.expected_owner(vip, lan.others(NODES, owner))
        capture = await c.lab.lan_client.start_capture("arp")
        await lan.wait_for_owner(c, vip, owner)
        if announcing:
            claimed = max(at for at, node, kind in c.layer2_claim_history(vip)
                          if (node, kind) == (owner, "claim"))
            await asyncio.sleep(max(0.0, claimed + REPEATING_AT_S - time.time()))
            record_property("stopped_after_claim_s", round(time.time() - claimed, 3))
        else:
            await lan.wait_for_client(c, vip, owner)

        story_from = time.time()
        await c.restart_speaker(owner)
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)
        await asyncio.sleep(STABLE_S)
        assert await c.layer2_owners(vip) == {owner}
        runs = lan.owner_runs(await lan.finish(capture), vip, c, story_from)
        record_property("ownership_changes_on_wire", runs)
        print(f"announcements on the wire, in order: {runs}")
        assert runs == [heir, owner]
        assert c.layer2_unanswered(vip, story_from) == []
        everything = c.layer2_claim_history(vip)
        history = [e for e in everything if e[0] >= story_from]
        assert [node for at, node, kind in history if kind == "claim"] == [heir, owner]
        took = next(at for at, node, kind in history if (node, kind) == (heir, "claim"))
        left = next(at for at, node, kind in history if (node, kind) == (owner, "release"))
        record_property("sigterm_both_answering_s", round(left - took, 3))
        # One AnnounceIP per ownership taken (the namespace is new: every claim counts).
        # The first one may still be in flight when the owner stops while announcing.
        taken = collections.Counter(node for at, node, kind in everything if kind == "claim")
        await lan.wait_for_announce_events(c, ns, vip, dict(taken))


# One gratuitous ARP for argv[1] from MAC argv[2] on eth0: what `arping -U` would send
# if it could (it must own the address to bind to it).
_ROGUE_GARP = """
import socket, sys
from ipaddress import ip_address
from openelb.announce.layer2 import arp, ethernet
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
    raw.bind(("eth0", 0))
    raw.send(arp.gratuitous_frame(ip_address(sys.argv[1]), ethernet.parse_mac(sys.argv[2])))
"""


async def test_the_owner_defends_its_address_against_a_rogue_gratuitous_arp(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """The attack run: one gratuitous ARP from another host's MAC for a Service address
    moved the router's neighbour entry, and remote clients lost the Service for 11 s.
    The owner now sees the conflict, announces again at once (RFC 5227 §2.4), and posts
    an AddressConflict Warning naming the other MAC."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        owner = lan.expected_owner(vip, NODES)
        await lan.wait_for_owner(c, vip, owner)

        async def claim_repeats_done() -> tuple[bool, object]:
            # The claim's announcement and its 3 repeats: none can mask the defence.
            sent = await c.speaker_metric(owner, "openelb_layer2_gratuitous_total",
                                          'family="ipv4"')
            return sent >= 4, sent

        await netlab.poll_until("owner's claim repeats sent", claim_repeats_done, 15.0,
                                c.speaker_logs, interval=0.1)
        # The router learns the address the way it serves remote clients.
        assert (await c.lab.http_get(c.lab.remote_client, vip)).strip() == owner
        router, rogue = c.lab.router_host, c.lab.lan_client
        owner_mac = c.lab.node(owner).mac
        entry = await router.neighbor(vip)
        assert entry is not None
        assert entry.mac == owner_mac

        capture = await rogue.start_capture("arp")
        sent = time.monotonic()
        await rogue.exec(sys.executable, "-c", _ROGUE_GARP, vip, rogue.mac)

        async def router_back_on_owner() -> tuple[bool, object]:
            now = await router.neighbor(vip)
            return now is not None and now.mac == owner_mac, now

        await netlab.poll_until("router's neighbour entry back on the owner",
                                router_back_on_owner, 10.0, c.speaker_logs, interval=0.02)
        record_property("rogue_garp_to_owner_again_s", round(time.monotonic() - sent, 3))
        assert (await c.lab.http_get(c.lab.remote_client, vip)).strip() == owner
        # On the wire: the rogue's announcement, then the owner's answer to it.
        by_mac = {host.mac: host.name for host in c.lab.nodes} | {rogue.mac: "rogue"}
        order = [by_mac.get(f.source, f.source)
                 for f in lan.announcements(await lan.finish(capture), vip)]
        assert order[-2:] == ["rogue", owner], order

        async def warned() -> tuple[bool, object]:
            found = await c.events(ns, "AddressConflict")
            return any(rogue.mac in text and owner in text for text in found), found

        await netlab.poll_until("AddressConflict Warning", warned, 15.0, c.speaker_logs)


async def test_speakers_started_together_announce_each_address_from_its_owner_only(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """A cold start of every speaker at once (a power cut, a DaemonSet recreated): for
    each address only the node the rule names sends announcements, and every speaker
    ends agreeing on it. No address is announced by two nodes on the way.

    That holds when each speaker had heard all the others by the end of its hold-down,
    which their logs say. On a machine so loaded that one speaker came up a heartbeat
    timeout after the others, the others rightly served its addresses until it did:
    then each address may move once, to its owner, and no more."""
    ns = _namespace()
    async with cluster(router=None) as c:
        await c.eip("lan", POOL_V4, protocol="layer2", interface=REACH_V4)
        names = [f"web{i}" for i in range(6)]
        for name in names:
            await c.service(ns, name, pool="lan")
        vips = [(await c.wait_for_ips(ns, name))[0] for name in names]
        owners = {vip: lan.expected_owner(vip, NODES) for vip in vips}
        for vip, owner in owners.items():
            await lan.wait_for_owner(c, vip, owner)

        await asyncio.gather(*(c.speakers[node].stop() for node in NODES))
        capture = await c.lab.lan_client.start_capture("arp")
        story_from = time.time()
        for node in NODES:
            await c.start_speaker(node)
        for vip, owner in owners.items():
            await lan.wait_for_owner(c, vip, owner)
        await asyncio.sleep(STABLE_S)
        lines = await lan.finish(capture)
        runs = {vip: lan.owner_runs(lines, vip, c, story_from) for vip in vips}
        record_property("announcers_on_wire", runs)
        print(f"announcements on the wire, in order: {runs}")
        views = lan.settled_views(c, story_from)
        together = views == {node: set(NODES) for node in NODES}
        record_property("all_settled_hearing_all", together)
        if together:
            assert runs == {vip: [owner] for vip, owner in owners.items()}
        else:
            assert all(runs[vip][-1:] == [owner] and len(runs[vip]) <= 2
                       for vip, owner in owners.items()), (views, runs)
        for vip in vips:  # once answered, never unanswered again (make before break)
            first = min(at for at, _, kind in c.layer2_claim_history(vip)
                        if kind == "claim" and at >= story_from)
            assert c.layer2_unanswered(vip, first) == []
        for vip, owner in owners.items():
            assert await c.layer2_owners(vip) == {owner}


async def test_cutting_the_owners_link_moves_the_address_and_back(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """Pull the owner's cable: its heartbeats stop, the next node announces and the
    client moves there (HTTP breaks until it does). Plug it back: the owner is live
    again, wins the rule, and the client is moved back to it."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns)
        owner = lan.expected_owner(vip, NODES)
        heir = lan.expected_owner(vip, lan.others(NODES, owner))
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)
        host = c.lab.node(owner)

        capture = await c.lab.lan_client.start_capture("arp")
        story_from = time.time()
        failover = await lan.measure_takeover(c, vip, owner, heir,
                                              lambda: host.set_link(False), capture)
        _record(record_property, "link_cut", failover)

        # Back on the LAN, the owner hears the others before they hear it (its
        # neighbour entries for them have to be resolved again): for that moment both
        # announce, then the heir gives up and the owner's repeats have the last word.
        back = await lan.measure_takeover(c, vip, heir, owner,
                                          lambda: host.set_link(True), capture)
        _record(record_property, "link_restored", back)
        await lan.wait_for_owner(c, vip, owner)
        quiet_from = time.time()
        await asyncio.sleep(STABLE_S)
        assert await c.layer2_owners(vip) == {owner}
        await lan.wait_for_client(c, vip, owner, timeout=5.0)
        lines = await lan.finish(capture)
        runs = lan.owner_runs(lines, vip, c, story_from)
        record_property("ownership_changes_on_wire", runs)
        print(f"announcements on the wire, in order: {runs}")
        assert runs[0] == heir
        assert runs[-1] == owner
        late = {f.source for f in lan.announcements(lines, vip) if f.at >= quiet_from}
        assert late <= {host.mac}


async def test_ipv6_owner_answers_ndp_alone_and_fails_over(
        cluster: ClusterFactory, record_property: RecordProperty) -> None:
    """The same over NDP: the client resolves the IPv6 Service address to the owner's
    MAC, only that MAC sends Neighbor Advertisements for it, and after a SIGKILL the
    next node's unsolicited NA moves the client."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns, v6=True)
        owner = lan.expected_owner(vip, NODES)
        heir = lan.expected_owner(vip, lan.others(NODES, owner))
        await lan.wait_for_owner(c, vip, owner)
        await lan.wait_for_client(c, vip, owner)

        bodies, macs, adverts = await lan.fresh_resolutions(c, vip, "icmp6")
        assert bodies == [owner] * 5
        assert macs == {c.lab.node(owner).mac}
        assert adverts >= 5
        before = await lan.announce_events(c, ns, vip)
        assert before.get(owner, 0) >= 1

        capture = await c.lab.lan_client.start_capture("icmp6")
        failover = await lan.measure_takeover(
            c, vip, owner, heir, lambda: c.speakers[owner].signal(signal.SIGKILL), capture)
        _record(record_property, "ipv6_sigkill", failover)
        await capture.stop()
        await lan.wait_for_owner(c, vip, heir)
        await lan.wait_for_announce_events(c, ns, vip, {heir: 1}, since=before)


async def test_etp_local_owner_has_an_endpoint_and_follows_it(
        cluster: ClusterFactory) -> None:
    """externalTrafficPolicy: Local: nobody answers without a ready endpoint; the node
    with the endpoint owns the address, and when the endpoint moves the new node
    announces and the client follows."""
    ns = _namespace()
    async with cluster(router=None) as c:
        vip = await _web(c, ns, "local", local=True)
        await asyncio.sleep(1.5)  # past the speakers' start-up hold-down
        assert await c.layer2_owners(vip) == set()

        await c.set_endpoints(ns, "local", ["node-b"])
        await lan.wait_for_owner(c, vip, "node-b")
        await lan.wait_for_client(c, vip, "node-b")
        before = await lan.announce_events(c, ns, vip)

        await c.set_endpoints(ns, "local", ["node-c"])
        await lan.wait_for_owner(c, vip, "node-c")
        await lan.wait_for_client(c, vip, "node-c")  # moved by the announcement, no flush
        await lan.wait_for_announce_events(c, ns, vip, {"node-c": 1}, since=before)

        both = {"node-a", "node-c"}
        before = await lan.announce_events(c, ns, vip)
        await c.set_endpoints(ns, "local", both)
        chosen = lan.expected_owner(vip, both)
        await lan.wait_for_owner(c, vip, chosen)
        await lan.wait_for_client(c, vip, chosen)
        moved = {chosen: 1} if chosen != "node-c" else {}
        await lan.wait_for_announce_events(c, ns, vip, moved, since=before)
