"""Ticks: a small record sent into a topic when a stage says one is due, so time-driven work happens in-stream.

A stage's decisions happen while it processes a record, inside that record's transaction, and are a function
of the records (their timestamps), never of the wall clock: a replay decides the same way. On a quiet topic no
record comes to move time on: the reorder hold would keep its last articles, a takedown would never expire.
A tick is that record. It carries no data (a duplicated tick changes nothing), so it is sent without a
transaction, through the pipeline's own producer, by the worker that owns the state (`due` says so), and at
most once per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mode import Service

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("streams.ticks")


@dataclass(frozen=True)
class Tick:
    """`due(now_ms)` is asked every `interval` seconds; when true, `record(now_ms)` = (key, value, partition)
    is sent into `topic` (a logical name of the registry) with timestamp `now_ms`."""

    name: str
    topic: str
    due: Callable[[int], bool]
    record: Callable[[int], tuple[bytes | None, bytes, int | None]]
    interval: float


class Ticks(Service):
    """Every tick the stages registered, on one timer loop."""

    def __init__(self, pipeline: Pipeline, *, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.clock = clock
        self._ticks: list[Tick] = []
        self._next: dict[str, float] = {}
        self.sent: dict[str, int] = {}

    def add(self, tick: Tick) -> None:
        self._ticks.append(tick)
        self.sent.setdefault(tick.name, 0)

    def __len__(self) -> int:
        return len(self._ticks)

    async def run_once(self) -> list[str]:
        """Send every tick that is due now; returns their names (the timer calls this; tests call it directly)."""
        now = self.clock()
        fired = []
        for tick in self._ticks:
            if now < self._next.get(tick.name, 0.0):
                continue
            self._next[tick.name] = now + tick.interval
            now_ms = int(now * 1000)
            try:
                if tick.due(now_ms):
                    await self._send(tick, now_ms)
                    fired.append(tick.name)
                    self.sent[tick.name] += 1
            except Exception:  # the broker may be away for a moment; the next interval tries again
                log.warning("tick %s failed", tick.name, exc_info=True)
        return fired

    async def _send(self, tick: Tick, now_ms: int) -> None:
        key, value, partition = tick.record(now_ms)
        producer = self.pipeline.app.producer
        # The default (non-transactional) producer: a tick must be visible at once, not when a transaction of
        # the partition it wakes up commits (on a quiet partition, none would).
        fut = await producer.send(
            self.pipeline.settings.topic(tick.topic), key, value, partition, now_ms / 1000, None, transactional_id=None
        )
        await fut

    @Service.task
    async def _timer(self) -> None:
        if not self._ticks:
            return
        step = min(t.interval for t in self._ticks)
        while not self.should_stop:
            await self.sleep(step)
            await self.run_once()
