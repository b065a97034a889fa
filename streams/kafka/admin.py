"""Topic provisioning and inspection against the configured cluster (streams topics create | list)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams import topics
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    config: dict[str, str]


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    client = AIOKafkaAdminClient(**aiokafka_kwargs(settings), client_id="article-streams-admin")
    try:
        await client.start()
    except BaseException:
        await client.close()  # a refused login leaves the bootstrap connection's task behind otherwise
        raise
    return client


async def create_topics(settings: Settings) -> list[tuple[str, str]]:
    """Create every registry topic that is missing; returns (physical name, created|exists)."""
    client = await _admin(settings)
    try:
        existing = set(await client.list_topics())
        result: list[tuple[str, str]] = []
        missing = []
        for t in topics.ALL:
            name = t.physical(settings)
            if name in existing:
                result.append((name, "exists"))
                continue
            missing.append(
                NewTopic(name, t.partition_count(settings), settings.topic_replication, topic_configs=t.config())
            )
        if missing:
            resp = await client.create_topics(missing, timeout_ms=30000)
            errors = {err[0]: (err[1], err[2] if len(err) > 2 else "") for err in resp.topic_errors}
            for nt in missing:
                code, msg = errors.get(nt.name, (0, ""))
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {nt.name} failed: error {code} {msg}")
                result.append((nt.name, "created" if code == 0 else "exists"))
        await wait_until_served(client, {t.physical(settings): t.partition_count(settings) for t in topics.ALL})
        return sorted(result)
    finally:
        await client.close()


async def wait_until_served(client: AIOKafkaAdminClient, wanted: dict[str, int], timeout_s: float = 60.0) -> None:
    """Return once the broker's metadata shows every topic with all its partitions led.

    The controller acknowledges CreateTopics before the broker's metadata cache has the topic: for the first
    seconds after a broker starts, Metadata requests leave a just-created topic out. A producer or worker
    started right after `streams topics create` would then fail or auto-create, so creation waits here.
    """
    deadline = time.monotonic() + timeout_s
    missing: list[str] = list(wanted)
    while True:
        served = {
            d["topic"]
            for d in await client.describe_topics(list(wanted))
            if d["error_code"] == 0
            and len(d["partitions"]) == wanted[d["topic"]]
            and all(p["leader"] >= 0 for p in d["partitions"])
        }
        missing = sorted(set(wanted) - served)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker does not serve these topics {timeout_s:.0f} s after creation: {missing}")
        await asyncio.sleep(0.2)


async def cluster_id(settings: Settings) -> str:
    """The Kafka cluster's id (local state is kept per cluster: a reset broker has a new one)."""
    client = await _admin(settings)
    try:
        described = await client.describe_cluster()
        return str(described.get("cluster_id") or "unknown")
    finally:
        await client.close()


async def wait_for_cluster(settings: Settings, say: Any = print) -> str:
    """The cluster's id once the cluster answers: a worker started before its broker (compose, a restart of
    both) waits `kafka_wait_seconds` for it, saying so every few seconds, instead of crashing at once."""
    deadline = time.monotonic() + settings.kafka_wait_seconds
    pause = 0.5
    while True:
        try:
            return await cluster_id(settings)
        except Exception as exc:  # aiokafka raises KafkaConnectionError, or a timeout, while nothing answers
            if time.monotonic() + pause > deadline:
                raise
            say(f"waiting for Kafka at {settings.kafka_bootstrap}: {exc.__class__.__name__}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


async def describe(settings: Settings) -> list[TopicState]:
    """The registry's topics as the broker has them (missing ones are left out)."""
    client = await _admin(settings)
    try:
        existing = set(await client.list_topics())
        names = [t.physical(settings) for t in topics.ALL if t.physical(settings) in existing]
        if not names:
            return []
        described = await client.describe_topics(names)
        parts: dict[str, int] = {d["topic"]: len(d["partitions"]) for d in described}
        configs: dict[str, dict[str, str]] = {n: {} for n in names}
        responses = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        wanted = {"cleanup.policy", "retention.ms", "max.message.bytes"}
        for resp in responses:
            for res in resp.resources:
                name = res[3]
                for entry in res[4]:
                    if entry[0] in wanted:
                        configs.setdefault(name, {})[entry[0]] = entry[1]
        return [TopicState(n, parts.get(n, 0), configs.get(n, {})) for n in names]
    finally:
        await client.close()


def describe_row(state: TopicState, settings: Settings) -> dict[str, Any]:
    logical = state.name[len(settings.topic_prefix) :] if settings.topic_prefix else state.name
    t = topics.BY_NAME.get(logical)
    return {
        "topic": state.name,
        "partitions": state.partitions,
        "cleanup.policy": state.config.get("cleanup.policy", "?"),
        "retention.ms": state.config.get("retention.ms", "?"),
        "key": t.key if t else "?",
        "schema": (t.schema or "-") if t else "?",
    }
