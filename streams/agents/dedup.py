"""The dedup agents: articles.normalized -> articles.dedup-sequenced (one partition) -> articles.unique | duplicates.

Why a sequenced topic: a syndicated or near copy of an article can arrive on any partition of
articles.normalized (it is keyed by its own article_id). Forwarding every article, key unchanged, into one
partition puts all of them in one order before one dedup state, so a copy is caught whichever partition or
worker it came through. Per-article order survives (one key always comes from one source partition). The
state is three Faust tables on that partition (entries, content hashes, the reorder hold), with changelogs
(and a standby replica on a second worker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from faust.types import TP
from mode import Service

from streams import eos, topics
from streams.agents.common import seconds_since_ms, utcnow
from streams.codec import dumps, loads
from streams.logs import event
from streams.outcomes import Duplicate
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.reorder import is_tick, tick_record
from streams.stages.dedup.stage import MATCHES, Deduplicator, DedupStats

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "dedup"
log = logging.getLogger("streams.dedup")


def register(p: Pipeline) -> None:
    s, m, app = p.settings, p.metrics, p.app
    config = DedupConfig.from_settings(s)
    normalized, sequenced = p.topic("articles.normalized"), p.topic("articles.dedup-sequenced")
    unique, duplicates = p.topic("articles.unique"), p.topic("articles.duplicates")
    articles = app.Table("dedup-articles", partitions=1, help="article_id -> dedup entry (signature, revision)")
    content = app.Table("dedup-content", partitions=1, help="revision (text hash) -> article_id")
    p.tables.update({"dedup-articles": articles, "dedup-content": content})
    # Declared even with the hold off (0): articles held under an earlier setting are then still released.
    held = app.Table(
        "dedup-held",
        partitions=1,
        help="sequence offset -> article waiting in the reorder hold",
        extra_topic_configs={"max.message.bytes": str(topics.get("articles.dedup-sequenced").max_message_bytes)},
    )
    p.tables["dedup-held"] = held

    def fresh() -> Deduplicator:
        return Deduplicator(articles=articles, content=content, held=held, config=config, clock=utcnow)

    # "stage": the Deduplicator; "ready": its index was rebuilt for this assignment; "last": stats last exported
    holder: dict[str, Any] = {"stage": fresh(), "ready": False, "last": None}

    def owns_sequence() -> bool:
        """Whether this worker actively processes the sequence (a standby rebuilds a hold it never releases)."""
        try:
            return TP(sequenced.get_topic_name(), 0) in app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return False

    p.services.append(
        HoldTicker(p, due=lambda now_ms, slack_ms: owns_sequence() and holder["stage"].tick_due(now_ms, slack_ms))
    )

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

    def rebuilt() -> None:
        started = time.perf_counter()
        count = holder["stage"].rebuild()
        holder["ready"] = True
        event(log, "dedup_index_rebuilt", articles=count, seconds=round(time.perf_counter() - started, 3))

    @articles.on_recover
    async def rebuild_index() -> None:
        # Faust awaits this after every recovery (start, rebalance, take-over) and before it resumes the
        # partitions, so the index is whole before the first decision. In a thread, so that /metrics and
        # /ready stay responsive (23 s for 1M articles, BENCHMARKS.md); /ready says 503 until it is done.
        holder["ready"] = False
        await asyncio.to_thread(rebuilt)
        export(holder["stage"].stats())

    p.readiness["dedup_index"] = lambda: holder["ready"]

    @app.agent(sequenced, name=f"{s.topic_prefix}dedup")
    async def dedup_agent(stream: Any) -> None:
        async for ev in stream.events():
            async with eos.processing(app, ev) as skip:
                if skip:
                    m.redeliveries_skipped.labels(STAGE, skip).inc()
                    continue
                started = time.perf_counter()
                value = loads(ev.message.value)
                if not is_tick(ev.message.key, value):
                    m.events_in.labels(STAGE).inc()
                outcomes = holder["stage"].on_record(
                    key=ev.message.key,
                    value=value,
                    offset=ev.message.offset,
                    timestamp_ms=int(ev.message.timestamp * 1000),
                )
                holder["ready"] = True
                for outcome in outcomes:
                    if isinstance(outcome, Duplicate):
                        rec = outcome.record
                        await duplicates.send(key=rec["article_id"].encode(), value=dumps(rec))
                        m.events_out.labels(STAGE, "duplicate").inc()
                        m.duplicates.labels(rec["match"]).inc()
                        origin = rec["article"].get("origin")
                    else:
                        out = outcome.article
                        await unique.send(key=out["article_id"].encode(), value=dumps(out))
                        is_update = bool(out.get("dedup", {}).get("is_update"))
                        m.events_out.labels(STAGE, "update" if is_update else "unique").inc()
                        origin = out.get("origin")
                    latency = seconds_since_ms((origin or {}).get("timestamp_ms"))
                    if latency is not None:
                        m.end_to_end_seconds.labels(STAGE).observe(latency)
                export(holder["stage"].stats())
                for _ in outcomes:  # one observation per decided article, as before
                    m.processing_seconds.labels(STAGE).observe((time.perf_counter() - started) / len(outcomes))

    def export(now: DedupStats) -> None:
        last: DedupStats | None = holder["last"]
        m.dedup_index_articles.set(now.index_articles)
        m.dedup_index_bytes.set(now.index_bytes)
        m.dedup_held.set(now.held_articles)
        for cause, total in now.evictions.items():
            delta = total - (last.evictions.get(cause, 0) if last else 0)
            if delta > 0:
                m.dedup_evictions.labels(cause).inc(delta)
        for counter, total, before in (
            (m.dedup_reordered, now.reordered_total, last.reordered_total if last else 0),
            (m.stage_errors.labels(STAGE), now.internal_errors, last.internal_errors if last else 0),
        ):
            if total > before:
                counter.inc(total - before)
        holder["last"] = now

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        # The tables may move to another worker; the in-memory index is rebuilt from them on the next event.
        if any(tp.topic == sequenced.get_topic_name() for tp in revoked):
            holder["stage"], holder["ready"], holder["last"] = fresh(), False, None


class HoldTicker(Service):
    """Sends a tick into the sequence when held articles are due and no article arrives to release them.

    Releases happen inside the dedup agent, in the transaction of the record it processes, so that the
    decisions and the hold table's deletions commit together. On a quiet topic nothing would come to
    release the last held articles; the tick is that record. It is sent without a transaction (it carries
    no data; a duplicated tick changes nothing) at most once per interval, only by the worker that holds the
    dedup partition, and only while something is due.
    """

    def __init__(self, pipeline: Pipeline, due: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = pipeline.settings
        self.due = due
        self.interval = min(1.0, max(0.25, self.settings.dedup_reorder_seconds / 2))
        self.interval_ms = int(self.interval * 1000)
        self._producer: Any = None

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @Service.task
    async def _ticks(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            try:
                if self.due(int(time.time() * 1000), self.interval_ms):
                    await self._send()
            except Exception:  # the broker may be away for a moment; the next interval tries again
                log.warning("reorder hold tick failed", exc_info=True)

    async def _send(self) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap, acks="all", client_id="article-streams-hold-tick"
            )
            await producer.start()
            self._producer = producer
        now_ms = int(time.time() * 1000)
        key, value = tick_record(now_ms)
        await self._producer.send_and_wait(
            self.settings.topic("articles.dedup-sequenced"), key=key, value=value, partition=0, timestamp_ms=now_ms
        )
