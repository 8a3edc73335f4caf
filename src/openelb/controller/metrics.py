"""The controller's Prometheus metrics (DESIGN §7), on a registry passed in.

controller/; updated by services.py, eips.py and manager.py; served by health.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ControllerMetrics", "export_waiting"]


class _Waiting(Collector):
    """Services waiting for an address, read from the reconciler when scraped."""

    def __init__(self, since: Callable[[], Mapping[str, float]]) -> None:
        self._since = since

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = self._since()
        now = time.monotonic()
        yield GaugeMetricFamily("openelb_services_pending",
                                "Services waiting for an address (refused or contested).",
                                value=len(since))
        yield GaugeMetricFamily(
            "openelb_service_pending_longest_seconds",
            "How long the Service waiting longest for an address has waited.",
            value=max((now - t for t in since.values()), default=0.0))


def export_waiting(registry: CollectorRegistry,
                   since: Callable[[], Mapping[str, float]]) -> None:
    """openelb_services_pending and openelb_service_pending_longest_seconds."""
    registry.register(_Waiting(since))


class _Unannounced(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int] | None]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._counts()
        if counts is None:
            return  # not the leader, or the caches are not synced: nothing to say
        family = GaugeMetricFamily(
            "openelb_addresses_unannounced",
            "Assigned addresses nobody announces: layer 2 or VIP, listed in no fresh "
            "NodeAnnouncement; BGP, while no node has an established session.",
            labels=["mode"])
        for mode, count in sorted(counts.items()):
            family.add_metric([mode], count)
        yield family


def export_unannounced(registry: CollectorRegistry,
                       counts: Callable[[], Mapping[str, int] | None]) -> None:
    """openelb_addresses_unannounced{mode}, computed when scraped (the leader only)."""
    registry.register(_Unannounced(counts))


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.addresses_total = Gauge(
            "openelb_addresses_total", "Addresses an Eip can hand out.", ["eip"],
            registry=registry)
        self.addresses_in_use = Gauge(
            "openelb_addresses_in_use", "Addresses of an Eip held by Services.", ["eip"],
            registry=registry)
        self.allocation_failures = Counter(
            "openelb_allocation_failures_total",
            "Services refused an address, by reason.", ["reason"], registry=registry)
        self.reconcile_seconds = Histogram(
            "openelb_reconcile_duration_seconds", "Time to reconcile one object.",
            ["kind"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.reconciles = Counter(
            "openelb_reconcile_total", "Reconciles by kind and result.",
            ["kind", "result"], registry=registry)
        self.leader = Gauge(
            "openelb_controller_leader", "1 while this replica holds the Lease.",
            registry=registry)
        self.services_assigned = Gauge(
            "openelb_services_assigned", "Services holding at least one address.",
            registry=registry)
