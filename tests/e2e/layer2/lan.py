"""What the layer-2 e2e stories look at: who owns an address, as the speakers say and as
the LAN client sees it, and how long a takeover takes on the client's wire.

Test helper for tests/e2e/layer2 (DESIGN §5). The speakers' view comes from each
speaker's `openelb_layer2_owned` metric (Cluster.layer2_owners);
the client's view from its neighbour table, from which node answers HTTP, and from
tcpdump lines captured in the client namespace. Nothing here asserts; the tests do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

from kubernetes_asyncio import client as k8s

from openelb.planner import ownership
from openelb_testenv import cluster as testenv_cluster
from openelb_testenv import netlab

__all__ = [
    "POOL_V4",
    "POOL_V6",
    "Failover",
    "Frame",
    "announce_events",
    "announcements",
    "answering_macs",
    "client_view",
    "expected_owner",
    "finish",
    "fresh_resolutions",
    "measure_takeover",
    "namespace",
    "others",
    "owner_runs",
    "settled_owner",
    "settled_views",
    "wait_for_announce_events",
    "wait_for_client",
    "wait_for_owner",
    "wait_for_reporting",
    "web",
]

POOL_V4 = "192.0.2.200-192.0.2.220"  # Service addresses from the lab's LAN
POOL_V6 = "2001:db8:1::200-2001:db8:1::220"


def namespace() -> str:
    """A fresh namespace name for one story's Services."""
    return f"e2e-{uuid.uuid4().hex[:6]}"


async def web(c: testenv_cluster.Cluster, ns: str, name: str = "web", *, pool: str,
              protocol: str, interface: tuple[str, str], v6: bool = False,
              local: bool = False) -> str:
    """A pool of `protocol` in the LAN named `pool` (`pool`6 for IPv6; `interface`: its
    spec.interface for IPv4 and for IPv6) and one Service from it, served over HTTP on
    every node; its address."""
    pool = f"{pool}6" if v6 else pool
    await c.eip(pool, POOL_V6 if v6 else POOL_V4, protocol=protocol,
                interface=interface[1] if v6 else interface[0])
    await c.service(ns, name, pool=pool, local=local, families=("IPv6",) if v6 else ("IPv4",))
    (vip,) = await c.wait_for_ips(ns, name)
    await c.serve_vips(vip)
    return vip


# tcpdump -n -e -tt: "<epoch> <src mac> > <dst mac>, ethertype ..., length N: <packet>"
_LINE = re.compile(
    r"^(?P<at>\d+\.\d+) (?P<src>[0-9a-f:]{17}) > (?P<dst>[0-9a-f:]{17}), (?P<rest>.*)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One ARP or NDP frame about a layer-2 address, as tcpdump printed it."""

    at: float  # epoch seconds (tcpdump -tt)
    source: str  # source MAC
    kind: str  # "garp" | "reply" | "request" | "unsolicited" | "advert" | "solicit"


def expected_owner(ip: str, nodes: Iterable[str]) -> str:
    """The documented rule (docs/layer2.md): the highest sha256("<node>#<ip>") wins."""
    chosen = ownership.owner(ipaddress.ip_address(ip), nodes)
    assert chosen is not None
    return chosen


async def wait_for_owner(c: testenv_cluster.Cluster, ip: str, expected: str | None,
                         timeout: float = 30.0) -> str | None:
    """Poll until the speakers agree: exactly `expected` owns `ip` (None: nobody does)."""
    await wait_for_reporting(c, ip, expected, c.layer2_owners, "owner", timeout)
    return expected


async def wait_for_reporting(c: testenv_cluster.Cluster, ip: str, expected: str | None,
                             reporting: Callable[[str], Awaitable[set[str]]], what: str,
                             timeout: float = 30.0) -> None:
    """Poll until exactly `expected` (None: no node) is among `reporting(ip)`."""
    wanted = {expected} if expected else set()

    async def probe() -> tuple[bool, object]:
        found = await reporting(ip)
        return found == wanted, found

    await netlab.poll_until(f"speakers: {what} of {ip} == {expected}", probe, timeout,
                            c.speaker_logs, interval=0.1)


async def settled_owner(c: testenv_cluster.Cluster, ns: str, *, interface: tuple[str, str],
                        nodes: Sequence[str]) -> tuple[str, str, str]:
    """A layer-2 pool "lan" and a Service "web" from it, settled: the speakers agree on
    the owner the rule names and the LAN client reaches it. (address, owner, the next
    node by the rule)."""
    vip = await web(c, ns, pool="lan", protocol="layer2", interface=interface)
    owner = expected_owner(vip, nodes)
    heir = expected_owner(vip, others(nodes, owner))
    await wait_for_owner(c, vip, owner)
    await wait_for_client(c, vip, owner)
    return vip, owner, heir


async def client_view(c: testenv_cluster.Cluster, ip: str) -> tuple[str | None, str | None]:
    """(node whose MAC the LAN client's neighbour entry holds, node answering HTTP)."""
    client = c.lab.lan_client
    by_mac = {host.mac: host.name for host in c.lab.nodes}
    try:
        body: str | None = (await c.lab.http_get(client, ip, timeout=1.0)).strip()
    except netlab.CommandFailed:
        body = None
    entry = await client.neighbor(ip)
    return (by_mac.get(entry.mac) if entry and entry.mac else None), body


async def wait_for_client(c: testenv_cluster.Cluster, ip: str, node: str,
                          timeout: float = 30.0) -> None:
    """Poll until the LAN client resolves `ip` to `node`'s MAC and HTTP answers from it."""

    async def probe() -> tuple[bool, object]:
        view = await client_view(c, ip)
        return view == (node, node), {"neighbour": view[0], "http": view[1]}

    await netlab.poll_until(f"lan client: {ip} at {node}", probe, timeout,
                            c.speaker_logs, interval=0.2)


async def announce_events(c: testenv_cluster.Cluster, namespace: str, ip: str,
                          how: str = "by ARP/NDP") -> dict[str, int]:
    """Node -> how many times it posted "announcing <ip> from node <node> <how>"
    (AnnounceIP Events, their counts summed): one per ownership it took."""
    listed = await k8s.CoreV1Api(c.api).list_namespaced_event(namespace)
    pattern = re.compile(rf"^announcing {re.escape(str(ipaddress.ip_address(ip)))} "
                         rf"from node (\S+) {re.escape(how)}")
    counts: dict[str, int] = {}
    for event in listed.items:
        match = pattern.match(event.message or "") if event.reason == "AnnounceIP" else None
        if match:
            counts[match[1]] = counts.get(match[1], 0) + (event.count or 1)
    return counts


async def wait_for_announce_events(c: testenv_cluster.Cluster, namespace: str, ip: str,
                                   expected: dict[str, int], *,
                                   since: dict[str, int] | None = None,
                                   timeout: float = 15.0, how: str = "by ARP/NDP") -> None:
    """Poll until the AnnounceIP counts grew by exactly `expected` over `since` (nodes
    not named: no growth). Events are posted just after the claim, so they may trail
    the metric by a moment."""
    base = since or {}

    async def probe() -> tuple[bool, object]:
        counts = await announce_events(c, namespace, ip, how)
        grown = {n: k - base.get(n, 0) for n, k in counts.items() if k != base.get(n, 0)}
        return grown == expected, grown

    await netlab.poll_until(f"AnnounceIP Events for {ip} grew by {expected}", probe,
                            timeout, c.speaker_logs, interval=0.2)


def _frames(lines: Iterable[str], ip: str) -> list[Frame]:
    """The ARP/NDP frames about `ip` in tcpdump output, in capture order."""
    address = str(ipaddress.ip_address(ip))
    # A gratuitous ARP asks for its own address. keepalived's sets the target hardware
    # address to broadcast, which tcpdump prints: `who-has X (ff:ff:ff:ff:ff:ff) tell X`.
    gratuitous = re.compile(rf"Request who-has {re.escape(address)} "
                            rf"(?:\([0-9a-f:]{{17}}\) )?tell {re.escape(address)},")
    found = []
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        rest = match["rest"]
        if address.count(":"):
            if f"tgt is {address}," not in rest and not rest.endswith(f"tgt is {address}"):
                continue
            if "neighbor advertisement" in rest:
                kind = "unsolicited" if match["dst"] == "33:33:00:00:00:01" else "advert"
            elif "neighbor solicitation" in rest:
                kind = "solicit"
            else:
                continue
        elif gratuitous.search(rest):
            kind = "garp"
        elif f"Reply {address} is-at " in rest:
            kind = "reply"
        elif f"Request who-has {address} " in rest:
            kind = "request"
        else:
            continue
        found.append(Frame(float(match["at"]), match["src"], kind))
    return found


def announcements(lines: Iterable[str], ip: str) -> list[Frame]:
    """Gratuitous ARPs / unsolicited NAs for `ip`: what a new owner sends."""
    return [f for f in _frames(lines, ip) if f.kind in ("garp", "unsolicited")]


def answering_macs(lines: Iterable[str], ip: str) -> tuple[set[str], int]:
    """(source MACs of every ARP reply / NA for `ip`, number of those frames)."""
    answers = [f for f in _frames(lines, ip) if f.kind in ("reply", "advert", "unsolicited")]
    return {f.source for f in answers}, len(answers)


def owner_runs(lines: Iterable[str], ip: str, c: testenv_cluster.Cluster, since: float
               ) -> list[str]:
    """The nodes that announced `ip` from epoch `since` on, in order, consecutive
    repeats folded: each entry is one ownership change on the wire. (`since` leaves out
    the repeats of the announcement that made the owner before the story began.)"""
    by_mac = {host.mac: host.name for host in c.lab.nodes}
    runs: list[str] = []
    for frame in announcements(lines, ip):
        if frame.at < since:
            continue
        node = by_mac.get(frame.source, frame.source)
        if not runs or runs[-1] != node:
            runs.append(node)
    return runs


@dataclasses.dataclass(frozen=True, slots=True)
class Failover:
    """One takeover as the LAN client saw it; seconds from the fault."""

    old: str
    new: str
    first_announcement_s: float | None  # first GARP / unsolicited NA from `new` on the wire
    neighbour_s: float  # the client's neighbour entry holds `new`'s MAC
    http_s: float  # an HTTP request is answered by `new`

    def properties(self, prefix: str) -> list[tuple[str, object]]:
        return [(f"{prefix}_{k}", round(v, 3) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(self).items()]


async def measure_takeover(c: testenv_cluster.Cluster, ip: str, old: str, new: str,
                           fault: Callable[[], Awaitable[None] | None],
                           capture: netlab.Capture, timeout: float = 30.0) -> Failover:
    """Apply `fault` to the owner `old` and time, from the LAN client, until its
    neighbour entry for `ip` holds `new`'s MAC and HTTP answers from `new`.

    `capture` must already be running in the client (ARP or ICMPv6): the first
    announcement from `new` after the fault is read from its timestamps."""
    client = c.lab.lan_client
    new_mac = c.lab.node(new).mac
    started_wall, started = time.time(), time.monotonic()
    pending = fault()
    if pending is not None:
        await pending
    neighbour_s: float | None = None
    http_s: float | None = None
    last: object = None
    while http_s is None:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise netlab.WaitTimeout(f"takeover of {ip} from {old} by {new}", timeout, last,
                                     c.speaker_logs())
        if neighbour_s is None:
            entry = await client.neighbor(ip)
            last = entry
            if entry is not None and entry.mac == new_mac:
                neighbour_s = time.monotonic() - started
        if neighbour_s is not None:
            try:
                body = (await c.lab.http_get(client, ip, timeout=1.0)).strip()
            except netlab.CommandFailed as exc:
                body = str(exc)
            last = body
            if body == new:
                http_s = time.monotonic() - started
                break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # tcpdump writes line by line; let the last lines land
    first = next((f.at - started_wall for f in announcements(capture.lines(), ip)
                  if f.source == new_mac and f.at >= started_wall), None)
    assert neighbour_s is not None
    return Failover(old, new, first, neighbour_s, http_s)


async def fresh_resolutions(c: testenv_cluster.Cluster, vip: str, protocol: str,
                            times: int = 5) -> tuple[list[str], set[str], int]:
    """`times` HTTP requests from the LAN client to `vip`, each after flushing its
    neighbour table, under a capture of `protocol` ("arp" or "icmp6"): (the node names
    that answered HTTP, the MACs that answered resolution, how many answers)."""
    client = c.lab.lan_client
    capture = await client.start_capture(protocol)
    bodies = []
    for _ in range(times):
        await client.flush_neighbors()
        bodies.append((await c.lab.http_get(client, vip)).strip())
    macs, answers = answering_macs(await finish(capture), vip)
    return bodies, macs, answers


async def finish(capture: netlab.Capture) -> list[str]:
    """Stop `capture`; its lines (tcpdump -l wrote each one as it came)."""
    lines = capture.lines()
    stopped = await capture.stop()
    return stopped if len(stopped) >= len(lines) else lines


def others(nodes: Sequence[str], *without: str) -> list[str]:
    return [n for n in nodes if n not in without]



_SETTLED = re.compile(r'^ts=(?P<ts>\S+) .*msg="live speakers settled" .*\blive=(?P<live>\S*)')


def settled_views(c: testenv_cluster.Cluster, since: float) -> dict[str, set[str]]:
    """Node -> the live speakers it saw when its start-up hold-down ended (the last
    "live speakers settled" line of its log at or after epoch `since`)."""
    return {node: set(filter(None, match["live"].split(",")))
            for node, at, match in c.speaker_log_matches(_SETTLED) if at >= since}
