"""Makes faust-streaming's exactly-once hold across crashes and rebalances: five corrections to Faust 0.15.3.

Each was found by a test here against the real broker (test_exactly_once, test_dedup_pipeline,
test_scale_out, test_recovery_observability) and has the same shape: output committed without the input
offset that produced it (a duplicate after a crash), or the reverse (a loss).

1. Transaction routing. Faust commits partition p's consumed offsets in the transaction of producer p, but
   `TransactionManager.send` picks the producer from the *destination* partition of the record sent, so
   output and offsets commit independently (faust-streaming issues 517 and 177: 86 duplicates in 1,200
   after kill -9 here). While an event is processed, its output now joins its source partition's
   transaction; sends outside an event keep Faust's rule.
2. Commit race. Faust's periodic commit runs beside the agents and could commit the output of an event not
   yet acked. A per-app commit gate is held by an agent from the start of an event to its ack
   (`async with processing(app, event)`) and by a commit for the whole of offset collection and commit.
3. Table writes. Faust queues changelog records in a buffer drained by a background task, outside any event,
   so a table update could commit after, or without, the event that made it. Updates made while processing
   an event are published in its transaction and awaited before the event is acked.
4. Recovery highwater. Under exactly-once Faust reads a changelog's end from a fetch cache that a
   just-assigned partition lacks (-1): the table of a dead worker then fails Faust's consistency check, or
   is skipped. The end is asked of the broker (the last stable offset).
5. Stale committed offsets. A transactional offset commit is visible to OffsetFetch only once its markers
   are written, and aiokafka cannot ask to wait (KIP-447's require_stable): a worker given a partition back
   right after committing it could re-read the old offset. What this process committed is the floor of a
   seek, and `processing` refuses an offset already processed in the same consumer generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faust.streams import current_event
from faust.tables.base import Collection as Table
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_PATCHED = "_article_streams_source_partition_transactions"
log = logging.getLogger("streams.eos")


async def _send(
    self: TransactionManager,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    timestamp: float | None,
    headers: Any,
    *,
    transactional_id: str | None = None,
) -> Any:
    destination = self.consumer.key_partition(topic, key, partition)
    event = current_event()
    if event is not None:
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        transactional_id = f"{self.app.conf.id}-{group}-{source.partition}"
    elif destination is not None:
        group = self.app.assignor.group_for_topic(topic)
        transactional_id = f"{self.app.conf.id}-{group}-{destination}"
    else:
        transactional_id = None
    return await self.producer.send(
        topic, key, value, destination, timestamp, headers, transactional_id=transactional_id
    )


def gate(app: Any) -> asyncio.Lock:
    """The app's commit gate (created on first use, inside the worker's event loop)."""
    lock = app.__dict__.get("_streams_commit_gate")
    if lock is None:
        lock = app.__dict__["_streams_commit_gate"] = asyncio.Lock()
    return lock


def _processed(app: Any) -> dict[Any, tuple[int, int]]:
    seen = app.__dict__.get("_streams_processed")
    if seen is None:
        seen = app.__dict__["_streams_processed"] = {}
    return seen  # type: ignore[no-any-return]


@asynccontextmanager
async def processing(app: Any, event: Any) -> AsyncIterator[str | None]:
    """Process one event under the commit gate and ack it before the gate opens again.

    Yields None for an event to process, or why it must not be: "stale_generation" (its partition was
    revoked while it waited for the gate) or "already_processed" (an offset this generation processed).
    """
    async with gate(app):
        message = event.message
        generation = app.consumer_generation_id
        seen = _processed(app)
        last = seen.get(message.tp)
        skip: str | None = None
        if message.generation_id != generation:
            skip = "stale_generation"
        elif last is not None and last[0] == generation and message.offset <= last[1]:
            skip = "already_processed"
        if skip:
            log.warning(
                "not processing %s[%s]@%s: %s (generation %s, last processed %s)",
                message.topic,
                message.partition,
                message.offset,
                skip,
                generation,
                last,
            )
        yield skip
        if skip is None:
            await _drain_table_writes(app)
            seen[message.tp] = (generation, message.offset)
            event.ack()


def _table_writes(app: Any) -> list[asyncio.Future[Any]]:
    pending = app.__dict__.get("_streams_table_writes")
    if pending is None:
        pending = app.__dict__["_streams_table_writes"] = []
    return pending  # type: ignore[no-any-return]


async def _drain_table_writes(app: Any) -> None:
    pending = _table_writes(app)
    while pending:
        batch = list(pending)
        pending.clear()
        await asyncio.gather(*batch)


def _send_changelog(
    self: Table,
    partition: int | None,
    key: Any,
    value: Any,
    key_serializer: Any = None,
    value_serializer: Any = None,
) -> Any:
    fut = self.changelog_topic.as_future_message(
        key=key,
        value=value,
        partition=partition,
        key_serializer=key_serializer if key_serializer is not None else self.key_serializer,
        value_serializer=value_serializer if value_serializer is not None else self.value_serializer,
        callback=self._on_changelog_sent,
        eager_partitioning=True,
    )
    if self.app.in_transaction and current_event() is not None:
        # Published by a task that inherits the event's context, so it joins the event's transaction;
        # `processing` awaits it before the event is acked.
        _table_writes(self.app).append(asyncio.ensure_future(self.changelog_topic.publish_message(fut)))
    else:
        self.app.producer.send_soon(fut)
    return fut


_original_commit = Consumer.commit


# Offsets this process committed, by (group, topic, partition): the floor for seeking after a rebalance.
_committed_here: dict[tuple[str, str, int], int] = {}


async def _gated_commit(self: Consumer, *args: Any, **kwargs: Any) -> bool:
    async with gate(self.app):
        done = await _original_commit(self, *args, **kwargs)
        group = self.app.conf.id
        for tp, offset in list(self._committed_offset.items()):  # noqa: SLF001 - updated by the commit
            key = (group, tp.topic, tp.partition)
            if offset is not None and offset > _committed_here.get(key, -1):
                _committed_here[key] = offset
        return done


async def _stable_seek_to_committed(self: AIOKafkaConsumerThread) -> Any:
    # A transactional offset commit becomes visible to OffsetFetch only once the coordinator has written its
    # markers; aiokafka's OffsetFetch (v3) cannot ask to wait for that (KIP-447's require_stable). A worker
    # that commits on revocation and is at once given the partition back can read the previous offset and
    # process committed events again. What this process committed itself is the floor.
    consumer = self._ensure_consumer()
    group = self.app.conf.id
    committed = await consumer.seek_to_committed()
    for tp, offset in list(committed.items()):
        ours = _committed_here.get((group, tp.topic, tp.partition))
        if ours is not None and (offset is None or ours > offset):
            consumer.seek(tp, ours)
            committed[tp] = ours
    return committed


_original_perform_seek = Consumer.perform_seek


async def _perform_seek(self: Consumer) -> None:
    # Faust rewinds every assigned partition to its committed offset when recovery ends, and may already
    # have processed records past it in the same generation. Their output sits in open transactions: abort
    # those, forget their acks and that they were processed, then seek, so each record is processed once
    # more and its output commits exactly once with its offset.
    async with gate(self.app):
        tps = set(self.assignment())
        if self.in_transaction and tps:
            manager = self.transactions
            for transactional_id in sorted(manager._tps_to_transactional_ids(tps)):  # type: ignore[attr-defined]  # noqa: SLF001
                await manager.producer.abort_transaction(transactional_id)
                await manager.producer.maybe_begin_transaction(transactional_id)
            for tp in tps:
                self._acked.pop(tp, None)  # noqa: SLF001
                self._acked_index.pop(tp, None)  # noqa: SLF001
        processed = _processed(self.app)
        for tp in tps:
            processed.pop(tp, None)
        await _original_perform_seek(self)


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> Any:
    return await self.call_thread(_stable_seek_to_committed, self)


async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[Any]) -> Any:
    # Faust reads the last stable offset cached from the latest fetch response, which a partition assigned
    # a moment ago does not have yet (None, turned into -1): recovery of a table that moved from a dead
    # worker then fails its consistency check. ListOffsets under read_committed returns the LSO itself.
    return await self._ensure_consumer().end_offsets(partitions)


def install() -> None:
    """Idempotent: patches TransactionManager.send, Consumer.commit and the highwater lookup once per process."""
    if not getattr(TransactionManager, _PATCHED, False):
        TransactionManager.send = _send  # type: ignore[method-assign]
        Consumer.commit = _gated_commit  # type: ignore[method-assign]
        AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
        AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
        Table.send_changelog = _send_changelog  # type: ignore[method-assign]
        Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
        setattr(TransactionManager, _PATCHED, True)
