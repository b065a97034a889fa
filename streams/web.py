"""The worker's one HTTP server: /metrics, /health and /ready register on it, and stages add their routes.

It starts with the worker, not after table recovery (Faust's own web server waits for recovery, which hid
recovery progress for the minutes a large restore takes), and it is the only server a worker opens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from mode import Service

log = logging.getLogger("streams.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebRoute:
    method: str
    path: str
    handler: Handler


class WebServer(Service):
    """An aiohttp server on host:port with the routes added before it starts."""

    def __init__(self, host: str, port: int, *, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes  # larger request bodies are refused with 413 before a handler runs
        self._routes: list[WebRoute] = []
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        if self._runner is not None:
            raise RuntimeError("routes must be added before the web server starts")
        if any(r.method == method and r.path == path for r in self._routes):
            raise ValueError(f"{method} {path} is already served")
        self._routes.append(WebRoute(method, path, handler))

    @property
    def routes(self) -> list[WebRoute]:
        return list(self._routes)

    async def on_start(self) -> None:
        app = web.Application(client_max_size=self.max_body_bytes)
        for r in self._routes:
            app.router.add_route(r.method, r.path, r.handler)
        self._runner = web.AppRunner(app, access_log=None)  # no access log: URLs and headers may carry secrets
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
