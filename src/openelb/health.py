"""HTTP endpoints of a daemon: /metrics, /healthz, /readyz (DESIGN §7).

Both daemons (controller, speaker) serve these; readiness and liveness are callables
passed in so this module knows nothing of caches or leases. /healthz answers "would a
restart help?" (supervisor.py: a task crash-looping or ended for good), /readyz "is it
doing its job now?" (caches synced and fresh, child daemons up, the event loop keeping
time). Served by httpserve.Server, one request per
connection, answered and closed, which is all probes and Prometheus need. On the host
network anyone can connect (issue #19: 1,000 slow connections were held 10 s each):
idle connections are closed after READ_TIMEOUT, and beyond MAX_CONNECTIONS open at
once a new one is closed unanswered.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from openelb import httpserve

__all__ = ["HealthServer"]

MAX_REQUEST_BYTES = 16 * 1024  # a probe's request is a few hundred bytes
READ_TIMEOUT = 2.0
MAX_CONNECTIONS = 32


class HealthServer(httpserve.Server):
    def __init__(self, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]],
                 host: str, port: int,
                 live: Callable[[], tuple[bool, str]] = lambda: (True, "ok")) -> None:
        super().__init__(self._answer, host, port, max_body=MAX_REQUEST_BYTES,
                         read_timeout=READ_TIMEOUT, max_connections=MAX_CONNECTIONS,
                         name="health")
        self._registry = registry
        self._ready = ready
        self._live = live

    def _answer(self, request: httpserve.Request) -> httpserve.Response:
        if request.method not in ("GET", "HEAD"):
            return httpserve.Response(405, b"method not allowed\n")
        if request.path == "/metrics":
            return httpserve.Response(200, generate_latest(self._registry),
                                      CONTENT_TYPE_LATEST)
        if request.path == "/healthz":
            ok, why = self._live()
            return httpserve.Response(200 if ok else 503, f"{why}\n".encode())
        if request.path == "/readyz":
            ok, why = self._ready()
            return httpserve.Response(200 if ok else 503, f"{why}\n".encode())
        return httpserve.Response(404, b"not found\n")
