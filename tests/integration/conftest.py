"""Integration fixtures: the real broker (the one configured, or the embedded one started here), a topic prefix
per test, and workers run as real `streams worker` processes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import topics as topics_registry
from streams.bench.kafkaio import delete_prefix
from streams.bench.procs import WorkerProcess, settings_env  # noqa: F401 (tests import both from here)
from streams.kafka.admin import create_topics
from streams.kafka.client import aiokafka_kwargs
from streams.kafka.local import BrokerError, EmbeddedBroker, is_embedded_target, parse_bootstrap, probe
from streams.schemas import first_violation
from streams.settings import Settings
from streams.stages.dedup.reorder import TICK_KEY as HOLD_TICK_KEY
from streams.stages.takedown.requests import TICK_KEY as TAKEDOWN_TICK_KEY


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker of STREAMS_KAFKA_BOOTSTRAP; the embedded one is started (and later stopped) if none answers."""
    settings = Settings.from_env()
    addrs = parse_bootstrap(settings.kafka_bootstrap)
    if any(probe(a) for a in addrs):
        yield settings.kafka_bootstrap
        return
    if not is_embedded_target(settings):
        pytest.fail(f"no Kafka broker answers at {settings.kafka_bootstrap}")
    broker = EmbeddedBroker(settings)
    try:
        broker.start()
    except BrokerError as exc:  # never a silent skip: integration tests need the real broker
        pytest.fail(f"could not start the embedded Kafka broker: {exc}")
    try:
        yield settings.kafka_bootstrap
    finally:
        broker.stop()


TICK_KEYS = {HOLD_TICK_KEY, TAKEDOWN_TICK_KEY}
_ports = iter(range(16100 + (os.getpid() % 500) * 20, 65000))


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings with a topic prefix of this test's own, a state dir of its own and a free web port.

    Afterwards the prefix's topics (Faust's changelogs included) are deleted: a broker that keeps every test's
    topics serves thousands of partitions by the end of a run and slows down for the tests that come last."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    s = Settings.from_env(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        data_dir=str(tmp_path / "state"),
        web_port=next(_ports),
        topic_partitions=4,
        log_format="text",
        session_timeout_seconds=10.0,  # a killed worker leaves the group in seconds, not a minute
    )
    yield s
    try:
        asyncio.run(delete_topics_with_prefix(s))
    except Exception as exc:  # cleaning up must not turn a passed test into an error
        print(f"could not delete the topics of {prefix}: {exc!r}")


async def delete_topics_with_prefix(settings: Settings) -> None:
    await delete_prefix(settings, [settings.topic_prefix])


@pytest.fixture
def topics(settings: Settings) -> Settings:
    asyncio.run(create_topics(settings))
    return settings


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(settings: Settings, stages: str = "all", module: str = "streams.cli", **env: Any) -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", stages, module, **env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


async def send_all(
    settings: Settings, topic: str, items: list[tuple[bytes | None, bytes]], partition: int | None = None
) -> None:
    prod = AIOKafkaProducer(
        **aiokafka_kwargs(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=topics_registry.MAX_REQUEST_BYTES,
        linger_ms=5,
    )
    await prod.start()
    try:
        futs = [await prod.send(settings.topic(topic), value=v, key=k, partition=partition) for k, v in items]
        await asyncio.gather(*futs)
    finally:
        await prod.stop()


async def read_committed(
    settings: Settings, topic: str, *, expect: int, timeout: float = 60.0, settle: float = 2.0
) -> list[Any]:
    """Every committed record of a topic: waits until `expect` arrived, then `settle` more seconds for extras."""
    name = settings.topic(topic)
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=topics_registry.MAX_REQUEST_BYTES,
        fetch_max_bytes=2 * topics_registry.MAX_REQUEST_BYTES,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(name) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
        tps = [TopicPartition(name, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if len(out) >= expect and settle_until is None:
                settle_until = now + settle
            if (settle_until is not None and now >= settle_until) or now >= deadline:
                assert_valid_records(topic, out)
                return out
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                out.extend(msgs)
    finally:
        await consumer.stop()


def assert_valid_records(topic: str, msgs: list[Any]) -> None:
    """Every record a stage wrote validates against the schema the topic registry names for its topic.

    Producers' input topics (articles.raw, takedowns) are left out: what is on them is whatever was sent,
    including the malformed events the tests send on purpose. Tick records carry no data and no schema."""
    t = topics_registry.BY_NAME.get(topic)
    if t is None or t.schema is None or t.name in ("articles.raw", "takedowns"):
        return
    for m in msgs:
        if m.key in TICK_KEYS:
            continue
        value = orjson.loads(m.value)
        violation = first_violation(t.schema, value)
        assert violation is None, f"{topic}@{m.partition}:{m.offset} breaks {t.schema}: {violation}\n{value}"


def values(msgs: list[Any]) -> list[Any]:
    return [orjson.loads(m.value) for m in msgs]
