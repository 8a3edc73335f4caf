"""Layer2Announcer.set: answer claimed IPs only, announce each new claim at once and a
few times more, stop at once on release, close what is unused.

Sockets are replaced at our own seam (STYLE §2.14): `open_transport` hands out
FakeTransports that record what is sent and let a test feed received frames in;
`lookup_link` answers from a table instead of netlink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from openelb.announce import layer2
from openelb.announce.layer2 import arp, errors, ndp, netlink, rawsocket
from openelb.announce.layer2.frames import Drop, Family
from tests.unit.announce.layer2 import wire
from tests.unit.announce.layer2.wire import NODE_MAC, OTHER_MAC, VIP4, VIP6

ARPING = wire.load("test_arping_request_for_a_claimed_ip_gets_a_unicast_arp_reply")
KERNEL_NS = wire.load("test_kernel_solicitation_for_a_claimed_ip_gets_a_solicited_advertisement")
ARP_REPLY = wire.load("test_kernel_arp_reply_is_not_a_request")
VIP4_B = IPv4Address("192.0.2.201")
VIP6_B = IPv6Address("2001:db8:1::300")


class FakeTransport:
    def __init__(self, kind: rawsocket.Kind, link: netlink.Link,
                 on_frame: Callable[[bytes], None], on_error: Callable[[OSError], None]) -> None:
        self.kind, self.link = kind, link
        self.receive, self.fail = on_frame, on_error
        self.sent: list[bytes] = []
        self.groups: frozenset[bytes] = frozenset()
        self.closed = False
        self.broken = False

    def send(self, frame: bytes) -> None:
        assert not self.closed
        if self.broken:
            raise OSError(105, "No buffer space available")
        self.sent.append(frame)

    def set_groups(self, groups: frozenset[bytes]) -> None:
        self.groups = groups

    def close(self) -> None:
        self.closed = True


class FakeNet:
    def __init__(self) -> None:
        self.links = {
            "eth0": netlink.Link("eth0", 2, NODE_MAC, loopback=False),
            "eth1": netlink.Link("eth1", 3, OTHER_MAC, loopback=False),
            "eth2": netlink.Link("eth2", 4, OTHER_MAC, loopback=False),
            "wg0": netlink.Link("wg0", 5, None, loopback=False),
        }
        self.refused = {"eth2"}  # opening a socket here fails like without CAP_NET_RAW
        self.opened: list[FakeTransport] = []

    def lookup(self, name: str) -> netlink.Link | None:
        return self.links.get(name)

    def open(self, kind: rawsocket.Kind, link: netlink.Link, on_frame: Callable[[bytes], None],
             on_error: Callable[[OSError], None]) -> FakeTransport:
        if link.name in self.refused:
            raise PermissionError(1, "Operation not permitted")
        transport = FakeTransport(kind, link, on_frame, on_error)
        self.opened.append(transport)
        return transport

    def live(self, interface: str, kind: rawsocket.Kind) -> FakeTransport:
        (found,) = [t for t in self.opened
                    if t.link.name == interface and t.kind is kind and not t.closed]
        return found


@pytest.fixture
def net() -> FakeNet:
    return FakeNet()


def _announcer(net: FakeNet, **settings: object) -> layer2.Layer2Announcer:
    return layer2.Layer2Announcer(lookup_link=net.lookup, open_transport=net.open,
                                  **settings)  # type: ignore[arg-type]


def _claims(*pairs: tuple[IPv4Address | IPv6Address, str]) -> frozenset[layer2.Claim]:
    return frozenset(layer2.Claim(ip, name) for ip, name in pairs)


async def test_a_new_claim_is_announced_before_set_returns_then_repeated(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=2, garp_interval=0.01)
    await announcer.set(_claims((VIP4, "eth0"), (VIP6, "eth0")))
    arp_socket, ndp_socket = net.live("eth0", rawsocket.Kind.ARP), net.live("eth0",
                                                                            rawsocket.Kind.NDP)
    assert arp_socket.sent == [arp.gratuitous_frame(VIP4, NODE_MAC)]
    assert ndp_socket.sent == [ndp.unsolicited_frame(VIP6, NODE_MAC)]
    await asyncio.sleep(0.2)
    assert arp_socket.sent == [arp.gratuitous_frame(VIP4, NODE_MAC)] * 3
    assert ndp_socket.sent == [ndp.unsolicited_frame(VIP6, NODE_MAC)] * 3
    assert announcer.counters.gratuitous_sent == {Family.IPV4: 3, Family.IPV6: 3}
    await announcer.aclose()


async def test_an_unchanged_claim_is_not_announced_again(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP4, "eth0")))
    await announcer.set(_claims((VIP4, "eth0")))
    assert len(net.live("eth0", rawsocket.Kind.ARP).sent) == 1
    assert len(net.opened) == 1
    await announcer.aclose()


async def test_claimed_ips_are_answered_and_others_dropped_with_their_reason(
        net: FakeNet) -> None:
    seen: list[tuple[layer2.Metric, Family, Drop | None]] = []
    announcer = _announcer(net, garp_repeats=0,
                           on_counter=lambda *event: seen.append(event))
    await announcer.set(_claims((VIP4, "eth0"), (VIP6, "eth0")))
    arp_socket, ndp_socket = net.live("eth0", rawsocket.Kind.ARP), net.live("eth0",
                                                                            rawsocket.Kind.NDP)
    arp_socket.receive(ARPING)
    arp_socket.receive(ARP_REPLY)
    ndp_socket.receive(KERNEL_NS)
    assert arp_socket.sent[1:] == [wire.load("test_our_arp_reply_is_unicast_to_the_requester")]
    assert ndp_socket.sent[1:] == [
        wire.load("test_our_solicited_advertisement_goes_to_the_solicitor")]
    counters = announcer.counters
    assert counters.requests_received == {Family.IPV4: 2, Family.IPV6: 1}
    assert counters.replies_sent == {Family.IPV4: 1, Family.IPV6: 1}
    assert counters.drops == {(Family.IPV4, Drop.NOT_REQUEST): 1}
    assert (layer2.Metric.DROPS, Family.IPV4, Drop.NOT_REQUEST) in seen
    assert seen.count((layer2.Metric.REPLIES_SENT, Family.IPV6, None)) == 1
    await announcer.aclose()


async def test_a_released_ip_is_not_answered_at_once_and_its_repeats_stop(
        net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=5, garp_interval=0.01)
    await announcer.set(_claims((VIP4, "eth0"), (VIP4_B, "eth0")))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    await announcer.set(_claims((VIP4_B, "eth0")))
    arp_socket.receive(ARPING)  # asks for VIP4
    assert announcer.counters.drops == {(Family.IPV4, Drop.NOT_OWNED): 1}
    await asyncio.sleep(0.2)
    announced = [wire.arp_of(frame)[1].target_ip for frame in arp_socket.sent]
    assert announced.count(VIP4) == 1
    assert announced.count(VIP4_B) == 6
    await announcer.aclose()


async def test_a_leaving_node_still_answers_but_announces_nothing_more(net: FakeNet) -> None:
    """After stop_announcing() (the speaker says it leaves), pending repeats stop and a
    new claim is not announced, so the LAN is never pulled back from the heir; requests
    are still answered until the claims are released."""
    announcer = _announcer(net, garp_repeats=5, garp_interval=0.01)
    await announcer.set(_claims((VIP4, "eth0")))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    await announcer.stop_announcing()
    await announcer.set(_claims((VIP4, "eth0"), (VIP4_B, "eth0")))
    await asyncio.sleep(0.1)
    assert arp_socket.sent == [arp.gratuitous_frame(VIP4, NODE_MAC)]
    arp_socket.receive(ARPING)
    assert arp_socket.sent[1:] == [wire.load("test_our_arp_reply_is_unicast_to_the_requester")]
    await announcer.aclose()


async def test_ipv6_claims_join_exactly_their_solicited_node_groups(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP6, "eth0"), (VIP6_B, "eth0"), (VIP4, "eth0")))
    ndp_socket = net.live("eth0", rawsocket.Kind.NDP)
    assert ndp_socket.groups == {bytes.fromhex("3333ff000200"), bytes.fromhex("3333ff000300")}
    await announcer.set(_claims((VIP6_B, "eth0"), (VIP4, "eth0")))
    assert ndp_socket.groups == {bytes.fromhex("3333ff000300")}
    await announcer.aclose()


async def test_sockets_nothing_is_claimed_on_are_closed(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP4, "eth0"), (VIP6, "eth1")))
    eth0, eth1 = net.live("eth0", rawsocket.Kind.ARP), net.live("eth1", rawsocket.Kind.NDP)
    await announcer.set(_claims((VIP4, "eth0")))
    assert eth1.closed
    assert not eth0.closed
    await announcer.set(frozenset())
    assert all(t.closed for t in net.opened)
    assert announcer.claims == frozenset()
    await announcer.aclose()


async def test_a_claim_moving_to_another_interface_is_announced_there(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP4, "eth0")))
    await announcer.set(_claims((VIP4, "eth1")))
    assert net.opened[0].closed
    assert net.live("eth1", rawsocket.Kind.ARP).sent == [arp.gratuitous_frame(VIP4, OTHER_MAC)]
    await announcer.aclose()


async def test_unavailable_interfaces_are_reported_after_the_others_are_served(
        net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    desired = _claims((VIP4, "eth0"), (VIP4_B, "missing0"), (VIP6, "wg0"), (VIP6_B, "eth2"))
    with pytest.raises(errors.InterfaceUnavailable) as raised:
        await announcer.set(desired)
    assert raised.value.failures == {
        "missing0": "no such interface",
        "wg0": "not an Ethernet interface",
        "eth2": "cannot open ndp socket: [Errno 1] Operation not permitted",
    }
    assert announcer.claims == _claims((VIP4, "eth0"))
    assert len(net.live("eth0", rawsocket.Kind.ARP).sent) == 1
    net.refused.clear()
    with pytest.raises(errors.InterfaceUnavailable):  # retried: eth2 now opens
        await announcer.set(desired)
    assert announcer.claims == _claims((VIP4, "eth0"), (VIP6_B, "eth2"))
    assert len(net.live("eth0", rawsocket.Kind.ARP).sent) == 1  # not announced twice
    await announcer.aclose()


async def test_a_broken_socket_drops_its_claims_and_asks_to_be_set_again(
        net: FakeNet) -> None:
    lost: list[bool] = []
    announcer = _announcer(net, garp_repeats=0, on_lost=lambda: lost.append(True))
    desired = _claims((VIP4, "eth0"), (VIP6, "eth0"))
    await announcer.set(desired)
    broken = net.live("eth0", rawsocket.Kind.ARP)
    broken.fail(OSError(19, "No such device"))
    assert broken.closed
    assert lost == [True]
    assert announcer.claims == _claims((VIP6, "eth0"))
    await announcer.set(desired)
    assert net.live("eth0", rawsocket.Kind.ARP).sent == [arp.gratuitous_frame(VIP4, NODE_MAC)]
    await announcer.aclose()


async def test_send_failures_are_counted_not_raised(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP4, "eth0")))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    arp_socket.broken = True
    arp_socket.receive(ARPING)
    assert announcer.counters.send_errors == {Family.IPV4: 1}
    await announcer.set(_claims((VIP4, "eth0"), (VIP4_B, "eth0")))
    assert announcer.counters.send_errors == {Family.IPV4: 2}
    await announcer.aclose()


async def test_aclose_stops_everything_and_leaves_no_task(net: FakeNet) -> None:
    announcer = _announcer(net, garp_repeats=100, garp_interval=0.01)
    await announcer.set(_claims((VIP4, "eth0"), (VIP6, "eth0")))
    await announcer.aclose()
    assert all(t.closed for t in net.opened)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("layer2-")]
    with pytest.raises(RuntimeError, match="aclose"):
        await announcer.set(frozenset())


async def test_each_ownership_change_is_logged_once(net: FakeNet,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="openelb.announce.layer2")
    announcer = _announcer(net, garp_repeats=0)
    await announcer.set(_claims((VIP4, "eth0")))
    await announcer.set(_claims((VIP4, "eth0")))
    await announcer.set(frozenset())
    lines = [(r.getMessage(), getattr(r, "ip", None), getattr(r, "interface", None),
              getattr(r, "op", None)) for r in caplog.records if r.levelno == logging.INFO]
    assert lines == [("layer2 claim", "192.0.2.200", "eth0", "layer2"),
                     ("layer2 release", "192.0.2.200", "eth0", "layer2")]
    await announcer.aclose()


def test_claims_on_lo_or_no_interface_are_refused() -> None:
    for name in ("lo", ""):
        with pytest.raises(ValueError, match="cannot carry a layer-2 claim"):
            layer2.Claim(VIP4, name)


def test_bad_repeat_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="garp"):
        layer2.Layer2Announcer(garp_repeats=-1)
    with pytest.raises(ValueError, match="garp"):
        layer2.Layer2Announcer(garp_interval=0)


def _rogue_garp(ip: IPv4Address) -> bytes:
    """arping -U from another host for `ip`: the attack run's one frame."""
    return arp.gratuitous_frame(ip, OTHER_MAC)


async def test_another_mac_announcing_our_address_is_answered_with_our_own_at_once(
        net: FakeNet) -> None:
    """RFC 5227 §2.4 (b): announce again, at most once per second however many rogue
    frames come, report each defence, and count every conflict."""
    now = [10.0]
    reported: list[tuple[object, str]] = []
    announcer = _announcer(net, garp_repeats=0, clock=lambda: now[0],
                           on_conflict=lambda *c: reported.append(c))
    await announcer.set(_claims((VIP4, "eth0")))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    ours = arp.gratuitous_frame(VIP4, NODE_MAC)
    for _ in range(5):
        arp_socket.receive(_rogue_garp(VIP4))
    assert arp_socket.sent == [ours, ours]
    assert reported == [(VIP4, "02:00:00:00:00:99")]
    now[0] += 1.0
    arp_socket.receive(_rogue_garp(VIP4))
    assert arp_socket.sent == [ours, ours, ours]
    assert len(reported) == 2
    assert announcer.counters.conflicts == {Family.IPV4: 6}
    await announcer.aclose()


async def test_an_address_kept_for_its_joining_owner_is_not_defended(net: FakeNet) -> None:
    """Make before break: the owner's first announcement is the handover itself."""
    reported: list[object] = []
    announcer = _announcer(net, garp_repeats=0, on_conflict=lambda *c: reported.append(c))
    await announcer.set(_claims((VIP4, "eth0")), undefended=frozenset({VIP4}))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    arp_socket.receive(_rogue_garp(VIP4))
    assert arp_socket.sent == [arp.gratuitous_frame(VIP4, NODE_MAC)]
    assert reported == []
    await announcer.aclose()


async def test_a_leaving_node_neither_fights_nor_reports_its_heirs_announcement(
        net: FakeNet) -> None:
    """Every rolling update: the heir announces at once on the goodbye heartbeat."""
    reported: list[object] = []
    announcer = _announcer(net, garp_repeats=0, on_conflict=lambda *c: reported.append(c))
    await announcer.set(_claims((VIP4, "eth0")))
    arp_socket = net.live("eth0", rawsocket.Kind.ARP)
    await announcer.stop_announcing()
    arp_socket.receive(_rogue_garp(VIP4))
    assert arp_socket.sent == [arp.gratuitous_frame(VIP4, NODE_MAC)]
    assert reported == []
    assert announcer.counters.conflicts == {Family.IPV4: 1}
    await announcer.aclose()
