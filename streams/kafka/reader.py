"""Random reads of committed records by coordinates: the takedown stage re-reads an article to reinstate it.

The takedown stage keeps no article text: it remembers where each article sits on articles.enriched
(partition, offset) and reads it back when a lift or an expiry lets it out again. One consumer, no group,
read_committed, assigned to one partition per read; reads are rare (one per reinstated article), so they
are serialised.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings

log = logging.getLogger("streams.reader")


class RecordReader:
    """`await reader.get(topic, partition, offset)` → the committed record's value, or None when the offset
    is gone (retention) or holds no committed record (an aborted one, a marker)."""

    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **aiokafka_kwargs(self.settings),
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="none",
                max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
                fetch_max_bytes=topics.MAX_REQUEST_BYTES,
                client_id="article-streams-reader",
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def get(self, logical_topic: str, partition: int, offset: int) -> bytes | None:
        async with self._lock:
            consumer = await self._ensure()
            tp = TopicPartition(self.settings.topic(logical_topic), partition)
            consumer.assign([tp])
            start = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset under read_committed
            if offset < start or offset >= end:
                return None
            consumer.seek(tp, offset)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout_s
            while loop.time() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=16)
                for msg in batch.get(tp, []):
                    if msg.offset == offset:
                        return msg.value
                    if msg.offset > offset:
                        return None  # the offset held an aborted record or a marker: skipped by read_committed
                if await consumer.position(tp) > offset:
                    return None
            log.warning("reading %s[%s]@%s timed out", tp.topic, partition, offset)
            return None

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> RecordReader:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
