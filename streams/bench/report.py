"""The results of one `streams bench` run, as values: rates, ratios, latency quantiles, the goals, JSON and text.

Pure: no Kafka, no processes (unit-tested in tests/unit/bench/test_bench.py). `run` fills a `Result`; `as_json`
gives the object `--json` prints, `lines` the text report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Variants, in the order the report lists them: key -> what it is.
VARIANTS = {
    "passthrough": "(a) raw aiokafka chain, identity (the limit)",
    "raw_stages": "(b) raw aiokafka chain, the stage functions",
    "plumbing": "(c) streams worker, STREAMS_BENCH_IDENTITY=true",
    "pipeline": "(d) streams worker, all stages",
    "quix": "(e) Quix Streams chain, identity",
}
STAGES = ("normalize", "dedup", "enrich", "takedown")
# The issue's goals (issue 14): (key in the JSON, what, target, at least (True) or at most (False)).
GOALS = (
    ("plumbing_ratio", "plumbing c/a", 0.5, True),
    ("pipeline_ratio", "pipeline d/b", 0.8, True),
    ("latency_p99_ms", "p99 end-to-end at half load (ms)", 100.0, False),
    ("ner_ratio", "NER (enrich stage) / spaCy nlp.pipe", 0.85, True),
    ("pipeline_gain_2_workers", "two workers / one, pipeline (NER-bound)", 1.6, True),
    ("normalize_us", "normalize µs per article (text)", 150.0, False),
    ("normalize_html_us", "normalize µs per article (HTML)", 1000.0, False),
)


@dataclass
class Throughput:
    """One variant's backlog: N raw events from the first output sent to the N-th output seen committed."""

    variant: str
    workers: int
    articles: int
    first_at: float  # the processor's first output record's CreateTime (it had just read its first input)
    last_at: float  # when a read_committed consumer saw the N-th final output
    outputs: dict[str, int] = field(default_factory=dict)  # final topic (logical) -> records
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (time, outputs so far)
    produced_at: tuple[float, float] = (math.nan, math.nan)  # the backlog's producer: (started, ended)
    cpu_seconds: float = math.nan  # the processors' user + system CPU from the first output to the last
    peak_rss_mb: float = math.nan  # the processor's VmHWM (the largest, with two workers)
    broker_cpu_seconds: float = math.nan  # the broker's CPU over the same span (when its pid is known)
    load_average: float = math.nan  # the machine's 1-minute load average when the backlog was done (others' work)

    @property
    def seconds(self) -> float:
        return self.last_at - self.first_at

    @property
    def per_s(self) -> float:
        return rate(self.articles, self.seconds)

    @property
    def steady_per_s(self) -> float:
        """The rate between 10 % and 90 % of the outputs (no start-up or tail)."""
        return steady_rate(self.timeline, self.articles)

    def seconds_to(self, share: float) -> float:
        """Seconds from the first output until `share` of the N outputs had been seen (start-up vs. tail)."""
        t = next((t for t, c in self.timeline if c >= share * self.articles), None)
        return t - self.first_at if t is not None else math.nan

    @property
    def input_bound(self) -> bool:
        """True when the producer of the backlog may have set the pace (it ended after 80 % of the run)."""
        end = self.produced_at[1]
        return not math.isnan(end) and end - self.first_at > 0.8 * self.seconds


@dataclass
class Latency:
    """End-to-end latency at a fixed offered rate: raw record timestamp -> committed on articles.published."""

    variant: str
    rate: float  # offered events per second
    sent: int
    samples: list[float]  # seconds, sorted
    elsewhere: int = 0  # came out as duplicates or rejections: no latency to publish, not late either
    window_s: float = math.nan  # how long after the last send the phase waited for stragglers

    @property
    def received(self) -> int:
        return len(self.samples)

    @property
    def missing(self) -> int:
        """Sent, and out nowhere when the phase ended: later than the window, so counted as infinitely late."""
        return max(0, self.sent - self.received - self.elsewhere)

    def ms(self, q: float) -> float:
        """The q-quantile over the articles meant to be published: the missing ones count as later than all
        (inf when q falls among them), so a phase that lost its tail cannot report a good p99."""
        n = self.received + self.missing
        if not n:
            return math.nan
        k = max(0, min(n - 1, math.ceil(q * n) - 1))
        return self.samples[k] * 1000 if k < self.received else math.inf

    @property
    def max_ms(self) -> float:
        return self.ms(1.0)

    def quantiles_ms(self) -> list[float | None]:
        """The 0th..100th percentiles in ms (101 values: enough for a distribution plot); None where missing."""
        if not self.samples:
            return []
        return [round(v, 3) if math.isfinite(v) else None for v in (self.ms(q / 100) for q in range(101))]


@dataclass
class Result:
    articles: int
    html: bool
    ner: bool
    workers: int
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Throughput] = field(default_factory=dict)  # variant -> its one-worker run
    runs_2: dict[str, Throughput] = field(default_factory=dict)  # variant -> its two-worker run (--workers 2)
    latency: dict[str, Latency] = field(default_factory=dict)
    stage_us: dict[str, float] = field(default_factory=dict)  # (d): streams_processing_seconds mean per stage
    stage_p99_us: dict[str, float] = field(default_factory=dict)
    plumbing_stage_us: dict[str, float] = field(default_factory=dict)  # (c): the same histogram, identity stages
    raw_stage_us: dict[str, float] = field(default_factory=dict)  # (b): time in the stage functions per record
    enricher_us: dict[str, float] = field(default_factory=dict)  # (d): streams_enrich_enricher_seconds per article
    spacy_per_s: float = math.nan  # spaCy's own nlp.pipe over the same texts, in this process (mean of the timings)
    spacy_sample: int = 0
    spacy_timings: list[float] = field(default_factory=list)  # texts/s before and after (d): the machine's drift
    wall_seconds: float = math.nan
    notes: list[str] = field(default_factory=list)

    def per_s(self, variant: str, workers: int = 1) -> float:
        run = (self.runs if workers == 1 else self.runs_2).get(variant)
        return run.per_s if run is not None else math.nan

    @property
    def plumbing_ratio(self) -> float:
        return ratio(self.per_s("plumbing"), self.per_s("passthrough"))

    @property
    def pipeline_ratio(self) -> float:
        return ratio(self.per_s("pipeline"), self.per_s("raw_stages"))

    @property
    def quix_ratio(self) -> float:
        return ratio(self.per_s("quix"), self.per_s("passthrough"))

    @property
    def ner_ratio(self) -> float:
        """The enrich stage's articles/s (1 / its µs per article in the worker) over spaCy's own nlp.pipe rate."""
        us = self.stage_us.get("enrich", math.nan)
        return ratio(1e6 / us if us and us > 0 else math.nan, self.spacy_per_s) if self.ner else math.nan

    def gain(self, variant: str) -> float:
        return ratio(self.per_s(variant, 2), self.per_s(variant, 1))

    @property
    def worker_peak_rss_mb(self) -> float:
        run = self.runs.get("pipeline")
        return run.peak_rss_mb if run is not None else math.nan


def rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 and not math.isnan(seconds) else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (q in [0, 1]); NaN when empty."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[k])


def steady_rate(timeline: Sequence[tuple[float, int]], n: int, lo: float = 0.1, hi: float = 0.9) -> float:
    """Outputs per second between the points where `lo` and `hi` of the n outputs had been seen."""
    a = next((t for t, c in timeline if c >= lo * n), None)
    b = next(((t, c) for t, c in timeline if c >= hi * n), None)
    if a is None or b is None or b[0] <= a:
        return math.nan
    c_a = next(c for t, c in timeline if t == a)
    return (b[1] - c_a) / (b[0] - a)


def _num(x: float, digits: int = 1) -> float | None:
    """JSON has no NaN: missing figures are null."""
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), digits)


def goal_values(r: Result) -> dict[str, float]:
    lat = r.latency.get("pipeline")
    return {
        "plumbing_ratio": r.plumbing_ratio,
        "pipeline_ratio": r.pipeline_ratio,
        "latency_p99_ms": lat.ms(0.99) if lat else math.nan,
        "ner_ratio": r.ner_ratio,
        "pipeline_gain_2_workers": r.gain("pipeline") if r.runs_2 else math.nan,
        "normalize_us": r.stage_us.get("normalize", math.nan) if not r.html else math.nan,
        "normalize_html_us": r.stage_us.get("normalize", math.nan) if r.html else math.nan,
    }


def goals(r: Result) -> list[dict[str, Any]]:
    """Each goal of the issue with this run's figure: met (True/False) or None when this run does not measure it."""
    values = goal_values(r)
    out = []
    for key, what, target, at_least in GOALS:
        v = values[key]
        met = None if math.isnan(v) else (v >= target if at_least else v <= target)
        out.append({"goal": key, "what": what, "target": target, "at_least": at_least, "value": _num(v, 3), "met": met})
    return out


def _run_json(run: Throughput) -> dict[str, Any]:
    return {
        "per_s": _num(run.per_s),
        "steady_per_s": _num(run.steady_per_s),
        "seconds": _num(run.seconds, 2),
        "workers": run.workers,
        "outputs": dict(run.outputs),
        "cpu_seconds": _num(run.cpu_seconds, 2),
        "cpu_us_per_article": _num(rate(run.cpu_seconds * 1e6, run.articles), 0),
        "peak_rss_mb": _num(run.peak_rss_mb),
        "broker_cpu_seconds": _num(run.broker_cpu_seconds, 2),
        "input_bound": run.input_bound,
        "seconds_to": {f"{q:.0%}": _num(run.seconds_to(q), 2) for q in (0.1, 0.5, 0.9, 1.0)},
        "load_average": _num(run.load_average, 2),
    }


def _latency_json(lat: Latency) -> dict[str, Any]:
    return {
        "rate_per_s": _num(lat.rate, 2),
        "sent": lat.sent,
        "received": lat.received,
        "elsewhere": lat.elsewhere,
        "missing": lat.missing,
        "window_s": _num(lat.window_s),
        "p50_ms": _num(lat.ms(0.5)),
        "p99_ms": _num(lat.ms(0.99)),
        "max_ms": _num(lat.max_ms),
        "quantiles_ms": lat.quantiles_ms(),
    }


def as_json(r: Result) -> dict[str, Any]:
    """The object `streams bench --json` prints (the keys the issue names first)."""
    lat = r.latency.get("pipeline")
    return {
        "articles": r.articles,
        "passthrough_per_s": _num(r.per_s("passthrough")),
        "raw_stages_per_s": _num(r.per_s("raw_stages")),
        "plumbing_per_s": _num(r.per_s("plumbing")),
        "pipeline_per_s": _num(r.per_s("pipeline")),
        "quix_per_s": _num(r.per_s("quix")),
        "plumbing_ratio": _num(r.plumbing_ratio, 3),
        "pipeline_ratio": _num(r.pipeline_ratio, 3),
        "quix_ratio": _num(r.quix_ratio, 3),
        "latency_rate_per_s": _num(lat.rate, 2) if lat else None,
        "latency_p50_ms": _num(lat.ms(0.5)) if lat else None,
        "latency_p99_ms": _num(lat.ms(0.99)) if lat else None,
        "latency_max_ms": _num(lat.max_ms) if lat else None,
        "stage_us": {k: _num(v) for k, v in r.stage_us.items()},
        "stage_p99_us": {k: _num(v) for k, v in r.stage_p99_us.items()},
        "plumbing_stage_us": {k: _num(v) for k, v in r.plumbing_stage_us.items()},
        "raw_stage_us": {k: _num(v) for k, v in r.raw_stage_us.items()},
        "enricher_us": {k: _num(v) for k, v in r.enricher_us.items()},
        "worker_peak_rss_mb": _num(r.worker_peak_rss_mb),
        "spacy_per_s": _num(r.spacy_per_s),
        "spacy_timings_per_s": [_num(x) for x in r.spacy_timings],
        "ner_ratio": _num(r.ner_ratio, 3),
        "workers": r.workers,
        "plumbing_2_workers_per_s": _num(r.per_s("plumbing", 2)),
        "pipeline_2_workers_per_s": _num(r.per_s("pipeline", 2)),
        "plumbing_gain_2_workers": _num(r.gain("plumbing"), 3),
        "pipeline_gain_2_workers": _num(r.gain("pipeline"), 3),
        "html": r.html,
        "ner": r.ner,
        "runs": {k: _run_json(v) for k, v in r.runs.items()},
        "runs_2_workers": {k: _run_json(v) for k, v in r.runs_2.items()},
        "latency": {k: _latency_json(v) for k, v in r.latency.items()},
        "goals": goals(r),
        "machine": r.machine,
        "settings": r.settings,
        "wall_seconds": _num(r.wall_seconds),
        "notes": list(r.notes),
    }


REQUIRED_KEYS = (
    "articles", "passthrough_per_s", "raw_stages_per_s", "plumbing_per_s", "pipeline_per_s", "plumbing_ratio",
    "pipeline_ratio", "latency_p50_ms", "latency_p99_ms", "stage_us", "worker_peak_rss_mb",
)  # fmt: skip


# -- text ---------------------------------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for j, row in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _f(x: float, fmt: str = ",.0f") -> str:
    if x is not None and math.isinf(x):
        return "never"  # later than the phase's window (missing)
    return "-" if x is None or math.isnan(x) else format(x, fmt)


def lines(r: Result) -> list[str]:
    kind = "HTML" if r.html else "text"
    m = r.machine
    out = [
        f"streams bench: {r.articles:,} BBC events ({kind} bodies), NER {'on' if r.ner else 'off'}, exactly-once; "
        f"{m.get('cpus', '?')} CPUs, Python {m.get('python', '?')}, Kafka {m.get('kafka', '?')}",
        "",
    ]
    rows: list[tuple[str, ...]] = []
    for key, what in VARIANTS.items():
        run = r.runs.get(key)
        if run is None:
            continue
        rows.append(
            (
                what,
                _f(run.per_s),
                _f(run.steady_per_s),
                _f(run.seconds, ".1f"),
                _f(rate(run.cpu_seconds * 1e6, run.articles)),
                _f(run.peak_rss_mb),
                _f(run.broker_cpu_seconds, ".0f"),
                _f(run.load_average, ".1f"),
                "input-bound" if run.input_bound else "",
            )
        )
    out.append(
        table(
            (
                "variant",
                "articles/s",
                "steady/s",
                "seconds",
                "CPU µs/article",
                "peak RSS MB",
                "broker CPU s",
                "load",
                "",
            ),
            rows,
        )
    )
    out.append("")
    out.append(
        f"plumbing c/a {_f(r.plumbing_ratio, '.3f')}   pipeline d/b {_f(r.pipeline_ratio, '.3f')}"
        + (f"   Quix e/a {_f(r.quix_ratio, '.3f')}" if "quix" in r.runs else "")
    )
    if r.latency:
        rate_ = next(iter(r.latency.values())).rate
        out += ["", f"end-to-end latency at {rate_:,.1f} events/s (half of (d)): raw record timestamp -> committed on "
                "articles.published"]  # fmt: skip
        rows = list(
            (
                VARIANTS[k],
                f"{v.received}/{v.sent}",
                str(v.elsewhere),
                str(v.missing),
                _f(v.ms(0.5)),
                _f(v.ms(0.99)),
                _f(v.max_ms),
            )  # fmt: skip
            for k, v in r.latency.items()
        )
        out.append(table(("variant", "published", "dup/rejected", "missing", "p50 ms", "p99 ms", "max ms"), rows))
        out.append("(missing: not out when the phase ended; counted as later than every published one)")
    if r.stage_us:
        out += ["", "µs per article by stage (worker: streams_processing_seconds mean; raw chain: stage functions)"]
        rows = list(
            (
                st,
                _f(r.stage_us.get(st, math.nan)),
                _f(r.stage_p99_us.get(st, math.nan)),
                _f(r.raw_stage_us.get(st, math.nan)),
                _f(r.plumbing_stage_us.get(st, math.nan)),
            )
            for st in STAGES
        )
        out.append(table(("stage", "(d) mean", "(d) p99", "(b) mean", "(c) identity mean"), rows))
    if r.enricher_us:
        out.append("enrich by enricher (µs/article): " + ", ".join(f"{k} {_f(v)}" for k, v in r.enricher_us.items()))
    if r.ner:
        out.append(
            f"spaCy nlp.pipe alone: {_f(r.spacy_per_s, ',.1f')} articles/s ({r.spacy_sample} texts; mean of "
            f"{', '.join(_f(x, ',.1f') for x in r.spacy_timings) or '-'}); the enrich stage "
            f"in the worker: {_f(1e6 / r.stage_us['enrich'] if r.stage_us.get('enrich') else math.nan, ',.1f')}/s "
            f"-> NER ratio {_f(r.ner_ratio, '.2f')}"
        )
    out.append(f"worker peak RSS (d): {_f(r.worker_peak_rss_mb)} MB")
    if r.runs_2:
        out += ["", "two workers in one group on the same partitions (the broker shares the same 2 cores):"]
        rows = list(
            (VARIANTS[k], _f(r.per_s(k)), _f(v.per_s), _f(r.gain(k), ".2f"), _f(v.broker_cpu_seconds, ".0f"))
            for k, v in r.runs_2.items()
        )
        out.append(table(("variant", "1 worker /s", "2 workers /s", "gain", "broker CPU s"), rows))
    out += ["", "goals (issue 14):"]
    for g in goals(r):
        if g["met"] is None:
            continue
        sign = ">=" if g["at_least"] else "<="
        out.append(f"  {g['what']}: {g['value']} (goal {sign} {g['target']:g}) {'met' if g['met'] else 'MISSED'}")
    out += [f"note: {n}" for n in r.notes]
    return out
