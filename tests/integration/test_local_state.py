"""Local table state belongs to one pipeline: two pipelines run from one checkout do not share it, and a
state dir that is ahead of its changelogs (topics deleted and recreated) is discarded and restored."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.admin import create_topics
from streams.kafka.client import aiokafka_kwargs
from tests.factories.stories import story
from tests.integration.conftest import read_committed, send_all, values


def raw(url: str, seed: int) -> bytes:
    title, text = story(seed)
    return orjson.dumps({"url": url, "title": title, "body": text, "source": {"name": "Desk"}})


async def delete_prefix(settings) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        await admin.delete_topics(names)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set(names) & set(await admin.list_topics()):
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def test_two_pipelines_from_one_state_dir_do_not_share_table_state(topics, worker_factory, tmp_path):
    a = topics
    b = dataclasses.replace(a, topic_prefix="b" + a.topic_prefix, web_port=a.web_port + 1)  # same data dir
    asyncio.run(create_topics(b))
    article = raw("https://shared.example/one", 42)
    first = worker_factory(a, "normalize,dedup")
    asyncio.run(send_all(a, "articles.raw", [(None, article)]))
    first.wait_ready()
    assert len(asyncio.run(read_committed(a, "articles.unique", expect=1, timeout=120, settle=0))) == 1
    first.stop()  # clean stop: its tables stay on disk
    second = worker_factory(b, "normalize,dedup")
    asyncio.run(send_all(b, "articles.raw", [(None, article)]))
    second.wait_ready()
    unique = values(asyncio.run(read_committed(b, "articles.unique", expect=1, timeout=120, settle=2)))
    dups = values(asyncio.run(read_committed(b, "articles.duplicates", expect=0, timeout=3, settle=1)))
    assert [u["canonical_url"] for u in unique] == ["https://shared.example/one"], second.tail()
    assert not dups, "the other pipeline's state judged the article a copy of itself"
    assert len(list((tmp_path / "state").glob("cluster-*/*"))) == 2, "one state folder per pipeline"


def test_local_state_ahead_of_recreated_changelogs_is_restored_not_a_crash(topics, worker_factory):
    s = topics
    first = worker_factory(s, "normalize,dedup")
    asyncio.run(send_all(s, "articles.raw", [(None, raw(f"https://reset.example/{i}", 600 + i)) for i in range(5)]))
    first.wait_ready()
    assert len(asyncio.run(read_committed(s, "articles.unique", expect=5, timeout=120, settle=1))) == 5
    first.stop()  # clean: the local tables are kept, with their changelog offsets
    asyncio.run(delete_prefix(s))  # the topics (and table changelogs) go away and come back empty
    asyncio.run(create_topics(s))
    second = worker_factory(s, "normalize,dedup")
    second.wait_ready(timeout=120)
    asyncio.run(send_all(s, "articles.raw", [(None, raw("https://reset.example/0", 600))]))
    unique = values(asyncio.run(read_committed(s, "articles.unique", expect=1, timeout=120, settle=2)))
    assert second.alive(), second.tail()
    assert [u["canonical_url"] for u in unique] == ["https://reset.example/0"], "judged a copy of the old state"
    assert "ahead_of_changelog" in second.tail(500), second.tail()
