"""The dedup agent: articles.dedup-sequenced (one partition) -> articles.unique | articles.duplicates.

Wiring only; every rule is in `streams.stages.dedup`. Why one sequenced partition: a syndicated or near copy
has its own article_id, so it comes through any partition of articles.raw. normalize writes every article,
keyed by article_id, into the single partition of the sequence (beside articles.normalized), so all of them
meet one state (three tables with changelogs, a standby on a second worker) in one order, and a copy is caught
whichever partition or worker it came through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faust.types import TP

from streams import eos, schemas
from streams.agents import runner
from streams.agents.dedup_snapshots import SnapshotService
from streams.agents.runner import Input, Route, article_of
from streams.logs import event
from streams.outcomes import Duplicate, Rejected, Unique
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.reorder import is_tick, tick_record
from streams.stages.dedup.snapshot import Snapshot
from streams.stages.dedup.stage import Deduplicator
from streams.ticks import Tick

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "dedup"
log = logging.getLogger("streams.dedup")


class _Active:
    """The Deduplicator of the sequence partition while this worker actively owns it (None otherwise)."""

    def __init__(self, p: Pipeline, tables: dict[str, Any], config: DedupConfig, sequence: TP) -> None:
        self.p, self.tables, self.config, self.sequence = p, tables, config, sequence
        self.stage: Deduplicator | None = None
        self.generation = 0  # names the Deduplicator whose totals the counters follow
        # True once a record was decided after the last commit of the sequence's transaction (or the last
        # build): only then can an abort have undone table writes the index still reflects.
        self.dirty = False

    def owns(self) -> bool:
        return self.sequence in self.p.facts.actives()

    def drop(self) -> None:
        self.stage = None

    def ready(self) -> bool:
        """The Deduplicator of the sequence partition is built here and this worker owns the partition."""
        return self.stage is not None and self.owns()

    def build(self, snapshot: Snapshot | None = None, changed: Iterable[str] = ()) -> Deduplicator:
        """A Deduplicator over the tables; its index from `snapshot` (loaded into the tables by
        streams.agents.dedup_snapshots) plus the `changed` articles when given, else from the tables."""
        started = time.perf_counter()
        stage = Deduplicator(
            articles=self.tables["dedup-articles"],
            content=self.tables["dedup-content"],
            held=self.tables["dedup-held"],
            config=self.config,
            clock=lambda: datetime.now(UTC),
        )
        changed = list(changed)
        count = stage.rebuild(snapshot=snapshot, changed=changed)
        self.generation += 1
        self.stage = stage
        self.dirty = False
        event(
            log,
            "dedup_index_rebuilt",
            articles=count,
            seconds=round(time.perf_counter() - started, 3),
            source="snapshot" if snapshot is not None else "tables",
            **({"changed_since_snapshot": len(changed)} if snapshot is not None else {}),
        )
        self.export()
        return stage

    def current(self) -> Deduplicator:
        return self.stage if self.stage is not None else self.build()

    def export(self) -> None:
        if self.stage is None:
            return
        m, now = self.p.metrics, self.stage.stats()
        m.dedup_index_articles.set(now.index_articles)
        m.dedup_index_bytes.set(now.index_bytes)
        m.dedup_held.set(now.held_articles)
        for cause, total in now.evictions.items():
            m.sync_total(m.dedup_evictions.labels(cause), total, source=self.generation)
        m.sync_total(m.dedup_reordered, now.reordered_total, source=self.generation)


def register(p: Pipeline) -> None:
    s, m, app = p.settings, p.metrics, p.app
    config = DedupConfig.from_settings(s)
    sequence_tp = TP(s.topic("articles.dedup-sequenced"), 0)
    tables: dict[str, Any] = {}
    active = _Active(p, tables, config, sequence_tp)
    # Snapshots: loaded before the app starts when the stores are empty, written after commits of the
    # sequence's transaction (streams.agents.dedup_snapshots).
    snapshots = SnapshotService(p, config, tables=lambda: tables, sequence=sequence_tp, owner=active.ready)
    tables["dedup-articles"] = p.table("dedup-articles", on_changelog_event=snapshots.on_changelog_event)
    tables["dedup-content"] = p.table("dedup-content")
    tables["dedup-held"] = p.table("dedup-held")
    p.add_service(snapshots)
    p.add_readiness("dedup_snapshot", snapshots.ready)
    p.add_recovery_progress(snapshots.remaining)
    eos.on_commit(app, snapshots.on_commit)
    for match in schemas.enum("duplicate.v1.json", "match"):
        m.duplicates.labels(match)
    for cause in ("window", "capacity"):
        m.dedup_evictions.labels(cause)

    # -- the decisions --------------------------------------------------------------------------------------
    def handle(inp: Input) -> list[Unique | Duplicate | Rejected]:
        value = inp.json()
        if not is_tick(inp.key, value):
            article = article_of(inp)
            if isinstance(article, Rejected):
                return [article]
        active.dirty = True
        outcomes = active.current().on_record(
            key=inp.key, value=value, offset=inp.offset, timestamp_ms=inp.timestamp_ms or 0
        )
        active.export()
        return outcomes

    def count_duplicate(outcome: Duplicate) -> None:
        m.duplicates.labels(outcome.record["match"]).inc()

    runner.register(
        p,
        stage=STAGE,
        source="articles.dedup-sequenced",
        handle=handle,
        is_control=lambda inp: is_tick(inp.key, inp.json()),
        routes={
            Unique: Route(
                "articles.unique",
                key=runner.article_key,
                value=runner.article_value,
                outcome=lambda o: "update" if o.article.get("dedup", {}).get("is_update") else "unique",
                latency=runner.article_ingested_ms,
            ),
            Duplicate: Route(
                "articles.duplicates",
                key=runner.record_key,
                value=runner.record_value,
                outcome="duplicate",
                count=count_duplicate,
                latency=runner.article_ingested_ms,
            ),
        },
    )

    # -- the in-memory index follows the active partition ------------------------------------------------------
    @tables["dedup-articles"].on_recover
    async def rebuild_index() -> None:
        # Faust awaits this after every recovery, before it resumes the partitions, so the index is whole
        # before the first decision. Only where the partition is active: a standby never decides (it keeps
        # the tables warm for a fast take-over and builds the index when it becomes active). In a thread, so
        # /metrics and /ready stay responsive; /ready says 503 until it is done.
        # The first build after a snapshot was restored reads the index from it (and the articles the
        # changelog tail touched since) instead of every table entry.
        active.drop()
        snapshot, changed = snapshots.take_restored()
        if active.owns():
            await asyncio.to_thread(active.build, snapshot, changed)

    p.add_readiness("dedup_index", lambda: active.stage is not None or not active.owns())

    async def on_rewind(tps: set[Any]) -> None:
        # Aborted decisions were undone in the tables; the index and the hold are rebuilt from them. Unless
        # nothing was decided since the last commit or build: then nothing was undone, and the index agrees
        # with the tables. (Every recovery ends with such a rewind, right after the index was built.)
        if sequence_tp in tps:
            if active.stage is not None and not active.dirty and active.owns():
                return
            active.drop()
            if active.owns():
                await asyncio.to_thread(active.build)

    eos.on_rewind(app, on_rewind)

    def on_commit(tid: str) -> None:
        try:
            ours = tid == eos.transactional_id(app, sequence_tp)
        except KeyError:  # the sequence topic is not assigned here
            return
        if ours:
            active.dirty = False  # what was decided is committed, tables and index alike

    eos.on_commit(app, on_commit)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        if sequence_tp in revoked:
            active.drop()
            snapshots.on_revoked()

    interval = min(1.0, max(0.25, s.dedup_reorder_seconds / 2))
    p.ticks.add(
        Tick(
            "dedup-reorder-hold",
            "articles.dedup-sequenced",
            due=lambda now_ms: (
                active.stage is not None and active.owns() and active.stage.tick_due(now_ms, int(interval * 1000))
            ),
            record=lambda now_ms: (*tick_record(now_ms), 0),
            interval=interval,
        )
    )
