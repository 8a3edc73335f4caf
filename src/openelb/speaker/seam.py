"""The seam between the speaker loop and its announcement modes (DESIGN §3).

A mode (bgp, layer2, vip; later MetalLB-style advertisements) is one unit: from each
snapshot it decides what this node announces in that mode, drives its announcer, keeps
its own metrics and mode-specific Events, and returns a `Round`. The loop
(speaker/manager.py) knows no mode by name: it applies every registered mode
(speaker/modes/__init__.py) in order and posts the AnnounceIP/WithdrawIP Events from
the Rounds, worded by each mode's `how`.

What a new mode implements: the `Mode` protocol below, built from a `ModeContext`.
It serves Services whose addresses sit in pools it `serves` (`Pool.protocol` today; an
advertisement object selecting pools and nodes would be another predicate over the
snapshot, not another loop).
"""

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from openelb.api import addresses
from openelb.kube import client, events, informer
from openelb.planner import eligibility, snapshot
from openelb.speaker import metrics, settings

__all__ = ["Mode", "ModeContext", "Round"]


@dataclass(frozen=True, slots=True)
class Round:
    """What one mode did in one plan round."""

    # Service key -> the addresses this node announces for it in this mode.
    announced: Mapping[str, frozenset[addresses.IPAddress]] = field(default_factory=dict)
    # Service key -> why this node announces none of its addresses in this mode.
    skipped: Mapping[str, eligibility.Skip] = field(default_factory=dict)
    # What this node sends into the network in this mode; when it differs from the
    # last round's, the next round waits `debounce` (bursts coalesce).
    state: Hashable = None


@dataclass(frozen=True, slots=True)
class ModeContext:
    """What a mode may use: the speaker's settings, caches and outlets."""

    settings: settings.SpeakerSettings
    kube: client.Kube
    informers: Mapping[str, informer.Informer]
    recorder: events.Recorder
    stats: metrics.SpeakerMetrics
    wake: Callable[[], None]  # ask for another plan round (announcer state changed)


class Mode(Protocol):
    name: str  # the Eip `spec.protocol` it serves, and its label in logs and metrics
    how: str  # how it announces, for Events: "announcing <ip> from node <n> <how>"
    # Errors meaning "this announcer is not ready yet": the round is retried in 1 s.
    retryable: tuple[type[Exception], ...]

    async def start(self) -> None:
        """Called once before the first round (the caches may not be synced yet)."""
        ...

    async def apply(self, snap: snapshot.Snapshot) -> Round:
        """Make this node announce what `snap` asks of it in this mode."""
        ...

    def ready(self) -> tuple[bool, str]:
        """Whether the mode's own parts (child daemons, sockets) are healthy."""
        ...

    async def aclose(self) -> None:
        """Withdraw everything this mode announces and release its parts."""
        ...
