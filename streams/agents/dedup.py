"""The dedup agents: articles.normalized -> articles.dedup-sequenced (one partition) -> articles.unique | duplicates.

Why a sequenced topic: a syndicated or near copy of an article can arrive on any partition of
articles.normalized (it is keyed by its own article_id). Forwarding every article, key unchanged, into one
partition puts all of them in one order before one dedup state, so a copy is caught whichever partition or
worker it came through. Per-article order survives (one key always comes from one source partition). The
state is two Faust tables on that partition, with changelogs (and a standby replica on a second worker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from streams import eos
from streams.agents.common import seconds_since_ms, utcnow
from streams.codec import dumps, loads
from streams.logs import event
from streams.outcomes import Duplicate, Unique
from streams.stages.dedup import DedupConfig, DedupState, dedup, expire

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "dedup"
MATCHES = ("same_url", "same_content", "near")
log = logging.getLogger("streams.dedup")


def register(p: Pipeline) -> None:
    s, m, app = p.settings, p.metrics, p.app
    config = DedupConfig.from_settings(s)
    normalized, sequenced = p.topic("articles.normalized"), p.topic("articles.dedup-sequenced")
    unique, duplicates = p.topic("articles.unique"), p.topic("articles.duplicates")
    articles = app.Table("dedup-articles", partitions=1, help="article_id -> dedup entry (signature, revision)")
    content = app.Table("dedup-content", partitions=1, help="revision (text hash) -> article_id")
    p.tables.update({"dedup-articles": articles, "dedup-content": content})
    holder: dict[str, Any] = {"state": None, "evictions": {"window": 0, "capacity": 0}}
    m.prime(STAGE, outcomes=("unique", "update", "duplicate"))
    for match in MATCHES:
        m.duplicates.labels(match)
    for cause in ("window", "capacity"):
        m.dedup_evictions.labels(cause)

    @app.agent(normalized, name=f"{s.topic_prefix}dedup-sequence")
    async def sequence(stream: Any) -> None:
        async for ev in stream.events():
            async with eos.processing(app, ev) as skip:
                if skip:
                    m.redeliveries_skipped.labels("dedup-sequence", skip).inc()
                    continue
                await sequenced.send(key=ev.message.key, value=ev.message.value)

    def rebuilt() -> DedupState:
        started = time.perf_counter()
        current = DedupState(config, articles, content)
        count = current.rebuild()
        holder["evictions"] = dict(current.evictions)
        event(log, "dedup_index_rebuilt", articles=count, seconds=round(time.perf_counter() - started, 3))
        return current

    @articles.on_recover
    async def rebuild_index() -> None:
        # Faust awaits this after every recovery (start, rebalance, take-over) and before it resumes the
        # partitions, so the index is whole before the first decision. In a thread, so that /metrics and
        # /ready stay responsive (23 s for 1M articles, BENCHMARKS.md); /ready says 503 until it is done.
        holder["state"] = None
        current = await asyncio.to_thread(rebuilt)
        holder["state"] = current
        _export_index(current)

    p.readiness["dedup_index"] = lambda: holder["state"] is not None

    def state() -> DedupState:
        current: DedupState | None = holder["state"]
        if current is None:  # no recovery callback ran for this assignment: rebuild here, blocking
            current = holder["state"] = rebuilt()
        return current

    @app.agent(sequenced, name=f"{s.topic_prefix}dedup")
    async def dedup_agent(stream: Any) -> None:
        async for ev in stream.events():
            async with eos.processing(app, ev) as skip:
                if skip:
                    m.redeliveries_skipped.labels(STAGE, skip).inc()
                    continue
                started = time.perf_counter()
                m.events_in.labels(STAGE).inc()
                article = loads(ev.message.value)
                st = state()
                try:
                    outcome = dedup(article, state=st, now=utcnow())
                except Exception:  # a bug must not stop the stage: let the article through, count it
                    log.exception("dedup failed on %s", article.get("article_id"))
                    m.stage_errors.labels(STAGE).inc()
                    outcome = Unique(article)
                if isinstance(outcome, Duplicate):
                    rec = outcome.record
                    await duplicates.send(key=rec["article_id"].encode(), value=dumps(rec))
                    m.events_out.labels(STAGE, "duplicate").inc()
                    m.duplicates.labels(rec["match"]).inc()
                else:
                    out = outcome.article
                    await unique.send(key=out["article_id"].encode(), value=dumps(out))
                    is_update = bool(out.get("dedup", {}).get("is_update"))
                    m.events_out.labels(STAGE, "update" if is_update else "unique").inc()
                expire(st)
                _export_index(st)
                latency = seconds_since_ms((article.get("origin") or {}).get("timestamp_ms"))
                if latency is not None:
                    m.end_to_end_seconds.labels(STAGE).observe(latency)
                m.processing_seconds.labels(STAGE).observe(time.perf_counter() - started)

    def _export_index(st: DedupState) -> None:
        m.dedup_index_articles.set(st.size())
        m.dedup_index_bytes.set(st.index_bytes_estimate())
        for cause, total in st.evictions.items():
            delta = total - holder["evictions"].get(cause, 0)
            if delta > 0:
                m.dedup_evictions.labels(cause).inc(delta)
        holder["evictions"] = dict(st.evictions)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        # The tables may move to another worker; the in-memory index is rebuilt from them on the next event.
        if any(tp.topic == sequenced.get_topic_name() for tp in revoked):
            holder["state"] = None
