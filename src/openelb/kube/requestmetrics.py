"""openelb_kube_client_requests_total{method, code}: every apiserver request by answer.

kube/ (DESIGN §3). Read from the client's counts when scraped, so sending a request
costs a dict increment, not a metric update. "error" counts requests that got no answer
(timeouts, refused or dropped connections). A 429 storm, an apiserver returning 5xx or
a conflict loop shows here first.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from openelb.kube import client

__all__ = ["export"]


class _Collector(Collector):
    def __init__(self, kube: client.Kube) -> None:
        self._kube = kube

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "openelb_kube_client_requests", "Requests to the apiserver, by method and "
            "HTTP status (\"error\": no answer)", labels=["method", "code"])
        for (method, code), count in sorted(self._kube.responses.items()):
            family.add_metric([method, code], count)
        yield family


def export(kube: client.Kube, registry: CollectorRegistry) -> None:
    """Register openelb_kube_client_requests_total for `kube` in `registry`."""
    registry.register(_Collector(kube))
