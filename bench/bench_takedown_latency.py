"""Benchmarks the time from a takedown's submission to its last retraction through the broker, with 100k
published articles in the takedown stage's state, beside one record's trip through the same broker.

Run: .venv/bin/python bench/bench_takedown_latency.py [--articles 100000] [--rounds 5] [--keep]

Synthetic articles (the stage never reads article text, so ../shared is not needed); the embedded broker on
STREAMS_KAFKA_BOOTSTRAP; a fresh topic prefix, deleted afterwards with the worker's consumer group.

1. Topics are created and one `streams worker --stages takedown` is started (exactly-once, the production
   defaults: 4 partitions, 0.5 s commit interval). `--articles` small article.v1 records (as enrich writes
   them; tests/factories/takedowns.enriched) go straight to articles.enriched, keyed by article_id: 3 domains
   with 10,000 articles, 5 with 1,000, 5 with 100, 5 duplicate clusters of 50, and the rest over 2,000 other
   domains. The benchmark waits until every one is on articles.published: the stage's state then holds them all.
2. Takedowns are submitted one at a time with `streams.takedowns.submit` (what `streams takedown add` calls;
   the CLI's own start-up, about a second of Python imports, is not counted), each a request made by
   `streams.stages.takedown.requests.new_request`, in rounds: per round 4 url takedowns (1 article each),
   then a domain of 100, a cluster of 50, a domain of 1,000 and (first 3 rounds) a domain of 10,000. A
   read_committed consumer on takedowns.audit and articles.retractions stamps, per takedown, when its
   `requested` entry (the registry's transaction: takedowns → takedowns.fanout) and its first and last
   retraction (each partition's transaction: takedowns.fanout → articles.retractions) became visible. Times
   run from just before `submit` to those moments. The next takedown starts once the last retraction is seen.
3. Baseline, measured between the takedowns (3 each time): one record produced (acks=all, idempotent) to a
   1-partition topic of the same broker, until the same read_committed consumer sees it.

p99 of a handful of samples is close to their maximum: read it as "the worst seen".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as c
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import takedowns
from streams.kafka.admin import create_topics
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings
from streams.stages.takedown.requests import new_request
from tests.factories.takedowns import enriched

PING = "bench.ping"


# -- the articles ---------------------------------------------------------------------------------------------
@dataclass
class Layout:
    """Which articles each takedown target covers, and the article records."""

    articles: list[dict[str, Any]] = field(default_factory=list)
    domains: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # domain -> article ids
    clusters: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # cluster_id -> article ids
    urls: list[tuple[str, str]] = field(default_factory=list)  # (canonical URL, article id) of single targets


def layout(n: int) -> Layout:
    groups: list[tuple[str, int, str | None]] = []  # (source, articles, cluster)
    groups += [(f"big{k}-news", 10_000, None) for k in range(3)]
    groups += [(f"mid{k}-news", 1_000, None) for k in range(5)]
    groups += [(f"small{k}-news", 100, None) for k in range(5)]
    groups += [(f"wire{k}-copies", 50, hashlib.md5(f"cluster{k}".encode()).hexdigest()) for k in range(5)]
    rest = n - sum(size for _, size, _ in groups)
    if rest < 2_000:
        sys.exit(f"--articles {n} is too few for the layout (at least {n - rest + 2_000})")
    out = Layout()
    seed = 0
    for source, size, cluster in groups:
        for _ in range(size):
            art = enriched(seed, source=source, cluster=cluster, text=f"Story {seed} of {source}.")
            out.articles.append(art)
            (out.clusters[cluster] if cluster else out.domains[f"{source}.com"]).append(art["article_id"])
            seed += 1
    for i in range(rest):
        source = f"other{i % 2000}-post"
        art = enriched(seed, source=source, text=f"Story {seed} of {source}.")
        out.articles.append(art)
        out.domains[f"{source}.com"].append(art["article_id"])
        if i < 2000 and i % 20 == 0:  # one article of each of 100 other domains: url targets
            out.urls.append((art["canonical_url"], art["article_id"]))
        seed += 1
    return out


@dataclass
class Takedown:
    kind: str  # the row of the table
    scope: str
    value: str
    covers: int
    record: dict[str, Any] | None = None
    started: float = math.nan
    requested: float = math.nan
    first: float = math.nan
    last: float = math.nan


def schedule(lay: Layout, rounds: int) -> list[Takedown]:
    def domains(size: int) -> list[str]:
        return [d for d, ids in lay.domains.items() if len(ids) == size and not d.startswith("other")]

    big, mid, small, clusters = domains(10_000), domains(1_000), domains(100), list(lay.clusters)
    out = []
    for r in range(rounds):
        out += [Takedown("url, 1 article", "url", u, 1) for u, _ in lay.urls[4 * r : 4 * r + 4]]
        if r < len(small):
            out.append(Takedown("domain, 100 articles", "domain", small[r], 100))
        if r < len(clusters):
            out.append(Takedown("cluster, 50 articles", "cluster", clusters[r], 50))
        if r < len(mid):
            out.append(Takedown("domain, 1,000 articles", "domain", mid[r], 1_000))
        if r < len(big):
            out.append(Takedown("domain, 10,000 articles", "domain", big[r], 10_000))
    return out


# -- the broker side ------------------------------------------------------------------------------------------
class Watch:
    """A read_committed consumer on takedowns.audit, articles.retractions and the ping topic, from their end,
    stamping (time.monotonic()) what it sees."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.consumer = c.committed_consumer(s)
        self.requested: dict[str, float] = {}
        self.retractions: dict[str, list[float]] = defaultdict(list)
        self.pings: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        names = [self.s.topic(t) for t in ("takedowns.audit", "articles.retractions", PING)]
        await c.assign_all(self.consumer, names, from_end=True)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        audit, retractions = self.s.topic("takedowns.audit"), self.s.topic("articles.retractions")
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for tp, msgs in batch.items():
                for m in msgs:
                    if tp.topic == retractions:
                        self.retractions[orjson.loads(m.value)["takedown_id"]].append(now)
                    elif tp.topic == audit:
                        entry = orjson.loads(m.value)
                        if entry["action"] == "requested":
                            self.requested.setdefault(entry["takedown_id"], now)
                    else:
                        self.pings.setdefault(m.value.decode(), now)

    async def until(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not seen after {timeout:.0f} s")
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


async def produce_articles(s: Settings, articles: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    prod = AIOKafkaProducer(
        **aiokafka_kwargs(s), enable_idempotence=True, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await prod.start()
    try:
        topic = s.topic("articles.enriched")
        futures = [
            await prod.send(topic, key=a["article_id"].encode(), value=orjson.dumps(a), partition=None)
            for a in articles
        ]
        await asyncio.gather(*futures)
    finally:
        await prod.stop()
    return time.perf_counter() - started


async def wait_published(s: Settings, n: int, worker: c.Proc, timeout: float) -> float:
    """Seconds until a read_committed consumer has seen `n` records on articles.published."""
    started = time.perf_counter()
    consumer = c.committed_consumer(s)
    await consumer.start()
    try:
        await c.assign_all(consumer, [s.topic("articles.published")], from_end=False)
        seen, last_print = 0, time.monotonic()
        while seen < n:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{seen:,} of {n:,} published after {timeout:.0f} s")
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.tail()}")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            seen += sum(len(v) for v in batch.values())
            if time.monotonic() - last_print > 15:
                print(f"    {seen:,} of {n:,} published ({time.perf_counter() - started:.0f} s)", flush=True)
                last_print = time.monotonic()
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def create_ping_topic(s: Settings) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(s), client_id="article-streams-bench")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(s.topic(PING), num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def ping(prod: AIOKafkaProducer, s: Settings, watch: Watch) -> float:
    """Seconds from producing one record to the read_committed consumer seeing it."""
    name = uuid.uuid4().hex
    started = time.monotonic()
    await prod.send(s.topic(PING), value=name.encode())
    await watch.until(lambda: name in watch.pings, 30, "ping")
    return watch.pings[name] - started


async def takedown_phase(
    s: Settings, plan: list[Takedown], worker: c.Proc, timeout: float
) -> tuple[list[float], dict[str, int]]:
    prod = AIOKafkaProducer(**aiokafka_kwargs(s), enable_idempotence=True, acks="all", linger_ms=0)
    await prod.start()
    watch = Watch(s)
    await watch.start()
    pings: list[float] = []
    try:
        for _ in range(3):  # connections warm before anything is timed
            await ping(prod, s, watch)
        for i, td in enumerate(plan):
            pings += [await ping(prod, s, watch) for _ in range(3)]
            record = new_request(
                td.scope, td.value, "Copyright claim (benchmark)", "legal@rights.example", now=datetime.now(UTC),
                ground="legal", legal_basis="Copyright",
            )  # fmt: skip
            if not isinstance(record, dict):
                raise RuntimeError(f"{td.scope} {td.value}: {record}")
            td.record = record
            tid = record["takedown_id"]
            td.started = time.monotonic()
            await takedowns.submit(s, record, producer=prod)
            await watch.until(lambda tid=tid, n=td.covers: len(watch.retractions[tid]) >= n, timeout, td.kind)
            await watch.until(lambda tid=tid: tid in watch.requested, timeout, f"{td.kind} requested")
            td.requested = watch.requested[tid]
            td.first, td.last = watch.retractions[tid][0], watch.retractions[tid][-1]
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.tail()}")
            print(
                f"    {i + 1:>2}/{len(plan)} {td.kind:<24} last retraction after {td.last - td.started:6.2f} s",
                flush=True,
            )
        await asyncio.sleep(3.0)  # anything extra would arrive now
        counts = {
            td.record["takedown_id"]: len(watch.retractions[td.record["takedown_id"]]) for td in plan if td.record
        }
    finally:
        await watch.stop()
        await prod.stop()
    return pings, counts


# -- the report ---------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s"


def report(plan: list[Takedown], pings: list[float]) -> None:
    base = statistics.median(pings)
    rows = [
        ["baseline: one record produced → read_committed consumer", len(pings), "–", "–", ms(base),
         ms(pct(pings, 0.99)), "1"]
    ]  # fmt: skip
    kinds = list(dict.fromkeys(td.kind for td in plan))
    for kind in kinds:
        tds = [td for td in plan if td.kind == kind]
        last = [td.last - td.started for td in tds]
        rows.append(
            [
                kind,
                len(tds),
                ms(statistics.median([td.requested - td.started for td in tds])),
                ms(statistics.median([td.first - td.started for td in tds])),
                ms(pct(last, 0.5)),
                ms(pct(last, 0.99)),
                f"{pct(last, 0.5) / base:,.0f}",
            ]
        )
    headers = ["takedown", "n", "→ requested p50", "→ first retraction p50", "→ last retraction p50", "p99",
               "p50 / baseline"]  # fmt: skip
    print()
    print(c.table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=100_000, help="published articles in the state (default 100k)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of takedowns (see the top; default 5)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the load, and per takedown")
    ap.add_argument("--keep", action="store_true", help="keep the topics, log and state (for inspection)")
    args = ap.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on topics created a moment ago are noise here
    base = Settings.from_env()
    c.on_signals_exit()
    c.require_broker(base)
    prefix = f"benchtd{uuid.uuid4().hex[:8]}."
    work = Path(tempfile.mkdtemp(prefix="bench-takedown-latency-"))
    s = dataclasses.replace(base, topic_prefix=prefix, data_dir=str(work / "state"), web_port=c.free_port())
    wall = time.perf_counter()
    lay = layout(args.articles)
    plan = schedule(lay, args.rounds)
    print(
        f"takedown latency benchmark: {len(lay.articles):,} articles on {s.topic_partitions} partitions, "
        f"{len(plan)} takedowns; commit interval {s.commit_interval_seconds} s; prefix {prefix}; log in {work}",
        flush=True,
    )
    try:
        c.run(create_topics(s))
        c.run(create_ping_topic(s))
        worker = c.Proc.worker(s, work / "worker.log", stages="takedown")
        worker.wait_ready(timeout=180)
        took = c.run(produce_articles(s, lay.articles))
        print(f"  {len(lay.articles):,} articles written to articles.enriched in {took:.1f} s", flush=True)
        took = c.run(wait_published(s, len(lay.articles), worker, args.timeout))
        rss = worker.status_kb("VmRSS")
        print(
            f"  all published after {took:.0f} s ({len(lay.articles) / took:,.0f} articles/s); worker RSS "
            f"{(rss or 0) / 1024:,.0f} MiB",
            flush=True,
        )
        pings, counts = c.run(takedown_phase(s, plan, worker, args.timeout))
        wrong = {
            td.kind: counts.get(td.record["takedown_id"])
            for td in plan
            if td.record and counts.get(td.record["takedown_id"]) != td.covers
        }
        if wrong:
            print(f"  WRONG retraction counts: {wrong}")
        report(plan, pings)
        print(f"\n  worker RSS at the end {(worker.status_kb('VmRSS') or 0) / 1024:,.0f} MiB")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the worker, deleting topics", file=sys.stderr)
        return 130
    finally:
        c.stop_all()
        if not args.keep:
            deleted = c.run(c.delete_prefix(base, [prefix], groups=[s.group_id]))
            print(f"deleted {deleted} topics of {prefix}")
            shutil.rmtree(work, ignore_errors=True)
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
