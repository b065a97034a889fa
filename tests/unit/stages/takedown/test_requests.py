"""Unit tests of the request-building code the CLI, the HTTP endpoint and the desk share, and of `validate`."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from streams.schemas import first_violation
from streams.stages.takedown import requests as rq
from streams.stages.takedown.requests import FieldError, Refusal
from tests.factories.takedowns import NOW, encode, lift, request

LIMIT = 64 * 1024


def pointers(errors: object) -> list[str]:
    assert isinstance(errors, list), errors
    return [e.pointer for e in errors]


# --- durations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("1w2d", timedelta(days=9)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        (" 1D 12H ", timedelta(days=1, hours=12)),
    ],
)
def test_durations_parse_with_units(text, expected):
    assert rq.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "-1d", "0d", "3y", "1.5d", "90 days", "99999w"])
def test_bad_durations_are_refused_with_a_sentence(text):
    with pytest.raises(ValueError, match=r"."):
        rq.parse_duration(text)


# --- values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "value", "normal"),
    [
        ("url", "HTTPS://WWW.Example.com:443/World/Story?utm_source=rss&b=2&a=1#top", "https://www.example.com/World/Story?a=1&b=2"),
        ("domain", "Example.COM", "example.com"),
        ("domain", "https://news.example.co.uk/a/b", "news.example.co.uk"),
        ("domain", "*.example.com", "example.com"),
        ("domain", "bücher.de", "xn--bcher-kva.de"),
        ("domain", "203.0.113.7", "203.0.113.7"),
        ("source", "  Example News ", "Example News"),
        ("fingerprint", "9B2E4D6F8A0C1E3F5A7B9C0D2E4F6A8B", "9b2e4d6f8a0c1e3f5a7b9c0d2e4f6a8b"),
        ("cluster", "3f1c9a0e5b7d4c2a8e6f1b0d9c8a7e6f", "3f1c9a0e5b7d4c2a8e6f1b0d9c8a7e6f"),
    ],
)  # fmt: skip
def test_values_are_normalised_as_articles_carry_them(scope, value, normal):
    assert rq.normalize_value(scope, value) == normal


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        ("url", "ftp://example.com/a"),
        ("url", "not a url"),
        ("domain", "co.uk"),
        ("domain", "com"),
        ("domain", "localhost"),
        ("domain", "example.com/path"),
        ("domain", "example.com:8080"),
        ("fingerprint", "abc"),
        ("cluster", "zz" * 16),
        ("source", "   "),
    ],
)
def test_unusable_values_are_errors_at_value(scope, value):
    error = rq.normalize_value(scope, value)
    assert isinstance(error, FieldError) and error.pointer == "/value"


# --- new_request -------------------------------------------------------------------------------------------


def test_new_request_assigns_id_and_time_normalises_value_and_validates():
    record = rq.new_request(
        "url",
        "HTTPS://Example.com/a?utm_source=x#top",
        "Copyright claim",
        "legal@example.com",
        now=NOW,
        expires_in="90d",
        ground="legal",
        legal_basis="Copyright: Directive 2001/29/EC art. 3",
        territorial_scope="de, fr",
    )
    assert isinstance(record, dict)
    assert record["takedown_id"].startswith("td-") and len(record["takedown_id"]) == 35
    assert record["value"] == "https://example.com/a"
    assert record["requested_at"] == "2025-08-13T07:30:00Z"
    assert record["expires_at"] == "2025-11-11T07:30:00Z"
    assert record["statement"]["territorial_scope"] == ["DE", "FR"]
    assert record["statement"]["explanation"] == "Copyright claim"
    assert first_violation("takedown.v1.json", record) is None


def test_new_request_ids_are_unique_unless_the_caller_brings_one():
    a, b = request("domain", "example.com"), request("domain", "example.com")
    assert a["takedown_id"] != b["takedown_id"]
    assert request("domain", "example.com", tid="TD-2025-0042")["takedown_id"] == "TD-2025-0042"


def test_new_request_reports_every_field_error_with_its_pointer():
    errors = rq.new_request("page", "x", "", "", now=NOW, expires_at="2020-01-01T00:00:00Z")
    assert set(pointers(errors)) == {"/scope", "/reason", "/requested_by", "/expires_at"}
    scope_error = next(e for e in errors if e.pointer == "/scope")
    assert "url, domain, source, fingerprint, cluster" in scope_error.message


@pytest.mark.parametrize(
    ("kwargs", "pointer"),
    [
        ({"expires_at": "2025-08-13T07:00:00Z"}, "/expires_at"),  # before now
        ({"expires_at": "2026-01-01T00:00:00"}, "/expires_at"),  # no zone
        ({"expires_at": "next week"}, "/expires_at"),
        ({"expires_in": "soon"}, "/expires_in"),
        ({"expires_in": timedelta(0)}, "/expires_in"),
        ({"expires_at": "2026-01-01T00:00:00Z", "expires_in": "1d"}, "/expires_at"),
        ({"ground": "legal"}, "/statement/legal_basis"),
        ({"ground": "terms"}, "/statement/terms_clause"),
        ({"ground": "moral"}, "/statement/ground"),
        ({"territorial_scope": ["Germany"]}, "/statement/territorial_scope/0"),
        ({"takedown_id": "has/slash"}, "/takedown_id"),
    ],
)
def test_new_request_field_errors(kwargs, pointer):
    errors = rq.new_request("domain", "example.com", "Claim", "me@example.com", now=NOW, **kwargs)
    assert pointer in pointers(errors), errors


def test_new_request_with_terms_ground_needs_the_clause():
    ok = rq.new_request("source", "Example News", "Spam", "desk", now=NOW, ground="terms", terms_clause="4.2")
    assert isinstance(ok, dict) and ok["statement"]["ground"] == "terms"


def test_request_from_body_accepts_the_http_body():
    body = {
        "scope": "domain",
        "value": "Example.com",
        "reason": "Copyright claim",
        "requested_by": "legal@example.com",
        "expires_in": "12h",
        "statement": {"ground": "legal", "legal_basis": "Copyright", "territorial_scope": ["EU"]},
    }
    record = rq.request_from_body(body, now=NOW, make_id=lambda: "td-fixed")
    assert isinstance(record, dict)
    assert (record["takedown_id"], record["value"]) == ("td-fixed", "example.com")
    assert record["expires_at"] == "2025-08-13T19:30:00Z"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ([], ""),
        ({"value": "x", "reason": "r", "requested_by": "me"}, "/scope"),
        ({"scope": 5, "value": "x", "reason": "r", "requested_by": "me"}, "/scope"),
        ({"scope": "domain", "value": "example.com", "reason": "r", "requested_by": "me", "colour": 1}, "/colour"),
        ({"scope": "domain", "value": "example.com", "reason": "r", "requested_by": "me", "requested_at": "x"},
         "/requested_at"),
        ({"scope": "domain", "value": "example.com", "reason": "r", "requested_by": "me", "statement": {"why": 1}},
         "/statement/why"),
        ({"scope": "domain", "value": "example.com", "reason": "r", "requested_by": "me", "republish_on_lift": "y"},
         "/republish_on_lift"),
    ],
)  # fmt: skip
def test_request_from_body_errors_name_the_field(body, pointer):
    assert pointer in pointers(rq.request_from_body(body, now=NOW))


# --- lift_request ------------------------------------------------------------------------------------------


def test_lift_repeats_the_request_and_adds_who_when_why():
    req = request("domain", "example.com")
    lifted = lift(req, now=NOW + timedelta(days=2))
    assert {k: v for k, v in lifted.items() if k in req and k != "action"} == {
        k: v for k, v in req.items() if k != "action"
    }
    assert (lifted["action"], lifted["lifted_at"], lifted["lifted_by"]) == (
        "lift",
        "2025-08-15T07:30:00Z",
        "desk@aggregator.example",
    )
    assert first_violation("takedown.v1.json", lifted) is None


def test_lift_needs_a_reason_a_lifter_and_a_request():
    req = request("domain", "example.com")
    assert set(pointers(rq.lift_request(req, "", " ", now=NOW))) == {"/lift_reason", "/lifted_by"}
    assert pointers(rq.lift_request(lift(req, now=NOW), "again", "me", now=NOW)) == ["/action"]
    assert pointers(rq.lift_request(None, "r", "me", now=NOW)) == [""]


def test_is_active_reads_action_and_expiry():
    req = request("domain", "example.com", expires_in="1d")
    assert rq.is_active(req, NOW)
    assert not rq.is_active(req, NOW + timedelta(days=1))
    assert not rq.is_active(lift(req, now=NOW), NOW)


# --- validate: records read from the topic -------------------------------------------------------------------


def test_validate_returns_the_record_with_its_value_normalised():
    req = request("domain", "example.com")
    raw = {**req, "value": "WWW.Example.com."}
    out = rq.validate(encode(raw), max_bytes=LIMIT, key=req["takedown_id"].encode())
    assert isinstance(out, dict) and out["value"] == "www.example.com"


def _valid() -> dict:
    return request("url", "https://example.com/a")


@pytest.mark.parametrize(
    ("payload", "reason", "pointer"),
    [
        (None, "tombstone", ""),
        (b"{not json", "invalid_json", ""),
        (b"\xff\xfe{}", "invalid_utf8", ""),
        (b"[]", "schema_violation", ""),
        (b"x" * (LIMIT + 1), "too_large", ""),
        (encode({**_valid(), "scope": "page"}), "schema_violation", "/scope"),
        (encode({**_valid(), "action": "delete"}), "schema_violation", "/action"),
        (encode({k: v for k, v in _valid().items() if k != "requested_by"}), "schema_violation", "/requested_by"),
        (encode({**_valid(), "value": 42}), "schema_violation", "/value"),
        (encode({**_valid(), "scope": "fingerprint", "value": "nothex"}), "schema_violation", "/value"),
        (encode({**_valid(), "value": "ftp://example.com/a"}), "bad_value", "/value"),
        (encode({**_valid(), "scope": "domain", "value": "co.uk"}), "bad_value", "/value"),
        (encode({**_valid(), "requested_at": "yesterday"}), "bad_time", "/requested_at"),
        (encode({**_valid(), "expires_at": "2025-08-13T07:00:00Z"}), "bad_expiry", "/expires_at"),
        (encode({**_valid(), "statement": {"ground": "legal"}}), "schema_violation", "/statement/legal_basis"),
        (encode({**_valid(), "action": "lift"}), "schema_violation", "/lifted_at"),
    ],
)
def test_validate_refuses_with_reason_and_pointer(payload, reason, pointer):
    out = rq.validate(payload, max_bytes=LIMIT)
    assert isinstance(out, Refusal), out
    assert (out.reason, out.pointer) == (reason, pointer), out
    assert out.message.endswith(".")


def test_validate_refuses_a_key_that_is_not_the_id():
    out = rq.validate(encode(_valid()), max_bytes=LIMIT, key=b"another-id")
    assert isinstance(out, Refusal) and (out.reason, out.pointer) == ("key_mismatch", "/takedown_id")


def test_validate_accepts_a_utf8_bom():
    out = rq.validate(b"\xef\xbb\xbf" + encode(_valid()), max_bytes=LIMIT)
    assert isinstance(out, dict)


def test_ticks_are_recognised_only_with_the_tick_key():
    assert rq.tick_ms(rq.TICK_KEY, rq.tick_record(1234)) == 1234
    key, value, partition = rq.tick(1234)
    assert (rq.tick_ms(key, value), partition) == (1234, 0)
    assert rq.tick_ms(b"TD-1", rq.tick_record(1234)) is None
    assert rq.tick_ms(rq.TICK_KEY, b"{nope") is None
    assert rq.tick_ms(rq.TICK_KEY, orjson.dumps({"tick_ms": True})) is None
