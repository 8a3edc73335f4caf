"""Errors of the BGP announcer; ExaBGP's failures stop here (STYLE §2.6).

    BgpEngineError(OpenELBError)     ExaBGP answered `error`, exited, or cannot start
"""

from openelb.api import errors

__all__ = ["BgpEngineError"]


class BgpEngineError(errors.OpenELBError):
    def __init__(self, what: str, detail: str = "") -> None:
        self.what, self.detail = what, detail
        super().__init__(f"{what}: {detail}" if detail else what)
