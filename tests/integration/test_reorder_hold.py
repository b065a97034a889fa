"""dedup's reorder hold through the real broker: the earliest published copy becomes the canonical even when it
reaches dedup second, and an article held when the worker dies comes out once after the restart."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from streams.codec import short_hash
from tests.factories.stories import story
from tests.integration.conftest import read_committed, send_all, values


def raw(url: str, title: str, text: str, published_at: str, source: str) -> bytes:
    return orjson.dumps(
        {"url": url, "title": title, "body": text, "published_at": published_at, "source": {"name": source}}
    )


def metric(worker, name: str) -> float:
    status, body = worker.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_the_earliest_published_copy_is_the_canonical_though_it_arrives_second(topics, worker_factory):
    s = topics
    title, text = story(901, paragraphs=10)
    worker = worker_factory(s, STREAMS_DEDUP_REORDER_SECONDS=15)
    worker.wait_ready()
    # The outlet's own page arrives first; the wire copy it was taken from (published an hour earlier)
    # arrives two seconds later on another partition: inside the hold, so it must win.
    asyncio.run(
        send_all(
            s,
            "articles.raw",
            [(None, raw("https://outlet.example/story", title, text, "2026-11-25T10:00:00Z", "Outlet"))],
            partition=0,
        )
    )
    time.sleep(2)
    asyncio.run(
        send_all(
            s,
            "articles.raw",
            [(None, raw("https://wire.example/story", title, text, "2026-11-25T09:00:00Z", "Wire"))],
            partition=3,
        )
    )
    uniq = values(asyncio.run(read_committed(s, "articles.unique", expect=1, timeout=120)))
    dups = values(asyncio.run(read_committed(s, "articles.duplicates", expect=1, timeout=30)))
    wire, outlet = short_hash("https://wire.example/story"), short_hash("https://outlet.example/story")
    assert [u["article_id"] for u in uniq] == [wire], "the later-published copy was let through as canonical"
    assert len(dups) == 1 and dups[0]["article_id"] == outlet
    assert dups[0]["duplicate_of"] == wire and dups[0]["cluster_id"] == wire and dups[0]["match"] == "same_content"
    assert metric(worker, "streams_dedup_reordered_total") == 1.0
    assert metric(worker, "streams_dedup_held_articles") == 0.0


@pytest.mark.parametrize("hold_after", ["30", "0"], ids=["same-hold", "hold-turned-off"])
def test_an_article_held_when_the_worker_dies_comes_out_once_after_the_restart(topics, worker_factory, hold_after):
    s = topics
    first = worker_factory(s, STREAMS_DEDUP_REORDER_SECONDS=30)
    first.wait_ready()
    title, text = story(902)
    asyncio.run(
        send_all(s, "articles.raw", [(None, raw("https://held.example/a", title, text, "2026-11-25T08:00:00Z", "A"))])
    )
    deadline = time.monotonic() + 60
    while metric(first, "streams_dedup_held_articles") < 1:  # it reached dedup and waits in the hold
        assert time.monotonic() < deadline, first.tail()
        time.sleep(0.3)
    assert asyncio.run(read_committed(s, "articles.unique", expect=1, timeout=1, settle=0)) == []
    first.kill()  # kill -9 while the article is held: only the hold's table (and its changelog) has it
    # Restarted with the same hold (a tick releases it once due), or with the hold turned off (released at once).
    second = worker_factory(s, STREAMS_DEDUP_REORDER_SECONDS=hold_after)
    second.wait_ready(timeout=120)
    uniq = values(asyncio.run(read_committed(s, "articles.unique", expect=1, timeout=120, settle=5)))
    assert [u["canonical_url"] for u in uniq] == ["https://held.example/a"], second.tail()
    assert asyncio.run(read_committed(s, "articles.duplicates", expect=1, timeout=1, settle=0)) == []
