"""Which NIC on this node serves a pool's `spec.interface`, for the modes that answer on
the LAN (layer 2, VIP): one resolution per pool per plan round, logged when it changes.

speaker/ (DESIGN §4). A NIC name or `can_reach:<IP>` (a route lookup) becomes an
interface name, or None when it does not exist here; announce/layer2 does the netlink
work and raises NetlinkFailed (a Layer2Error) only when netlink itself fails.
"""

import logging

from openelb.announce import layer2 as l2
from openelb.api import addresses
from openelb.ipam import pools as ipam_pools

__all__ = ["InterfaceResolver"]

log = logging.getLogger(__name__)


class InterfaceResolver:
    def __init__(self, node: str, op: str) -> None:
        self._node = node
        self._op = op  # the mode, in the log line: "<op> interface"
        self._last: dict[str, str | None] = {}  # pool -> the name last logged

    def resolve(self, pool: ipam_pools.Pool) -> str | None:
        """The interface this node uses for `pool`, or None."""
        probe = addresses.parse_address(pool.declared_text).first
        name = l2.resolve_interface(pool.interface, probe) if pool.interface else None
        if self._last.get(pool.name, "?") != name:
            log.info(f"{self._op} interface", extra={
                "op": self._op, "eip": pool.name, "interface": name or "",
                "node": self._node, "reason": "" if name else "noInterface"})
            self._last[pool.name] = name
        return name
