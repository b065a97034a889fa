"""One `streams bench` run: every variant on fresh topics of its own, the latency phases, the figures gathered.

Method (each variant gets topics of the registry under a prefix of its own, deleted when it is done):

1. Produce the backlog (N raw events, `streams.bench.corpus`) to articles.raw, then start the processor and
   wait until it holds its partitions (a worker's /ready; the chains' READY). Two workers start first, settle
   into one group, and then the backlog is produced at full speed (`Throughput.input_bound` says if it set
   the pace).
2. Throughput = N / (first output's CreateTime on articles.dedup-sequenced|rejected -> the moment a read_committed
   consumer has seen all N final outputs on articles.published + duplicates + rejected). The steady rate
   (10 % .. 90 % of the outputs) is kept beside it.
3. After the backlog, the latency phase: fresh articles at a fixed offered rate, half of (d)'s articles/s, each
   stamped with the wall clock as it is sent (the raw record's timestamp); latency = that stamp -> seen committed
   on articles.published.
4. /metrics of the worker after the backlog: streams_processing_seconds per stage (µs per article),
   streams_enrich_enricher_seconds per enricher; /proc: peak RSS (VmHWM) and CPU time of every process,
   the broker's CPU time when it is the embedded one.

Order: (d) first (its rate sets the latency phases' rate), then (b) beside it, (a) and (c) together, (e), and
with --workers 2 the two-worker runs of (d) and (c).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.bench import kafkaio, procs, promtext
from streams.bench.corpus import Corpus, Event
from streams.bench.procs import WorkerProcess
from streams.bench.report import STAGES, VARIANTS, Latency, Result, Throughput
from streams.settings import Settings

FINAL = ("articles.published", "articles.duplicates", "articles.rejected")  # where every raw event ends
FIRST = ("articles.dedup-sequenced", "articles.rejected")  # what the first hop writes
LATENCY_SECONDS = 20.0  # length of a latency phase at its offered rate
LATENCY_EVENTS = (100, 4000)  # ... at least and at most this many events
SPACY_SAMPLE = 160  # texts spaCy's own nlp.pipe is timed on


class BenchError(RuntimeError):
    """The benchmark cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    articles: int = 20_000
    html: bool = False
    ner: bool = True
    workers: int = 1
    quix: bool = False
    corpus: Path | None = None
    timeout: float | None = None  # seconds to wait for one variant's backlog; None: from N
    keep: bool = False  # keep topics, logs and state
    progress: bool = True  # a tqdm bar per phase on stderr
    variants: tuple[str, ...] = tuple(VARIANTS)  # a subset runs only those (development, a second look)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bar:
    """A tqdm bar on a terminal; nothing otherwise (the phase's one-line summary is printed either way)."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="art", file=sys.stderr, leave=False, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Bench:
    def __init__(self, options: Options, base: Settings) -> None:
        self.o = options
        self.base = base
        self.tag = uuid.uuid4().hex[:8]
        self.prefix = f"bench{self.tag}."
        self.work = Path(tempfile.mkdtemp(prefix="streams-bench-"))
        self.broker_pid = _broker_pid(base)
        self.timeout = options.timeout or max(600.0, options.articles / 5)

    # -- the whole run -----------------------------------------------------------------------------------------
    def run(self) -> Result:
        o = self.o
        started = time.perf_counter()
        corpus = Corpus.load(o.corpus)
        events = corpus.events(0, o.articles, html=o.html, tag=self.tag)
        r = Result(articles=o.articles, html=o.html, ner=o.ner, workers=o.workers)
        r.machine = machine(self.base)
        r.settings = {
            k: getattr(self.base, k)
            for k in ("commit_interval_seconds", "dedup_reorder_seconds", "enrich_batch_size", "enrich_models",
                      "enrich_ner_processes", "store", "topic_partitions", "processing_guarantee", "producer_linger_ms",
                      "producer_batch_bytes", "producer_compression", "event_loop")
        }  # fmt: skip
        size = sum(len(e.value) for e in events) / len(events)
        log(
            f"streams bench: {o.articles:,} events ({'html' if o.html else 'text'}, {size / 1024:.1f} KB mean), "
            f"NER {'on' if o.ner else 'off'}, prefix {self.prefix}, logs in {self.work}"
        )
        if o.ner:
            self.time_spacy(r, corpus)

        rate: float | None = None  # the latency phases' offered rate: half of (d)'s articles/s
        for key in ("pipeline", "raw_stages", "passthrough", "plumbing", "quix"):
            if key not in o.variants or (key == "quix" and not o.quix):
                continue
            run, m = self.variant(key, events, 1, latency_rate=rate)
            r.runs[key] = run
            if self.last_latency is not None:
                r.latency[key] = self.last_latency
            if key == "pipeline":
                rate = 0.5 * run.per_s
                r.stage_us, r.stage_p99_us, r.enricher_us = stage_costs(m)
                if o.ner:  # again right after (d): the ratio's two sides under as nearly the same load as can be
                    self.time_spacy(r, corpus)
            elif key == "plumbing":
                r.plumbing_stage_us = stage_costs(m)[0]
            elif key == "raw_stages":
                r.raw_stage_us = self.last_chain_us
        if o.workers == 2:
            for key in ("pipeline", "plumbing"):
                if key in o.variants:
                    r.runs_2[key], _ = self.variant(key, events, 2)
            r.notes.append(
                "two workers share the machine's 2 cores with the broker and the benchmark's own consumer: "
                "see broker CPU s beside each run"
            )
        if self.base.dedup_reorder_seconds > 0:
            r.notes.append(
                f"dedup holds each article {self.base.dedup_reorder_seconds:g} s (STREAMS_DEDUP_REORDER_SECONDS) "
                "before deciding, by design (reorder hold): (b) and (d) latencies include it; "
                "STREAMS_DEDUP_REORDER_SECONDS=0 measures without it"
            )
        r.wall_seconds = time.perf_counter() - started
        return r

    def time_spacy(self, r: Result, corpus: Corpus) -> None:
        """spaCy's own rate, once more; the figure used is the mean of the timings (others' load drifts)."""
        per_s, r.spacy_sample = spacy_rate(self.base, corpus)
        r.spacy_timings.append(per_s)
        r.spacy_per_s = sum(r.spacy_timings) / len(r.spacy_timings)
        log(f"  spaCy nlp.pipe alone: {per_s:,.1f} texts/s ({r.spacy_sample} texts)")

    # -- one variant ----------------------------------------------------------------------------------------------
    last_latency: Latency | None = None
    last_chain_us: dict[str, float] = {}  # noqa: RUF012 - set per instance in variant()

    def variant(
        self, key: str, events: list[Event], workers: int, *, latency_rate: float | None = None
    ) -> tuple[Throughput, promtext.Metrics]:
        """Runs one variant on topics of its own; returns its throughput and the worker's /metrics after the
        backlog ({} for the chains). With one worker, a latency phase follows the backlog at `latency_rate`
        (None: half the rate just measured); its result is left in `self.last_latency`."""
        self.last_latency = None
        self.last_chain_us = {}
        vprefix = f"{self.prefix}{key}{workers}."
        s = dataclasses.replace(self.base, topic_prefix=vprefix, data_dir=str(self.work / f"{key}{workers}-state"))
        label = f"{VARIANTS[key]}{', 2 workers' if workers == 2 else ''}"
        asyncio.run(_create_topics(s))
        raw = s.topic("articles.raw")
        # One processor reads a backlog produced before it starts (nothing of its start-up is measured: the run
        # begins at its first output). Two workers start first and settle into one group, then the backlog comes
        # (else the first to join takes everything and the second's arrival rebalances the group mid-run).
        produced = asyncio.run(kafkaio.produce(s, raw, events)) if workers == 1 else (math.nan, math.nan)
        children = self.start(key, s, workers)
        cpu = CpuSampler(self.broker_pid, children)
        cpu.start()
        metrics: promtext.Metrics = {}
        try:
            self.wait_ready(key, children)
            if workers > 1:
                produced = asyncio.run(kafkaio.produce(s, raw, events))
            bar = Bar(self.o.progress, len(events), label)
            watch = kafkaio.OutputWatch(s, [s.topic(t) for t in FINAL])
            try:
                last = asyncio.run(watch.wait(len(events), timeout=self.timeout, alive=_alive(children), progress=bar))
            finally:
                bar.close()
            first = asyncio.run(kafkaio.first_create_time(s, [s.topic(t) for t in FIRST]))
            run = Throughput(
                key, workers, len(events), first, last,
                outputs={t[len(vprefix):]: n for t, n in watch.counts.items()},
                timeline=watch.timeline, produced_at=produced,
            )  # fmt: skip
            cpu.stopping.set()
            run.broker_cpu_seconds = cpu.between(first, last, broker=True)
            run.cpu_seconds = cpu.between(first, last, broker=False)
            run.load_average = os.getloadavg()[0]
            if key in ("pipeline", "plumbing"):
                time.sleep(1.5)  # the last batch's metrics
                metrics = _merged_metrics(children)
            run.peak_rss_mb = max((c.status_kb("VmHWM") or 0) for c in children) / 1024
            log(
                f"  {label}: {run.per_s:,.1f} articles/s ({run.seconds:.1f} s; steady {run.steady_per_s:,.1f}/s); "
                f"outputs {run.outputs}"
            )
            if workers == 1:
                rate = latency_rate if latency_rate is not None else 0.5 * run.per_s
                late = self.late_events(Corpus.load(self.o.corpus), rate)
                self.last_latency = self.latency(key, s, children, late, rate, label)
            run.peak_rss_mb = max((c.status_kb("VmHWM") or 0) for c in children) / 1024
        finally:
            cpu.stopping.set()
            for c in children:
                c.stop(timeout=60.0)
            if key in ("raw_stages", "passthrough"):
                self.last_chain_us = _chain_us(self.work / f"{key}-stats.json")
            if not self.o.keep:
                self.cleanup(s)
        return run, metrics

    def late_events(self, corpus: Corpus, rate: float) -> list[Event]:
        """The latency phase's events: fresh articles after the backlog's, LATENCY_SECONDS of them at `rate`."""
        n = int(min(max(rate * LATENCY_SECONDS, LATENCY_EVENTS[0]), LATENCY_EVENTS[1]))
        return corpus.events(self.o.articles, n, html=self.o.html, tag=self.tag, articles_only=True)

    def latency(
        self, key: str, s: Settings, children: list[WorkerProcess], late: list[Event], rate: float, label: str
    ) -> Latency:
        settle = 5.0 + (self.base.dedup_reorder_seconds if key in ("pipeline", "raw_stages") else 0.0)
        bar = Bar(self.o.progress, len(late), f"latency {label}")
        try:
            samples, sent, elsewhere = asyncio.run(
                kafkaio.latency_phase(
                    s, s.topic("articles.raw"), s.topic("articles.published"), late, rate,
                    settle=settle, alive=_alive(children), progress=bar,
                    elsewhere_topics=[s.topic("articles.duplicates"), s.topic("articles.rejected")],
                )
            )  # fmt: skip
        finally:
            bar.close()
        lat = Latency(key, rate, sent, samples, elsewhere=elsewhere, window_s=settle)
        log(
            f"    latency at {rate:,.1f}/s: p50 {lat.ms(0.5):,.0f} ms, p99 {lat.ms(0.99):,.0f} ms, "
            f"max {lat.max_ms:,.0f} ms ({lat.received}/{sent} published, {elsewhere} duplicates or rejected, "
            f"{lat.missing} not out {settle:g} s after the last send)"
        )
        return lat

    def start(self, key: str, s: Settings, workers: int) -> list[WorkerProcess]:
        if key in ("pipeline", "plumbing"):
            out = []
            for i in range(workers):
                si = dataclasses.replace(s, web_port=procs.free_port(), data_dir=f"{s.data_dir}/w{i}")
                identity = "true" if key == "plumbing" else "false"
                out.append(
                    WorkerProcess(si, self.work / f"{key}{workers}-w{i}.log", "all", STREAMS_BENCH_IDENTITY=identity)
                )
            return out
        env = procs.settings_env(s)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if key == "quix":
            cmd = [sys.executable, "-m", "streams.bench.quixchain"]
        else:
            mode = "identity" if key == "passthrough" else "stages"
            cmd = [sys.executable, "-m", "streams.bench.chain", mode, str(self.work / f"{key}-stats.json")]
        return [WorkerProcess.command(cmd, env, self.work / f"{key}.log")]

    def wait_ready(self, key: str, children: list[WorkerProcess], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        if key in ("pipeline", "plumbing"):
            for c in children:
                c.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
            if len(children) > 1:  # until the group has settled: every worker ready, assignments unchanged 3 s
                seen: list[Any] = []
                stable_since = time.monotonic()
                while time.monotonic() < deadline:
                    facts = [c.ready_facts() for c in children]
                    now = [(f.get("ready"), f.get("assigned_partitions")) for f in facts]
                    if now != seen:
                        seen, stable_since = now, time.monotonic()
                    elif all(r for r, _ in now) and time.monotonic() - stable_since >= 3.0:
                        return
                    time.sleep(0.3)
                raise BenchError(f"the two workers did not settle in {timeout:.0f} s: {seen}")
            return
        from streams.bench.chain import READY

        (c,) = children
        while time.monotonic() < deadline:
            if not c.alive():
                raise BenchError(f"{key} exited with {c.proc.returncode}:\n{c.tail()}")
            if any(line.strip() == READY.encode() for line in c.lines()):
                return
            time.sleep(0.2)
        raise BenchError(f"{key} not ready after {timeout:.0f} s:\n{c.tail()}")

    def cleanup(self, s: Settings) -> None:
        try:
            groups = asyncio.run(kafkaio.groups_with_prefix(s, s.topic_prefix))
            asyncio.run(kafkaio.delete_prefix(s, [s.topic_prefix], groups=groups))
        except Exception as exc:  # cleaning up must not hide the figures
            log(f"  could not delete the topics of {s.topic_prefix}: {exc!r}")

    def close(self) -> None:
        procs.stop_all()
        if not self.o.keep:
            shutil.rmtree(self.work, ignore_errors=True)


# -- helpers ------------------------------------------------------------------------------------------------------
class CpuSampler(threading.Thread):
    """CPU time of the broker and of the processors, sampled every 0.25 s, so that a run's CPU is counted over
    its measured span only (not a worker's start-up, model loading included)."""

    def __init__(self, broker_pid: int | None, children: list[WorkerProcess]) -> None:
        super().__init__(daemon=True)
        self.broker_pid, self.children = broker_pid, children
        self.samples: list[tuple[float, float, float]] = []  # (time, broker CPU s, processors' CPU s)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append(
                (time.time(), _cpu(self.broker_pid), sum(c.cpu_seconds() for c in self.children if c.alive()))
            )
            self.stopping.wait(0.25)

    def between(self, t0: float, t1: float, *, broker: bool) -> float:
        i = 1 if broker else 2
        return _at(self.samples, t1, i) - _at(self.samples, t0, i)


def _at(samples: list[tuple[float, float, float]], t: float, i: int) -> float:
    """The sampled counter `i` at time t, linear between samples (the nearest end outside them)."""
    if not samples:
        return math.nan
    if t <= samples[0][0]:
        return samples[0][i]
    for a, b in zip(samples, samples[1:], strict=False):
        if a[0] <= t <= b[0]:
            return a[i] + (b[i] - a[i]) * (t - a[0]) / max(b[0] - a[0], 1e-9)
    return samples[-1][i]


async def _create_topics(s: Settings) -> None:
    from streams.kafka.admin import create_topics

    await create_topics(s)


def _alive(children: list[WorkerProcess]) -> Callable[[], str | None]:
    def check() -> str | None:
        for c in children:
            if not c.alive():
                return f"a processor exited with {c.proc.returncode}:\n{c.tail()}"
        return None

    return check


def _merged_metrics(children: list[WorkerProcess]) -> promtext.Metrics:
    out: promtext.Metrics = {}
    for c in children:
        for fam, samples in c.metrics().items():
            out.setdefault(fam, []).extend(samples)
    return out


def stage_costs(m: promtext.Metrics) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(mean µs, p99 µs) per stage from streams_processing_seconds, and µs per article of each enricher."""
    means, p99 = {}, {}
    for st in STAGES:
        h = promtext.histogram(m, "streams_processing_seconds", stage=st)
        if h[2] > 0:
            means[st] = promtext.mean(h) * 1e6
            p99[st] = promtext.quantile(h[0], 0.99) * 1e6
    enriched = promtext.by_label(m, "streams_events_in", "stage").get("enrich", 0.0)
    enrichers = {
        k: v / enriched * 1e6
        for k, v in promtext.by_label(m, "streams_enrich_enricher_seconds", "enricher").items()
        if enriched
    }
    return means, p99, enrichers


def _chain_us(path: Path) -> dict[str, float]:
    try:
        stats = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {hop: st["transform_seconds"] / st["records"] * 1e6 for hop, st in stats.items() if st.get("records")}


def _broker_pid(s: Settings) -> int | None:
    try:
        from streams.kafka.local import EmbeddedBroker

        return EmbeddedBroker(s).running_pid()
    except Exception:
        return None


def _cpu(pid: int | None) -> float:
    return procs.proc_cpu_seconds(pid) if pid is not None else math.nan


def machine(s: Settings) -> dict[str, Any]:
    from streams.kafka.local import KAFKA_VERSION

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": KAFKA_VERSION,
        "broker": s.kafka_bootstrap,
    }


def spacy_rate(s: Settings, corpus: Corpus) -> tuple[float, int]:
    """spaCy's own nlp.pipe over the corpus texts (the stage's pipeline, batch size and cut), texts per second."""
    from streams.stages.enrich.ner import load_pipeline
    from streams.stages.enrich.stage import parse_models

    models = dict(parse_models(s.enrich_models))
    if "en" not in models:
        return math.nan, 0
    nlp = load_pipeline(models["en"])
    texts = [" ".join(row["body"].split())[: s.enrich_ner_max_chars] for row in corpus.rows[: SPACY_SAMPLE + 16]]
    for _ in nlp.pipe(texts[:16], batch_size=s.enrich_batch_size):  # warm up
        pass
    t0 = time.perf_counter()
    for _ in nlp.pipe(texts[16:], batch_size=s.enrich_batch_size):
        pass
    return len(texts[16:]) / (time.perf_counter() - t0), len(texts[16:])


def ensure_broker(s: Settings) -> Any:
    """The embedded broker started here when none answers (and stopped by the caller), as `make test` does."""
    from streams.kafka.local import BrokerError, EmbeddedBroker, is_embedded_target, parse_bootstrap, probe

    if any(probe(a) for a in parse_bootstrap(s.kafka_bootstrap)):
        return None
    if not is_embedded_target(s):
        raise BenchError(f"no Kafka broker answers at {s.kafka_bootstrap} (STREAMS_KAFKA_BOOTSTRAP)")
    broker = EmbeddedBroker(s)
    try:
        broker.start()
    except BrokerError as exc:
        raise BenchError(f"no broker answers and the embedded one could not start: {exc}") from exc
    return broker


def bench(options: Options) -> Result:
    """Runs the benchmark with the settings from the environment (STREAMS_*), `--ner` applied."""
    import logging

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on topics created a moment ago are noise here
    base = Settings.from_env(enrich_ner=options.ner, log_format="json")
    if options.workers not in (1, 2):
        raise BenchError("--workers is 1 or 2")
    Corpus.load(options.corpus)  # a missing corpus is said before anything starts
    broker = ensure_broker(base)
    b = Bench(options, base)
    procs.on_signals_exit()
    try:
        return b.run()
    finally:
        b.close()
        if broker is not None:
            broker.stop()
