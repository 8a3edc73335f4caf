"""The api layer's error tree. Pure (DESIGN §3); raised by parsing and validation.

    OpenELBError                      root of every error openelb raises on purpose
     └── InvalidObject(ref, field, value, reason)
                                      one field of one object is wrong; text is
                                      "<field>: <reason>" so the webhook denial, the
                                      Event and the status condition read the same

Callers add the object (`eip/lan spec.address: ...`) with `InvalidObject.with_ref`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_REASON", "InvalidObject", "OpenELBError", "bounded"]

# A reason quotes what the user wrote; a 100 KB annotation must not become a 100 KB
# webhook denial, Event and log line (issue #19). Longer reasons are cut with a marker.
MAX_REASON = 512


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class OpenELBError(Exception):
    """Root of openelb's own errors; foreign exceptions never escape as these."""


class InvalidObject(OpenELBError):
    """A field of a user object has a value we refuse, and why."""

    def __init__(self, field: str, reason: str, *, value: Any = None, ref: str = "") -> None:
        self.field = field
        self.reason = bounded(reason, MAX_REASON)
        self.value = value
        self.ref = ref
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """`field: reason`, lower case, no final period (STYLE §2.5)."""
        return f"{self.field}: {self.reason}"

    def with_ref(self, ref: str) -> InvalidObject:
        """The same error, attributed to an object such as `eip/lan` or `default/web`."""
        return InvalidObject(self.field, self.reason, value=self.value, ref=ref)

    def __str__(self) -> str:
        return f"{self.ref} {self.message}" if self.ref else self.message
