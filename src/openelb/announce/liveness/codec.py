"""Heartbeat wire format: authenticated, replay-safe, small.

announce/liveness; pure. A heartbeat is `MAGIC | HMAC-SHA256(secret, body) | body`,
where body is compact JSON: node name, boot id (random per process start), sequence
number (strictly increasing within a boot), wall-clock time, the layer-2 pools the
node can serve, and whether its start-up hold-down is over and it has taken its claims
(`claiming`; absent in heartbeats of speakers that predate the flag, which count as
claiming). A speaker that stops sends a last one with `leaving` set (key absent
otherwise), and `booted_at` is the sender's wall clock when its boot began (absent
from speakers that predate it). `scoped` says the sender knows its pools and sends
to peers by segment (udp.py's Scope); absent, its pools say nothing yet (it has not
planned, or predates scoping) and receivers treat it as sharing every pool.
A receiver accepts a heartbeat only if the MAC matches, the time is within `max_skew`
of its own clock, the boot is not older than the newest seen from that node, and the
(node, boot) sequence number grew: a captured packet replayed later, even after the
sender restarted, is refused. Every refusal is a `Refused` value.
"""

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = ["MAGIC", "Heartbeat", "Refused", "decode", "encode"]

MAGIC = b"OELB1"
_MAC_LEN = 32


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node: str
    boot: str
    seq: int
    sent_at: float  # sender's wall clock (seconds since the epoch)
    pools: frozenset[str] = frozenset()
    claiming: bool = True  # the sender's hold-down is over and its claims are applied
    leaving: bool = False  # the sender stops: count it dead now, not after the timeout
    booted_at: float | None = None  # sender's wall clock when this boot began
    scoped: bool = False  # `pools` is known (the sender planned): see udp.py's Scope


class Refused(enum.StrEnum):
    NOT_OURS = "notOurs"
    BAD_MAC = "badMac"
    MALFORMED = "malformed"
    STALE = "stale"
    REPLAYED = "replayed"
    OLD_BOOT = "oldBoot"  # from a boot older than the newest seen from that node
    OTHER_BOOT = "otherBoot"  # a goodbye from a boot that is not the node's current one


def encode(beat: Heartbeat, secret: bytes) -> bytes:
    fields: dict[str, object] = {
        "n": beat.node, "b": beat.boot, "s": beat.seq, "t": round(beat.sent_at, 3),
        "p": sorted(beat.pools), "c": beat.claiming}
    if beat.leaving:
        fields["l"] = True
    if beat.booted_at is not None:
        fields["bt"] = round(beat.booted_at, 3)
    if beat.scoped:
        fields["k"] = True
    body = json.dumps(fields, separators=(",", ":")).encode()
    return MAGIC + hmac.new(secret, body, hashlib.sha256).digest() + body


def decode(packet: bytes, secret: bytes) -> Heartbeat | Refused:
    """Verify and parse one datagram (freshness is judged by membership)."""
    if not packet.startswith(MAGIC) or len(packet) < len(MAGIC) + _MAC_LEN + 2:
        return Refused.NOT_OURS
    mac = packet[len(MAGIC):len(MAGIC) + _MAC_LEN]
    body = packet[len(MAGIC) + _MAC_LEN:]
    if not hmac.compare_digest(mac, hmac.new(secret, body, hashlib.sha256).digest()):
        return Refused.BAD_MAC
    try:
        data = json.loads(body)
        beat = Heartbeat(
            node=str(data["n"]), boot=str(data["b"]), seq=int(data["s"]),
            sent_at=float(data["t"]), pools=frozenset(str(p) for p in data.get("p", ())),
            claiming=data.get("c", True) is not False, leaving=data.get("l") is True,
            booted_at=float(data["bt"]) if "bt" in data else None,
            scoped=data.get("k") is True,
        )
    except (ValueError, KeyError, TypeError):
        return Refused.MALFORMED
    if not beat.node or not beat.boot:
        return Refused.MALFORMED
    return beat
