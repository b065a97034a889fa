"""/metrics, /health and /ready, the periodic export of lag, recovery and readiness, and the one adapter that
reads consumer facts out of Faust.

Faust starts its own web server and timers only once table recovery has finished, so a worker restoring a
large dedup state would expose nothing for minutes. These routes are served by `streams.web.WebServer` from
the first second, and the exporter runs beside the app. Every read of a Faust private field outside
`streams.eos` goes through `ConsumerFacts`, so a Faust upgrade has one place to check.
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


class ConsumerFacts:
    """What a Faust app's consumer knows, read through one narrow interface (Faust has no public one)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def started(self) -> bool:
        consumer = getattr(self.app, "_consumer", None)
        thread = getattr(consumer, "_thread", None)
        return consumer is not None and getattr(thread, "_consumer", None) is not None

    def assignment(self) -> set[Any]:
        return set(self.app.consumer.assignment()) if self.started() else set()

    def actives(self) -> set[Any]:
        """Partitions this worker processes (not standby replicas)."""
        try:
            return set(self.app.assignor.assigned_actives())
        except Exception:  # before the first assignment
            return set()

    def highwater(self, tp: Any) -> int | None:
        return self.app.consumer.highwater(tp)

    def committed(self, tp: Any) -> int | None:
        return self.app.consumer._committed_offset.get(tp)

    def rebalancing(self) -> bool:
        return bool(getattr(self.app, "rebalancing", False))

    def recovery(self) -> Any:
        """Faust's table recovery service (None before the app has tables)."""
        return self.app.tables.recovery if self.app.tables else None


class Observability(Service):
    """HTTP endpoints and the periodic export of consumer lag, recovery progress and readiness."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.facts = pipeline.facts
        self._lag_keys: set[tuple[str, str]] = set()
        self._recovery_totals: dict[str, int] = {}
        self._recovering_since: float | None = None
        self._recovered_logged = False
        pipeline.add_route("GET", "/metrics", self._metrics)
        pipeline.add_route("GET", "/health", self._health)
        pipeline.add_route("GET", "/ready", self._ready)

    async def _metrics(self, request: web.Request) -> web.Response:
        # The recovery gauges as of this scrape, not of the last 2 s export: a snapshot restore can begin and
        # end between two exports, and a scrape would then never see it.
        try:
            self._export_recovery()
        except Exception:  # a metrics glitch must never fail the scrape
            log.exception("exporting recovery progress failed")
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
                self.export()
            except Exception:  # a metrics glitch must never take the worker down
                log.exception("exporting worker state failed")
            await self.sleep(EXPORT_INTERVAL_SECONDS)

    def export(self) -> None:
        self._export_lag()
        self._export_recovery()
        ready, _ = self.pipeline.is_ready()
        self.pipeline.metrics.ready.set(1 if ready else 0)

    def _export_lag(self) -> None:
        metrics = self.pipeline.metrics
        if not self.facts.started():
            return
        seen = set()
        sources = self.pipeline.source_topics()
        for tp in self.facts.assignment():
            if tp.topic not in sources:  # changelogs and Faust's assignor topic are not consumer progress
                continue
            hw = self.facts.highwater(tp)
            if hw is None:
                continue
            committed = self.facts.committed(tp)
            # Under exactly-once the commit covers the markers after the last record once it is processed
            # (streams.eos), so a drained partition reads 0.
            lag = max(0, hw - (committed if committed is not None else 0))
            key = (tp.topic, str(tp.partition))
            seen.add(key)
            metrics.consumer_lag.labels(*key).set(lag)
        for key in self._lag_keys - seen:  # partitions revoked: stop reporting them
            metrics.consumer_lag.remove(*key)
        self._lag_keys = seen

    def _export_recovery(self) -> None:
        p = self.pipeline
        recovery = self.facts.recovery()
        if recovery is None or not p.tables:
            return
        remaining = recovery.active_remaining() if recovery.in_recovery else {}
        restoring = p.recovery_remaining()  # e.g. a dedup snapshot loading before Faust's recovery
        for name, table in p.tables.items():
            changelog = table.changelog_topic.get_topic_name()
            left = sum(n for tp, n in remaining.items() if tp.topic == changelog and n > 0)
            left += max(0, restoring.get(name, 0))
            total = self._recovery_totals.get(name, 0)
            if left > total:  # the largest backlog seen in this recovery is its 0 % mark
                self._recovery_totals[name] = total = left
            p.metrics.recovery_remaining.labels(name).set(left)
            p.metrics.recovery_ratio.labels(name).set(1.0 if total == 0 else 1.0 - left / total)
        if recovery.in_recovery or any(n > 0 for n in restoring.values()):
            self._recovered_logged = False
            self._recovering_since = self._recovering_since or time.monotonic()
        elif not self._recovered_logged and recovery.completed.is_set():
            self._recovered_logged = True
            took = time.monotonic() - self._recovering_since if self._recovering_since else 0.0
            self._recovering_since = None
            self._recovery_totals.clear()
            event(log, "recovery_done", tables=sorted(p.tables), seconds=round(took, 3))
