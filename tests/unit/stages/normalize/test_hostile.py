"""Hostile input: normalize never raises, always refuses with a reason from the schema, and lets nothing active out.

Two sources: near-valid events generated from schemas/raw_article.v1.json (hypothesis-jsonschema), mutated
and salted with markup; and the fixed corpus of tests/factories/hostile.py (broken JSON, invalid UTF-8, NUL
bytes, 100k-deep nesting, 10 MB values, wrong types, huge arrays, out-of-range numbers, credentials, IDN and
homoglyph hosts, script URLs, hostile HTML).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from streams import schemas
from streams.outcomes import Normalized, Rejected
from streams.rejections import rejection_record
from streams.settings import Settings
from streams.stages.normalize import NormalizeConfig, normalize
from tests.factories.hostile import GOOD_URL, HOSTILE_HTML, HostileCase, active_content, broken_variant, corpus, encode

NOW = datetime(2025, 8, 12, 7, 31, 2, tzinfo=UTC)
ORIGIN = {"topic": "articles.raw", "partition": 0, "offset": 7, "timestamp_ms": 1754983862000}
REASONS = schemas.enum("rejection.v1.json", "reason")


@functools.cache
def fixed_corpus() -> tuple[HostileCase, ...]:
    return tuple(corpus())


def outcome_of(payload: bytes) -> Normalized | Rejected:
    config = NormalizeConfig.from_settings(Settings())
    result = normalize(payload, origin=ORIGIN, now=NOW, config=config)
    assert isinstance(result, Normalized | Rejected), result
    return result


def assert_safe(result: Normalized | Rejected, payload: bytes) -> None:
    """The invariants every outcome keeps, whatever came in."""
    if isinstance(result, Normalized):
        doc = result.article
        assert schemas.first_violation("article.v1.json", doc) is None
        orjson.dumps(doc)  # the agent must be able to publish it
        assert active_content(doc) == []
    else:
        assert result.reason in REASONS
        assert result.reason != "internal_error"  # that is the agent's word for a bug in the stage
        record = rejection_record(
            result, payload=payload, key=None, origin=ORIGIN, stage="normalize", payload_limit=524288, now=NOW
        )
        assert schemas.first_violation("rejection.v1.json", record) is None
        orjson.dumps(record)
        assert active_content({"message": record["message"], "details": record["details"]}) == []


@pytest.mark.parametrize("case", range(len(fixed_corpus())), ids=[c.name for c in fixed_corpus()])
def test_fixed_hostile_corpus_gives_its_expected_outcome(case: int) -> None:
    name, payload, expected = fixed_corpus()[case]
    result = outcome_of(payload)
    got = "normalized" if isinstance(result, Normalized) else f"rejected:{result.reason}"
    assert got == expected, (name, result)
    assert_safe(result, payload)


def test_fixed_corpus_covers_every_class_the_storm_asks_for() -> None:
    names = " ".join(c.name for c in fixed_corpus())
    classes = "json utf8 nul deep 10mb wrong_type 100k 1e400 credentials idn homoglyph data_html file javascript"
    for needle in (classes + " script iframe handlers svg css").split():
        assert needle in names, needle
    # one payload a line for `streams produce --raw`, except the two that are no line at all
    lines = [c for c in fixed_corpus() if c.name not in ("empty_payload", "whitespace_only")]
    assert all(b"\n" not in c.payload and b"\r" not in c.payload for c in lines)


# --- property-based: near-valid events from the raw schema -------------------------------------------------------

_RAW_SCHEMA = schemas.load("raw_article.v1.json")
_HOSTILE_BITS = st.sampled_from(
    ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)", "&lt;script&gt;",
     "<iframe src=//x>", "<svg onload=alert(1)>", "\u0000", "\u202e", "&#60;b&#62;", "<", "&", "\r\n", "Ã©",
     "We use cookies. By continuing to use this site you consent to the use of cookies.", "<!--", "]]>"]
)  # fmt: skip
_salted_text = st.lists(st.one_of(_HOSTILE_BITS, st.text(max_size=20)), max_size=8).map("".join)
_urls = st.one_of(
    st.sampled_from([GOOD_URL, "https://bücher.example/ä", "http://[::1]/a", "https://u:p@x.example/?utm_source=1",
                     "javascript:alert(1)", "data:text/html,x", "https://x.example/<script>"]),
    st.text(max_size=40),
)  # fmt: skip


def _salt(event: Any, url: str, title: str, body: str, fmt: str | None) -> Any:
    if not isinstance(event, dict):
        return event
    salted = dict(event)
    salted["url"], salted["title"], salted["body"] = url, title, body
    if fmt is not None:
        salted["body_format"] = fmt
    return salted


_near_valid = st.builds(
    _salt,
    from_schema(_RAW_SCHEMA),
    _urls,
    _salted_text,
    st.one_of(_salted_text, st.lists(st.sampled_from(list(HOSTILE_HTML.values())), max_size=3).map("".join)),
    st.sampled_from([None, "text", "html"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(_RAW_SCHEMA))
def test_any_event_the_raw_schema_allows_normalizes_or_is_refused_with_a_reason(event: dict[str, Any]) -> None:
    payload = encode(event)
    assert_safe(outcome_of(payload), payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near_valid)
def test_salted_near_valid_events_let_nothing_active_through(event: Any) -> None:
    payload = encode(event)
    assert_safe(outcome_of(payload), payload)


_mutations = st.sampled_from(["drop_url", "drop_body", "list", "nested", "number_url", "null_title", "truncate"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(_RAW_SCHEMA), _mutations, st.integers(0, 200))
def test_broken_variants_of_valid_events_are_refused_not_raised(event: dict[str, Any], how: str, cut: int) -> None:
    payload = broken_variant(event, how, cut)
    result = outcome_of(payload)
    if how != "null_title":
        assert isinstance(result, Rejected)
    assert_safe(result, payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_not_raised(payload: bytes) -> None:
    assert_safe(outcome_of(payload), payload)


_fragments = st.lists(
    st.one_of(st.sampled_from(list(HOSTILE_HTML.values())), _HOSTILE_BITS, _salted_text), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fragments, _salted_text)
def test_mixtures_of_hostile_html_come_out_clean(parts: list[str], title: str) -> None:
    body = "<html><body><article>" + "".join(parts) + "<p>The council voted to keep the pier.</p></article></body>"
    payload = encode({"url": GOOD_URL, "title": title, "body": body, "body_format": "html"})
    result = outcome_of(payload)
    # an unclosed "<!--" or "<script" swallows the rest of the page, as it would in a browser
    assert isinstance(result, Normalized) or result.reason in ("empty_text", "not_an_article"), result
    assert_safe(result, payload)
