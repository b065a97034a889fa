"""Benchmarks the throughput one worker reaches end to end (normalize + dedup, exactly-once) on real BBC articles."""

# Method (fresh topic prefix per run; ../shared/data is read, never copied):
#
# 1. Build N raw events from ../shared/data/bbc_news_fulltext.jsonl: the first pass over the corpus as
#    published (its 100 natural exact duplicates included), the second as lightly edited syndicated copies
#    (near duplicates), the third as verbatim copies on other sites (same_content), and so on; --html wraps
#    each body in the page of bench/bench_normalize.py (navigation, ads, scripts, footer).
# 2. Produce them all to articles.raw, then start one `streams worker` (all stages, exactly-once) on that
#    backlog. Throughput = N / (first raw event consumed -> last output committed): the first is the
#    CreateTime of the worker's first record on articles.normalized|rejected (written right after it consumed
#    its first event), the last is when a read_committed consumer sees the N-th record on articles.unique +
#    articles.duplicates (+ articles.rejected). /metrics is scraped every second for the stage rates
#    (streams_events_in_total per stage) and, at the end, streams_processing_seconds per stage.
# 3. Latency: after the backlog, --latency-events more events at --latency-rate per second (well under
#    capacity); each one's time from send to committed output, and the worker's end-to-end histogram over
#    that phase alone (during the backlog it only measures how long events waited in the queue).
# 4. Baseline in the same run: the same events copied by a trivial exactly-once Faust agent (the project's
#    eos patch, the same commit interval and fetch sizes, no work), once as one hop raw -> out, and once with
#    the pipeline's topology (raw[4] -> [4] -> [1] -> out, three transactional hops), measured the same way,
#    before the pipeline and (one hop) again after it, to show the drift of the machine.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.codec import rfc3339
from streams.kafka.admin import create_topics, wait_until_served
from streams.settings import Settings

MB = 1024 * 1024
OUTPUTS = ("articles.unique", "articles.duplicates", "articles.rejected")


# -- events -----------------------------------------------------------------------------------------------
def load_rows() -> list[dict[str, Any]]:
    if not c.BBC.exists():
        sys.exit(
            f"{c.BBC} is missing: this benchmark needs ../shared/data beside the checkout (real BBC text, read "
            "in place, never copied into the repository)."
        )
    with c.BBC.open("rb") as fh:
        return [orjson.loads(line) for line in fh]


def raw_events(rows: list[dict[str, Any]], start: int, n: int, html: bool, tag: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of raw_article.v1 events start..start+n-1: pass 0 as published, then copies (see the top)."""
    from bench_normalize import html_page  # the same page as the normalize benchmark

    now = datetime.now(UTC)
    out = []
    for i in range(start, start + n):
        row = rows[i % len(rows)]
        p = i // len(rows)
        body = row["body"]
        if p % 3 == 1:  # a syndicator's light edit: dateline and sign-off
            body = f"LONDON (Wire) - {body}\n\nAdditional reporting by Wire."
        site = "www.bbc.co.uk" if p == 0 else f"www.partner{p}.example"
        url = f"https://{site}/news/{row['category']}/{tag}-{i}?utm_source=bench&utm_medium=rss"
        event = {
            "event_id": f"{tag}-{i}",
            "url": url,
            "title": row["title"],
            "body": html_page({**row, "body": body}) if html else body,
            "body_format": "html" if html else "text",
            "source": {"name": "BBC News" if p == 0 else f"Partner {p}", "id": "bbc" if p == 0 else f"partner{p}"},
            "published_at": rfc3339(now - timedelta(minutes=5 + i % 600)),
            "language": "en",
        }
        out.append((url.encode(), orjson.dumps(event)))
    return out


def event_id_of(value: bytes) -> str | None:
    doc = orjson.loads(value)
    if "event_id" in doc:
        return doc["event_id"]  # articles.unique, or a raw event copied by the passthrough
    article = doc.get("article")
    if isinstance(article, dict):
        return article.get("event_id")  # articles.duplicates
    return None  # articles.rejected carries the payload in base64


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=1 * MB,
        max_request_size=11 * MB,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# -- measuring a run ------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    n: int
    first_at: float = float("nan")  # first input consumed (CreateTime of the first record of the first hop)
    last_at: float = float("nan")  # the N-th output seen committed
    outputs: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # latency phase: send -> committed output, seconds
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (time, events_in per stage)
    metrics_end: dict[str, Any] = field(default_factory=dict)  # /metrics after the backlog
    metrics_before_latency: dict[str, Any] = field(default_factory=dict)
    metrics_after_latency: dict[str, Any] = field(default_factory=dict)
    peak_rss_kb: int = 0
    cpu_s: float = float("nan")
    wall_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.last_at - self.first_at

    @property
    def rate(self) -> float:
        return self.n / self.seconds


async def first_create_time(settings: Settings, names: list[str]) -> float:
    """The earliest record timestamp (CreateTime, set by the worker's producer) on the given topics."""
    consumer = c.committed_consumer(settings, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        tps = await c.assign_all(consumer, names, from_end=False)
        ends = await consumer.end_offsets(tps)
        first = float("inf")
        for tp in tps:
            if ends[tp] == 0:
                continue
            consumer.seek(tp, 0)
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            for msgs in batch.values():
                first = min([first, *(m.timestamp / 1000 for m in msgs)])
        return first
    finally:
        await consumer.stop()


async def wait_outputs(
    settings: Settings, names: list[str], n: int, timeout: float, proc: c.Proc
) -> tuple[float, dict]:
    """Reads `names` from the beginning (read_committed) until n records; returns (when the n-th came, counts)."""
    consumer = c.committed_consumer(settings)
    await consumer.start()
    counts = dict.fromkeys(names, 0)
    try:
        await c.assign_all(consumer, names, from_end=False)
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + 30
        while sum(counts.values()) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(counts.values())} of {n} outputs after {timeout:.0f} s: {counts}")
            if not proc.alive():
                raise RuntimeError(f"the worker exited with {proc.proc.returncode}:\n{proc.tail()}")
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, msgs in batch.items():
                counts[tp.topic] += len(msgs)
            if time.monotonic() > next_note:
                next_note = time.monotonic() + 30
                print(f"    ... {sum(counts.values()):,}/{n:,} outputs committed so far", flush=True)
        return time.time(), counts
    finally:
        await consumer.stop()


async def latency_phase(
    settings: Settings, raw_topic: str, names: list[str], items: list[tuple[bytes, bytes]], rate: float, timeout: float
) -> list[float]:
    """Sends `items` at `rate`/s and returns each one's send -> committed-output time (seconds)."""
    consumer = c.committed_consumer(settings)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    try:
        await c.assign_all(consumer, names, from_end=True)

        async def receive() -> None:
            while len(got) < len(items):
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for msgs in batch.values():
                    for m in msgs:
                        eid = event_id_of(m.value)
                        if eid in sent and eid not in got:
                            got[eid] = now

        receiver = asyncio.create_task(receive())
        t0 = time.monotonic()
        for i, (k, v) in enumerate(items):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            sent[orjson.loads(v)["event_id"]] = time.time()
            await producer.send(raw_topic, key=k, value=v)
        try:
            await asyncio.wait_for(receiver, timeout=timeout)
        except TimeoutError:
            print(f"    latency phase: {len(got)}/{len(items)} outputs arrived in time", flush=True)
        return sorted(got[e] - sent[e] for e in got)
    finally:
        await producer.stop()
        await consumer.stop()


class Sampler(threading.Thread):
    """Scrapes the worker's /metrics once a second: (time, streams_events_in_total per stage)."""

    def __init__(self, proc: c.Proc, run: Run) -> None:
        super().__init__(daemon=True)
        self.proc, self.run_ = proc, run
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):
                m = self.proc.metrics()
                stages = {lab["stage"]: v for name, lab, v in m.get("streams_events_in", []) if name.endswith("_total")}
                self.run_.samples.append((time.time(), stages))
                self.run_.peak_rss_kb = self.proc.status_kb("VmHWM") or self.run_.peak_rss_kb
            self.stopping.wait(1.0)


# -- the pipeline ---------------------------------------------------------------------------------------------
def run_pipeline(
    base: Settings,
    prefix: str,
    events: list[tuple[bytes, bytes]],
    late: list[tuple[bytes, bytes]],
    args: Any,
    work: Path,
) -> Run:
    s = dataclasses.replace(base, topic_prefix=prefix, data_dir=str(work / "pipeline-state"), web_port=c.free_port())
    run = Run("pipeline: streams worker (normalize + dedup)", len(events))
    wall = time.perf_counter()
    c.run(create_topics(s))
    took = c.run(produce(s.kafka_bootstrap, s.topic("articles.raw"), events))
    print(f"  pipeline: {len(events):,} raw events produced in {took:.1f} s; starting the worker", flush=True)
    w = c.Proc.worker(s, work / "worker-pipeline.log", stages="all")
    sampler = Sampler(w, run)
    sampler.start()
    try:
        names = [s.topic(t) for t in OUTPUTS]
        run.last_at, counts = c.run(wait_outputs(s, names, len(events), args.timeout, w))
        run.outputs = {k[len(prefix) :]: v for k, v in counts.items()}
        run.first_at = c.run(first_create_time(s, [s.topic("articles.normalized"), s.topic("articles.rejected")]))
        time.sleep(1.5)  # one more scrape after the last event
        run.metrics_end = run.metrics_before_latency = w.metrics()
        run.cpu_s = w.cpu_seconds()
        if late:
            run.latencies = c.run(latency_phase(s, s.topic("articles.raw"), names, late, args.latency_rate, 120))
            time.sleep(0.5)
            run.metrics_after_latency = w.metrics()
        run.peak_rss_kb = w.status_kb("VmHWM") or run.peak_rss_kb
    finally:
        sampler.stopping.set()
        w.stop()
    run.wall_s = time.perf_counter() - wall
    return run


# -- the passthrough baseline ------------------------------------------------------------------------------------
def passthrough_topics(prefix: str, hops: int) -> list[tuple[str, int]]:
    """(topic, partitions) from the input to the output; three hops mirror raw[4] -> normalized[4] -> sequenced[1]."""
    return [(f"{prefix}in", 4), (f"{prefix}hop1", 4), (f"{prefix}hop2", 1)][:hops] + [(f"{prefix}out", 4)]


def passthrough_worker() -> None:
    """Child process: a minimal exactly-once Faust app that copies each record hop by hop, nothing else."""
    import faust

    from streams import eos
    from streams.kafka.local import parse_bootstrap

    eos.install()  # the same corrections the pipeline runs with
    s = Settings.from_env()
    hops = int(os.environ["BENCH_PASSTHROUGH_HOPS"])
    app = faust.App(
        s.topic_prefix + "passthrough",
        broker=[f"kafka://{a}" for a in parse_bootstrap(s.kafka_bootstrap)],
        processing_guarantee="exactly_once",
        store="memory://",
        datadir=s.data_dir,
        web_enabled=False,
        producer_max_request_size=11 * MB,
        consumer_max_fetch_size=11 * MB,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        topic_replication_factor=s.topic_replication,
        autodiscover=False,
        version=1,
    )
    chain = [
        app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=p)
        for name, p in passthrough_topics(s.topic_prefix, hops)
    ]

    def copy(i: int) -> None:
        source, sink = chain[i], chain[i + 1]

        async def agent(stream: Any) -> None:
            async for ev in stream.events():
                async with eos.processing(app, ev):
                    await sink.send(key=ev.message.key, value=ev.message.value)

        app.agent(source, name=f"{s.topic_prefix}copy{i}")(agent)

    for i in range(hops):
        copy(i)
    faust.Worker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()


async def create_plain_topics(settings: Settings, topics: list[tuple[str, int]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(10 * MB)}  # as articles.raw
        await admin.create_topics([NewTopic(t, p, settings.topic_replication, topic_configs=config) for t, p in topics])
        await wait_until_served(admin, dict(topics))
    finally:
        await admin.close()


def run_passthrough(
    base: Settings,
    prefix: str,
    hops: int,
    events: list[tuple[bytes, bytes]],
    late: list[tuple[bytes, bytes]],
    args: Any,
    work: Path,
    label: str,
) -> Run:
    s = dataclasses.replace(base, topic_prefix=prefix, data_dir=str(work / f"{label}-state"))
    run = Run(f"baseline: passthrough, {hops} EOS hop{'s' if hops > 1 else ''} ({label})", len(events))
    wall = time.perf_counter()
    topics = passthrough_topics(prefix, hops)
    c.run(create_plain_topics(s, topics))
    c.run(produce(s.kafka_bootstrap, topics[0][0], events))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--passthrough-worker"]
    w = c.Proc(cmd, c.settings_env(s, BENCH_PASSTHROUGH_HOPS=hops), work / f"worker-{label}.log")
    try:
        run.last_at, counts = c.run(wait_outputs(s, [topics[-1][0]], len(events), args.timeout, w))
        run.outputs = {k[len(prefix) :]: v for k, v in counts.items()}
        run.first_at = c.run(first_create_time(s, [topics[1][0]]))
        run.cpu_s = w.cpu_seconds()
        if late:
            run.latencies = c.run(latency_phase(s, topics[0][0], [topics[-1][0]], late, args.latency_rate, 120))
        run.peak_rss_kb = w.status_kb("VmHWM") or 0
    finally:
        w.stop()
    run.wall_s = time.perf_counter() - wall
    return run


# -- report ---------------------------------------------------------------------------------------------------------
def stage_rates(run: Run) -> dict[str, tuple[float, float, float]]:
    """Per stage: (events, mean rate over its active span, best 5-second rate) from the /metrics samples."""
    out: dict[str, tuple[float, float, float]] = {}
    samples = backlog_samples(run)
    stages = sorted({st for _, d in samples for st in d})
    for st in stages:
        pts = [(t, d.get(st, 0.0)) for t, d in samples]
        total = pts[-1][1] if pts else 0.0
        if total <= 0:
            continue
        start = next(i for i, (_, v) in enumerate(pts) if v > 0)
        end = next(i for i, (_, v) in enumerate(pts) if v >= total)
        t0 = pts[max(start - 1, 0)][0]
        mean = total / max(pts[end][0] - t0, 1e-9)
        best = 0.0
        for i in range(len(pts)):
            j = next((k for k in range(i, len(pts)) if pts[k][0] - pts[i][0] >= 5.0), None)
            if j is not None:
                best = max(best, (pts[j][1] - pts[i][1]) / (pts[j][0] - pts[i][0]))
        out[st] = (total, mean, best)
    return out


def backlog_samples(run: Run) -> list[tuple[float, dict[str, float]]]:
    """The /metrics samples up to the first one taken after the backlog was done (not the latency phase)."""
    out = []
    for t, d in run.samples:
        out.append((t, d))
        if t > run.last_at:
            break
    return out


def timeline(run: Run, every: float = 5.0) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    samples = backlog_samples(run)
    if not samples:
        return rows
    stages = sorted({st for _, d in samples for st in d})
    t_start = run.first_at
    prev = None
    for t, d in samples:
        if t < t_start - 1:
            prev = (t, d)
            continue
        if prev is None or t - prev[0] >= every or t == samples[-1][0]:
            if prev is not None and t > prev[0]:
                rates = [f"{(d.get(st, 0) - prev[1].get(st, 0)) / (t - prev[0]):,.0f}" for st in stages]
                rows.append((f"{prev[0] - t_start:+.0f}..{t - t_start:+.0f} s", *rates))
            prev = (t, d)
        if all(d.get(st, 0) >= run.n for st in stages):
            break
    return rows


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def report(pipe: Run, baselines: list[Run], args: Any, n_late: int) -> None:
    fmt = "html" if args.html else "text"
    print(f"\n== throughput of one worker, {pipe.n:,} BBC events ({fmt} bodies), exactly-once")
    b1 = [b for b in baselines if "1 EOS hop " in b.name]
    ref = statistics.fmean(b.rate for b in b1) if b1 else float("nan")
    rows = []
    for r in [pipe, *baselines]:
        ratio = f"{r.rate / ref:.2f}" if b1 else "-"
        outs = ", ".join(f"{k.split('.')[-1]} {v:,}" for k, v in r.outputs.items() if v)
        rows.append(
            (r.name, f"{r.seconds:.1f}", f"{r.rate:,.0f}", ratio, f"{r.cpu_s:.0f}", f"{r.peak_rss_kb / 1024:.0f}", outs)
        )
    print(c.table(("run", "seconds", "events/s", "vs 1-hop", "CPU s", "peak RSS MB", "outputs"), rows))
    topo = [b for b in baselines if "3 EOS hops" in b.name]
    if b1:
        print(f"pipeline / passthrough 1 hop: {pipe.rate / ref:.3f}  (baseline = mean of {len(b1)} run(s))")
    if topo:
        print(f"pipeline / passthrough with the pipeline's 3 hops: {pipe.rate / topo[0].rate:.3f}")

    print("\nstage rates from /metrics (streams_events_in_total, sampled every second):")
    rates = stage_rates(pipe)
    print(
        c.table(
            ("stage", "events", "mean events/s", "best 5 s events/s"),
            [(st, f"{tot:,.0f}", f"{mean:,.0f}", f"{best:,.0f}") for st, (tot, mean, best) in rates.items()],
        )
    )
    tl = timeline(pipe)
    if tl:
        stages = sorted({st for _, d in backlog_samples(pipe) for st in d})
        print("\nevents/s per stage over time (from the first event consumed):")
        print(c.table(("window", *stages), tl))

    m = pipe.metrics_end
    print("\nstreams_processing_seconds per stage (histogram, backlog phase; Prometheus interpolation):")
    rows = []
    for st in rates:
        buckets, total, count = c.histogram(m, "streams_processing_seconds", stage=st)
        if count:
            rows.append(
                (
                    st,
                    f"{count:,.0f}",
                    f"{total / count * 1e3:.2f}",
                    f"{c.quantile(buckets, 0.5) * 1e3:.2f}",
                    f"{c.quantile(buckets, 0.99) * 1e3:.2f}",
                )
            )
    print(c.table(("stage", "events", "mean ms", "p50 ms", "p99 ms"), rows))

    print("\nend-to-end latency (streams_end_to_end_latency_seconds: raw record timestamp -> stage output):")
    for phase, after, before in (
        ("backlog (queueing: events waited for the worker)", pipe.metrics_end, {}),
        (
            f"latency phase ({n_late} events at {args.latency_rate:g}/s)",
            pipe.metrics_after_latency,
            pipe.metrics_before_latency,
        ),
    ):
        if not after:
            continue
        print(f"  {phase}:")
        for st in rates:
            h = c.histogram(after, "streams_end_to_end_latency_seconds", stage=st)
            if before:
                h = c.hist_delta(h, c.histogram(before, "streams_end_to_end_latency_seconds", stage=st))
            if h[2] <= 0:
                continue
            print(
                f"    {st}: n={h[2]:,.0f} p50 {c.quantile(h[0], 0.5):.3f} s, p99 {c.quantile(h[0], 0.99):.3f} s; "
                "buckets: " + " | ".join(c.hist_lines(h[0]))
            )
    if n_late:
        print(f"\nmeasured send -> committed output, {n_late} events at {args.latency_rate:g}/s (read_committed):")
        rows = []
        for r in [pipe, *baselines]:
            if r.latencies:
                lat = r.latencies
                rows.append(
                    (
                        r.name,
                        f"{len(lat)}",
                        f"{pct(lat, 0.5) * 1e3:.0f}",
                        f"{pct(lat, 0.99) * 1e3:.0f}",
                        f"{max(lat) * 1e3:.0f}",
                    )
                )
        print(c.table(("run", "events", "p50 ms", "p99 ms", "max ms"), rows))
        topo_lat = topo[0].latencies if topo and topo[0].latencies else None
        if pipe.latencies and topo_lat:
            print(f"pipeline / 3-hop passthrough p50 latency: {pct(pipe.latencies, 0.5) / pct(topo_lat, 0.5):.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run: .venv/bin/python bench/bench_pipeline.py [--n 5000] [--html]. Needs the broker on "
        "STREAMS_KAFKA_BOOTSTRAP and ../shared/data; the method is described at the top of this file.",
    )
    ap.add_argument("--n", type=int, default=5000, help="raw events in the backlog (default 5000)")
    ap.add_argument("--html", action="store_true", help="wrap each body in a realistic HTML page")
    ap.add_argument("--latency-events", type=int, default=200, help="events sent slowly after the backlog (0: none)")
    ap.add_argument("--latency-rate", type=float, default=20.0, help="events/s of the latency phase (default 20)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the passthrough baselines")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for a run's outputs")
    ap.add_argument("--keep", action="store_true", help="keep the topics, logs and state (for inspection)")
    ap.add_argument("--passthrough-worker", action="store_true", help=argparse.SUPPRESS)  # child process
    args = ap.parse_args(argv)
    if args.passthrough_worker:
        passthrough_worker()
        return 0
    rows = load_rows()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on topics created a moment ago are noise here
    base = Settings.from_env(log_format="json", log_level="info")
    c.on_signals_exit()
    c.require_broker(base)
    tag = uuid.uuid4().hex[:8]
    prefix = f"benchpipe{tag}."
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    events = raw_events(rows, 0, args.n, args.html, tag)
    late = raw_events(rows, args.n, args.latency_events, args.html, tag)
    size = statistics.fmean(len(v) for _, v in events)
    print(
        f"pipeline benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.n:,} events "
        f"({'html' if args.html else 'text'}, {size / 1024:.1f} KB mean) from {c.BBC.name}; prefix {prefix}; "
        f"logs in {work}",
        flush=True,
    )
    wall = time.perf_counter()
    baselines: list[Run] = []
    try:
        if not args.no_baseline:
            for hops, label in ((1, "before"), (3, "topology")):
                baselines.append(
                    run_passthrough(base, f"{prefix}pt{hops}{label}.", hops, events, late, args, work, label)
                )
                b = baselines[-1]
                print(f"  {b.name}: {b.rate:,.0f} events/s ({b.seconds:.1f} s)", flush=True)
        pipe = run_pipeline(base, prefix, events, late, args, work)
        print(f"  {pipe.name}: {pipe.rate:,.0f} events/s ({pipe.seconds:.1f} s)", flush=True)
        if not args.no_baseline:
            baselines.append(run_passthrough(base, f"{prefix}pt1after.", 1, events, [], args, work, "after"))
            b = baselines[-1]
            print(f"  {b.name}: {b.rate:,.0f} events/s ({b.seconds:.1f} s)", flush=True)
        report(pipe, baselines, args, len(late))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping workers, deleting topics", file=sys.stderr)
        return 130
    finally:
        c.stop_all()
        if not args.keep:
            groups = [f"{prefix}{base.app_id}"] + [
                f"{prefix}pt{h}{lab}.passthrough" for h, lab in ((1, "before"), (3, "topology"), (1, "after"))
            ]
            deleted = c.run(c.delete_prefix(base, [prefix], groups=groups))
            print(f"deleted {deleted} topics of {prefix}")
            shutil.rmtree(work, ignore_errors=True)
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
