"""Interface, MAC and route lookups over rtnetlink: which NIC answers for a claim.

announce/layer2 (DESIGN §3). The speaker calls `resolve_interface` to turn an Eip's
`interface` (a NIC name, or `can_reach:<IP>` resolved by a route lookup) into a name;
the announcer calls `link_by_name` for the index and MAC of each interface it opens.

pyroute2 encodes and decodes the messages. We send them on a blocking netlink socket
of our own instead of pyroute2's IPRoute because, in pyroute2 0.9, the synchronous
IPRoute runs a private event loop and raises "This event loop is already running"
inside the speaker's loop, and these lookups must stay synchronous for their callers.
The kernel answers a non-dump RTM_GET* request while the send call runs, so the read
never waits in practice; a timeout guards it anyway. pyroute2 is imported on the
first lookup, not with this module: its package import costs ~11 MB of RSS, which a
speaker with no layer-2 pool (BGP only, 80 MB budget with ExaBGP) never pays. Errors
mean "absent" (None) or become NetlinkFailed; no pyroute2 or OS exception leaves this
module.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import SimpleNamespace
from typing import Any

from openelb.announce.layer2 import errors, ethernet

__all__ = ["CAN_REACH", "Link", "link_by_index", "link_by_name", "resolve_interface",
           "route_interface"]

log = logging.getLogger(__name__)

CAN_REACH = "can_reach:"  # OpenELB's spelling: the interface that routes to this IP
TIMEOUT = 1.0  # seconds; a healthy kernel answers within the send call
ARPHRD_ETHER = 1  # linux/if_arp.h: Ethernet, and veth, bridge, bond, VLAN alike
IFF_LOOPBACK = 0x8
# linux/netlink.h and linux/rtnetlink.h (kernel ABI): request flag, error reply, and the
# two requests we send.
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 0x2
RTM_GETLINK = 18
RTM_GETROUTE = 26
RTN_LOCAL = 2  # route type of an address of this host: its interface is lo
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_SEQUENCE = 1  # one request per fresh socket: any sequence number will do
_ABSENT = {errno.ENODEV, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN,
           errno.EINVAL, errno.ENOENT}  # "no such interface" / "no route to it"

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    index: int
    mac: bytes | None  # None unless a 6-byte Ethernet address
    loopback: bool

    @property
    def usable(self) -> bool:
        """Can carry ARP/NDP: Ethernet-like with a MAC, and not loopback."""
        return self.mac is not None and not self.loopback and self.name != "lo"


@functools.cache
def _messages() -> SimpleNamespace:
    """pyroute2's link and route message classes, imported on first use."""
    # pyroute2 ships no type information (no py.typed, no stubs in typeshed): the two
    # classes are used as opaque message types only.
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # type: ignore[import-untyped]
    from pyroute2.netlink.rtnl.rtmsg import rtmsg  # type: ignore[import-untyped]

    return SimpleNamespace(ifinfmsg=ifinfmsg, rtmsg=rtmsg)


def _request(message: Any, message_type: int, operation: str) -> bytes | None:
    """Send one request; the reply's bytes, None for an "absent" error, else raise."""
    message["header"]["type"] = message_type
    message["header"]["flags"] = NLM_F_REQUEST
    message["header"]["sequence_number"] = _SEQUENCE
    message.encode()
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                           socket.NETLINK_ROUTE) as sock:
            sock.settimeout(TIMEOUT)
            sock.bind((0, 0))
            sock.send(message.data)
            while True:
                size = sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
                data = sock.recv(max(size, _HEADER.size))
                if len(data) < _HEADER.size:
                    continue
                _, reply_type, _, sequence, _ = _HEADER.unpack_from(data)
                if sequence != _SEQUENCE:
                    continue
                if reply_type == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, _HEADER.size)
                    if code == 0:
                        return None
                    if -code in _ABSENT:
                        return None
                    raise errors.NetlinkFailed(operation, -code)
                return data
    except OSError as exc:
        raise errors.NetlinkFailed(operation, exc.errno or errno.EIO) from exc


def _link(data: bytes | None) -> Link | None:
    if data is None:
        return None
    reply = _messages().ifinfmsg(data)
    reply.decode()
    text = reply.get_attr("IFLA_ADDRESS")
    mac = None
    if reply["ifi_type"] == ARPHRD_ETHER and isinstance(text, str):
        try:
            mac = ethernet.parse_mac(text)
        except ValueError:
            mac = None
    return Link(name=str(reply.get_attr("IFLA_IFNAME")), index=int(reply["index"]), mac=mac,
                loopback=bool(int(reply["flags"]) & IFF_LOOPBACK))


def link_by_name(name: str) -> Link | None:
    """The interface called `name` in this network namespace, or None."""
    if not name or len(name) >= 16 or "/" in name:
        return None  # IFNAMSIZ: the kernel would refuse it anyway
    request = _messages().ifinfmsg()
    request["attrs"] = [("IFLA_IFNAME", name)]
    return _link(_request(request, RTM_GETLINK, f"get link {name}"))


def link_by_index(index: int) -> Link | None:
    request = _messages().ifinfmsg()
    request["index"] = index
    return _link(_request(request, RTM_GETLINK, f"get link #{index}"))


def route_interface(destination: IPAddress) -> int | None:
    """The output interface index of the route to `destination` (`ip route get`).

    None when there is no route, and for this host's own addresses (they route via lo).
    """
    request = _messages().rtmsg()
    request["family"] = socket.AF_INET if destination.version == 4 else socket.AF_INET6
    request["dst_len"] = destination.max_prefixlen
    request["attrs"] = [("RTA_DST", str(destination))]
    data = _request(request, RTM_GETROUTE, f"get route {destination}")
    if data is None:
        return None
    reply = _messages().rtmsg(data)
    reply.decode()
    oif = reply.get_attr("RTA_OIF")
    if reply["type"] == RTN_LOCAL or oif is None:
        return None
    return int(oif)


def resolve_interface(spec: str, ip: IPAddress) -> str | None:
    """The interface that answers for `ip` under an Eip's `interface` spec, or None.

    `spec` is a NIC name or `can_reach:<IP>`. None when the interface does not exist in
    this namespace, resolves to lo, or cannot do ARP/NDP (no Ethernet MAC); never "lo".
    Raises NetlinkFailed only when netlink itself fails.
    """
    if spec.startswith(CAN_REACH):
        try:
            destination = ip_address(spec[len(CAN_REACH):].strip())
        except ValueError:
            return None
        index = route_interface(destination)
        link = link_by_index(index) if index is not None else None
    else:
        link = link_by_name(spec.strip())
    name = link.name if link is not None and link.usable else None
    log.debug("layer2 interface resolved", extra={"op": "layer2", "ip": str(ip),
                                                  "interface": name or "", "spec": spec})
    return name
