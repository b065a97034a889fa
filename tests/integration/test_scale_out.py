"""Two workers in one consumer group: work is shared, a rebalance loses and doubles nothing, and when one
worker dies the other takes over its partitions and the dedup state."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest

from tests.factories.stories import story
from tests.integration.conftest import read_committed, send_all, values

pytestmark = pytest.mark.integration


def raw(url: str, seed: int) -> bytes:
    title, text = story(seed)
    return orjson.dumps({"url": url, "title": title, "body": text, "source": {"name": "Desk"}})


def test_two_workers_share_work_and_survive_losing_one(topics, worker_factory, tmp_path):
    s1 = topics
    s2 = dataclasses.replace(s1, web_port=s1.web_port + 1, data_dir=str(tmp_path / "state-b"))
    a = worker_factory(s1)
    a.wait_ready()
    b = worker_factory(s2)  # joins the group: a rebalance while traffic flows
    first = [(None, raw(f"https://one.example/{i}", 1000 + i)) for i in range(150)]
    asyncio.run(send_all(s1, "articles.raw", first))
    b.wait_ready()
    unique = asyncio.run(read_committed(s1, "articles.unique", expect=150, timeout=180, settle=2))
    assert sorted(orjson.loads(m.value)["url"] for m in unique) == sorted(
        f"https://one.example/{i}" for i in range(150)
    )

    owners: dict[str, list[str]] = {}
    deadline = time.monotonic() + 20  # the lag gauges follow the assignment within an export interval (2 s)
    while time.monotonic() < deadline and not (owners.get("a") and owners.get("b")):
        for w, name in ((a, "a"), (b, "b")):
            status, body = w.get("/metrics")
            assert status == 200
            owners[name] = [
                line for line in body.decode().splitlines() if line.startswith("streams_consumer_lag_records{")
            ]
        time.sleep(0.5)
    assert owners["a"] and owners["b"], "both workers should own partitions"

    a.kill()  # kill -9 the first worker; b must take over its partitions and, if it had it, the dedup state
    copies = [(None, raw(f"https://copy.example/{i}", 1000 + i)) for i in range(150)]
    fresh = [(None, raw(f"https://two.example/{i}", 5000 + i)) for i in range(50)]
    asyncio.run(send_all(s1, "articles.raw", copies + fresh))
    dups = values(asyncio.run(read_committed(s1, "articles.duplicates", expect=150, timeout=240, settle=2)))
    unique = values(asyncio.run(read_committed(s1, "articles.unique", expect=200, timeout=60, settle=2)))
    assert b.alive(), b.tail()
    assert len(dups) == 150 and {d["match"] for d in dups} == {"same_content"}
    assert len(unique) == 200 and len({u["article_id"] for u in unique}) == 200
