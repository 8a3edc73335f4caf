"""Errors of the VIP announcer (keepalived); process failures stop here (STYLE §2.4).

    OpenELBError
     └── VipError                  root of announce/vip's errors
          ├── KeepalivedMissing    the keepalived binary is not installed
          └── ConfigRejected       `keepalived --config-test` refused what we rendered
"""

from openelb.api import errors

__all__ = ["ConfigRejected", "KeepalivedMissing", "VipError"]


class VipError(errors.OpenELBError):
    """Root of the VIP announcer's errors."""


class KeepalivedMissing(VipError):
    """keepalived is not installed where the speaker runs."""

    def __init__(self, path: str) -> None:
        super().__init__(f"keepalived not found ({path}): install it (Debian: keepalived)")


class ConfigRejected(VipError):
    """keepalived refused the configuration; the running one stays."""

    def __init__(self, output: str) -> None:
        super().__init__(f"keepalived refused the configuration: {output.strip()[-500:]}")
