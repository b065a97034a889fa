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
from streams.outcomes import Duplicate, Unique
from streams.stages.dedup.reorder import ReorderHold, sequence_key
from streams.stages.dedup.stage import DedupConfig, DedupState, dedup, expire

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
    holder: dict[str, Any] = {"state": None, "hold": None, "evictions": {"window": 0, "capacity": 0}}
    hold_ms = int(round(s.dedup_reorder_seconds * 1000))
    # Declared even with the hold off (0): articles held under an earlier setting are then still released.
    held = app.Table(
        "dedup-held",
        partitions=1,
        help="sequence offset -> article waiting in the reorder hold",
        extra_topic_configs={"max.message.bytes": str(topics.get("articles.dedup-sequenced").max_message_bytes)},
    )
    p.tables["dedup-held"] = held

    def owns_sequence() -> bool:
        """Whether this worker actively processes the sequence (a standby rebuilds a hold it never releases)."""
        try:
            return TP(sequenced.get_topic_name(), 0) in app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return False

    p.services.append(
        HoldTicker(p, due=lambda now_ms, slack_ms: owns_sequence() and _tick_due(holder["hold"], now_ms, slack_ms))
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

    def rebuilt() -> DedupState:
        started = time.perf_counter()
        current = DedupState(config, articles, content)
        count = current.rebuild()
        holder["evictions"] = dict(current.evictions)
        hold = ReorderHold(hold_ms, current.order_of)
        m.dedup_held.set(hold.rebuild(held.items()))
        holder["hold"] = hold
        event(log, "dedup_index_rebuilt", articles=count, seconds=round(time.perf_counter() - started, 3))
        return current

    @articles.on_recover
    async def rebuild_index() -> None:
        # Faust awaits this after every recovery (start, rebalance, take-over) and before it resumes the
        # partitions, so the index is whole before the first decision. In a thread, so that /metrics and
        # /ready stay responsive (23 s for 1M articles, BENCHMARKS.md); /ready says 503 until it is done.
        holder["state"] = holder["hold"] = None
        current = await asyncio.to_thread(rebuilt)
        holder["state"] = current
        _export_index(current)

    p.readiness["dedup_index"] = lambda: holder["state"] is not None

    def state() -> DedupState:
        current: DedupState | None = holder["state"]
        if current is None:  # no recovery callback ran for this assignment: rebuild here, blocking
            current = holder["state"] = rebuilt()
        return current

    async def decide(article: dict[str, Any], st: DedupState) -> None:
        started = time.perf_counter()
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

    @app.agent(sequenced, name=f"{s.topic_prefix}dedup")
    async def dedup_agent(stream: Any) -> None:
        async for ev in stream.events():
            async with eos.processing(app, ev) as skip:
                if skip:
                    m.redeliveries_skipped.labels(STAGE, skip).inc()
                    continue
                value = loads(ev.message.value)
                st = state()
                tick = is_tick(ev.message.key, value)
                if not tick:
                    m.events_in.labels(STAGE).inc()
                hold: ReorderHold = holder["hold"]
                if not tick and hold_ms == 0 and not len(hold):  # the hold is off: decide on arrival
                    await decide(value, st)
                    continue
                # The record's timestamp, not the clock, drives the hold: a replay releases the same way.
                stamp_ms = int(ev.message.timestamp * 1000)
                if tick:
                    hold.observe(stamp_ms)
                else:
                    key = sequence_key(ev.message.offset)
                    held[key] = {"article": value, "arrival_ms": stamp_ms}
                    hold.add(key, value, stamp_ms)
                released = hold.release()
                if released:
                    m.dedup_reordered.inc(hold.reorders(released))
                for h in released:
                    await decide(h.article, st)
                    del held[h.key]
                m.dedup_held.set(len(hold))

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
            holder["state"] = holder["hold"] = None


TICK_KEY = b"\x00reorder-hold-tick"


def is_tick(key: bytes | None, value: Any) -> bool:
    """Whether a record of the sequence is a tick of the reorder hold rather than an article."""
    return key == TICK_KEY and isinstance(value, dict) and "tick_ms" in value


def _tick_due(hold: ReorderHold | None, now_ms: int, slack_ms: int) -> bool:
    """A tick is needed while articles are held, the oldest is due by the clock, and no record has brought the
    watermark near the clock (on a busy sequence the articles themselves move it; ticks are for quiet ones).
    Ticks continue once per interval until the hold is empty: an article due may still wait for one that
    sorts before it."""
    if hold is None or not len(hold):
        return False
    oldest = hold.oldest_arrival_ms()
    if oldest is None or now_ms < oldest + hold.hold_ms:
        return False
    return hold.watermark_ms is None or hold.watermark_ms < now_ms - slack_ms


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
        await self._producer.send_and_wait(
            self.settings.topic("articles.dedup-sequenced"),
            key=TICK_KEY,
            value=dumps({"tick_ms": now_ms}),
            partition=0,
            timestamp_ms=now_ms,
        )
