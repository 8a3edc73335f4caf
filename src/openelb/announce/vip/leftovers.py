"""Removes the VIPs a keepalived that died uncleanly left on the interfaces.

announce/vip (DESIGN §4: an address nobody answers is the worst bug, and an address
two nodes answer is the next). keepalived removes its addresses when it stops, even
when the speaker dies (its PDEATHSIG is SIGTERM); only a keepalived killed outright
(SIGKILL, the OOM killer) leaves them, and then this node would keep answering ARP/NDP
for addresses a backup now holds. The supervisor calls `remove` before starting
keepalived again; the new keepalived adds back what it masters.

pyroute2's AsyncIPRoute does the netlink work; it is imported on first use, since a
node whose keepalived never dies uncleanly never needs it (its import costs ~11 MB).
"""

import errno
import logging
from collections.abc import Iterable

from openelb.api import addresses

__all__ = ["remove"]

log = logging.getLogger(__name__)

_GONE = {errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV}


async def remove(held: Iterable[tuple[addresses.IPAddress, str]]) -> list[str]:
    """Delete each `ip`/32 (or /128) from interface `name` where it is still present;
    the addresses actually removed, as text."""
    # Imported here, not at the top: see the module docstring. pyroute2 ships no types.
    from pyroute2 import AsyncIPRoute  # type: ignore[import-untyped]
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    removed: list[str] = []
    async with AsyncIPRoute() as ipr:
        for ip, name in held:
            try:
                links = await ipr.link("get", ifname=name)
                index = links[0]["index"]
                await ipr.addr("del", index=index, address=str(ip), prefixlen=ip.max_prefixlen)
            except NetlinkError as exc:
                if exc.code not in _GONE:
                    log.warning("leftover vip not removed", extra={
                        "op": "vip", "ip": str(ip), "interface": name, "error": str(exc)})
                continue
            removed.append(str(ip))
    if removed:
        log.warning("removed vips a dead keepalived left", extra={
            "op": "vip", "ips": ",".join(removed)})
    return removed
