"""Why a BGP neighbour cannot be reached from this node, for its status.

announce/bgp (DESIGN §3, §7: never silent). While a session is not established the
speaker asks `why_unreachable` now and then; it opens one TCP connection to the
neighbour's BGP port and closes it at once, and names what went wrong the way an
operator checks it: the connection was refused (nothing listens there, or the router
has no neighbour for this node), there is no route to it (or no ARP/NDP answer on the
LAN), or nothing answered in time (a firewall, a wrong address). A router that accepts
the connection is reachable: the session's trouble is then in its configuration (AS,
password, router id), which the router's own log says. Peers with a TCP MD5 password
are not probed (an unsigned SYN is dropped by design, which would read as noAnswer),
nor passive ones (the router connects to us).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from enum import StrEnum

__all__ = ["Unreachable", "why_unreachable"]


class Unreachable(StrEnum):
    """The reason written to the BgpPeer's status; lowerCamel like every reason."""

    NEIGHBOR_IS_THIS_NODE = "neighborIsThisNode"  # decided by the speaker, not probed
    CONNECTION_REFUSED = "connectionRefused"
    NO_ROUTE = "noRoute"
    NO_ANSWER = "noAnswer"


_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


async def why_unreachable(address: str, port: int, timeout: float = 5.0) -> Unreachable | None:
    """None if `address:port` accepts a TCP connection, else why it did not."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(address, port, family=family)
    except TimeoutError:
        return Unreachable.NO_ANSWER
    except ConnectionRefusedError:
        return Unreachable.CONNECTION_REFUSED
    except OSError as exc:
        return Unreachable.NO_ROUTE if exc.errno in _NO_ROUTE else Unreachable.NO_ANSWER
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
