"""Errors of the layer-2 announcer; socket and netlink failures stop here (STYLE §2.4, §2.6).

    OpenELBError
     └── Layer2Error                       root of announce/layer2's errors
          ├── InterfaceUnavailable(failures, after)
          │                                set() served every claim it could; these
          │                                interfaces could not be opened (missing, no
          │                                MAC, no CAP_NET_RAW); call set() again after
          │                                `after` seconds
          └── NetlinkFailed(operation, errno)
                                           a netlink lookup failed for a reason other
                                           than "no such interface / no route"
"""

from __future__ import annotations

import errno as errnos
from collections.abc import Mapping

from openelb.api import errors

__all__ = ["InterfaceUnavailable", "Layer2Error", "NetlinkFailed"]


class Layer2Error(errors.OpenELBError):
    """Root of the layer-2 announcer's errors."""


class InterfaceUnavailable(Layer2Error):
    """Some interfaces could not be served; every other claim is in place."""

    def __init__(self, failures: Mapping[str, str], after: float = 1.0) -> None:
        self.failures = dict(failures)  # interface -> what went wrong
        self.after = after
        detail = ", ".join(f"{name}: {why}" for name, why in sorted(self.failures.items()))
        super().__init__(f"layer2 interfaces unavailable: {detail}")


class NetlinkFailed(Layer2Error):
    def __init__(self, operation: str, errno: int) -> None:
        self.operation, self.errno = operation, errno
        name = errnos.errorcode.get(errno, str(errno))
        super().__init__(f"netlink {operation}: {name}")
