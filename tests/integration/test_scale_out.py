"""Two workers in one consumer group: work is shared, a rebalance loses and doubles nothing, and when one
worker dies the other takes over its partitions and the dedup state."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson

from tests.factories.stories import story
from tests.integration.conftest import read_committed, send_all, values


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


def test_a_worker_joining_and_leaving_under_load_loses_and_doubles_nothing(topics, worker_factory, tmp_path):
    """2,000 articles stream in while a second worker joins (a rebalance under load) and later leaves (another).
    Each rebalance rewinds open transactions inside live workers; an aborted decision left in the in-memory
    index or hold would make a re-processed article a duplicate of itself. 0 lost, 0 published twice."""
    s1 = topics
    s2 = dataclasses.replace(s1, web_port=s1.web_port + 1, data_dir=str(tmp_path / "state-b"))
    n = 2000
    a = worker_factory(s1)
    a.wait_ready()
    sends = [(None, raw(f"https://load.example/{i}", 20_000 + i)) for i in range(n)]

    async def stream_in() -> None:
        for start in range(0, n, 100):  # about 100 articles every 0.4 s: the stream lasts ~8 s and more
            await send_all(s1, "articles.raw", sends[start : start + 100])
            await asyncio.sleep(0.4)

    async def scenario() -> None:
        producing = asyncio.create_task(stream_in())
        await asyncio.sleep(2.0)
        b = worker_factory(s2)  # joins mid-stream
        await asyncio.to_thread(b.wait_ready, 120)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(b.stop)  # leaves mid-stream (SIGTERM: a clean leave, another rebalance)
        await producing

    asyncio.run(scenario())
    unique = values(asyncio.run(read_committed(s1, "articles.unique", expect=n, timeout=300, settle=3)))
    dups = values(asyncio.run(read_committed(s1, "articles.duplicates", expect=0, timeout=5, settle=3)))
    ids = [u["article_id"] for u in unique]
    assert a.alive(), a.tail()
    assert not dups, f"{len(dups)} articles judged copies ({dups[0]['match']}), e.g. of themselves\n{a.tail()}"
    assert len(set(ids)) == n, f"{n - len(set(ids))} lost\n{a.tail()}"
    assert len(ids) == n, f"{len(ids) - n} published twice\n{a.tail()}"
