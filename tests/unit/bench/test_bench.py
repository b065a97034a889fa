"""The pure parts of `streams bench`: /metrics parsing, rates and ratios, the goals, the JSON shape, the events."""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.bench import promtext
from streams.bench.chain import identity_hops
from streams.bench.corpus import BAD_KINDS, Corpus
from streams.bench.report import (
    REQUIRED_KEYS,
    STAGES,
    Latency,
    Result,
    Throughput,
    as_json,
    goals,
    lines,
    percentile,
    steady_rate,
)
from streams.settings import Settings

METRICS = """\
# HELP streams_processing_seconds Time a stage spends on one event.
# TYPE streams_processing_seconds histogram
streams_processing_seconds_bucket{le="0.0001",stage="normalize"} 10.0
streams_processing_seconds_bucket{le="0.001",stage="normalize"} 90.0
streams_processing_seconds_bucket{le="+Inf",stage="normalize"} 100.0
streams_processing_seconds_sum{stage="normalize"} 0.02
streams_processing_seconds_count{stage="normalize"} 100.0
streams_processing_seconds_bucket{le="0.0001",stage="enrich"} 0.0
streams_processing_seconds_bucket{le="0.001",stage="enrich"} 0.0
streams_processing_seconds_bucket{le="+Inf",stage="enrich"} 50.0
streams_processing_seconds_sum{stage="enrich"} 1.5
streams_processing_seconds_count{stage="enrich"} 50.0
# HELP streams_events_in_total Events a stage consumed.
# TYPE streams_events_in_total counter
streams_events_in_total{stage="normalize"} 100.0
streams_events_in_total{stage="enrich"} 50.0
"""


def test_histogram_series_is_read_with_its_sum_and_count() -> None:
    m = promtext.parse_metrics(METRICS)
    buckets, total, count = promtext.histogram(m, "streams_processing_seconds", stage="normalize")
    assert buckets == [(0.0001, 10.0), (0.001, 90.0), (math.inf, 100.0)]
    assert (total, count) == (0.02, 100.0)
    assert promtext.mean((buckets, total, count)) == pytest.approx(0.0002)


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.1, 0.0001), (0.5, 0.0001 + 0.0009 * 40 / 80), (0.9, 0.001), (0.99, 0.001)],  # beyond the last bound: it
)
def test_quantile_interpolates_inside_a_bucket_as_prometheus_does(q: float, expected: float) -> None:
    m = promtext.parse_metrics(METRICS)
    buckets, _, _ = promtext.histogram(m, "streams_processing_seconds", stage="normalize")
    assert promtext.quantile(buckets, q) == pytest.approx(expected)


def test_two_workers_histograms_add_up_and_counters_sum_by_label() -> None:
    m = promtext.parse_metrics(METRICS)
    h = promtext.histogram(m, "streams_processing_seconds", stage="enrich")
    both = promtext.hist_add(h, h)
    assert both[2] == 100.0 and both[1] == 3.0 and both[0][-1] == (math.inf, 100.0)
    assert promtext.by_label(m, "streams_events_in", "stage") == {"normalize": 100.0, "enrich": 50.0}
    assert promtext.counter(m, "streams_events_in", stage="enrich") == 50.0


def test_an_empty_histogram_has_no_quantile_nor_mean() -> None:
    assert math.isnan(promtext.quantile([], 0.5))
    assert math.isnan(promtext.mean(([], 0.0, 0.0)))


# -- rates, ratios, goals --------------------------------------------------------------------------------------
def run(variant: str, per_s: float, n: int = 1000, workers: int = 1) -> Throughput:
    return Throughput(variant, workers, n, first_at=100.0, last_at=100.0 + n / per_s)


def result(**rates: float) -> Result:
    r = Result(articles=1000, html=False, ner=True, workers=1)
    for k, v in rates.items():
        r.runs[k] = run(k, v)
    return r


def test_ratios_are_plumbing_over_passthrough_and_pipeline_over_raw_stages() -> None:
    r = result(passthrough=10_000, raw_stages=50, plumbing=2_500, pipeline=45)
    assert r.plumbing_ratio == pytest.approx(0.25)
    assert r.pipeline_ratio == pytest.approx(0.9)
    assert math.isnan(r.quix_ratio)  # (e) not run


def test_a_missing_variant_gives_null_figures_not_an_error() -> None:
    doc = as_json(result(pipeline=45))
    assert doc["passthrough_per_s"] is None and doc["plumbing_ratio"] is None and doc["pipeline_per_s"] == 45.0
    json.dumps(doc, allow_nan=False)  # no NaN reaches the JSON


def test_gain_of_two_workers_and_ner_ratio() -> None:
    r = result(pipeline=40)
    r.runs_2["pipeline"] = run("pipeline", 64, workers=2)
    r.stage_us = {"enrich": 25_000.0}  # 40 articles/s
    r.spacy_per_s = 50.0
    assert r.gain("pipeline") == pytest.approx(1.6)
    assert r.ner_ratio == pytest.approx(0.8)
    by_goal = {g["goal"]: g for g in goals(r)}
    assert by_goal["pipeline_gain_2_workers"]["met"] is True
    assert by_goal["ner_ratio"]["met"] is False
    assert by_goal["plumbing_ratio"]["met"] is None  # not measured in this run


def test_latency_goal_is_at_most_and_read_from_the_pipeline() -> None:
    r = result(pipeline=40)
    r.latency["pipeline"] = Latency("pipeline", 20.0, 100, sorted([0.01 * i for i in range(1, 101)]))
    (lat,) = [g for g in goals(r) if g["goal"] == "latency_p99_ms"]
    assert lat["value"] == pytest.approx(990.0) and lat["met"] is False


@pytest.mark.parametrize(("q", "expected"), [(0.0, 1), (0.5, 50), (0.99, 99), (1.0, 100)])
def test_percentile_is_nearest_rank(q: float, expected: int) -> None:
    assert percentile(list(range(1, 101)), q) == expected


def test_steady_rate_leaves_out_start_and_tail() -> None:
    # 100 outputs: 10 in the first 5 s (start-up), then 10 per second, the last 10 late
    timeline = [(5.0, 10)] + [(5.0 + i, 10 + 10 * i) for i in range(1, 9)] + [(30.0, 100)]
    assert steady_rate(timeline, 100) == pytest.approx(10.0)
    assert math.isnan(steady_rate([], 100))


def test_input_bound_when_the_backlog_producer_ended_late_in_the_run() -> None:
    t = run("passthrough", 1000)  # 1 s, from 100.0 to 101.0
    t.produced_at = (99.0, 100.9)
    assert t.input_bound
    t.produced_at = (90.0, 95.0)  # produced before the processor started
    assert not t.input_bound


def test_json_has_the_keys_the_issue_names_and_one_stage_entry_per_stage() -> None:
    r = result(passthrough=10_000, raw_stages=50, plumbing=2_500, pipeline=45)
    r.stage_us = {st: 100.0 * (i + 1) for i, st in enumerate(STAGES)}
    r.latency["pipeline"] = Latency("pipeline", 22.5, 3, [0.05, 0.07, 0.2])
    r.runs["pipeline"].peak_rss_mb = 612.34
    doc = as_json(r)
    assert set(REQUIRED_KEYS) <= set(doc)
    assert doc["articles"] == 1000 and doc["stage_us"] == {"normalize": 100.0, "dedup": 200.0, "enrich": 300.0,
                                                           "takedown": 400.0}  # fmt: skip
    assert (doc["latency_p50_ms"], doc["latency_p99_ms"], doc["latency_max_ms"]) == (70.0, 200.0, 200.0)
    assert doc["worker_peak_rss_mb"] == 612.3
    assert len(doc["latency"]["pipeline"]["quantiles_ms"]) == 101
    assert orjson.loads(orjson.dumps(doc)) == doc
    assert any("plumbing c/a 0.250" in line for line in lines(r))


# -- the events -------------------------------------------------------------------------------------------------
def rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "title": f"Story {i} of the day",
            "category": "tech",
            "body": " ".join(f"Sentence {j} of story {i} tells of topic {i * 31 + j}." for j in range(12)),
        }
        for i in range(n)
    ]


def test_events_have_unique_urls_and_ids_with_copies_and_a_few_bad_ones() -> None:
    events = Corpus(rows(50)).events(0, 1000, html=False, tag="t")
    kinds = [e.kind for e in events]
    assert len({e.key for e in events}) == len({e.event_id for e in events}) == 1000
    assert kinds.count("copy_exact") + kinds.count("copy_near") == 120
    assert sum(kinds.count(k) for k in BAD_KINDS) == 10 and set(BAD_KINDS) <= set(kinds)
    assert kinds.count("article") == 870


def test_a_bad_event_is_bad_and_a_copy_repeats_an_earlier_article() -> None:
    events = Corpus(rows(50)).events(0, 200, html=False, tag="t")
    by_kind = {e.kind: e for e in events}
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(by_kind["invalid_json"].value)
    bodies = [orjson.loads(e.value)["body"] for e in events if e.kind == "article"]
    exact = orjson.loads(by_kind["copy_exact"].value)
    assert exact["body"] in bodies and "partner" in exact["url"]
    near = orjson.loads(by_kind["copy_near"].value)
    assert near["body"].startswith("LONDON (Wire) - ")


def test_events_are_published_in_the_order_they_are_sent_so_the_reorder_hold_waits_no_longer() -> None:
    events = [e for e in Corpus(rows(50)).events(0, 500, html=False, tag="t") if e.kind not in BAD_KINDS]
    published = [orjson.loads(e.value)["published_at"] for e in events]
    assert published == sorted(published) and len(set(published)) == len(published)


def test_later_passes_mix_two_stories_half_and_half() -> None:
    corpus = Corpus(rows(10))
    _, title, body = corpus.story(13)  # second pass
    assert ": " in title and "story 3" in body
    others = {s.split("of story ")[1].split(" ")[0] for s in body.split(". ")}
    assert len(others) == 2  # its own and one other story's sentences


def test_latency_events_are_all_articles_and_html_bodies_are_pages() -> None:
    events = Corpus(rows(10)).events(1000, 50, html=True, tag="t", articles_only=True)
    assert {e.kind for e in events} == {"article"}
    doc = orjson.loads(events[0].value)
    assert doc["body_format"] == "html" and doc["body"].startswith("<!DOCTYPE html>")


def test_the_plan_is_a_function_of_the_index() -> None:
    corpus = Corpus(rows(30))
    whole = corpus.events(0, 300, html=False, tag="t")
    part = corpus.events(150, 150, html=False, tag="t", now=None)
    assert [e.key for e in whole[150:]] == [e.key for e in part]
    assert [orjson.loads(e.value)["title"] for e in whole[150:] if e.kind == "article"] == [
        orjson.loads(e.value)["title"] for e in part if e.kind == "article"
    ]


# -- the raw chain's identity hops ---------------------------------------------------------------------------------
def test_identity_hops_forward_every_record_unchanged_to_the_pipeline_topics() -> None:
    s = Settings(topic_prefix="p.")
    hops = identity_hops(s)
    assert [h.source for h in hops] == ["articles.raw", "articles.dedup-sequenced", "articles.unique",
                                        "articles.enriched"]  # fmt: skip
    rec = SimpleNamespace(key=b"k", value=b"v")
    first = asyncio.run(hops[0].transform([rec]))  # type: ignore[list-item]
    assert first == [("p.articles.normalized", b"k", b"v", None), ("p.articles.dedup-sequenced", b"k", b"v", 0)]
    last = asyncio.run(hops[-1].transform([rec]))  # type: ignore[list-item]
    assert last == [("p.articles.published", b"k", b"v", None)]


# -- the latency phase's accounting --------------------------------------------------------------------------------
def test_an_article_missing_at_the_end_of_the_phase_counts_as_later_than_every_published_one() -> None:
    lat = Latency("pipeline", 10.0, 100, [0.01 * i for i in range(1, 96)], elsewhere=3)  # 2 missing
    assert lat.missing == 2
    assert lat.ms(0.5) == pytest.approx(490.0)
    assert math.isinf(lat.ms(0.99)) and math.isinf(lat.max_ms)
    assert lat.quantiles_ms()[-1] is None and lat.quantiles_ms()[50] == pytest.approx(490.0)


def test_duplicates_and_rejections_are_not_late_and_leave_the_quantiles_to_the_published() -> None:
    lat = Latency("pipeline", 10.0, 100, [0.01 * i for i in range(1, 91)], elsewhere=10)
    assert lat.missing == 0
    assert lat.max_ms == pytest.approx(900.0)


def test_a_duplicate_names_the_raw_event_of_the_article_it_carries() -> None:
    from streams.bench.kafkaio import event_id_of

    assert event_id_of(orjson.dumps({"schema": "duplicate.v1", "article": {"event_id": "t-7"}})) == "t-7"
    assert event_id_of(orjson.dumps({"schema": "article.v1", "event_id": "t-8"})) == "t-8"
    assert event_id_of(b"not json") is None


def test_seconds_to_a_share_of_the_outputs_counts_from_the_first_output() -> None:
    run = Throughput(
        "plumbing", 1, 100, 10.0, 20.0, timeline=[(12.0, 5), (13.0, 10), (15.0, 50), (19.0, 90), (20.0, 100)]
    )
    assert [run.seconds_to(q) for q in (0.1, 0.5, 0.9, 1.0)] == [3.0, 5.0, 9.0, 10.0]
    assert math.isnan(Throughput("plumbing", 1, 100, 10.0, 20.0).seconds_to(0.5))


def test_the_text_report_gives_each_spacy_timing_beside_their_mean() -> None:
    r = result(pipeline=30)
    r.stage_us = {"enrich": 40_000.0}
    r.spacy_timings, r.spacy_per_s, r.spacy_sample = [20.0, 30.0], 25.0, 160
    (line,) = [x for x in lines(r) if x.startswith("spaCy")]
    assert "mean of 20.0, 30.0" in line and "NER ratio 1.00" in line
    assert as_json(r)["spacy_timings_per_s"] == [20.0, 30.0]
