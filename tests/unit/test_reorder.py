"""Unit tests of dedup's reorder hold: what is released when, in which order, and that it feeds dedup right."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streams.agents.dedup import TICK_KEY, _tick_due, is_tick
from streams.outcomes import Duplicate, Unique
from streams.stages.dedup import DedupConfig, DedupState, dedup
from streams.stages.reorder import ReorderHold, sequence_key
from tests.unit import dedup_factories as f

HOLD = 2_000


def make_state(**overrides: Any) -> DedupState:
    return DedupState(DedupConfig(**({"threshold": 0.7} | overrides)), {}, {})


def hold_for(state: DedupState, hold_ms: int = HOLD) -> ReorderHold:
    return ReorderHold(hold_ms, state.order_of)


def ids(released: list[Any]) -> list[str]:
    return [h.article["url"] for h in released]


def test_nothing_leaves_before_the_hold_has_passed_on_the_record_clock():
    hold = hold_for(make_state())
    hold.add(sequence_key(0), f.article(1, url="https://a.example/1"), 10_000)
    assert hold.release() == [] and len(hold) == 1
    hold.observe(11_999)
    assert hold.release() == []
    hold.observe(12_000)
    assert ids(hold.release()) == ["https://a.example/1"] and len(hold) == 0


def test_a_copy_published_earlier_but_arriving_later_is_decided_first_and_becomes_the_canonical():
    state, original = make_state(), f.article(1, url="https://origin.example/story", published_at=f.T0)
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    hold = hold_for(state)
    hold.add(sequence_key(0), original, 10_000)
    hold.add(sequence_key(1), late_copy, 10_700)  # overtaken on another partition, arrives 0.7 s later
    hold.observe(12_000)
    released = hold.release()
    assert ids(released) == ["https://wire.example/story", "https://origin.example/story"]
    assert hold.reorders(released) == 1
    outcomes = [dedup(h.article, state=state, now=f.T0 + timedelta(hours=2)) for h in released]
    assert isinstance(outcomes[0], Unique) and isinstance(outcomes[1], Duplicate)
    assert outcomes[1].record["duplicate_of"] == late_copy["article_id"]


def test_without_the_hold_the_first_to_arrive_would_have_been_the_canonical():
    state, original = make_state(), f.article(1, url="https://origin.example/story", published_at=f.T0)
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    first = dedup(original, state=state, now=f.T0 + timedelta(hours=2))
    second = dedup(late_copy, state=state, now=f.T0 + timedelta(hours=2))
    assert isinstance(first, Unique) and isinstance(second, Duplicate)
    assert second.record["duplicate_of"] == original["article_id"]


def test_an_earlier_article_that_is_not_yet_due_still_goes_before_due_ones_that_sort_after_it():
    hold = hold_for(make_state())
    later = f.article(1, url="https://a.example/later", published_at=f.T0)
    earlier = f.article(2, url="https://b.example/earlier", published_at=f.T0 - timedelta(minutes=5))
    hold.add(sequence_key(0), later, 10_000)
    hold.add(sequence_key(1), earlier, 11_500)
    hold.observe(12_000)  # only `later` is due; `earlier` is here already and sorts before it
    assert ids(hold.release()) == ["https://b.example/earlier", "https://a.example/later"]


def test_a_due_article_does_not_pull_along_held_ones_that_sort_after_it():
    hold = hold_for(make_state())
    first = f.article(1, url="https://a.example/1", published_at=f.T0)
    newer = f.article(2, url="https://b.example/2", published_at=f.T0 + timedelta(minutes=5))
    hold.add(sequence_key(0), first, 10_000)
    hold.add(sequence_key(1), newer, 11_500)
    hold.observe(12_000)
    assert ids(hold.release()) == ["https://a.example/1"]
    hold.observe(13_500)
    assert ids(hold.release()) == ["https://b.example/2"]


def test_ties_on_event_time_go_to_the_preferred_source():
    hold = hold_for(make_state(source_priority=("agency",)))
    mine = f.article(1, url="https://paper.example/x", source="paper", published_at=f.T0)
    agency = f.article(1, url="https://agency.example/x", source="agency", published_at=f.T0)
    hold.add(sequence_key(0), mine, 10_000)
    hold.add(sequence_key(1), agency, 10_100)
    hold.observe(20_000)
    assert ids(hold.release()) == ["https://agency.example/x", "https://paper.example/x"]


def test_events_of_one_article_keep_their_arrival_order_whatever_their_times():
    hold = hold_for(make_state())
    v1 = f.article(1, url="https://a.example/story", published_at=f.T0)
    v2 = f.revised(v1, "A corrected text that replaces the whole story.")
    v2["published_at"] = (f.T0 - timedelta(days=1)).isoformat()  # a correction that moves the date back
    other = f.article(2, url="https://b.example/other", published_at=f.T0 - timedelta(hours=1))
    hold.add(sequence_key(0), v1, 10_000)
    hold.add(sequence_key(1), other, 10_200)
    hold.add(sequence_key(2), v2, 10_400)
    hold.observe(20_000)
    released = hold.release()
    assert [(h.article["url"], h.article["revision"]) for h in released] == [
        ("https://b.example/other", other["revision"]),
        ("https://a.example/story", v1["revision"]),
        ("https://a.example/story", v2["revision"]),
    ]


def test_rebuild_from_the_table_keeps_everything_held_and_releases_it_in_the_same_order():
    state = make_state()
    original = f.article(1, url="https://origin.example/story", published_at=f.T0)
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    table = {
        sequence_key(7): {"article": original, "arrival_ms": 10_000},
        sequence_key(8): {"article": late_copy, "arrival_ms": 10_500},
        "junk": "not a held entry",
    }
    hold = hold_for(state)
    assert hold.rebuild(table.items()) == 2
    assert hold.release() == []  # no watermark yet: nothing leaves before a record says the time
    hold.observe(12_000)
    assert ids(hold.release()) == ["https://wire.example/story", "https://origin.example/story"]


def test_sequence_keys_sort_like_offsets():
    assert sorted(sequence_key(o) for o in (10, 9, 100, 0)) == [sequence_key(o) for o in (0, 9, 10, 100)]


def test_a_negative_hold_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        ReorderHold(-1, make_state().order_of)


def test_a_tick_is_due_only_when_a_held_article_is_due_and_no_record_released_it():
    holder: dict[str, Any] = {"hold": None}
    assert not _tick_due(holder, HOLD, 99_000)
    hold = holder["hold"] = hold_for(make_state())
    assert not _tick_due(holder, HOLD, 99_000)  # nothing held
    hold.add(sequence_key(0), f.article(1), 10_000)
    assert not _tick_due(holder, HOLD, 11_000)  # not due yet by the clock
    assert _tick_due(holder, HOLD, 12_500)
    hold.observe(12_400)  # a tick (or an article) already moved the watermark past it
    assert not _tick_due(holder, HOLD, 12_500)


def test_ticks_are_told_from_articles_by_key_and_shape():
    assert is_tick(TICK_KEY, {"tick_ms": 1})
    assert not is_tick(TICK_KEY, {"article_id": "x"})
    assert not is_tick(b"some-article", {"tick_ms": 1})
