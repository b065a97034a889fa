"""The audit's accounting over crafted topic contents: balanced, lost, doubled, in flight, reinstated, retracted
then reinstated, updates, published twice, rejected by a later stage, --since; and its memory per event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import audit
from streams.audit import parse_since
from tests.factories.audit import RAW_TOPIC, T0, Topics


def test_every_outcome_kind_once_balances():
    t = Topics()
    a, b, c, d = t.raw(0), t.raw(1), t.raw(0), t.raw(1)
    t.published(a, 1)
    t.duplicate(b, 2, match="same_url")
    t.rejected(c, reason="schema_violation")
    t.blocked(d, 4)
    r = t.report()
    assert r.balanced, r.lines()
    assert r.accounting == {
        "raw": 4,
        "published": 1,
        "duplicate": 1,
        "rejected": 1,
        "blocked": 1,
        "in_flight": 0,
        "unaccounted": 0,
        "accounted_more_than_once": 0,
    }
    assert r.counts["rejected_by"] == {"normalize": {"schema_violation": 1}}
    assert r.counts["duplicates_by"] == {"same_url": 1}
    assert r.final["published"] == 1 and r.final["taken_down"] == 1
    assert r.summary().startswith("balanced: 4 raw events = 1 published + 1 duplicates + 1 rejected + 1 blocked")


def test_a_raw_event_without_outcome_past_the_committed_offset_is_lost():
    t = Topics()
    t.published(t.raw(0), 1)
    lost = t.raw(0)
    t.published(t.raw(0), 3)
    r = t.report()
    assert not r.balanced
    assert r.totals["unaccounted"] == 1
    assert r.offenders["unaccounted"] == [
        {"topic": RAW_TOPIC, "partition": 0, "offset": lost["offset"]},
    ]
    assert r.summary().startswith("IMBALANCE: 1 unaccounted for (of 3 raw events")


def test_a_doubled_outcome_is_accounted_more_than_once_and_published_twice():
    t = Topics()
    a = t.raw(1)
    first = t.published(a, 7)
    again = t.published(a, 7)
    r = t.report()
    assert not r.balanced
    assert r.offenders["accounted_more_than_once"] == [
        {"topic": RAW_TOPIC, "partition": 1, "offset": 0, "outcomes": 2, "kinds": ["published"]}
    ]
    [twice] = r.offenders["published_twice"]
    assert twice["first"] == {"partition": 7 % t.partitions, "offset": first}
    assert twice["again"] == {"partition": 7 % t.partitions, "offset": again}
    assert r.totals["published_twice"] == 1


@pytest.mark.parametrize(
    "second",
    [
        lambda t, o: t.duplicate(o, 1),
        lambda t, o: t.rejected(o, stage="enrich", reason="internal_error"),
        lambda t, o: t.blocked(o, 1),
    ],
    ids=["published-and-duplicate", "published-and-rejected", "published-and-blocked"],
)
def test_two_outcomes_of_different_kinds_are_accounted_more_than_once(second):
    t = Topics()
    o = t.raw(0)
    t.published(o, 1)
    second(t, o)
    r = t.report()
    assert r.totals["accounted_more_than_once"] == 1 and not r.balanced
    assert r.offenders["accounted_more_than_once"][0]["outcomes"] == 2


def test_events_not_yet_committed_by_normalize_are_in_flight_not_lost():
    t = Topics()
    t.published(t.raw(0), 1)
    t.raw(0)
    t.raw(0)
    r = t.report(committed={(audit.RAW, 0): 1})  # normalize committed offset 0 only
    assert r.balanced
    assert r.accounting["in_flight"] == 2 and r.accounting["unaccounted"] == 0
    assert r.in_flight_by == {audit.NOT_READ: 2}


def test_a_group_that_never_committed_leaves_everything_in_flight():
    t = Topics()
    t.raw(0)
    t.raw(1)
    r = t.report(committed={})
    assert r.balanced and r.accounting["in_flight"] == 2


@pytest.mark.parametrize("topic", ["articles.dedup-sequenced", "articles.unique", "articles.enriched"])
def test_an_event_on_an_intermediate_topic_past_the_committed_offset_is_in_flight(topic):
    t = Topics()
    o = t.raw(0)
    t.on(topic, o, 3, partition=0)
    committed = {(audit.RAW, 0): 1, (topic, 0): 0}  # normalize has it, the next stage has not
    r = t.report(committed=committed)
    assert r.balanced and r.in_flight_by == {topic: 1}
    assert r.offenders["in_flight"][0]["where"] == topic


def test_an_event_on_an_intermediate_topic_below_the_committed_offset_is_lost():
    t = Topics()
    o = t.raw(0)
    t.on("articles.unique", o, 3, partition=0)
    r = t.report(committed={(audit.RAW, 0): 1, ("articles.unique", 0): 1})  # enrich committed past it
    assert r.totals["unaccounted"] == 1 and not r.balanced


def test_an_event_seen_on_two_intermediate_topics_is_where_it_got_furthest():
    t = Topics()
    o = t.raw(0)
    t.on("articles.dedup-sequenced", o, 1, partition=0)
    t.on("articles.unique", o, 1, partition=0)
    r = t.report(committed={(audit.RAW, 0): 1})
    assert r.in_flight_by == {"articles.unique": 1}


def test_an_article_in_the_reorder_hold_is_in_flight_until_released():
    t = Topics()
    held, released = t.raw(0), t.raw(0)
    t.held(5, held, 1)
    t.held(6, released, 2)
    t.held(6, None)  # released; its outcome went out in the same transaction, and none is here: lost
    t.tick()
    r = t.report(committed={(audit.RAW, 0): 2, ("articles.dedup-sequenced", 0): 10})
    assert r.in_flight_by == {audit.HELD: 1}
    assert r.offenders["unaccounted"] == [{"topic": RAW_TOPIC, "partition": 0, "offset": released["offset"]}]


def test_blocked_then_reinstated_is_published_again_and_balances():
    t = Topics()
    o = t.raw(0)
    t.blocked(o, 1)
    t.published(o, 1, reinstated=True)
    t.audit_entry("reinstated", o, 1)
    r = t.report()
    assert r.balanced, r.lines()
    assert r.counts["reinstated"] == 1 and r.counts["published"] == 0
    assert r.accounting["blocked"] == 1
    assert r.final == {
        "published": 1,
        "reinstated": 1,
        "taken_down": 0,
        "blocked": 0,
        "retracted": 0,
        "duplicate": 0,
        "rejected": 0,
    }


def test_published_retracted_then_reinstated_is_not_published_twice():
    t = Topics()
    o = t.raw(0)
    t.published(o, 1)
    t.retracted(o, 1)
    t.published(o, 1, reinstated=True)
    r = t.report()
    assert r.balanced, r.lines()
    assert r.final["published"] == 1 and r.final["reinstated"] == 1
    assert r.counts["retracted"] == 1


def test_published_then_retracted_is_taken_down():
    t = Topics()
    o = t.raw(0)
    t.published(o, 1)
    t.retracted(o, 1)
    r = t.report()
    assert r.balanced and r.final["taken_down"] == 1 and r.final["retracted"] == 1


def test_a_reinstatement_without_a_withdrawal_is_a_mismatch_and_published_twice():
    t = Topics()
    o = t.raw(0)
    t.published(o, 1)
    t.published(o, 1, reinstated=True)
    r = t.report()
    assert not r.balanced
    assert r.offenders["withdrawal_mismatch"][0]["net"] == 1
    assert r.totals["published_twice"] == 1


def test_a_retraction_of_a_duplicate_is_a_mismatch():
    t = Topics()
    o = t.raw(0)
    t.duplicate(o, 1)
    t.retracted(o, 1)
    assert t.report().totals["withdrawal_mismatch"] == 1


def test_a_retraction_before_the_first_publication_does_not_excuse_the_second():
    t = Topics()
    a, b = t.raw(0), t.raw(1)
    t.retracted(None, 1)
    t.published(a, 1)
    t.published(b, 1)  # the same article and revision from another raw event, with nothing between
    r = t.report()
    assert r.totals["published_twice"] == 1


def test_updates_are_new_revisions_not_publications_twice():
    t = Topics()
    r1, r2, r3 = t.raw(0), t.raw(0), t.raw(0)
    t.published(r1, 9, "first text")
    t.published(r2, 9, "corrected text")
    t.published(r3, 9, "first text")  # reverted: still a change of revision after the previous one
    r = t.report()
    assert r.balanced, r.lines()
    assert r.accounting["published"] == 3 and r.totals["published_twice"] == 0


def test_the_same_article_and_revision_from_two_raw_events_is_published_twice():
    t = Topics()
    t.published(t.raw(0), 4)
    t.published(t.raw(1), 4)  # dedup should have made this a same_url duplicate
    r = t.report()
    assert r.accounting["accounted_more_than_once"] == 0
    assert r.totals["published_twice"] == 1 and not r.balanced
    assert r.summary().startswith("IMBALANCE: 1 published twice without an update")


def test_a_rejection_by_a_later_stage_accounts_the_raw_event():
    t = Topics()
    a, b = t.raw(0), t.raw(0)
    t.published(a, 1)
    t.rejected(b, stage="enrich", reason="internal_error")
    t.rejected({"topic": "t.articles.unique", "partition": 0, "offset": 3}, stage="enrich", reason="schema_violation")
    r = t.report()
    assert r.balanced, r.lines()
    assert r.counts["rejected_by"] == {"enrich": {"internal_error": 1, "schema_violation": 1}}
    assert r.accounting["rejected"] == 1
    assert r.outside == {"origin on t.articles.unique": 1}  # a foreign record written into the pipeline


def test_since_audits_only_raw_events_stamped_after_it():
    t = Topics()
    old = t.raw(0, ts=T0 - 3_600_000)
    t.raw(0, ts=T0 - 1_000)  # lost, but before --since
    new = t.raw(0, ts=T0 + 1_000)
    t.published(old, 1)
    t.published(old, 1)  # doubled, but before --since
    t.published(new, 2)
    r = t.report(since_ms=T0)
    assert r.balanced, r.lines()
    assert r.accounting["raw"] == 1 and r.accounting["published"] == 1
    assert r.since_ms == T0


def test_an_outcome_naming_an_offset_without_a_committed_raw_record_is_an_imbalance():
    t = Topics()
    t.skip(audit.RAW, 0)  # an aborted record: read_committed never shows it
    t.published({"topic": RAW_TOPIC, "partition": 0, "offset": 0, "timestamp_ms": T0}, 1)
    t.raw(0)
    r = t.report()
    assert r.totals["outcome_without_raw"] == 1 and not r.balanced
    assert r.accounting["raw"] == 1 and r.totals["unaccounted"] == 1


def test_outcomes_outside_the_audited_offsets_are_counted_aside():
    t = Topics()
    t.published(t.raw(0), 1)
    t.published({"topic": RAW_TOPIC, "partition": 0, "offset": 99, "timestamp_ms": T0}, 2)
    t.published({"topic": RAW_TOPIC, "partition": 5, "offset": 0, "timestamp_ms": T0}, 3)
    t.published({"topic": "other.articles.raw", "partition": 0, "offset": 0, "timestamp_ms": T0}, 4)
    t._put(audit.PUBLISHED, 0, b"not json")
    r = t.report()
    assert r.balanced
    assert r.outside == {
        "raw event after the audit started": 1,
        "raw partition not audited": 1,
        "origin on other.articles.raw": 1,
        "not JSON objects on articles.published": 1,
    }


def test_the_report_is_one_json_object_and_text_with_the_offenders():
    t = Topics()
    t.raw(0)
    o = t.raw(0)
    t.published(o, 1)
    t.published(o, 1)
    r = t.report()
    doc = orjson.loads(orjson.dumps(r.as_dict()))
    assert doc["balanced"] is False and doc["offenders_total"]["unaccounted"] == 1
    assert doc["unaccounted"] == [{"topic": RAW_TOPIC, "partition": 0, "offset": 0}]
    text = "\n".join(r.lines())
    assert f"{RAW_TOPIC}[0]@0" in text and f"{RAW_TOPIC}[0]@1: 2 outcomes (published)" in text
    assert "no retraction between" in text


def test_limit_lists_the_first_offenders_and_counts_them_all():
    t = Topics(partitions=1)
    for _ in range(30):
        t.raw(0)
    r = t.ledger(t.all_committed()).report(limit=5)
    assert r.totals["unaccounted"] == 30
    assert [o["offset"] for o in r.offenders["unaccounted"]] == [0, 1, 2, 3, 4]
    assert len(t.ledger(t.all_committed()).report(limit=0).offenders["unaccounted"]) == 30


def test_state_is_four_bytes_per_raw_offset_plus_flat_arrays_per_publication():
    t = Topics(partitions=1)
    ledger = audit.Ledger(RAW_TOPIC, {0: (0, 1_000_000), 1: (500, 1500)})
    assert ledger.state_bytes() == 4 * 1_001_000
    o = t.raw(0)
    t.published(o, 1)
    t.retracted(o, 1)
    ledger = t.ledger()
    assert ledger.state_bytes() == 4 * 1 + 32 + 24


# -- the rule against a model ----------------------------------------------------------------------------------
OUTCOME = st.sampled_from(["published", "duplicate", "rejected", "blocked"])
EVENT = st.tuples(st.lists(OUTCOME, max_size=3), st.booleans())  # outcomes, committed by normalize


def emit(t: Topics, kind: str, origin: dict, n: int, k: int) -> None:
    if kind == "published":
        t.published(origin, 1000 * n + k)  # distinct articles: no publication twice
    elif kind == "duplicate":
        t.duplicate(origin, n)
    elif kind == "rejected":
        t.rejected(origin)
    else:
        t.blocked(origin, n)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENT, max_size=40))
def test_the_ledger_counts_like_a_model_of_the_rule(events):
    t = Topics(partitions=1)
    committed = 0
    seen_uncommitted = False
    for n, (outcomes, is_committed) in enumerate(events):
        o = t.raw(0)
        # the group's committed offset is a prefix: once one is uncommitted, so are all later ones
        seen_uncommitted |= not is_committed
        if not seen_uncommitted:
            committed = n + 1
        for k, kind in enumerate(outcomes):
            emit(t, kind, o, n, k)
    r = t.report(committed={(audit.RAW, 0): committed})
    expect_lost = sum(1 for i, (out, _) in enumerate(events) if not out and i < committed)
    expect_flight = sum(1 for i, (out, _) in enumerate(events) if not out and i >= committed)
    expect_more = sum(1 for out, _ in events if len(out) > 1)
    assert r.accounting["raw"] == len(events)
    assert r.totals["unaccounted"] == expect_lost
    assert r.accounting["in_flight"] == expect_flight
    assert r.totals["accounted_more_than_once"] == expect_more
    for kind in ("published", "duplicate", "rejected", "blocked"):
        assert r.accounting[kind] == sum(1 for out, _ in events if out == [kind])
    assert sum(v for k, v in r.accounting.items() if k != "raw") == len(events)  # each raw event in one bucket
    assert r.balanced == (expect_lost == 0 and expect_more == 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-12T07:00:00Z", datetime(2025, 8, 12, 7, tzinfo=UTC)),
        ("2025-08-12T09:00:00+02:00", datetime(2025, 8, 12, 7, tzinfo=UTC)),
        ("2025-08-12", datetime(2025, 8, 12, tzinfo=UTC)),
        ("2h", datetime(2025, 8, 12, 5, tzinfo=UTC)),
        ("1d", datetime(2025, 8, 11, 7, tzinfo=UTC)),
    ],
)
def test_since_takes_a_time_a_date_or_a_duration_before_now(text, expected):
    now = datetime(2025, 8, 12, 7, tzinfo=UTC)
    assert parse_since(text, now) == int(expected.timestamp() * 1000)


@pytest.mark.parametrize("text", ["yesterday", "2025-08-12T07:00:00", "-2h", ""])
def test_since_refuses_what_it_cannot_read_with_the_forms_it_takes(text):
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_since(text, datetime.now(UTC) - timedelta(0))
