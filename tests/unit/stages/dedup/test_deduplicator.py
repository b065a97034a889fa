"""Unit tests of the Deduplicator: one sequence record in, the decisions it releases out, tables kept right."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import orjson
import pytest

from streams.outcomes import Duplicate, Rejected, Unique
from streams.settings import Settings
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.reorder import sequence_key, tick_record
from streams.stages.dedup.stage import Deduplicator, DedupStats
from tests.factories import stories as f

NOW = f.T0 + timedelta(hours=6)
HOLD_MS = 2_000


def make(
    hold_ms: int = 0, tables: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None, **overrides: Any
) -> tuple[Deduplicator, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Production configuration; the hold set per test (production has it off)."""
    cfg = dataclasses.replace(DedupConfig.from_settings(Settings()), reorder_hold_ms=hold_ms, **overrides)
    articles, content, held = tables or ({}, {}, {})
    d = Deduplicator(articles=articles, content=content, held=held, config=cfg, clock=lambda: NOW)
    return d, (articles, content, held)


def send(d: Deduplicator, article: dict[str, Any], offset: int, ts: int) -> list[Unique | Duplicate]:
    return d.on_record(key=article["article_id"].encode(), value=article, offset=offset, timestamp_ms=ts)


def tick(d: Deduplicator, offset: int, ts: int) -> list[Unique | Duplicate]:
    key, value = tick_record(ts)
    return d.on_record(key=key, value=orjson.loads(value), offset=offset, timestamp_ms=ts)


def test_with_the_hold_off_each_article_is_decided_on_arrival() -> None:
    d, (articles, _, held) = make()
    a = f.article(1)
    (first,) = send(d, a, 0, 10_000)
    (second,) = send(d, f.copy_of(a, url="https://s.example/1"), 1, 10_001)
    assert isinstance(first, Unique) and isinstance(second, Duplicate)
    assert held == {} and len(articles) == 2
    assert d.stats().index_articles == 2


def test_with_the_hold_on_articles_wait_in_the_held_table_and_leave_in_event_time_order() -> None:
    d, (_, _, held) = make(HOLD_MS)
    original = f.article(1, url="https://origin.example/story", published_at=f.T0)
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    assert send(d, original, 0, 10_000) == []
    assert send(d, late_copy, 1, 10_700) == []
    assert set(held) == {sequence_key(0), sequence_key(1)}
    assert d.stats().held_articles == 2
    assert tick(d, 2, 12_000) == []  # the original is due, the copy published before it is not
    out = tick(d, 3, 12_700)
    assert [type(o) for o in out] == [Unique, Duplicate]
    assert isinstance(out[1], Duplicate) and out[1].record["duplicate_of"] == late_copy["article_id"]
    assert held == {}
    assert d.stats().reordered_total == 1 and d.stats().held_articles == 0


def test_a_tick_is_due_only_while_something_held_is_due_by_the_clock() -> None:
    d, _ = make(HOLD_MS)
    assert not d.tick_due(99_000, 500)  # nothing built or held yet
    send(d, f.article(1), 0, 10_000)
    assert not d.tick_due(11_000, 500)
    assert d.tick_due(12_500, 500)


def test_rebuild_restores_the_index_and_the_hold_from_the_tables() -> None:
    d, tables = make(HOLD_MS)
    a, b = f.article(1), f.article(2)
    send(d, a, 0, 10_000)
    tick(d, 1, 12_000)  # a decided
    send(d, b, 2, 12_100)  # b still held
    # the restart: tables survive as JSON, the in-memory state does not
    tables = tuple(orjson.loads(orjson.dumps(t)) for t in tables)  # type: ignore[assignment]
    d2, (_, _, held) = make(HOLD_MS, tables)
    assert d2.rebuild() == 1
    assert d2.stats().held_articles == 1
    out = tick(d2, 3, 14_100)
    assert len(out) == 1 and isinstance(out[0], Unique) and out[0].article["article_id"] == b["article_id"]
    assert held == {}
    assert send(d2, a, 4, 14_200) == []  # a re-send of a, held in its turn
    (again,) = tick(d2, 5, 16_200)
    assert isinstance(again, Duplicate) and again.record["match"] == "same_url"


def test_the_first_record_rebuilds_when_nobody_did() -> None:
    d, tables = make()
    a = f.article(1)
    send(d, a, 0, 10_000)
    d2, _ = make(tables=tables)
    (out,) = send(d2, a, 1, 10_001)
    assert isinstance(out, Duplicate) and out.record["match"] == "same_url"


def test_eviction_totals_are_cumulative_across_rebuilds() -> None:
    d, _ = make(max_entries=1)
    for s in range(3):
        send(d, f.article(s, published_at=f.T0 + timedelta(minutes=s)), s, 10_000 + s)
    assert d.stats().evictions == {"window": 0, "capacity": 2}
    d.rebuild()
    send(d, f.article(9, published_at=f.T0 + timedelta(minutes=9)), 9, 10_009)
    assert d.stats().evictions["capacity"] == 3


@pytest.mark.parametrize("value", [None, "text", [1, 2], 42])
def test_records_that_are_not_articles_are_ignored_and_counted(value: Any) -> None:
    d, (articles, _, held) = make()
    assert d.on_record(key=b"k", value=value, offset=0, timestamp_ms=1) == []
    assert articles == {} and held == {}
    assert d.stats().ignored_records == 1


def test_a_decision_that_raises_refuses_that_article_whole_and_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.stages.dedup import stage

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(stage, "dedup", broken)
    d, _ = make()
    a = f.article(1)
    (out,) = send(d, a, 0, 1)
    assert isinstance(out, Rejected) and out.reason == "internal_error" and out.article == a
    assert d.stats().internal_errors == 1


def test_stats_are_a_frozen_value() -> None:
    d, _ = make()
    s = d.stats()
    assert isinstance(s, DedupStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.index_articles = 3  # type: ignore[misc]
