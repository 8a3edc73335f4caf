"""Which Services changed since the last plan round, so a planner's work follows them.

Pure (DESIGN §3); used by the planners' incremental forms (ownership.Layer2Planner,
bgp.BgpPlanner). The speaker keeps a Service's parsed value (an LbService) and a
Service's set of endpoint nodes (a frozenset) as the same object until the Service or
its EndpointSlices change, so an identity check says "unchanged" without comparing any
field. A different object with equal content is merely planned again.

A round then costs one identity check per Service plus the planning of the Services that
changed; when the context a planner declares (live nodes, pools, BGP peers, ...) differs
from the last round's, every Service is planned again.
"""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from openelb.api import service

__all__ = ["Delta", "ServiceTracker"]


@dataclass(frozen=True, slots=True)
class Delta:
    """What a planner must redo this round."""

    changed: tuple[service.LbService, ...]  # new or different since the last round
    removed: tuple[str, ...]  # keys of Services gone since the last round
    reset: bool  # the context changed: every Service is in `changed`, forget the rest


_NO_CONTEXT = object()


class ServiceTracker:
    """Remembers, per Service key, the objects the last round planned from."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[service.LbService, frozenset[str] | None]] = {}
        self._context: Hashable = _NO_CONTEXT

    def delta(self, services: Sequence[service.LbService],
              endpoints: Mapping[str, frozenset[str]], context: Hashable) -> Delta:
        """The Services of this round that differ from the last (all of them when
        `context` differs from the last round's), and the keys that went away."""
        reset = context != self._context
        self._context = context
        old = {} if reset else self._seen
        seen: dict[str, tuple[service.LbService, frozenset[str] | None]] = {}
        changed = []
        kept = 0
        for svc in services:
            key = svc.key
            # Endpoints decide only where an ETP Local Service may be announced.
            nodes = (endpoints.get(key) if svc.traffic_policy is service.TrafficPolicy.LOCAL
                     else None)
            before = old.get(key)
            if before is not None:
                kept += 1
                if before[0] is svc and before[1] is nodes:
                    seen[key] = before
                    continue
            seen[key] = (svc, nodes)
            changed.append(svc)
        removed: tuple[str, ...] = ()
        if not reset and kept != len(old):
            removed = tuple(key for key in old if key not in seen)
        self._seen = seen
        return Delta(tuple(changed), removed, reset)
