"""dedup's snapshots through the real broker: a worker killed and restarted with an EMPTY state dir comes back from
the latest snapshot plus the changelog tail, a snapshot taken while articles flow holds no aborted write, and
/ready and the recovery gauges say what is happening while one loads."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import urllib.error
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.codec import short_hash
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.snapshot import write_snapshot
from tests.factories.dedup_state import archive_entry
from tests.factories.stories import article, story
from tests.integration.conftest import read_committed, send_all, values
from tests.integration.test_dedup_pipeline import near_copy, raw, send_paced

SNAPSHOT_EVERY = {"STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS": "1"}
JSON_LOG = {"STREAMS_LOG_FORMAT": "json"}  # the events are read back from the log


def elsewhere(s: Settings, tmp_path: Any, name: str) -> Settings:
    """The same pipeline with an empty state dir of its own (a new machine, or a disk that was lost)."""
    return s.__class__(**{**s.__dict__, "data_dir": str(tmp_path / name)})


def wait_for(worker: Any, name: str, timeout: float, while_waiting: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive(), worker.tail()
        if worker.events(name):
            return
        if while_waiting is not None:
            while_waiting()
        time.sleep(0.5)
    raise AssertionError(f"no {name} within {timeout:.0f} s:\n{worker.tail()}")


def test_a_worker_killed_and_restarted_empty_comes_back_from_the_snapshot_and_the_changelog_tail(
    topics, worker_factory, tmp_path
):
    s = topics
    before = [story(700 + i) for i in range(12)]
    after = [story(800 + i) for i in range(8)]
    first = worker_factory(s, stages="normalize,dedup", **SNAPSHOT_EVERY, **JSON_LOG)
    asyncio.run(
        send_all(
            s, "articles.raw", [(None, raw(f"https://before.example/{i}", t, x)) for i, (t, x) in enumerate(before)]
        )
    )
    first.wait_ready()
    asyncio.run(read_committed(s, "articles.unique", expect=12, timeout=120, settle=0))
    fillers = iter(range(10_000))

    def trickle() -> None:  # commits happen while records flow; a snapshot is taken right after one
        i = next(fillers)
        asyncio.run(send_all(s, "articles.raw", [(None, raw(f"https://filler.example/{i}", *story(5_000 + i)))]))

    wait_for(first, "dedup_snapshot_written", 60, trickle)
    n_fillers = next(fillers)
    asyncio.run(read_committed(s, "articles.unique", expect=12 + n_fillers, timeout=120, settle=1))
    first.kill()  # kill -9
    # The same machine comes back (its local state is discarded after the kill, so it too loads the snapshot)
    # and decides more articles, without writing a snapshot of them: they are only in the changelog tail.
    again = worker_factory(s, stages="normalize,dedup", STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS="0", **JSON_LOG)
    again.wait_ready(timeout=120)
    assert "local_state_discarded" in again.tail(1000) and again.events("dedup_snapshot_restored"), again.tail()
    asyncio.run(
        send_all(s, "articles.raw", [(None, raw(f"https://after.example/{i}", t, x)) for i, (t, x) in enumerate(after)])
    )
    asyncio.run(read_committed(s, "articles.unique", expect=12 + n_fillers + 8, timeout=120, settle=1))
    again.kill()  # kill -9 again: the second worker has nothing local

    second = worker_factory(elsewhere(s, tmp_path, "empty"), stages="normalize,dedup", **JSON_LOG)
    second.wait_ready(timeout=120)
    copies = [(f"https://copy-before.example/{i}", *near_copy(t, x, cut=False)) for i, (t, x) in enumerate(before)]
    copies += [(f"https://copy-after.example/{i}", *near_copy(t, x, cut=False)) for i, (t, x) in enumerate(after)]
    asyncio.run(send_all(s, "articles.raw", [(None, raw(u, t, x)) for u, t, x in copies]))
    dups = values(asyncio.run(read_committed(s, "articles.duplicates", expect=20, timeout=120, settle=2)))
    want = {
        short_hash(f"https://copy-before.example/{i}"): short_hash(f"https://before.example/{i}") for i in range(12)
    }
    want |= {short_hash(f"https://copy-after.example/{i}"): short_hash(f"https://after.example/{i}") for i in range(8)}
    assert {d["article_id"]: d["duplicate_of"] for d in dups} == want, second.tail()
    assert {d["match"] for d in dups} == {"near"}
    uniq = values(asyncio.run(read_committed(s, "articles.unique", expect=0, timeout=5, settle=1)))
    assert len(uniq) == 12 + n_fillers + 8, "a copy after the restart was let through as new"

    [restored] = second.events("dedup_snapshot_restored")
    tables = restored["tables"]
    assert tables["dedup-articles"]["how"] == "snapshot", restored
    assert tables["dedup-articles"]["entries"] >= 12 and tables["dedup-articles"]["tail"] > 0, restored
    built = [e for e in second.events("dedup_index_rebuilt") if e.get("source") == "snapshot"]
    assert built and built[0]["changed_since_snapshot"] >= 8, second.tail()
    assert len(second.events("dedup_index_rebuilt")) == 1, "the index was rebuilt again after the recovery"


def test_a_snapshot_taken_while_articles_flow_holds_no_write_of_an_aborted_transaction(
    topics, worker_factory, tmp_path
):
    """kill -9 mid-stream, snapshots every second: restored into an EMPTY state dir, no article may find itself
    in the tables (an aborted decision in a snapshot would make its re-delivery a copy of itself)."""
    s = topics
    n = 2000
    stories = [story(20_000 + i, paragraphs=3) for i in range(n)]
    sends = [(None, raw(f"https://flow.example/{i}", t, x)) for i, (t, x) in enumerate(stories)]
    first = worker_factory(s, stages="normalize,dedup", **SNAPSHOT_EVERY, **JSON_LOG)
    first.wait_ready()
    streaming = threading.Thread(target=lambda: asyncio.run(send_paced(s, sends, per_second=100)), daemon=True)
    streaming.start()
    asyncio.run(read_committed(s, "articles.unique", expect=300, timeout=120, settle=0))
    wait_for(first, "dedup_snapshot_written", 60)
    written = len(first.events("dedup_snapshot_written"))
    first.kill()  # mid-stream: decisions in flight, their transaction never commits
    before = len(values(asyncio.run(read_committed(s, "articles.unique", expect=0, timeout=3, settle=0.5))))
    second = worker_factory(elsewhere(s, tmp_path, "empty"), stages="normalize,dedup", **SNAPSHOT_EVERY, **JSON_LOG)
    streaming.join(timeout=120)
    uniq = values(asyncio.run(read_committed(s, "articles.unique", expect=n, timeout=240, settle=3)))
    dups = values(asyncio.run(read_committed(s, "articles.duplicates", expect=0, timeout=3, settle=3)))
    ids = [u["article_id"] for u in uniq]
    assert not dups, f"{len(dups)} articles judged copies of themselves, e.g. {dups[0]['match']}\n{second.tail()}"
    assert before < n, "the worker finished before it was killed: the test proves nothing"
    assert len(ids) == len(set(ids)) == n, f"{len(set(ids))} distinct of {len(ids)} published\n{second.tail()}"
    assert written >= 2, "snapshots were not taken while articles flowed"
    [restored] = second.events("dedup_snapshot_restored")
    assert restored["tables"]["dedup-articles"]["how"] == "snapshot", restored


# --- /ready and the gauges during a restore ---------------------------------------------------------------

ENTRIES = 120_000
TAIL = 300


async def _fill(s: Settings) -> dict[str, int]:
    """Changelogs with ENTRIES articles as the stage writes them, a snapshot of them on articles.dedup-snapshots
    (as the worker writes it), then TAIL more articles only in the changelogs. Returns the changelog ends."""
    cfg = DedupConfig.from_settings(s)
    names = {t: f"{s.group_id}-{t}-changelog" for t in ("dedup-articles", "dedup-content", "dedup-held")}
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(s))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, 1, 1, topic_configs={"cleanup.policy": "compact"}) for n in names.values()]
        )
    finally:
        await admin.close()
    prod = AIOKafkaProducer(**aiokafka_kwargs(s), linger_ms=20, acks="all", max_request_size=11 * 1024 * 1024)
    await prod.start()
    articles: dict[str, Any] = {}
    content: dict[str, Any] = {}
    try:
        now_ms = int(time.time() * 1000)
        futs = []
        for i in range(ENTRIES + TAIL):
            minhash = base64.b64encode(i.to_bytes(4, "little") * cfg.num_perm).decode()
            aid, rev, entry = archive_entry(i, now_ms, minhash=minhash, shingles=40)
            if i == ENTRIES:  # the snapshot covers the first ENTRIES; the rest is the tail
                await asyncio.gather(*futs)
                futs = []
                records = write_snapshot(
                    cfg,
                    articles,
                    content,
                    {},
                    offsets={names["dedup-articles"]: i, names["dedup-content"]: i, names["dedup-held"]: 0},
                    extra={"previous": [], "taken_ms": now_ms},
                )
                for key, value in records:
                    futs.append(
                        await prod.send(s.topic("articles.dedup-snapshots"), key=key.encode(), value=value, partition=0)
                    )
                await asyncio.gather(*futs)
                futs = []
            articles[aid], content[rev] = entry, aid
            futs.append(
                await prod.send(names["dedup-articles"], key=orjson.dumps(aid), value=orjson.dumps(entry), partition=0)
            )
            futs.append(
                await prod.send(names["dedup-content"], key=orjson.dumps(rev), value=orjson.dumps(aid), partition=0)
            )
        await asyncio.gather(*futs)
    finally:
        await prod.stop()
    return {"dedup-articles": ENTRIES + TAIL, "dedup-content": ENTRIES + TAIL}


def _gauge(body: bytes, name: str, table: str) -> float | None:
    prefix = f'{name}{{table="{table}"}} '.encode()
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_ready_says_503_and_the_gauges_count_down_while_a_snapshot_loads(topics, worker_factory):
    s = topics
    asyncio.run(_fill(s))
    worker = worker_factory(s, stages="dedup", **JSON_LOG)  # empty state dir: the snapshot, then the tail
    seen: list[tuple[int, list[str], float, float]] = []  # (/ready status, waiting_for, remaining, ratio)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert worker.alive(), worker.tail()
        try:
            status, body = worker.get("/ready")
            _, metrics = worker.get("/metrics")
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
            continue
        waiting = orjson.loads(body).get("waiting_for", [])
        remaining = _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles")
        ratio = _gauge(metrics, "streams_state_recovery_progress_ratio", "dedup-articles")
        seen.append((status, waiting, remaining or 0.0, 1.0 if ratio is None else ratio))
        if status == 200:
            break
        time.sleep(0.1)
    assert seen and seen[-1][0] == 200, worker.tail()
    loading = [x for x in seen if x[0] == 503 and "dedup_snapshot" in x[1]]
    assert loading, f"/ready never said it waits for the snapshot: {seen[:5]}\n{worker.tail()}"
    counted = [x for x in seen if x[0] == 503 and x[2] > 0]
    assert counted and max(x[2] for x in counted) >= TAIL, f"the gauge never showed the backlog: {seen}"
    assert any(x[3] < 1.0 for x in counted), f"the progress ratio never showed the restore: {seen}"
    for _ in range(30):  # the gauges are exported every 2 s
        _, metrics = worker.get("/metrics")
        if _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles") == 0:
            break
        time.sleep(0.5)
    assert _gauge(metrics, "streams_state_recovery_records_remaining", "dedup-articles") == 0
    assert _gauge(metrics, "streams_state_recovery_progress_ratio", "dedup-articles") == 1.0

    [restored] = worker.events("dedup_snapshot_restored")
    assert restored["seconds"] > 0 and restored["tables"]["dedup-articles"] == {
        "entries": ENTRIES,
        "offset": ENTRIES,
        "tail": TAIL,  # read and applied by the restore: Faust's recovery has nothing left to replay
        "end": ENTRIES + TAIL,
        "how": "snapshot",
    }
    # The state is real, from the snapshot and from the tail alike.
    for i in (123, ENTRIES + 7):
        copy = article(1, url=f"https://copier.example/{i}", text=f"text {i}", title="")
        copy["revision"] = short_hash(f"text {i}")
        asyncio.run(send_all(s, "articles.dedup-sequenced", [(copy["article_id"].encode(), orjson.dumps(copy))]))
    dups = values(asyncio.run(read_committed(s, "articles.duplicates", expect=2, timeout=120, settle=0.5)))
    assert sorted(d["duplicate_of"] for d in dups) == sorted(
        short_hash(f"https://archive.example/{i}") for i in (123, ENTRIES + 7)
    )
    assert all(d["match"] == "same_content" for d in dups)
