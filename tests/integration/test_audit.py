"""`streams audit` through the real broker: a worker running every stage balances the fixture, bad events and a
takedown's block, retraction and reinstatement; a doubled publication makes it fail; and the group's committed
offsets tell an event in flight from a lost one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import takedowns
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings
from tests.factories import stories
from tests.factories.takedowns import lift, request
from tests.integration.conftest import read_committed, send_all, settings_env, values

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample_raw.jsonl"
BAD = [
    b"{broken",
    b'{"url": "https://bad.example/a", "body": "\xff\xfe not UTF-8"}',
    orjson.dumps({"url": 42, "body": "a number for a URL"}),
    orjson.dumps({"url": "ftp://files.example/a.txt", "body": "not a web link"}),
]


def streams_audit(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "audit", *args],
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=180,
    )


def audit_json(s: Settings) -> tuple[int, dict[str, Any]]:
    done = streams_audit(s, "--json")
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def settled_audit(s: Settings, raw: int, *, timeout: float = 240.0, until: Any = None) -> tuple[int, dict[str, Any]]:
    """The audit once every one of `raw` events has an outcome (nothing in flight) and `until(report)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        rc, doc = audit_json(s)
        settled = doc["accounting"]["raw"] == raw and doc["accounting"]["in_flight"] == 0
        if settled and (until is None or until(doc)) or time.monotonic() > deadline:
            return rc, doc
        time.sleep(2.0)


def now() -> datetime:
    return datetime.now(UTC)


def test_audit_balances_a_run_through_every_stage_and_fails_on_a_doubled_publication(topics, worker_factory):
    s = topics
    worker = worker_factory(s)  # every stage
    lines = [line for line in FIXTURE.read_bytes().splitlines() if line.strip()]
    good = [(str(orjson.loads(line)["url"]).encode(), line) for line in lines]
    for i in range(3):  # three invented stories of our own: unique articles, each published once
        title, text = stories.story(9100 + i)
        url = f"https://audit-{i}.example.net/story"
        good.append(
            (url.encode(), orjson.dumps({"url": url, "title": title, "body": text, "source": {"name": "Wire"}}))
        )
    blocked_url = request("url", "https://news.example.org/world/story-22", now=now())
    asyncio.run(takedowns.submit(s, blocked_url))
    worker.wait_ready(timeout=240)
    asyncio.run(read_committed(s, "takedowns.audit", expect=1, timeout=60, settle=0))  # in force before articles
    asyncio.run(send_all(s, "articles.raw", good + [(None, b) for b in BAD]))
    raw = len(good) + len(BAD)

    rc, doc = settled_audit(s, raw)
    assert rc == 0 and doc["balanced"], doc["summary"]
    acc = doc["accounting"]
    assert acc["raw"] == raw == acc["published"] + acc["duplicate"] + acc["rejected"] + acc["blocked"]
    assert acc["blocked"] == 1, doc  # story 22
    assert acc["rejected"] >= 3 + len(BAD)  # the fixture's three bad events and ours
    assert acc["duplicate"] >= 2 and acc["published"] >= 6  # a re-send, copies; the update is a publication
    assert doc["counts"]["rejected_by"]["normalize"]["invalid_json"] >= 1

    # a takedown retracts a publication, its lift reinstates it: still balanced, nothing published twice
    published = values(asyncio.run(read_committed(s, "articles.published", expect=acc["published"], settle=0.5)))
    once = [p for p in published if [q["article_id"] for q in published].count(p["article_id"]) == 1]
    assert len(once) >= 2, published
    withdrawn, doubled = once[0], once[1]
    takedown = request("url", withdrawn["canonical_url"], now=now())
    asyncio.run(takedowns.submit(s, takedown))
    asyncio.run(read_committed(s, "articles.retractions", expect=1, timeout=120, settle=0))
    asyncio.run(takedowns.submit(s, lift(takedown, now=now())))
    rc, doc = settled_audit(s, raw, until=lambda d: d["counts"]["reinstated"] == 1)
    assert rc == 0 and doc["balanced"], doc["summary"]
    assert doc["counts"]["retracted"] == 1 and doc["counts"]["reinstated"] == 1
    assert doc["final"]["reinstated"] == 1 and doc["final"]["taken_down"] == 1  # story 22 stays blocked

    # a doubled outcome: one publication written again with the same origin
    asyncio.run(send_all(s, "articles.published", [(doubled["article_id"].encode(), orjson.dumps(doubled))]))
    rc, doc = audit_json(s)
    assert rc == 1 and not doc["balanced"]
    origin = doubled["origin"]
    assert doc["accounted_more_than_once"] == [
        {
            "topic": origin["topic"],
            "partition": origin["partition"],
            "offset": origin["offset"],
            "outcomes": 2,
            "kinds": ["published"],
        }
    ]
    [twice] = doc["published_twice"]
    assert twice["article_id"] == doubled["article_id"] and twice["origin"]["offset"] == origin["offset"]
    text = streams_audit(s)
    assert text.returncode == 1
    summary, *rest = text.stdout.splitlines()
    assert summary.startswith("IMBALANCE: 1 accounted more than once, 1 published twice without an update")
    assert any(f"{origin['topic']}[{origin['partition']}]@{origin['offset']}" in line for line in rest)


async def commit_group(s: Settings, offsets: dict[tuple[str, int], int]) -> None:
    """Commits offsets for the pipeline's group as if its workers had processed up to them."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(s), group_id=s.group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(s.topic(t), p): o for (t, p), o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


def origin(s: Settings, offset: int) -> dict[str, Any]:
    return {"topic": s.topic("articles.raw"), "partition": 0, "offset": offset, "timestamp_ms": 0}


def test_committed_offsets_tell_events_in_flight_from_lost_ones(topics):
    s = topics
    asyncio.run(send_all(s, "articles.raw", [(None, b'{"n": %d}' % i) for i in range(6)], partition=0))
    aid = "ab" * 16

    def article(offset: int) -> bytes:
        return orjson.dumps(
            {"schema": "article.v1", "article_id": aid[:-2] + f"{offset:02d}", "origin": origin(s, offset)}
        )

    asyncio.run(send_all(s, "articles.published", [(None, article(0)), (None, article(1))], partition=0))
    asyncio.run(send_all(s, "articles.dedup-sequenced", [(None, article(2))], partition=0))
    # normalize processed raw 0..3; dedup has not read the sequence yet; 4 and 5 are not read at all
    asyncio.run(commit_group(s, {("articles.raw", 0): 4, ("articles.dedup-sequenced", 0): 0}))

    rc, doc = audit_json(s)
    assert rc == 1
    assert doc["unaccounted"] == [{"topic": s.topic("articles.raw"), "partition": 0, "offset": 3}]
    assert doc["accounting"]["in_flight"] == 3
    assert doc["in_flight_by"] == {"articles.raw": 2, "articles.dedup-sequenced": 1}
    assert doc["accounting"]["published"] == 2

    asyncio.run(
        send_all(
            s,
            "articles.rejected",
            [(None, orjson.dumps({"stage": "normalize", "reason": "x", "origin": origin(s, 3)}))],
        )
    )
    rc, doc = audit_json(s)
    assert rc == 0 and doc["balanced"] and doc["summary"].startswith("balanced: 6 raw events"), doc

    later = streams_audit(s, "--json", "--since", "2999-01-01")  # no raw event stamped after that
    assert later.returncode == 0 and json.loads(later.stdout)["accounting"]["raw"] == 0
    recent = streams_audit(s, "--json", "--since", "1h")
    assert recent.returncode == 0 and json.loads(recent.stdout)["accounting"]["raw"] == 6
    bad = streams_audit(s, "--since", "yesterday")
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr
