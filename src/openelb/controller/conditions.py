"""Status conditions (the Kubernetes `metav1.Condition` shape) as values.

controller/. Pure helpers for the `Ready` condition the controller keeps on Eips,
BgpConfs and BgpPeers (`kubectl get` shows it, `kubectl describe` shows why). A
condition keeps its lastTransitionTime while its status does not change, so rewriting
the same verdict is a no-op the caller can skip.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["READY", "merged", "ready"]

READY = "Ready"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """A Ready condition without its time (`merged` adds it)."""
    found: dict[str, Any] = {"type": READY, "status": "True" if ok else "False",
                             "reason": reason, "message": message}
    if generation is not None:
        found["observedGeneration"] = generation
    return found


def merged(current: Iterable[Mapping[str, Any]] | None, wanted: dict[str, Any],
           now: str | None = None) -> list[dict[str, Any]] | None:
    """The condition list with `wanted` in place of its type, or None when nothing
    changes. The time moves only when the status does."""
    items = [dict(c) for c in current or () if isinstance(c, Mapping)]
    previous = next((c for c in items if c.get("type") == wanted["type"]), None)
    if previous is not None and all(previous.get(k) == v for k, v in wanted.items()):
        return None
    stamp = now or _now()
    if previous is None:
        return [*items, {**wanted, "lastTransitionTime": stamp}]
    if previous.get("status") == wanted["status"]:
        stamp = previous.get("lastTransitionTime") or stamp
    fresh = {**wanted, "lastTransitionTime": stamp}
    return [fresh if c.get("type") == wanted["type"] else c for c in items]
