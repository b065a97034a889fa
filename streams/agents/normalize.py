"""The normalize agent: articles.raw -> articles.normalized | articles.rejected (wiring only)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streams import schemas
from streams.agents import runner
from streams.agents.runner import Input, Route
from streams.logs import event
from streams.outcomes import Normalized, Rejected
from streams.stages.normalize import NormalizeConfig, normalize

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "normalize"
log = logging.getLogger("streams.normalize")


def register(p: Pipeline) -> None:
    config = NormalizeConfig.from_settings(p.settings)
    summary: Counter[str] = Counter()
    p.metrics.prime(STAGE, reasons=schemas.enum("rejection.v1.json", "reason"))

    def handle(inp: Input) -> Normalized | Rejected:
        outcome = normalize(
            inp.value if inp.value is not None else b"",
            origin=inp.coordinates,
            now=datetime.now(UTC),
            config=config,
        )
        if isinstance(outcome, Rejected):
            summary[outcome.reason] += 1
        return outcome

    runner.register(
        p,
        stage=STAGE,
        source="articles.raw",
        handle=handle,
        routes={
            # articles.normalized for consumers and tools (partitioned by article_id), and straight into the
            # single partition dedup decides on: no forwarding hop (it cost a whole consume-produce transaction).
            Normalized: (
                Route(
                    "articles.normalized",
                    key=runner.article_key,
                    value=runner.article_value,
                    outcome="normalized",
                    latency=lambda _o, inp: inp.timestamp_ms,
                ),
                Route("articles.dedup-sequenced", key=runner.article_key, value=runner.article_value),
            ),
        },
    )

    @p.app.timer(interval=60.0)
    async def rejection_summary() -> None:
        if summary:
            event(
                log, "rejection_summary", level=logging.WARNING, stage=STAGE, window_seconds=60, by_reason=dict(summary)
            )
            summary.clear()
