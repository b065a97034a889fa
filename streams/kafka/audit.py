"""Reads the topics for `streams audit` into a `streams.audit.Ledger`: read_committed, up to the end offsets
seen at the start, with the pipeline group's committed offsets to tell "not yet processed" from "lost".

The snapshot, in this order, so that it is consistent or errs towards "in flight", never towards "lost":

1. the end offsets of `articles.raw` (raw events sent after this are not audited);
2. the committed offsets of the pipeline's consumer group (`settings.group_id`) on every topic it reads;
3. (a moment later, so that transaction markers written with those offsets have reached every partition)
   the end offsets of the outcome and intermediate topics and of dedup's reorder-hold changelog.

Under exactly-once a stage's output and its consumed offsets commit in one transaction, so an event the group
had committed past at step 2 has its output on the next topic by step 3; an event it had not is read on the
intermediate topics from the committed offset on (only that tail is read), and counted in flight.

Then every topic partition is read on its own, one after the other (memory stays one fetch, whatever the
number of partitions), from its first offset (or from --since: the raw topic from the first offset at or after
T, the outcome topics from an hour before T) to the end offset of the snapshot.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import audit, topics
from streams.audit import AuditError, Ledger, Report
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings


class Progress(Protocol):
    """What the command shows while the audit reads (a progress bar on a terminal)."""

    def start(self, total: int) -> None: ...

    def advance(self, topic: str, n: int) -> None: ...


# Records taken from the fetcher per call: bounds the decoded records held at once (a fetch of 11 MiB of small
# records decodes into ~10^5 record objects otherwise), at no measurable cost in speed.
MAX_RECORDS = 5_000


@dataclass(frozen=True)
class _Read:
    logical: str  # the Ledger's topic name
    tp: TopicPartition
    start: int
    end: int


def held_changelog(settings: Settings) -> str:
    """The changelog of dedup's reorder hold, as Faust names it: <app id>-<table>-changelog."""
    return f"{settings.group_id}-{audit.HELD}-changelog"


async def run(
    settings: Settings,
    *,
    since_ms: int | None = None,
    limit: int = 20,
    progress: Progress | None = None,
    settle_s: float = 0.2,
    stall_s: float = 60.0,
) -> Report:
    """Audits the pipeline of `settings` (its topic prefix and consumer group) and returns the report."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # end offsets are then the last stable offsets
        auto_offset_reset="earliest",  # a start deleted by retention meanwhile: read from what is left
        max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
        fetch_max_bytes=topics.MAX_REQUEST_BYTES,
        client_id="article-streams-audit",
    )
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), client_id="article-streams-audit")
    await consumer.start()
    try:
        await admin.start()
        try:
            plan, ledger, notes = await _snapshot(consumer, admin, settings, since_ms, settle_s)
        finally:
            await admin.close()
        if progress is not None:
            progress.start(sum(r.end - r.start for r in plan))
        for r in plan:
            await _read(consumer, r, ledger.feeder(r.logical), progress, stall_s)
        report = ledger.report(limit, published_topic=settings.topic(audit.PUBLISHED))
        await _describe_twice(consumer, settings, report)
    finally:
        await consumer.stop()
    report.notes.extend(notes)
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _snapshot(
    consumer: AIOKafkaConsumer,
    admin: AIOKafkaAdminClient,
    settings: Settings,
    since_ms: int | None,
    settle_s: float,
) -> tuple[list[_Read], Ledger, list[str]]:
    """The three steps of the module docstring: what to read, from where to where, and the Ledger for it."""
    await consumer._client.force_metadata_update()  # topics created since the client started
    raw_name = settings.topic(audit.RAW)
    raw_tps = await _partitions(consumer, raw_name)
    if not raw_tps:
        raise AuditError(f"topic {raw_name} does not exist: nothing to audit (run `streams topics create`)")
    raw_end = await consumer.end_offsets(raw_tps)  # 1
    committed = await _committed(admin, settings.group_id)  # 2
    await asyncio.sleep(settle_s)
    raw_start = await _starts(consumer, raw_tps, since_ms)
    notes: list[str] = []
    if not committed:
        notes.append(
            f"the consumer group {settings.group_id} has committed no offsets: every event without an outcome "
            "counts as in flight (is a worker running with the same STREAMS_TOPIC_PREFIX and STREAMS_APP_ID?)"
        )
    plan = [_Read(audit.RAW, tp, raw_start[tp], raw_end[tp]) for tp in raw_tps]
    outcome_since = None if since_ms is None else since_ms - int(audit.SINCE_SLACK.total_seconds() * 1000)
    others: list[tuple[str, str, str]] = [(t, settings.topic(t), "outcome") for t in audit.OUTCOMES]
    others += [(t, settings.topic(t), "intermediate") for t in audit.INTERMEDIATES]
    others.append((audit.HELD, held_changelog(settings), "held"))
    by_logical: dict[tuple[str, int], int] = {}
    for logical, name, role in others:
        tps = await _partitions(consumer, name)
        if not tps:
            if role != "held":  # no changelog yet: dedup never held anything
                notes.append(f"topic {name} does not exist: not read")
            continue
        ends = await consumer.end_offsets(tps)  # 3
        if role == "intermediate":  # only the tail the group has not processed yet
            begin = await consumer.beginning_offsets(tps)
            starts = {tp: max(begin[tp], committed.get(tp, begin[tp])) for tp in tps}
            for tp in tps:
                if tp in committed:
                    by_logical[(logical, tp.partition)] = committed[tp]
        else:
            starts = await _starts(consumer, tps, outcome_since if role == "outcome" else None)
        plan.extend(_Read(logical, tp, starts[tp], ends[tp]) for tp in tps)
    for tp in raw_tps:
        if tp in committed:
            by_logical[(audit.RAW, tp.partition)] = committed[tp]
    ledger = Ledger(
        raw_name,
        {tp.partition: (raw_start[tp], raw_end[tp]) for tp in raw_tps},
        committed=by_logical,
        since_ms=since_ms,
        group=settings.group_id,
    )
    return plan, ledger, notes


async def _starts(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int | None
) -> dict[TopicPartition, int]:
    """The first offset of each partition, or the first with a timestamp at or after since_ms (the end when
    there is none)."""
    begin = await consumer.beginning_offsets(tps)
    if since_ms is None:
        return dict(begin)
    found = await consumer.offsets_for_times({tp: max(0, since_ms) for tp in tps})
    ends = await consumer.end_offsets(tps)
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}


async def _describe_twice(consumer: AIOKafkaConsumer, settings: Settings, report: Report) -> None:
    """Fills in the article_id, revision and origin of each published-twice offender listed (re-read)."""
    for o in report.offenders["published_twice"]:
        tp = TopicPartition(settings.topic(audit.PUBLISHED), o["again"]["partition"])
        doc = await _record(consumer, tp, o["again"]["offset"])
        if isinstance(doc, dict):
            o["article_id"] = doc.get("article_id")
            o["revision"] = doc.get("revision")
            o["origin"] = doc.get("origin")


async def _committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp: int(meta.offset) for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}


async def _partitions(consumer: AIOKafkaConsumer, name: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(name)
    return [TopicPartition(name, p) for p in sorted(parts or ())]


async def _read(consumer: AIOKafkaConsumer, r: _Read, feed: Any, progress: Progress | None, stall_s: float) -> None:
    """Feeds every committed record of r.tp in [r.start, r.end) to `feed`, in offset order."""
    if r.start >= r.end:
        return
    tp = r.tp
    consumer.assign([tp])
    consumer.seek(tp, r.start)
    pos, last = r.start, time.monotonic()
    topic, end = r.logical, r.end
    while pos < end:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=MAX_RECORDS)
        for msg in batch.get(tp, ()):
            if msg.offset >= end:
                break
            feed(topic, msg.partition, msg.offset, msg.timestamp, msg.key, msg.value)
        new = await consumer.position(tp)
        if new > pos:
            if progress is not None:
                progress.advance(topic, min(new, end) - pos)
            pos, last = new, time.monotonic()
        elif time.monotonic() - last > stall_s:
            raise AuditError(
                f"reading {tp.topic}[{tp.partition}] stalled at offset {pos} (end {end}) for {stall_s:.0f} s"
            )


async def _record(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> Any:
    """The decoded value at one offset (for describing offenders), or None."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=8)
        for msg in batch.get(tp, ()):
            if msg.offset >= offset:
                if msg.offset != offset or msg.value is None:
                    return None
                try:
                    return orjson.loads(msg.value)
                except orjson.JSONDecodeError:
                    return None
        if await consumer.position(tp) > offset:
            return None
    return None
