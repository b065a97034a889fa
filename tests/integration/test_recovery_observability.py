"""A worker restoring a large dedup state from its changelogs says so: /health answers, /ready is 503, and
the recovery gauges count down to 0 — then the recovered state catches a copy."""

from __future__ import annotations

import asyncio
import time
import urllib.error

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.codec import short_hash
from tests.factories.dedup_state import archive_entry
from tests.factories.stories import article
from tests.integration.conftest import read_committed, send_all, values

ENTRIES = 40_000


async def _fill_changelogs(s) -> None:
    """Writes what the dedup tables would hold after ENTRIES articles (Faust's json codec: key and value JSON)."""
    articles, content = (f"{s.group_id}-dedup-articles-changelog", f"{s.group_id}-dedup-content-changelog")
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        cfg = {"cleanup.policy": "compact"}
        await admin.create_topics(
            [NewTopic(articles, 1, 1, topic_configs=cfg), NewTopic(content, 1, 1, topic_configs=cfg)]
        )
    finally:
        await admin.close()
    prod = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, linger_ms=20, acks="all")
    await prod.start()
    try:
        now_ms = int(time.time() * 1000)
        futs = []
        for i in range(ENTRIES):
            aid, rev, entry = archive_entry(i, now_ms, signature="")
            futs.append(await prod.send(articles, key=orjson.dumps(aid), value=orjson.dumps(entry), partition=0))
            futs.append(await prod.send(content, key=orjson.dumps(rev), value=orjson.dumps(aid), partition=0))
        await asyncio.gather(*futs)
    finally:
        await prod.stop()


def _gauge(body: bytes, name: str, table: str) -> float | None:
    prefix = f'{name}{{table="{table}"}} '.encode()
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_recovery_is_visible_while_it_runs_and_the_state_comes_back(topics, worker_factory):
    s = topics
    asyncio.run(_fill_changelogs(s))
    worker = worker_factory(s, stages="dedup")  # empty state dir: everything comes from the changelogs
    seen_remaining, seen_unready_health = 0.0, False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert worker.alive(), worker.tail()
        try:
            ready_status, _ = worker.get("/ready")
            health_status, _ = worker.get("/health")
            _, metrics = worker.get("/metrics")
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
            continue
        remaining = _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles") or 0.0
        seen_remaining = max(seen_remaining, remaining)
        if ready_status == 503 and health_status == 200:
            seen_unready_health = True
        if ready_status == 200:
            break
        time.sleep(0.3)
    assert ready_status == 200, worker.tail()
    assert seen_unready_health, "/health should answer while /ready says 503 during recovery"
    assert seen_remaining > 1000, f"the recovery gauge never showed the backlog (max {seen_remaining})"
    for _ in range(30):  # the gauges are exported every 2 s
        _, metrics = worker.get("/metrics")
        if _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles") == 0:
            break
        time.sleep(0.5)
    assert _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles") == 0
    assert _gauge(metrics, "streams_state_recovery_progress_ratio", "dedup-articles") == 1.0

    # The recovered state is real: a syndicated copy of archive article 123 (same text) is caught.
    copy = article(1, url="https://copier.example/123", text="text 123", title="")
    copy["revision"] = short_hash("text 123")
    asyncio.run(send_all(s, "articles.dedup-sequenced", [(copy["article_id"].encode(), orjson.dumps(copy))]))
    [dup] = values(asyncio.run(read_committed(s, "articles.duplicates", expect=1, timeout=120, settle=0.5)))
    assert dup["match"] == "same_content" and dup["duplicate_of"] == short_hash("https://archive.example/123")
