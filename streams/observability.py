"""The worker's /metrics, /health and /ready, and its state gauges, served from the first second.

Faust starts its own web server and timers only once table recovery has finished, so a worker restoring a
large dedup state would expose nothing for minutes: no recovery progress, and a liveness probe that fails
exactly when it matters. This service is started by the Faust worker beside the app and does not wait.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.logs import event

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("streams.observability")
EXPORT_INTERVAL_SECONDS = 2.0


class Observability(Service):
    """HTTP endpoints and the periodic export of consumer lag, recovery progress and readiness."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self._runner: web.AppRunner | None = None
        self._lag_keys: set[tuple[str, str]] = set()
        self._recovery_totals: dict[str, int] = {}
        self._recovering_since: float | None = None
        self._recovered_logged = False

    async def on_start(self) -> None:
        s = self.pipeline.settings
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, s.web_host, s.web_port).start()

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.pipeline.metrics.registry)
        return web.Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0], charset="utf-8")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "stages": self.pipeline.stages})

    async def _ready(self, request: web.Request) -> web.Response:
        ready, facts = self.pipeline.is_ready()
        return web.json_response({"ready": ready, **facts}, status=200 if ready else 503)

    @Service.task
    async def _exporter(self) -> None:
        while not self.should_stop:
            try:
                await self.export()
            except Exception:  # a metrics glitch must never take the worker down
                log.exception("exporting worker state failed")
            await self.sleep(EXPORT_INTERVAL_SECONDS)

    async def export(self) -> None:
        await self._export_lag()
        self._export_recovery()
        ready, _ = self.pipeline.is_ready()
        self.pipeline.metrics.ready.set(1 if ready else 0)

    async def _export_lag(self) -> None:
        app, metrics = self.pipeline.app, self.pipeline.metrics
        consumer = getattr(app, "_consumer", None)
        if consumer is None or not self.pipeline.consumer_started():
            return
        seen = set()
        sources = self.pipeline.source_topics()
        pending = {m.tp for m in list(consumer._unacked_messages)}  # noqa: SLF001 - no public accessor
        for tp in consumer.assignment():
            if tp.topic not in sources:  # changelogs and Faust's assignor topic are not consumer progress
                continue
            hw = consumer.highwater(tp)
            if hw is None:
                continue
            committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - Faust keeps no public accessor
            lag = max(0, hw - (committed if committed is not None else 0))
            if lag and tp not in pending:
                # Exactly-once leaves a commit marker after the last record, which the committed offset never
                # passes: once everything fetched is processed and the fetch position has reached the high
                # watermark, the rest of the gap is markers, not records.
                position = await consumer.position(tp)
                if position is not None and position >= hw:
                    lag = 0
            key = (tp.topic, str(tp.partition))
            seen.add(key)
            metrics.consumer_lag.labels(*key).set(lag)
        for key in self._lag_keys - seen:  # partitions revoked: stop reporting them
            metrics.consumer_lag.remove(*key)
        self._lag_keys = seen

    def _export_recovery(self) -> None:
        p = self.pipeline
        recovery = p.recovery()
        if recovery is None or not p.tables:
            return
        remaining = recovery.active_remaining() if recovery.in_recovery else {}
        for name, table in p.tables.items():
            changelog = table.changelog_topic.get_topic_name()
            left = sum(n for tp, n in remaining.items() if tp.topic == changelog and n > 0)
            total = self._recovery_totals.get(name, 0)
            if left > total:  # the largest backlog seen in this recovery is its 0 % mark
                self._recovery_totals[name] = total = left
            p.metrics.recovery_remaining.labels(name).set(left)
            p.metrics.recovery_ratio.labels(name).set(1.0 if total == 0 else 1.0 - left / total)
        if recovery.in_recovery:
            self._recovered_logged = False
            self._recovering_since = self._recovering_since or time.monotonic()
        elif not self._recovered_logged and recovery.completed.is_set():
            self._recovered_logged = True
            took = time.monotonic() - self._recovering_since if self._recovering_since else 0.0
            self._recovering_since = None
            self._recovery_totals.clear()
            event(log, "recovery_done", tables=sorted(p.tables), seconds=round(took, 3))
