"""Fuzzing: no byte string makes decide() or a parser raise, and every Reply is a frame
a receiver accepts (issue 6: "parsers must survive any malformed frame").

A short run by default (a few seconds); set OPENELB_FUZZ_EXAMPLES for a longer one, e.g.
`OPENELB_FUZZ_EXAMPLES=200000 .venv/bin/pytest tests/unit/announce/layer2/test_fuzz.py`.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openelb.announce.layer2 import arp, ethernet, frames, ndp
from tests.unit.announce.layer2 import wire
from tests.unit.announce.layer2.wire import NODE_MAC, OWNED

EXAMPLES = int(os.environ.get("OPENELB_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

CAPTURED = list(wire.all_captured().values())
macs = st.binary(min_size=6, max_size=6)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A captured frame, then some of: bytes overwritten, cut short, extended, or a
    header field's neighbourhood scrambled (so deep checks get reached)."""
    frame = bytearray(draw(st.sampled_from(CAPTURED)))
    for _ in range(draw(st.integers(0, 4))):
        if not frame:
            break
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        frame = frame[:draw(st.integers(0, len(frame)))]
    if draw(st.booleans()):
        frame += draw(st.binary(max_size=40))
    return bytes(frame)


def _check(verdict: frames.Reply | frames.Conflict | frames.Drop) -> None:
    """A Reply must be a whole frame Linux would accept; a Conflict names an address we
    own and a MAC that is not ours; a Drop must be a member."""
    if isinstance(verdict, frames.Drop):
        assert verdict in frames.Drop
        return
    if isinstance(verdict, frames.Conflict):
        assert verdict.ip in OWNED
        assert verdict.mac != NODE_MAC
        return
    assert isinstance(verdict, frames.Reply)
    if isinstance(verdict.ip, IPv4Address):
        _header, packet = wire.arp_of(verdict.frame)
        assert packet.operation == arp.OP_REPLY
        assert packet.sender_mac == NODE_MAC
        assert packet.sender_ip in OWNED
    else:
        _, _, advert = wire.advertisement_of(verdict.frame)
        assert advert.target in OWNED
        assert advert.target_mac == NODE_MAC


@fuzz
@given(st.binary(max_size=200))
def test_decide_never_raises_on_arbitrary_bytes(frame: bytes) -> None:
    _check(frames.decide(frame, OWNED, NODE_MAC))


@fuzz
@given(st.binary(max_size=200).map(lambda b: b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b))
def test_decide_never_raises_on_arbitrary_arp_payloads(frame: bytes) -> None:
    _check(frames.decide(frame, OWNED, NODE_MAC))


@fuzz
@given(st.binary(max_size=200).map(lambda b: b"\x33\x33\xff\x00\x02\x00" + b"\x02" * 6
                                    + b"\x86\xdd\x60" + b))
def test_decide_never_raises_on_arbitrary_ipv6_payloads(frame: bytes) -> None:
    _check(frames.decide(frame, OWNED, NODE_MAC))


@fuzz
@given(mutated())
def test_decide_never_raises_on_mutated_captured_frames(frame: bytes) -> None:
    _check(frames.decide(frame, OWNED, NODE_MAC))


@fuzz
@given(st.binary(max_size=120))
def test_parsers_never_raise(data: bytes) -> None:
    ethernet.parse(data)
    arp.parse(data)
    ndp.parse_ipv6(data)
    ndp.parse_icmpv6(data)
    ndp.parse_solicitation(data)
    ndp.parse_advertisement(data)


@fuzz
@given(macs.filter(lambda m: not ethernet.is_multicast(m) and any(m) and m != NODE_MAC),
       st.builds(IPv4Address, st.integers(1, 2**32 - 1)).filter(lambda ip: ip != wire.VIP4))
def test_any_host_asking_for_a_claimed_ipv4_address_is_answered(mac: bytes,
                                                                 sender: IPv4Address) -> None:
    request = arp.ArpPacket(arp.OP_REQUEST, mac, sender, b"\x00" * 6, wire.VIP4)
    frame = ethernet.encode(ethernet.BROADCAST, mac, ethernet.ETHERTYPE_ARP, arp.encode(request))
    verdict = frames.decide(frame, OWNED, NODE_MAC)
    assert isinstance(verdict, frames.Reply)
    assert verdict.destination == mac
    _check(verdict)


@fuzz
@given(macs.filter(lambda m: not ethernet.is_multicast(m) and any(m) and m != NODE_MAC),
       st.builds(IPv6Address, st.integers(1, 2**128 - 1)).filter(lambda ip: not ip.is_multicast))
def test_any_host_asking_for_a_claimed_ipv6_address_is_answered(mac: bytes,
                                                                 sender: IPv6Address) -> None:
    frame = ndp.solicitation_frame(target=wire.VIP6, source=sender, source_mac=mac)
    verdict = frames.decide(frame, OWNED, NODE_MAC)
    assert isinstance(verdict, frames.Reply)
    assert verdict.destination == mac
    _check(verdict)
