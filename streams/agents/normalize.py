"""The normalize agent: articles.raw -> articles.normalized | articles.rejected."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from streams import eos
from streams.agents.common import origin_of, seconds_since_ms, utcnow
from streams.codec import dumps
from streams.logs import event
from streams.outcomes import Normalized, Rejected
from streams.rejections import rejection_record
from streams.stages.normalize import NormalizeConfig, normalize

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "normalize"
REASONS = ("invalid_json", "invalid_utf8", "schema_violation", "too_large", "bad_url", "empty_text", "internal_error")
log = logging.getLogger("streams.normalize")


def register(p: Pipeline) -> None:
    s, m = p.settings, p.metrics
    config = NormalizeConfig.from_settings(s)
    raw, normalized, rejected = (
        p.topic("articles.raw"),
        p.topic("articles.normalized"),
        p.topic("articles.rejected"),
    )
    summary: Counter[str] = Counter()
    m.prime(STAGE, outcomes=("normalized", "rejected"), reasons=REASONS)

    @p.app.agent(raw, name=f"{s.topic_prefix}normalize")
    async def normalize_agent(stream: Any) -> None:
        async for ev in stream.events():
            async with eos.processing(p.app, ev) as skip:
                if skip:
                    m.redeliveries_skipped.labels(STAGE, skip).inc()
                    continue
                started = time.perf_counter()
                msg = ev.message
                payload: bytes = msg.value if msg.value is not None else b""
                origin = origin_of(msg)
                m.events_in.labels(STAGE).inc()
                try:
                    outcome = normalize(payload, origin=origin, now=utcnow(), config=config)
                except Exception as exc:  # a bug in the stage must not stop it: refuse the event, keep it
                    log.exception("normalize failed on %s", origin)
                    m.stage_errors.labels(STAGE).inc()
                    outcome = Rejected("internal_error", f"normalize raised {type(exc).__name__}: {exc}")
                if isinstance(outcome, Normalized):
                    article = outcome.article
                    await normalized.send(key=article["article_id"].encode(), value=dumps(article))
                    m.events_out.labels(STAGE, "normalized").inc()
                    latency = seconds_since_ms(origin["timestamp_ms"])
                    if latency is not None:
                        m.end_to_end_seconds.labels(STAGE).observe(latency)
                else:
                    record = rejection_record(
                        outcome,
                        payload=payload,
                        key=msg.key,
                        origin=origin,
                        stage=STAGE,
                        payload_limit=s.reject_payload_limit_bytes,
                        now=utcnow(),
                    )
                    await rejected.send(key=msg.key, value=dumps(record))
                    m.events_out.labels(STAGE, "rejected").inc()
                    m.rejections.labels(STAGE, outcome.reason).inc()
                    summary[outcome.reason] += 1
                m.processing_seconds.labels(STAGE).observe(time.perf_counter() - started)

    @p.app.timer(interval=60.0)
    async def rejection_summary() -> None:
        if summary:
            event(
                log,
                "rejection_summary",
                level=logging.WARNING,
                stage=STAGE,
                window_seconds=60,
                by_reason=dict(summary),
            )
            summary.clear()
