"""HTTP endpoints of a daemon: /metrics, /healthz, /readyz (DESIGN §7).

Both daemons (controller, speaker) serve these; readiness is a callable passed in so this
module knows nothing of caches or leases. aiohttp.web (already our HTTP stack through
kubernetes_asyncio) serves it on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(self, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]],
                 host: str, port: int) -> None:
        self._registry = registry
        self._ready = ready
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        ok, why = self._ready()
        return web.Response(text=f"{why}\n", status=200 if ok else 503)
