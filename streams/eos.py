"""Makes faust-streaming's exactly-once hold across crashes: records join the transaction of their SOURCE partition.

faust-streaming 0.15.3 opens one transactional producer per source partition and commits partition p's
consumed offsets in producer p's transaction, but `TransactionManager.send` picks the producer from the
*destination* partition of the record being sent. A record produced while processing source partition 0 that
lands on destination partition 2 is committed by producer 2, independently of partition 0's offsets: after a
crash the record survives while the offset commit is aborted, and the event is processed again (duplicates
under read_committed; faust-streaming issues 517 and 177). tests/integration/test_exactly_once.py kills a
worker mid-stream and fails without this fix.

Second, Faust's periodic commit runs concurrently with the agents: it can commit a transaction that already
holds the output of an event whose offset is not yet acknowledged (the agent is between its send and its ack).
The transaction then commits that output without its offset, and after a crash the event is processed again.

The fixes: (1) while an event is being processed, the transactional id is the one of that event's source
partition, which is also the id under which its offsets are committed (sends outside an event keep Faust's
rule); (2) a per-app commit gate: an agent holds it from the start of an event until the event is acked
(`async with processing(app, event)`), and a commit takes it for the whole of offset collection and
transaction commit, so a transaction holds exactly the output of the offsets it commits; (3) before a
commit, the table changelog records that Faust queues in its producer buffer are sent, so a table update
commits with the event that made it; (4) the highwater of a changelog under exactly-once is asked of the
broker (the last stable offset) instead of read from a fetch cache that a just-assigned partition lacks,
so a table moved from a dead worker recovers instead of failing Faust's consistency check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faust.streams import current_event
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_PATCHED = "_article_streams_source_partition_transactions"


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


@asynccontextmanager
async def processing(app: Any, event: Any) -> AsyncIterator[None]:
    """Process one event under the commit gate and ack it before the gate opens again."""
    async with gate(app):
        yield
        event.ack()


_original_commit = Consumer.commit


async def _gated_commit(self: Consumer, *args: Any, **kwargs: Any) -> bool:
    async with gate(self.app):
        # Table changelog records are queued in Faust's producer buffer and sent by a background task: send
        # those of the events already processed now, so they join the transaction that commits the events.
        await self.app.producer.buffer.flush()
        return await _original_commit(self, *args, **kwargs)


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
        setattr(TransactionManager, _PATCHED, True)
