"""Producer and consumer tools: the reference producer, tail, and the replay of rejected events."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import topics
from streams.codec import dumps
from streams.kafka.client import aiokafka_kwargs
from streams.rejections import original_key, original_payload
from streams.settings import Settings

MAX_REQUEST = 11 * 1024 * 1024  # raw events may be up to 10 MiB so that oversize ones arrive and get a reason


def producer(settings: Settings) -> AIOKafkaProducer:
    # Idempotent, acks=all: a retried send is never written twice.
    return AIOKafkaProducer(
        **aiokafka_kwargs(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=MAX_REQUEST,
        linger_ms=5,
        client_id="article-streams-produce",
    )


@dataclass
class ProduceReport:
    sent: int = 0
    skipped: int = 0  # lines that are not JSON in non-raw mode (reported, not sent)


def _lines(stream: BinaryIO) -> Iterable[bytes]:
    for line in stream:
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield line


async def _start(client: Any) -> None:
    """Start an aiokafka client, closing it again when the broker cannot be reached."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


async def produce(
    settings: Settings,
    source: BinaryIO,
    *,
    topic: str = "articles.raw",
    key_field: str | None = "url",
    raw: bool = False,
    err: Any = sys.stderr,
) -> ProduceReport:
    """Send each JSON line to `topic` (logical name). raw=True sends each line's bytes unchanged, keyless."""
    name = topics.get(topic).physical(settings)
    report = ProduceReport()
    prod = producer(settings)
    await _start(prod)
    try:
        pending = []
        for n, line in enumerate(_lines(source), 1):
            key: bytes | None = None
            if not raw:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    print(f"line {n}: not JSON ({exc}); use --raw to send it anyway", file=err)
                    report.skipped += 1
                    continue
                if key_field and isinstance(doc, dict) and doc.get(key_field) is not None:
                    key = str(doc[key_field]).encode()
            pending.append(await prod.send(name, value=line, key=key))
            report.sent += 1
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return report


async def records(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    timeout: float | None = None,
    until_end: bool = False,
) -> AsyncIterator[Any]:
    """Committed records of a topic (read_committed). until_end stops at the end offsets seen at start."""
    name = topics.get(topic).physical(settings)
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
        max_partition_fetch_bytes=MAX_REQUEST,
        fetch_max_bytes=MAX_REQUEST * 2,
        client_id="article-streams-tail",
    )
    await _start(consumer)
    try:
        parts = consumer.partitions_for_topic(name)
        if not parts:
            await consumer._client.force_metadata_update()  # fresh topic
            parts = consumer.partitions_for_topic(name) or set()
        if not parts:
            raise SystemExit(f"topic {name} does not exist (run `streams topics create`)")
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        end = await consumer.end_offsets(tps) if until_end else {}
        count = 0
        while True:
            if until_end and await _at_end(consumer, tps, end):
                return
            batch = await consumer.getmany(timeout_ms=int((timeout or 1.0) * 1000) if timeout else 1000)
            if not batch:
                if timeout is not None:
                    return
                continue
            for _tp, msgs in sorted(batch.items(), key=lambda kv: kv[0].partition):
                for msg in msgs:
                    yield msg
                    count += 1
                    if max_records is not None and count >= max_records:
                        return
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition], end: dict[TopicPartition, int]) -> bool:
    for tp in tps:
        if await consumer.position(tp) < end[tp]:
            return False
    return True


def render(value: bytes | None) -> bytes:
    """One JSON document per line: the value if it is JSON, else a wrapper with its bytes in base64."""
    if value is None:
        return b"null"
    try:
        return orjson.dumps(orjson.loads(value))
    except orjson.JSONDecodeError:
        import base64

        return dumps({"_not_json_b64": base64.b64encode(value).decode()})


async def tail(settings: Settings, topic: str, out: BinaryIO, **kwargs: Any) -> int:
    n = 0
    async for msg in records(settings, topic, **kwargs):
        out.write(render(msg.value) + b"\n")
        out.flush()
        n += 1
    return n


@dataclass
class ReplayReport:
    replayed: int = 0
    truncated: int = 0  # cannot be replayed whole: their payload was cut at the limit
    other_reason: int = 0


async def replay_rejected(settings: Settings, *, reason: str | None = None, dry_run: bool = False) -> ReplayReport:
    """Re-send rejected events (all, or one reason) with their original key to articles.raw."""
    report = ReplayReport()
    raw_topic = topics.RAW.physical(settings)
    prod = producer(settings)
    await _start(prod)
    try:
        async for msg in records(settings, "articles.rejected", from_beginning=True, until_end=True):
            rec = orjson.loads(msg.value)
            if reason and rec.get("reason") != reason:
                report.other_reason += 1
                continue
            if rec.get("payload_truncated"):
                report.truncated += 1
                continue
            if not dry_run:
                await prod.send_and_wait(raw_topic, value=original_payload(rec), key=original_key(rec))
            report.replayed += 1
    finally:
        await prod.stop()
    return report
