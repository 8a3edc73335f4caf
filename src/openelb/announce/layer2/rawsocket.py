"""The raw AF_PACKET sockets of the ARP and NDP responders: the only raw sockets in openelb.

announce/layer2 (DESIGN §3). One `PacketSocket` per (interface, family), opened by the
announcer: SOCK_RAW bound to the interface and to ethertype ARP (0x0806) or IPv6
(0x86DD), with a classic BPF filter so the kernel hands us only ARP requests and
replies, or ICMPv6 Neighbor Solicitations and Advertisements, that arrived from the
wire, never our own transmissions (replies and advertisements: for conflict defence). It runs
non-blocking on the asyncio loop (`loop.add_reader`, no threads) and passes each frame
to `on_frame`; judging frames is frames.decide's job, not this module's.

A solicitation goes to the target's solicited-node group (33:33:ff:xx:xx:xx). The NIC
drops groups nobody joined, so `set_groups` joins exactly the groups of the claimed
IPv6 addresses (PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST); the kernel drops a
socket's memberships when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from enum import StrEnum

__all__ = ["Kind", "PacketSocket"]

log = logging.getLogger(__name__)

# linux/if_packet.h and linux/filter.h (Python's socket module lacks these).
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4  # skb->pkt_type of frames this host transmits
_MREQ = struct.Struct("iHH8s")  # struct packet_mreq: ifindex, type, alen, address[8]
_INSTRUCTION = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k

# Classic BPF opcodes.
LD_W_ABS = 0x20  # A <- u32 at [k]
LD_H_ABS = 0x28  # A <- u16 at [k]
LD_B_ABS = 0x30  # A <- u8 at [k]
JEQ_K = 0x15  # if A == k skip jt else skip jf
RET_K = 0x06  # accept k bytes (0 drops the frame)
AD_PKTTYPE = (-0x1000 + 4) & 0xFFFF_FFFF  # SKF_AD_OFF + SKF_AD_PKTTYPE: ancillary load
KEEP = 0xFFFF  # bytes of an accepted frame to keep: all of it
READS_PER_WAKEUP = 64  # bounded so a flood cannot starve the event loop

ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD


class Kind(StrEnum):
    ARP = "arp"
    NDP = "ndp"


_ETHERTYPE = {Kind.ARP: ETHERTYPE_ARP, Kind.NDP: ETHERTYPE_IPV6}

# Offsets are from the start of the Ethernet frame: 14-byte header, then ARP or IPv6.
_FILTERS: dict[Kind, tuple[tuple[int, int, int, int], ...]] = {
    # Replies and advertisements come through too: another MAC claiming one of our
    # addresses is a conflict the announcer defends against (frames.Conflict).
    Kind.ARP: (
        (LD_W_ABS, 0, 0, AD_PKTTYPE),  # 0: A <- packet type
        (JEQ_K, 3, 0, PACKET_OUTGOING),  # 1: sent by this host? drop (-> 5)
        (LD_H_ABS, 0, 0, 14 + 6),  # 2: A <- ARP opcode
        (JEQ_K, 2, 0, 1),  # 3: a request? accept (-> 6)
        (JEQ_K, 1, 0, 2),  # 4: a reply? accept (-> 6), else drop (-> 5)
        (RET_K, 0, 0, 0),  # 5: drop
        (RET_K, 0, 0, KEEP),  # 6: accept
    ),
    Kind.NDP: (
        (LD_W_ABS, 0, 0, AD_PKTTYPE),  # 0: A <- packet type
        (JEQ_K, 5, 0, PACKET_OUTGOING),  # 1: sent by this host? drop (-> 7)
        (LD_B_ABS, 0, 0, 14 + 6),  # 2: A <- IPv6 next header
        (JEQ_K, 0, 3, 58),  # 3: ICMPv6? go on (-> 4), else drop (-> 7)
        (LD_B_ABS, 0, 0, 14 + 40),  # 4: A <- ICMPv6 type
        (JEQ_K, 2, 0, 135),  # 5: Neighbor Solicitation? accept (-> 8)
        (JEQ_K, 1, 0, 136),  # 6: Neighbor Advertisement? accept (-> 8), else drop (-> 7)
        (RET_K, 0, 0, 0),  # 7: drop
        (RET_K, 0, 0, KEEP),  # 8: accept
    ),
}


def _attach_filter(sock: socket.socket, program: Iterable[tuple[int, int, int, int]]) -> None:
    code = b"".join(_INSTRUCTION.pack(*instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; the kernel
    # copies the program during the call, so the buffer only has to outlive it.
    fprog = struct.pack("HP", len(code) // _INSTRUCTION.size, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketSocket:
    """One bound, filtered, non-blocking AF_PACKET socket on the running loop."""

    def __init__(self, kind: Kind, interface: str, index: int,
                 on_frame: Callable[[bytes], None],
                 on_error: Callable[[OSError], None]) -> None:
        """Open and start reading; raises OSError (e.g. EPERM without CAP_NET_RAW)."""
        self.kind, self.interface, self.index = kind, interface, index
        self.closed = False
        self._on_frame, self._on_error = on_frame, on_error
        self._groups: frozenset[bytes] = frozenset()
        self._buffer = bytearray(KEEP)
        self._loop = asyncio.get_running_loop()
        # Protocol 0 receives nothing: the filter is in place before bind() starts the
        # flow, so no unfiltered frame is ever queued.
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            _attach_filter(self._sock, _FILTERS[kind])
            self._sock.bind((interface, _ETHERTYPE[kind]))
            self._sock.setblocking(False)
            self._loop.add_reader(self._sock.fileno(), self._readable)
        except BaseException:
            self._sock.close()
            raise

    def send(self, frame: bytes) -> None:
        """Send one whole Ethernet frame on the interface; raises OSError."""
        self._sock.send(frame)

    def set_groups(self, groups: frozenset[bytes]) -> None:
        """Be a member of exactly these multicast MACs; raises OSError."""
        for mac, option in ((m, PACKET_DROP_MEMBERSHIP) for m in self._groups - groups):
            self._membership(option, mac)
        for mac in groups - self._groups:
            self._membership(PACKET_ADD_MEMBERSHIP, mac)
        self._groups = groups

    def _membership(self, option: int, mac: bytes) -> None:
        request = _MREQ.pack(self.index, PACKET_MR_MULTICAST, len(mac), mac)
        self._sock.setsockopt(SOL_PACKET, option, request)

    def _readable(self) -> None:
        view = memoryview(self._buffer)
        for _ in range(READS_PER_WAKEUP):
            try:
                size = self._sock.recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:
                    return  # link went down; the bound socket works again once it is up
                self._on_error(exc)
                return
            self._on_frame(bytes(view[:size]))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
