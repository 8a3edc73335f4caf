"""How a reconcile ends (STYLE §2.9): Done, Retry(after) or GaveUp(reason).

controller/; returned by controller/services.py and controller/eips.py, consumed by the
worker loop in controller/manager.py, which requeues Retry and counts every result.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Done", "GaveUp", "Outcome", "Retry"]


@dataclass(frozen=True, slots=True)
class Done:
    label = "done"


@dataclass(frozen=True, slots=True)
class Retry:
    after: float
    label = "retry"


@dataclass(frozen=True, slots=True)
class GaveUp:
    """Waiting for the user or the cluster to change; nothing to retry on a timer."""

    reason: str
    label = "gaveUp"


Outcome = Done | Retry | GaveUp
