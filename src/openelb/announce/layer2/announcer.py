"""Answers ARP and NDP for the claimed IPs and announces each new claim at once.

announce/layer2 (DESIGN §3, §4; STYLE §2.8, §2.10). The speaker decides ownership and
calls `await announcer.set(claims)` with the whole desired set of `Claim`s on every
plan round, and `set(frozenset())` before it exits. The announcer diffs against what it
serves, and within that one call, without yielding to the loop:

- stops answering a released IP before anything else happens, and cancels its
  pending gratuitous repeats;
- opens one raw socket per (interface, family) in use, through `rawsocket`, and joins
  the solicited-node groups of the claimed IPv6 addresses;
- sends the gratuitous ARP / unsolicited NA of each new claim, then repeats it
  `garp_repeats` times every `garp_interval` seconds from a task it owns
  (`reannounce` does the same again for claims already in effect);
- closes the sockets nothing is claimed on any more.

`stop_announcing()` is for a speaker that is leaving: from then on it only answers
requests, and sends no gratuitous frame, pending repeats included, so it never pulls the
LAN's neighbour entries back from the node taking over.

Every received frame goes through frames.decide; the Reply is sent and the Drop is
counted. A Conflict (another MAC saying it has one of our addresses: a rogue or
misconfigured host, RFC 5227 §2.4) is counted and reported through `on_conflict`; an
address being defended is announced again at once, at most once per `defend_interval`
per address, so a stream of forged frames cannot keep the LAN away from it. Addresses
this node only keeps for a joining owner (make before break), and every address once
the speaker is leaving, are not defended: the other node's announcement is then the
expected handover, not a conflict (counted, logged at debug level only).

What could not be opened is raised as InterfaceUnavailable after everything else is
in place, so one bad interface never blocks the others. Claims whose socket
later fails are dropped and `on_lost` is called so the caller sets them again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from openelb.announce.layer2 import arp, errors, ethernet, frames, ndp, netlink, rawsocket

__all__ = ["Claim", "Counters", "Layer2Announcer", "Metric", "OnConflict", "OnCounter",
           "Transport"]

log = logging.getLogger(__name__)

IPAddress = frames.IPAddress
Family = frames.Family
_KIND = {Family.IPV4: rawsocket.Kind.ARP, Family.IPV6: rawsocket.Kind.NDP}


@dataclass(frozen=True, slots=True)
class Claim:
    """This node answers for `ip` on `interface` (a resolved name, never "lo")."""

    ip: IPAddress
    interface: str

    def __post_init__(self) -> None:
        if not self.interface or self.interface == "lo":
            raise ValueError(f"interface: {self.interface!r} cannot carry a layer-2 claim")


class Metric(StrEnum):
    REQUESTS_RECEIVED = "requests_received"  # frames the filtered sockets delivered
    REPLIES_SENT = "replies_sent"
    GRATUITOUS_SENT = "gratuitous_sent"  # gratuitous ARPs and unsolicited NAs
    DROPS = "drops"  # by frames.Drop reason
    SEND_ERRORS = "send_errors"
    CONFLICTS = "conflicts"  # another MAC claimed one of our addresses


OnCounter = Callable[[Metric, Family, frames.Drop | None], None]
# (our address, the other MAC as aa:bb:...) after defending it: for an Event.
OnConflict = Callable[[IPAddress, str], None]


@dataclass(slots=True)
class Counters:
    """Running totals per family (and per Drop reason); owned by one announcer."""

    requests_received: collections.Counter[Family] = field(default_factory=collections.Counter)
    replies_sent: collections.Counter[Family] = field(default_factory=collections.Counter)
    gratuitous_sent: collections.Counter[Family] = field(default_factory=collections.Counter)
    send_errors: collections.Counter[Family] = field(default_factory=collections.Counter)
    conflicts: collections.Counter[Family] = field(default_factory=collections.Counter)
    drops: collections.Counter[tuple[Family, frames.Drop]] = field(
        default_factory=collections.Counter)

    def add(self, metric: Metric, family: Family, reason: frames.Drop | None = None) -> None:
        if metric is Metric.DROPS:
            assert reason is not None
            self.drops[family, reason] += 1
        else:
            counter: collections.Counter[Family] = getattr(self, metric.value)
            counter[family] += 1


class Transport(Protocol):
    """What the announcer needs of a socket; rawsocket.PacketSocket in production."""

    def send(self, frame: bytes) -> None: ...
    def set_groups(self, groups: frozenset[bytes]) -> None: ...
    def close(self) -> None: ...


OpenTransport = Callable[[rawsocket.Kind, netlink.Link, Callable[[bytes], None],
                          Callable[[OSError], None]], Transport]
LookupLink = Callable[[str], netlink.Link | None]


def _open_packet_socket(kind: rawsocket.Kind, link: netlink.Link,
                        on_frame: Callable[[bytes], None],
                        on_error: Callable[[OSError], None]) -> Transport:
    return rawsocket.PacketSocket(kind, link.name, link.index, on_frame, on_error)


@dataclass(slots=True, eq=False)
class _Interface:
    link: netlink.Link
    mac: bytes
    owned: set[IPAddress] = field(default_factory=set)
    sockets: dict[Family, Transport] = field(default_factory=dict)


def _order(claim: Claim) -> tuple[str, int, int]:
    return claim.interface, claim.ip.version, int(claim.ip)


def _fields(claim: Claim, **more: str) -> dict[str, str]:
    return {"ip": str(claim.ip), "interface": claim.interface, "op": "layer2", **more}


class Layer2Announcer:
    def __init__(self, *, garp_repeats: int = 3, garp_interval: float = 0.5,
                 defend_interval: float = 1.0,
                 on_counter: OnCounter | None = None,
                 on_conflict: OnConflict = lambda ip, mac: None,
                 on_lost: Callable[[], None] = lambda: None,
                 lookup_link: LookupLink = netlink.link_by_name,
                 open_transport: OpenTransport = _open_packet_socket,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`garp_repeats`: announcements after the immediate one, `garp_interval` apart.
        `defend_interval`: the least time between two defences of one address.

        `on_counter` sees every counter increment (for metrics); `on_conflict` each
        defence (at most one per address per `defend_interval`); `on_lost`
        is called when a socket fails and its claims are dropped. `lookup_link`,
        `open_transport` and `clock` are the seams unit tests replace.
        """
        if garp_repeats < 0 or garp_interval <= 0:
            raise ValueError("garp_repeats must be >= 0 and garp_interval > 0")
        self._garp_repeats = garp_repeats
        self._interval = garp_interval
        self._on_counter = on_counter
        self._on_conflict = on_conflict
        self._defend_interval = defend_interval
        self._clock = clock
        self._on_lost = on_lost
        self._lookup_link = lookup_link
        self._open_transport = open_transport
        self._interfaces: dict[str, _Interface] = {}
        self._claims: set[Claim] = set()
        self._repeats: dict[Claim, asyncio.Task[None]] = {}  # the pending repeats of a claim
        self._tasks: set[asyncio.Task[None]] = set()  # every repeat task not yet finished
        self._failures: dict[str, str] = {}  # interface -> why, as last reported
        self._announcing = True  # False once stop_announcing(): answer only
        self._undefended: frozenset[IPAddress] = frozenset()  # kept for a joining owner
        self._conflict_at: dict[IPAddress, float] = {}  # last conflict reported, per ip
        self._closed = False
        self.counters = Counters()

    @property
    def claims(self) -> frozenset[Claim]:
        """The claims in effect: answered, and announced when they were taken."""
        return frozenset(self._claims)

    async def set(self, desired: frozenset[Claim],
                  undefended: frozenset[IPAddress] = frozenset()) -> None:
        """Serve exactly `desired`; raises InterfaceUnavailable for what it could not.
        Conflicts about `undefended` addresses are expected (their owner is taking them
        over, make before break): counted only, neither fought nor reported."""
        if self._closed:
            raise RuntimeError("layer2 announcer used after aclose()")
        self._undefended = undefended
        for claim in sorted(self._claims - desired, key=_order):
            self._release(claim, "released")
        failures: dict[str, str] = {}
        for claim in sorted(desired - self._claims, key=_order):
            if claim.interface in failures:
                continue
            why = self._take(claim)
            if why is not None:
                failures[claim.interface] = why
                if self._failures.get(claim.interface) != why:  # once, not every retry
                    log.warning("layer2 claim failed", extra=_fields(claim, error=why))
        self._failures = failures
        self._close_unused()
        if failures:
            raise errors.InterfaceUnavailable(failures)

    async def aclose(self) -> None:
        """Stop answering everything, cancel the repeats and close every socket."""
        self._closed = True
        for claim in sorted(self._claims, key=_order):
            self._release(claim, "closed")
        self._close_unused()
        await self._cancel_repeats()

    # -- ownership changes -------------------------------------------------------------

    def _take(self, claim: Claim) -> str | None:
        """Answer for and announce `claim`; the reason it could not, or None."""
        interface = self._interfaces.get(claim.interface)
        if interface is None:
            try:
                link = self._lookup_link(claim.interface)
            except errors.NetlinkFailed as exc:
                return str(exc)
            if link is None:
                return "no such interface"
            if not link.usable or link.mac is None:
                return "not an Ethernet interface"
            interface = self._interfaces[claim.interface] = _Interface(link, link.mac)
        family = Family.of(claim.ip)
        if family not in interface.sockets:
            try:
                interface.sockets[family] = self._open_transport(
                    _KIND[family], interface.link,
                    lambda frame: self._received(interface, family, frame),
                    lambda exc: self._failed(interface, family, exc))
            except OSError as exc:
                return f"cannot open {_KIND[family]} socket: {exc}"
        interface.owned.add(claim.ip)
        if family is Family.IPV6:
            try:
                self._join_groups(interface)
            except OSError as exc:
                interface.owned.discard(claim.ip)
                return f"cannot join solicited-node group: {exc}"
        self._claims.add(claim)
        log.info("layer2 claim", extra=_fields(claim, mac=ethernet.format_mac(interface.mac)))
        self._announce_and_repeat(claim)
        return None

    def _release(self, claim: Claim, reason: str) -> None:
        self._claims.discard(claim)
        interface = self._interfaces.get(claim.interface)
        if interface is not None:
            interface.owned.discard(claim.ip)  # DESIGN §4: stop answering at once
        self._conflict_at.pop(claim.ip, None)
        task = self._repeats.pop(claim, None)
        if task is not None:
            task.cancel()
        log.info("layer2 release", extra=_fields(claim, reason=reason))

    def _join_groups(self, interface: _Interface) -> None:
        transport = interface.sockets.get(Family.IPV6)
        if transport is not None:
            transport.set_groups(frozenset(
                ethernet.ipv6_multicast_mac(ndp.solicited_node(ip))
                for ip in interface.owned if ip.version == 6))

    def _close_unused(self) -> None:
        for name, interface in list(self._interfaces.items()):
            for family, transport in list(interface.sockets.items()):
                if not any(Family.of(ip) is family for ip in interface.owned):
                    transport.close()
                    del interface.sockets[family]
                    log.debug("layer2 socket closed", extra={"interface": name, "op": "layer2",
                                                             "family": family.value})
            if not interface.sockets:
                del self._interfaces[name]
            else:
                with contextlib.suppress(OSError):  # leaving groups cannot meaningfully fail
                    self._join_groups(interface)

    # -- gratuitous announcements ------------------------------------------------------

    async def stop_announcing(self) -> None:
        """Send no more gratuitous frames, cancelling the pending repeats; keep answering.

        For a speaker that says it leaves: its heirs announce the addresses now, and a
        repeat from here after theirs would move the LAN's neighbour entries back to a
        node about to stop answering.
        """
        self._announcing = False
        await self._cancel_repeats()

    def reannounce(self, claims: frozenset[Claim]) -> None:
        """Announce those of `claims` in effect again, now and `garp_repeats` more times.

        For a node that kept its claims while others could not hear it (a cut link):
        another node took its addresses meanwhile and moved the LAN's neighbour entries
        away, and nothing else would move them back. Pending repeats start over.
        """
        for claim in sorted(claims & self._claims, key=_order):
            pending = self._repeats.pop(claim, None)
            if pending is not None:
                pending.cancel()
            log.info("layer2 reannounce", extra=_fields(claim))
            self._announce_and_repeat(claim)

    def _announce_and_repeat(self, claim: Claim) -> None:
        if not self._announcing:
            return
        self._announce(claim)
        if self._garp_repeats:
            task = asyncio.create_task(self._repeat(claim), name=f"layer2-garp-{claim.ip}")
            self._repeats[claim] = task
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._repeat_done(claim, done))

    def _announce(self, claim: Claim) -> None:
        interface = self._interfaces[claim.interface]
        family = Family.of(claim.ip)
        if claim.ip.version == 4:
            frame = arp.gratuitous_frame(claim.ip, interface.mac)
        else:
            frame = ndp.unsolicited_frame(claim.ip, interface.mac)
        try:
            interface.sockets[family].send(frame)
        except OSError as exc:
            self._count(Metric.SEND_ERRORS, family)
            log.warning("layer2 gratuitous send failed", extra=_fields(claim, error=str(exc)))
            return
        self._count(Metric.GRATUITOUS_SENT, family)
        log.debug("layer2 gratuitous sent", extra=_fields(claim))

    async def _repeat(self, claim: Claim) -> None:
        for _ in range(self._garp_repeats):
            await asyncio.sleep(self._interval)
            self._announce(claim)

    def _repeat_done(self, claim: Claim, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._repeats.get(claim) is task:
            del self._repeats[claim]

    async def _cancel_repeats(self) -> None:
        """Cancel every repeat, including those a release cancelled, and await them."""
        self._repeats.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- frames in ---------------------------------------------------------------------

    def _received(self, interface: _Interface, family: Family, frame: bytes) -> None:
        self._count(Metric.REQUESTS_RECEIVED, family)
        verdict = frames.decide(frame, interface.owned, interface.mac)
        if isinstance(verdict, frames.Conflict):
            self._conflict(interface, family, verdict)
            return
        if isinstance(verdict, frames.Drop):
            self._count(Metric.DROPS, family, verdict)
            if log.isEnabledFor(logging.DEBUG):  # one line per packet: skip building it
                log.debug("layer2 frame dropped", extra={
                    "interface": interface.link.name, "op": "layer2", "reason": verdict.value})
            return
        try:
            interface.sockets[family].send(verdict.frame)
        except (OSError, KeyError) as exc:
            self._count(Metric.SEND_ERRORS, family)
            log.debug("layer2 reply failed", extra={"interface": interface.link.name,
                                                    "op": "layer2", "ip": str(verdict.ip),
                                                    "error": str(exc)})
            return
        self._count(Metric.REPLIES_SENT, family)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("layer2 reply sent", extra={
                "interface": interface.link.name, "op": "layer2", "ip": str(verdict.ip),
                "to": ethernet.format_mac(verdict.destination)})

    def _conflict(self, interface: _Interface, family: Family,
                  conflict: frames.Conflict) -> None:
        """RFC 5227 §2.4 (b): announce again, at most once per defend interval."""
        self._count(Metric.CONFLICTS, family)
        now = self._clock()
        last = self._conflict_at.get(conflict.ip)
        if last is not None and now - last < self._defend_interval:
            return
        self._conflict_at[conflict.ip] = now
        claim = Claim(conflict.ip, interface.link.name)
        mac = ethernet.format_mac(conflict.mac)
        if (conflict.ip in self._undefended or not self._announcing
                or claim not in self._claims):
            # Kept for a joining owner, or this speaker is leaving: the other node's
            # announcement is the expected handover, not a conflict.
            log.debug("layer2 handover announced", extra=_fields(claim, mac=mac))
            return
        self._announce(claim)
        log.warning("layer2 address conflict", extra=_fields(claim, mac=mac,
                                                             reason="defended"))
        self._on_conflict(conflict.ip, mac)

    def _failed(self, interface: _Interface, family: Family, exc: OSError) -> None:
        """A socket broke (e.g. its interface was deleted): drop what it served."""
        name = interface.link.name
        if self._interfaces.get(name) is not interface:
            return  # a socket of an interface already closed
        log.error("layer2 socket failed", extra={"interface": name, "op": "layer2",
                                                 "error": str(exc)})
        for claim in sorted(self._claims, key=_order):
            if claim.interface == name and Family.of(claim.ip) is family:
                self._release(claim, "socketError")
        self._close_unused()
        self._on_lost()

    def _count(self, metric: Metric, family: Family, reason: frames.Drop | None = None) -> None:
        self.counters.add(metric, family, reason)
        if self._on_counter is not None:
            self._on_counter(metric, family, reason)
