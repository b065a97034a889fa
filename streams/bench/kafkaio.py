"""What the benchmark does on Kafka itself: topics of a run, the backlog, counting committed outputs, latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import topics
from streams.bench.corpus import Event
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings

Progress = Callable[[int], None]  # called with the number of new outputs seen


async def delete_prefix(settings: Settings, prefixes: Sequence[str], groups: Iterable[str] = ()) -> int:
    """Deletes every topic whose name starts with one of `prefixes`, and the consumer groups; returns the count."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), client_id="article-streams-bench")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names, timeout_ms=60000)
        for group in groups:  # aiokafka's admin has no delete_consumer_groups: send DeleteGroups ourselves
            await _delete_group(admin, group)
        return len(names)
    finally:
        await admin.close()


async def groups_with_prefix(settings: Settings, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), client_id="article-streams-bench")
    await admin.start()
    try:
        return [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(prefix)]
    finally:
        await admin.close()


async def _delete_group(admin: AIOKafkaAdminClient, group: str, attempts: int = 10) -> None:
    """Deletes a consumer group, waiting out NON_EMPTY_GROUP (68) while a stopped worker's leave settles."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    for _ in range(attempts):
        try:
            node = await admin.find_coordinator(group)
            resp = await admin._send_request_to_node(node, DeleteGroupsRequest([group]))
        except Exception:  # best effort: a group left behind expires with its offsets
            return
        codes = [code for _, code in resp.results]
        if not any(code == 68 for code in codes):
            return
        await asyncio.sleep(1.0)


def committed_consumer(settings: Settings, **kw: Any) -> AIOKafkaConsumer:
    """A group-less read_committed consumer with the worker's fetch sizes."""
    options: dict[str, Any] = {
        "group_id": None,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "max_partition_fetch_bytes": topics.MAX_REQUEST_BYTES,
        "fetch_max_wait_ms": 20,
    }
    return AIOKafkaConsumer(**aiokafka_kwargs(settings), **{**options, **kw})


async def assign_all(consumer: AIOKafkaConsumer, names: Sequence[str], *, from_end: bool) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
    if not tps:
        raise RuntimeError(f"no partitions found for {', '.join(names)}")
    consumer.assign(tps)
    if from_end:
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the position now, before anything is sent
            await consumer.position(tp)
    else:
        await consumer.seek_to_beginning(*tps)
    return tps


def producer(settings: Settings, **kw: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 20,
        "max_batch_size": 1024 * 1024,
        "max_request_size": topics.MAX_REQUEST_BYTES,
    }
    return AIOKafkaProducer(**aiokafka_kwargs(settings), **{**options, **kw})


async def produce(settings: Settings, topic: str, events: Sequence[Event]) -> tuple[float, float]:
    """Sends the events (each stamped with the wall clock as it is sent); returns (started, ended) times."""
    started = time.time()
    prod = producer(settings)
    await prod.start()
    try:
        futures = [await prod.send(topic, key=e.key, value=e.value) for e in events]
        await asyncio.gather(*futures)
    finally:
        await prod.stop()
    return started, time.time()


async def first_create_time(settings: Settings, names: Sequence[str]) -> float:
    """The earliest record timestamp (CreateTime: when the processor sent it) on the given topics (seconds)."""
    consumer = committed_consumer(settings, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        tps = await assign_all(consumer, names, from_end=False)
        ends = await consumer.end_offsets(tps)
        first = float("inf")
        for tp in tps:
            if ends[tp] == 0:
                continue
            starts = await consumer.beginning_offsets([tp])
            consumer.seek(tp, starts[tp])
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            for msgs in batch.values():
                first = min([first, *(m.timestamp / 1000 for m in msgs)])
        return first
    finally:
        await consumer.stop()


class OutputWatch:
    """Counts the committed records of the output topics from the beginning; `wait(n)` returns when n are in.

    `alive()` is asked between reads, so that a processor that died ends the wait with its log, not a timeout."""

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.settings = settings
        self.names = list(names)
        self.counts = dict.fromkeys(self.names, 0)
        self.timeline: list[tuple[float, int]] = []  # (time, outputs so far), one point per read that brought some

    async def wait(
        self, n: int, *, timeout: float, alive: Callable[[], str | None], progress: Progress | None = None
    ) -> float:
        consumer = committed_consumer(self.settings)
        await consumer.start()
        try:
            await assign_all(consumer, self.names, from_end=False)
            deadline = time.monotonic() + timeout
            total = 0
            while total < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {total:,} of {n:,} outputs after {timeout:.0f} s: {self.counts}")
                why = alive()
                if why is not None:
                    raise RuntimeError(why)
                batch = await consumer.getmany(timeout_ms=100, max_records=10000)
                got = 0
                for tp, msgs in batch.items():
                    self.counts[tp.topic] += len(msgs)
                    got += len(msgs)
                if got:
                    total += got
                    self.timeline.append((time.time(), total))
                    if progress is not None:
                        progress(got)
            return self.timeline[-1][0] if self.timeline else time.time()
        finally:
            await consumer.stop()


def event_id_of(value: bytes | None) -> str | None:
    """The raw event's id an output carries: the raw event itself (identity hops) or the article (article.v1)."""
    if not value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("article"), dict):  # duplicate.v1: the article it names
        doc = doc["article"]
    eid = doc.get("event_id") if isinstance(doc, dict) else None
    return eid if isinstance(eid, str) else None


async def latency_phase(
    settings: Settings,
    raw_topic: str,
    out_topic: str,
    events: Sequence[Event],
    rate: float,
    *,
    settle: float,
    alive: Callable[[], str | None],
    progress: Progress | None = None,
    elsewhere_topics: Sequence[str] = (),
) -> tuple[list[float], int, int]:
    """Sends `events` at `rate` per second, each stamped with the wall clock as it is sent (the raw record's
    timestamp); returns each one's time from that stamp to when a read_committed consumer of `out_topic` got
    it (seconds, sorted), how many were sent, and how many came out on `elsewhere_topics` instead (an article
    the pipeline decided was a duplicate: no latency to measure, but not lost either). Waits `settle` seconds
    after the last send for stragglers; what has not come out by then is neither."""
    consumer = committed_consumer(settings)
    await consumer.start()
    prod = producer(settings, linger_ms=0)
    await prod.start()
    sent: dict[str, int] = {}
    got: dict[str, float] = {}
    elsewhere: set[str] = set()
    done_sending = asyncio.Event()
    try:
        await assign_all(consumer, [out_topic, *elsewhere_topics], from_end=True)

        async def receive() -> None:
            last_send_done: float | None = None
            while len(got) + len(elsewhere) < len(events):
                batch = await consumer.getmany(timeout_ms=20)
                now = time.time()
                for tp, msgs in batch.items():
                    for m in msgs:
                        eid = event_id_of(m.value)
                        if tp.topic != out_topic:
                            if eid in sent and eid not in got:
                                elsewhere.add(eid)
                            continue
                        if eid in sent and eid not in got:
                            got[eid] = now - sent[eid] / 1000
                            if progress is not None:
                                progress(1)
                if done_sending.is_set():
                    last_send_done = last_send_done or time.monotonic()
                    if time.monotonic() - last_send_done > settle:
                        return
                why = alive()
                if why is not None:
                    raise RuntimeError(why)

        receiver = asyncio.ensure_future(receive())
        t0 = time.monotonic()
        for i, e in enumerate(events):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            if receiver.done():
                break
            ts = int(time.time() * 1000)
            if e.event_id is not None:
                sent[e.event_id] = ts
            await prod.send(raw_topic, key=e.key, value=e.value, timestamp_ms=ts)
        done_sending.set()
        await receiver
        return sorted(got.values()), len(sent), len(elsewhere - got.keys())
    finally:
        await prod.stop()
        await consumer.stop()
