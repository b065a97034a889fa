"""Unit tests of dedup's reorder hold: what is released when, in which order, and that it feeds dedup right."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import orjson
import pytest

from streams.outcomes import Duplicate, Unique
from streams.settings import Settings
from streams.stages.dedup.reorder import TICK_KEY, ReorderHold, is_tick, sequence_key, tick_due, tick_record
from streams.stages.dedup.stage import DedupConfig, DedupState, dedup
from tests.factories import stories as f

HOLD = 2_000


def make_state(**overrides: Any) -> DedupState:
    """The production configuration; `overrides` where a test says why (source_priority for ties)."""
    return DedupState(dataclasses.replace(DedupConfig.from_settings(Settings()), **overrides), {}, {})


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
    assert hold.release() == []  # the original is due, but the copy published before it is still held
    hold.observe(12_700)
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


def test_a_due_article_waits_for_an_earlier_published_one_still_in_its_hold():
    hold = hold_for(make_state())
    later = f.article(1, url="https://a.example/later", published_at=f.T0)
    earlier = f.article(2, url="https://b.example/earlier", published_at=f.T0 - timedelta(minutes=5))
    hold.add(sequence_key(0), later, 10_000)
    hold.add(sequence_key(1), earlier, 11_500)
    hold.observe(12_000)  # `later` is due, `earlier` sorts before it and has waited only 0.5 s
    assert hold.release() == []
    hold.observe(13_500)
    assert ids(hold.release()) == ["https://b.example/earlier", "https://a.example/later"]


def test_a_due_article_never_pulls_an_earlier_published_one_out_of_its_hold_before_its_copy_arrives():
    state = make_state()
    other = f.article(3, url="https://c.example/other", published_at=f.T0 + timedelta(hours=1))
    original = f.article(1, url="https://origin.example/story", published_at=f.T0)
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    hold = hold_for(state)
    hold.add(sequence_key(0), other, 8_100)  # unrelated, published later, due at 10,100
    hold.add(sequence_key(1), original, 10_000)
    hold.observe(10_100)
    assert hold.release() == []  # `other` is due but the original, sorting before it, keeps its whole hold
    hold.add(sequence_key(2), late_copy, 10_600)
    hold.observe(12_600)
    released = ids(hold.release())
    assert released == ["https://wire.example/story", "https://origin.example/story", "https://c.example/other"]


def test_the_wait_is_bounded_when_earlier_published_articles_keep_arriving():
    hold = ReorderHold(HOLD, make_state().order_of, max_wait_ms=5_000)
    fresh = f.article(1, url="https://fresh.example/now", published_at=f.T0 + timedelta(days=1))
    hold.add(sequence_key(0), fresh, 10_000)
    for i in range(1, 40):  # one every 250 ms, each published before the fresh one
        hold.add(
            sequence_key(i), f.article(100 + i, url=f"https://old.example/{i}", published_at=f.T0), 10_000 + 250 * i
        )
        released = ids(hold.release())
        if "https://fresh.example/now" in released:
            break
    assert hold.watermark_ms == 15_000, "the fresh article left before it had waited max_wait, or never"
    assert released[-1] == "https://fresh.example/now"  # what sorts before it went first


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


def test_events_of_one_article_keep_their_sequence_order_whatever_their_times():
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


def test_one_articles_events_follow_the_offsets_even_when_a_forwarder_clock_is_behind():
    hold = hold_for(make_state())
    v1 = f.article(1, url="https://a.example/story", published_at=f.T0)
    v2 = f.revised(v1, "A corrected text that replaces the whole story.")
    hold.add(sequence_key(0), v1, 10_000)
    hold.add(sequence_key(1), v2, 9_700)  # forwarded by a worker whose clock runs 300 ms behind
    hold.observe(20_000)
    assert [h.article["revision"] for h in hold.release()] == [v1["revision"], v2["revision"]]


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
    hold.observe(12_500)
    assert ids(hold.release()) == ["https://wire.example/story", "https://origin.example/story"]


def test_sequence_keys_sort_like_offsets():
    assert sorted(sequence_key(o) for o in (10, 9, 100, 0)) == [sequence_key(o) for o in (0, 9, 10, 100)]


def test_a_negative_hold_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        ReorderHold(-1, make_state().order_of)


def test_a_tick_is_due_while_held_articles_are_due_by_the_clock_and_no_record_moved_the_watermark():
    slack = 500
    assert not tick_due(None, 99_000, slack)
    hold = hold_for(make_state())
    assert not tick_due(hold, 99_000, slack)  # nothing held
    original = f.article(1, url="https://origin.example/story", published_at=f.T0)
    hold.add(sequence_key(0), original, 10_000)
    assert not tick_due(hold, 11_000, slack)  # not due yet by the clock
    assert tick_due(hold, 12_500, slack)
    hold.observe(12_400)  # a record moved the watermark close to the clock
    assert not tick_due(hold, 12_500, slack)
    # The original is due but waits for an earlier-published copy that arrived 0.7 s after it: ticks go on.
    late_copy = f.copy_of(original, url="https://wire.example/story", published_at=f.T0 - timedelta(hours=1))
    hold.add(sequence_key(1), late_copy, 12_400)
    assert hold.release() == []
    assert tick_due(hold, 14_000, slack)
    hold.observe(14_400)
    assert len(hold.release()) == 2 and not tick_due(hold, 15_000, slack)


def test_ticks_are_told_from_articles_by_key_and_shape():
    key, value = tick_record(12_345)
    assert key == TICK_KEY and is_tick(key, orjson.loads(value)) and orjson.loads(value) == {"tick_ms": 12_345}
    assert is_tick(TICK_KEY, {"tick_ms": 1})
    assert not is_tick(TICK_KEY, {"article_id": "x"})
    assert not is_tick(b"some-article", {"tick_ms": 1})


def _naive_release(
    held: dict[str, tuple[int, dict[str, Any], tuple[int, int]]], watermark: int, hold_ms: int, max_wait: int
):
    """The rules of streams.stages.dedup.reorder written as plainly as possible: sort everything, every time."""
    in_sequence = sorted(held)
    group: dict[str, tuple[int, int, str]] = {}
    for key in in_sequence:
        aid = held[key][1]["article_id"]
        group.setdefault(aid, (*held[key][2], key))
    ordered = sorted(in_sequence, key=lambda k: (group[held[k][1]["article_id"]], k))
    cut = 0
    while cut < len(ordered) and held[ordered[cut]][0] <= watermark - hold_ms:
        cut += 1
    forced = [i for i, k in enumerate(ordered) if held[k][0] <= watermark - max_wait]
    if forced:
        cut = max(cut, forced[-1] + 1)
    out = ordered[:cut]
    for k in out:
        del held[k]
    return out


@pytest.mark.parametrize("seed", range(20))
def test_the_incremental_order_matches_sorting_everything_every_time(seed):
    import random

    rng = random.Random(seed)
    state = make_state(source_priority=("s1",))
    hold = ReorderHold(HOLD, state.order_of)
    reference: dict[str, tuple[int, dict[str, Any], tuple[int, int]]] = {}
    urls = [f"https://x{i}.example/a" for i in range(15)]  # few ids: revisions and re-sends are common
    clock, got, want = 10_000, [], []
    for offset in range(400):
        clock += rng.choice([0, 50, 200, 700, 1500])
        if rng.random() < 0.15:
            hold.observe(clock + rng.randint(0, 3000))  # a tick
        else:
            url = rng.choice(urls)
            a = f.article(
                rng.randint(0, 9),
                url=url,
                published_at=f.T0 + timedelta(minutes=rng.randint(-30, 30)),
                source=rng.choice(["s1", "s2"]),
            )
            arrival = clock - rng.randint(0, 400)  # forwarders' clocks disagree a little
            key = sequence_key(offset)
            hold.add(key, a, arrival)
            reference[key] = (arrival, a, state.order_of(a))
        got += [h.key for h in hold.release()]
        want += _naive_release(reference, hold.watermark_ms, HOLD, 2 * HOLD)
    assert got == want and len(hold) == len(reference)
    assert got, "nothing was released: the comparison proves nothing"
