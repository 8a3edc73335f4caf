"""The kube layer's error tree; the only place client-library exceptions are translated.

kube/ (DESIGN §3). Every call into kube/http.py goes through `translated()`,
so callers see only these types and decide by type whether to retry (STYLE §2.6):

    KubeError(OpenELBError)             status, reason, message from the apiserver
     ├── NotFound                       404
     ├── Conflict                       409 (stale resourceVersion, already exists)
     ├── Forbidden                      401/403: RBAC says no; retrying will not help
     ├── Invalid                        422: the apiserver rejected the object
     ├── Gone                           410: watch resourceVersion too old, relist
     └── Retryable(after)               5xx, 429, timeouts, connection failures
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import h11

from openelb.api import errors

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "NotFound",
    "Retryable",
    "from_status",
    "retry_after_seconds",
    "translated",
]


class KubeError(errors.OpenELBError):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status, self.reason, self.message = status, reason, message
        super().__init__(f"{status} {reason}: {message}" if reason else message)


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Invalid(KubeError):
    pass


class Gone(KubeError):
    pass


class Retryable(KubeError):
    """Worth another try after `after` seconds."""

    def __init__(self, status: int, reason: str, message: str, after: float = 1.0) -> None:
        super().__init__(status, reason, message)
        self.after = after


MAX_RETRY_AFTER = 300.0  # a Retry-After beyond this is taken as this


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (RFC 9110 §10.2.3), bounded; None when absent or
    in the HTTP-date form, which the apiserver does not send."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds:  # absent, or NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def from_status(status: int, body: str | bytes | None,
                retry_after: str | None = None) -> KubeError:
    """Build the right error from an HTTP status, a (possibly JSON Status) body and
    the Retry-After header: a 429 or 5xx retries after what the server asked."""
    reason, message = "", ""
    try:
        payload = json.loads(body or b"{}")
        reason = str(payload.get("reason", ""))
        message = str(payload.get("message", ""))
    except (ValueError, AttributeError):
        message = (body.decode(errors="replace") if isinstance(body, bytes) else body or "")
    message = message[:2000]  # trimmed: some Status bodies echo whole objects
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        return Conflict(status, reason or "Conflict", message)
    if status in (401, 403):
        return Forbidden(status, reason or "Forbidden", message)
    if status == 422:
        return Invalid(status, reason or "Invalid", message)
    if status == 410:
        return Gone(status, reason or "Expired", message)
    asked = retry_after_seconds(retry_after)
    return Retryable(status, reason or "ServerError", message,
                     after=1.0 if asked is None else asked)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn client-library exceptions raised inside the block into our tree."""
    try:
        yield
    except (TimeoutError, OSError, h11.ProtocolError) as exc:
        raise Retryable(0, type(exc).__name__, str(exc) or type(exc).__name__) from exc
