"""The crash storm (issue 13): 20,000 BBC events through two `streams worker` processes on a broker of the
test's own, while workers are SIGKILLed and restarted and the broker itself is stopped and started; at the end
`streams audit` balances exactly, no article is published twice, and copies of pre-crash articles are caught.

What goes in (`STREAMS_SOAK_EVENTS`, default 20,000; `STREAMS_SOAK_SEED` replays a run's random moments):

- raw events from the BBC corpus (streams.bench.corpus: the corpus, then mixes of two of its articles so that
  20,000 stories are each new): 12 % syndicated copies (verbatim and lightly edited, on partner sites), 1 % bad
  events, one in 25 articles on a regional site that a domain takedown clears mid-stream;
- updates: one in 40 articles is sent again later at its own URL with a correction paragraph (a new revision);
- the fixed hostile corpus (tests/factories/hostile.py: broken JSON, invalid UTF-8, deep nesting, 10 MB values,
  script URLs ...), spread through the stream, each with the outcome it must have;
- takedowns through `streams takedown add`, as the rights desk files them: the regional domain once a third is
  sent, three published BBC URLs later;
- after the storm, verbatim copies (new URLs) of 500 articles sent before the first crash.

What happens meanwhile, at random moments of the send (seeded; the seed is printed): worker A SIGKILLed and
restarted from its state dir; worker B SIGKILLed and restarted from an empty state dir (the changelogs
restore it); the broker stopped and started by `streams kafka stop/start` (its log dir kept; the workers stay
up and reconnect); both workers SIGKILLed at once; A again. Each restart is a new process of the same group.

Asserted: `streams audit --json` exits 0 with every raw event accounted once and nothing in flight; no event
published twice (by event id and, from the audit, by article without an update between); the late copies all
duplicates of the right article; every hostile case routed as the corpus says; every regional article either
blocked or published and retracted; both workers up at the end; every record valid against its schema.

Needs ../shared/data (the BBC corpus) and the Kafka jars `make kafka` fetched; `make test-soak` runs it.
About 10-15 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams import topics as topics_registry
from streams.bench.corpus import Corpus
from streams.kafka.admin import create_topics
from streams.kafka.client import aiokafka_kwargs
from streams.kafka.local import EmbeddedBroker
from streams.settings import Settings
from tests.conftest import DATA, need_shared
from tests.factories.hostile import corpus as hostile_corpus
from tests.integration.conftest import WorkerProcess, assert_valid_records, settings_env
from tests.integration.test_bad_input_storm import read_all

pytestmark = [pytest.mark.integration, pytest.mark.soak]

N_EVENTS = int(os.environ.get("STREAMS_SOAK_EVENTS", "20000"))
SEED = int(os.environ.get("STREAMS_SOAK_SEED", str(int(time.time()) % 100000)))
RATE = 60.0  # raw events/s sent: above what two workers take on 2 cores, so a backlog is there at every crash
N_LATE_COPIES = 500
REGIONAL = "www.regional-times.example"
REGIONAL_DOMAIN = "regional-times.example"
STALL_S = 240.0  # the audit's accounted count must grow within this long while events are still in flight


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


@dataclass
class Item:
    """One record for articles.raw and what it must become."""

    key: bytes | None
    value: bytes
    kind: str  # article, regional, update, copy_exact, copy_near, late_copy, a bad kind, or hostile:<name>
    event_id: str | None
    expected: str | None = None  # hostile cases: "normalized" or "rejected:<reason>"
    copy_of: str | None = None  # late copies: the event id of the original
    partition: int = -1
    offset: int = -1


def plan(n: int, run: str) -> tuple[list[Item], list[Item]]:
    """(the stream, the late copies): n events in all, built from the BBC corpus in send order."""
    corpus = Corpus.load(need_shared(DATA / "bbc_news_fulltext.jsonl"))
    hostile = hostile_corpus()
    n_stream = n - N_LATE_COPIES
    wanted = n_stream - len(hostile)  # corpus events and updates, before the hostile cases go in
    items: list[Item] = []
    articles: list[Item] = []
    n_articles = 0
    for ev in corpus.events(0, wanted, html=False, tag=f"soak-{run}"):
        if len(items) >= wanted:
            break
        item = Item(ev.key, ev.value, ev.kind, ev.event_id)
        n_articles += ev.kind == "article"
        if ev.kind == "article" and n_articles % 25 == 7:
            doc = orjson.loads(ev.value)
            doc["url"] = doc["url"].replace("www.bbc.co.uk", REGIONAL)
            doc["source"] = {"name": "Regional Times", "id": "regional-times"}
            item = Item(doc["url"].encode(), orjson.dumps(doc), "regional", ev.event_id)
        items.append(item)
        if item.kind == "article":
            articles.append(item)
            if len(articles) % 40 == 0 and len(articles) > 40 and len(items) < wanted:  # of one 30 articles ago
                doc = orjson.loads(articles[-30].value)
                doc["event_id"] = f"{doc['event_id']}-update"
                doc["body"] += "\n\nCorrection: an earlier version of this article gave a wrong date."
                items.append(Item(articles[-30].key, orjson.dumps(doc), "update", doc["event_id"]))
    step = max(1, len(items) // (len(hostile) + 1))
    for j, case in enumerate(hostile):
        at = (j + 1) * step + j
        items.insert(at, Item(None, case.payload, f"hostile:{case.name}", None, expected=case.expected))
    early = [a for a in articles[: max(1, len(articles) // 10)]]
    late = []
    for k, original in enumerate(random.Random(SEED).sample(early, min(N_LATE_COPIES, len(early)))):
        doc = orjson.loads(original.value)
        doc["event_id"] = f"soak-{run}-late-{k}"
        doc["url"] = f"https://www.latecomer{k % 5}.example/syndicated/{run}/{k}"
        doc["source"] = {"name": f"Latecomer {k % 5}", "id": f"latecomer{k % 5}"}
        late.append(
            Item(doc["url"].encode(), orjson.dumps(doc), "late_copy", doc["event_id"], copy_of=original.event_id)
        )
    return items, late


class Broker:
    """The test's own embedded broker, driven through the CLI a user runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = EmbeddedBroker(settings).dir

    def cli(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "kafka", *args],
            env=settings_env(self.settings),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"streams kafka {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr


@pytest.fixture
def own_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Settings, Broker]]:
    """A broker of the test's own: stopped afterwards, its log dir deleted, or kept when the test failed (the
    topics then tell what happened: `STREAMS_KAFKA_BOOTSTRAP=... streams kafka start`, `streams audit`)."""
    port, controller = _free_port(), _free_port()
    s = Settings.from_env(
        kafka_bootstrap=f"localhost:{port}",
        kafka_controller_port=controller,
        topic_prefix=f"soak{uuid.uuid4().hex[:6]}.",
        data_dir=str(tmp_path / "state-a"),
        web_port=_free_port(),
        topic_partitions=4,
        log_format="text",
        session_timeout_seconds=10.0,  # a killed worker leaves the group in seconds
    )
    broker = Broker(s)
    shutil.rmtree(broker.dir, ignore_errors=True)
    broker.cli("start")
    failed = request.session.testsfailed
    try:
        yield s, broker
    finally:
        try:
            broker.cli("stop")
        finally:
            if request.session.testsfailed == failed:
                shutil.rmtree(broker.dir, ignore_errors=True)
            else:
                print(
                    f"\nthe failed storm's broker is kept in {broker.dir}: STREAMS_KAFKA_BOOTSTRAP={s.kafka_bootstrap} "
                    f"STREAMS_KAFKA_CONTROLLER_PORT={s.kafka_controller_port} STREAMS_TOPIC_PREFIX={s.topic_prefix} "
                    ".venv/bin/streams kafka start, then .venv/bin/streams audit"
                )


class Workers:
    """Worker A and worker B of one group; each restart is a new process, its log appended to the same file."""

    def __init__(self, s: Settings, tmp_path: Path) -> None:
        self.settings = {
            "a": s,
            "b": dataclasses.replace(s, web_port=_free_port(), data_dir=str(tmp_path / "state-b")),
        }
        self.tmp_path = tmp_path
        self.procs: dict[str, WorkerProcess] = {}
        self.kills: list[str] = []

    def start(self, name: str) -> None:
        self.procs[name] = WorkerProcess(self.settings[name], self.tmp_path / f"worker-{name}.log")

    async def ready(self, *names: str) -> None:
        await asyncio.gather(*(asyncio.to_thread(self.procs[n].wait_ready, 240) for n in names))

    def kill(self, name: str) -> None:
        assert self.procs[name].alive(), f"worker {name} died on its own:\n{self.procs[name].tail()}"
        self.procs[name].kill(signal.SIGKILL)
        self.kills.append(name)

    def wipe(self, name: str) -> None:
        shutil.rmtree(self.settings[name].data_dir, ignore_errors=True)

    def stop(self) -> None:
        for w in self.procs.values():
            w.stop()


async def streams_cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streams.cli", *args],
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=300,
    )


async def takedown(s: Settings, scope: str, value: str, tid: str) -> None:
    done = await streams_cli(
        s, "takedown", "add", "--scope", scope, "--value", value, "--id", tid, "--reason", "Copyright claim",
        "--requested-by", "legal@rights.example", "--ground", "legal", "--legal-basis", "Copyright",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


async def audit(s: Settings) -> tuple[int, dict[str, Any]]:
    done = await streams_cli(s, "audit", "--json")
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


class Sender:
    """Sends items at RATE per second; `paused` holds it while the broker is down (a producer would buffer)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.sent = 0
        self.running = asyncio.Event()
        self.running.set()
        self.producer = AIOKafkaProducer(
            **aiokafka_kwargs(s),
            enable_idempotence=True,
            acks="all",
            max_request_size=topics_registry.MAX_REQUEST_BYTES,
            linger_ms=5,
            request_timeout_ms=60000,
        )

    async def send(self, items: list[Item]) -> None:
        batch = 20
        started = time.monotonic()
        for at in range(0, len(items), batch):
            await self.running.wait()
            chunk = items[at : at + batch]
            futures = [await self.producer.send(self.s.topic("articles.raw"), value=i.value, key=i.key) for i in chunk]
            for item, meta in zip(chunk, await asyncio.gather(*futures), strict=True):
                item.partition, item.offset = meta.partition, meta.offset
            self.sent += len(chunk)
            ahead = started + (at + batch) / RATE - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


async def wait_accounted(s: Settings, total: int, moments: list[str]) -> tuple[int, dict[str, Any]]:
    """The audit once all `total` raw events are accounted and none is in flight; fails on a stall."""
    last, last_change = -1, time.monotonic()
    while True:
        rc, doc = await audit(s)
        a = doc["accounting"]
        done = a["raw"] - a["in_flight"]
        if a["raw"] == total and a["in_flight"] == 0:
            return rc, doc
        if done != last:
            last, last_change = done, time.monotonic()
            moments.append(f"{time.strftime('%H:%M:%S')} accounted {done:,} of {total:,}")
        assert time.monotonic() - last_change < STALL_S, (
            f"no progress for {STALL_S:.0f} s at {done:,} of {total:,} accounted:\n" + "\n".join(doc.get("lines", []))
        )
        await asyncio.sleep(30.0)  # each audit reads every topic: not too often beside the workers


def test_crash_storm_loses_nothing_publishes_nothing_twice_and_still_catches_copies(own_broker, tmp_path):
    s, broker = own_broker
    asyncio.run(create_topics(s))
    run = uuid.uuid4().hex[:6]
    stream, late = plan(N_EVENTS, run)
    workers = Workers(s, tmp_path)
    moments: list[str] = [f"seed {SEED} (STREAMS_SOAK_SEED={SEED} replays these moments)"]
    try:
        started = time.monotonic()
        timings = asyncio.run(_storm(s, broker, workers, stream, late, moments))
        rc, doc = asyncio.run(wait_accounted(s, len(stream) + len(late), moments))
        elapsed = time.monotonic() - started
        alive = {n: w.alive() for n, w in workers.procs.items()}
        tails = {n: w.tail(80) for n, w in workers.procs.items()}
    finally:
        workers.stop()
    print("\n".join(["", "crash storm:", *moments]))
    a, totals = doc["accounting"], doc["offenders_total"]
    print(
        f"  {len(stream) + len(late):,} raw events in {elapsed:.0f} s ({timings['send_s']:.0f} s sending); "
        f"{len(workers.kills)} worker SIGKILLs ({', '.join(workers.kills)}), 1 broker stop/start; audit: "
        f"{a['raw']:,} raw = {a['published']:,} published + {a['duplicate']:,} duplicates + "
        f"{a['rejected']:,} rejected + {a['blocked']:,} blocked + {a['in_flight']} in flight; offenders {totals}"
    )
    offenders = {k: v for k, v in doc.items() if isinstance(v, list) and v}
    assert rc == 0 and not any(totals.values()), f"{doc['summary']}\n" + json.dumps(offenders, indent=1)[:6000]
    assert alive == {"a": True, "b": True}, tails
    assert len(workers.kills) >= 3

    published = asyncio.run(read_all(s, "articles.published"))
    duplicates = asyncio.run(read_all(s, "articles.duplicates"))
    rejected = asyncio.run(read_all(s, "articles.rejected"))
    retractions = asyncio.run(read_all(s, "articles.retractions"))
    for topic, msgs in (
        ("articles.published", published),
        ("articles.duplicates", duplicates),
        ("articles.rejected", rejected),
        ("articles.retractions", retractions),
    ):
        assert_valid_records(topic, msgs)
    pub = [orjson.loads(m.value) for m in published]
    dup = [orjson.loads(m.value) for m in duplicates]
    rej = [orjson.loads(m.value) for m in rejected]
    ret = [orjson.loads(m.value) for m in retractions]

    twice = [e for e, c in Counter(d["event_id"] for d in pub if d.get("event_id")).items() if c > 1]
    assert twice == [], f"{len(twice)} events published twice, e.g. {twice[:5]}"

    # the late copies: each a duplicate, of the article its original became
    article_of = {d["event_id"]: d["article_id"] for d in pub}
    dup_by_event = {d["article"]["event_id"]: d for d in dup}
    missed = [i.event_id for i in late if i.event_id not in dup_by_event]
    assert missed == [], f"{len(missed)} of {len(late)} late copies not caught, e.g. {missed[:5]}"
    wrong = [
        i.event_id
        for i in late
        if i.copy_of in article_of and dup_by_event[i.event_id]["duplicate_of"] != article_of[i.copy_of]
    ]
    assert wrong == [], f"late copies pointing at another article: {wrong[:5]}"

    # the hostile corpus: each case as the corpus says (outcomes found by the raw record's coordinates)
    outcome: dict[tuple[int, int], str] = {}
    for d in pub:
        outcome[(d["origin"]["partition"], d["origin"]["offset"])] = "normalized"
    for d in dup:
        o = d["article"]["origin"]
        outcome[(o["partition"], o["offset"])] = "normalized"
    for d in rej:
        if d["origin"]["topic"] == s.topic("articles.raw"):
            outcome[(d["origin"]["partition"], d["origin"]["offset"])] = f"rejected:{d['reason']}"
    hostile = [i for i in stream if i.kind.startswith("hostile:")]
    routed = Counter(outcome.get((i.partition, i.offset), "blocked") for i in hostile)
    off = [
        f"{i.kind}: {outcome.get((i.partition, i.offset))} (expected {i.expected})"
        for i in hostile
        if outcome.get((i.partition, i.offset), "blocked") != i.expected
        and not (i.expected == "normalized" and outcome.get((i.partition, i.offset)) is None)
    ]
    assert off == [], "\n".join(off)
    assert not [d for d in rej if d["reason"] == "internal_error"], "no stage may have failed on the storm's input"

    # the regional domain: every article of it published before the takedown is retracted; none after it
    regional = {i.event_id for i in stream if i.kind == "regional"}
    regional_published = {d["article_id"] for d in pub if d["event_id"] in regional}
    retracted = {r["article_id"] for r in ret}
    assert regional_published <= retracted, f"{len(regional_published - retracted)} regional articles not retracted"
    print(
        f"  published {len(pub):,} (updates {sum(1 for d in pub if (d.get('dedup') or {}).get('is_update'))}), "
        f"duplicates {len(dup):,} (late copies {len(late)}: all caught), rejected {len(rej):,}, retracted "
        f"{len(ret):,} (regional published then retracted {len(regional_published)}), blocked {a['blocked']:,}; "
        f"hostile cases {len(hostile)}: {dict(routed)}"
    )


async def _storm(
    s: Settings, broker: Broker, workers: Workers, stream: list[Item], late: list[Item], moments: list[str]
) -> dict[str, float]:
    rng = random.Random(SEED)
    n = len(stream)

    def at(lo: float, hi: float) -> int:
        return int(n * rng.uniform(lo, hi))

    def say(what: str) -> None:
        moments.append(f"{time.strftime('%H:%M:%S')} [{sender.sent:,} sent] {what}")

    # (when, what), in the order they happen; the moments are random within their windows
    schedule = [
        (at(0.12, 0.2), "kill a"),
        (at(0.25, 0.3), "takedown domain"),
        (at(0.32, 0.4), "kill b, wipe its state"),
        (at(0.45, 0.55), "broker stop/start"),
        (at(0.58, 0.62), "takedown urls"),
        (at(0.65, 0.75), "kill a and b"),
        (at(0.82, 0.92), "kill a"),
    ]
    sender = Sender(s)
    await sender.producer.start()
    try:
        workers.start("a")
        workers.start("b")
        await workers.ready("a", "b")
        say("workers a and b ready")
        send_started = time.monotonic()
        sending = asyncio.create_task(sender.send(stream))
        for when, what in schedule:
            while sender.sent < when and not sending.done():
                await asyncio.sleep(0.2)
            if sending.done():
                sending.result()
            say(what)
            if what == "kill a":
                workers.kill("a")
                await asyncio.sleep(rng.uniform(1, 5))
                workers.start("a")
            elif what == "kill b, wipe its state":
                workers.kill("b")
                workers.wipe("b")
                await asyncio.sleep(rng.uniform(1, 5))
                workers.start("b")
            elif what == "kill a and b":
                workers.kill("a")
                workers.kill("b")
                await asyncio.sleep(rng.uniform(1, 5))
                workers.start("a")
                workers.start("b")
            elif what == "broker stop/start":
                await workers.ready("a", "b")  # running workers must ride it out (one starting may fail to bootstrap)
                say("both workers ready; the broker stops")
                sender.running.clear()
                await asyncio.to_thread(broker.cli, "stop")
                await asyncio.sleep(rng.uniform(5, 15))
                await asyncio.to_thread(broker.cli, "start")
                sender.running.set()
                say("broker back")
            elif what == "takedown domain":
                await takedown(s, "domain", REGIONAL_DOMAIN, f"TD-{s.topic_prefix}domain")
            elif what == "takedown urls":
                pub = await read_all(s, "articles.published")
                urls = [orjson.loads(m.value)["canonical_url"] for m in pub[:3]]
                for k, url in enumerate(urls):
                    await takedown(s, "url", url, f"TD-{s.topic_prefix}url{k}")
        await sending
        send_s = time.monotonic() - send_started
        await workers.ready("a", "b")
        say("stream sent; both workers up; the late copies next")
        await sender.send(late)
        say("late copies sent")
    finally:
        await sender.producer.stop()
    return {"send_s": send_s}
