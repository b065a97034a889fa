"""The normalize stage end to end: the seed, our own aggregated article, refusals, HTML, dates, ids."""

from __future__ import annotations

import email.utils
import random
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codec, schemas
from streams.outcomes import Normalized, Rejected
from streams.schemas import first_violation
from streams.settings import Settings
from streams.stages.normalize import NORMALIZE_VERSION, NormalizeConfig, normalize, parse_published, stage
from tests.factories.raw import (
    NOW,
    OWN_CREDIT,
    OWN_DISCLAIMER,
    OWN_PARAGRAPHS,
    OWN_TITLE,
    OWN_TRANSLATION,
    RECORD_MS,
    article,
    encode,
    origin,
    own_aggregated_html,
    own_aggregated_text,
    raw_event,
    rejection,
    run,
)

SEED_URL = "https://aggregator.example.com/world/zelenskyy-rejects-land-cession?utm_source=x"
# the stage's reasons are the schema's, but for internal_error, which only the agent gives (a bug in the stage)
REJECTION_REASONS = set(schemas.enum("rejection.v1.json", "reason")) - {"internal_error"}


def assert_valid_article(doc: dict[str, Any]) -> None:
    violation = first_violation("article.v1.json", doc)
    assert violation is None, violation


def seed_paragraphs(seed: str) -> list[str]:
    """The seed's six body paragraphs: what sits between the credit line and the translation link."""
    paragraphs = [" ".join(p.split()) for p in seed.split("\n\n") if p.strip()]
    start = next(i for i, p in enumerate(paragraphs) if p.endswith("Image from The Guardian")) + 1
    end = next(i for i, p in enumerate(paragraphs) if p.startswith("阅读中文版"))
    return paragraphs[start:end]


# --- the seed -------------------------------------------------------------------------------------------------


def test_seed_normalises_to_one_clean_attributed_article(seed_text: str) -> None:
    title = seed_text.splitlines()[0]
    doc = article(
        raw_event(
            url=SEED_URL,
            title=title,
            body=seed_text,
            body_format="text",
            source={"name": "Aggregator Example"},
            event_id=None,
        )
    )
    assert_valid_article(doc)
    assert doc["title"] == title
    assert title not in doc["text"]
    for mark in ("Image from", "阅读中文版", "Read Chinese Version", "Disclaimer", "contact us for removal"):
        assert mark not in doc["text"]
    assert "The Guardian" in doc["attribution"]["image_credits"]
    assert "The Guardian" in doc["attribution"]["original_publishers"]
    assert [a["language"] for a in doc["alternates"]] == ["zh"]
    assert doc["alternates"][0]["label"] == "阅读中文版 (Read Chinese Version)"
    assert doc["flags"]["aggregated"] is True
    assert doc["flags"]["disclaimer"].startswith("Disclaimer: This content is aggregated from public sources")
    assert doc["flags"]["title_repeats_removed"] == 4
    body = seed_paragraphs(seed_text)
    assert len(body) == 6
    assert doc["text"].split("\n\n") == body
    assert doc["canonical_url"] == "https://aggregator.example.com/world/zelenskyy-rejects-land-cession"
    assert doc["domain"] == "example.com"
    assert doc["source"]["name"] == "Aggregator Example"


def test_seed_without_a_title_takes_its_first_line(seed_text: str) -> None:
    doc = article(raw_event(url=SEED_URL, title=None, body=seed_text))
    assert doc["title"] == seed_text.splitlines()[0]
    assert doc["title"] not in doc["text"]
    assert len(doc["text"].split("\n\n")) == 6


# --- our own article with the seed's structure (always runs) ------------------------------------------------


def test_own_aggregated_article_normalises_like_the_seed() -> None:
    doc = article(raw_event(title=OWN_TITLE, body=own_aggregated_text()))
    assert_valid_article(doc)
    assert doc["title"] == OWN_TITLE
    assert OWN_TITLE not in doc["text"]
    assert doc["text"].split("\n\n") == list(OWN_PARAGRAPHS)
    assert doc["attribution"] == {
        "image_credits": ["The Coastal Courier"],
        "original_publishers": ["The Coastal Courier"],
    }
    assert doc["alternates"] == [{"language": "zh", "label": OWN_TRANSLATION, "url": None}]
    assert doc["flags"] == {
        "aggregated": True,
        "disclaimer": OWN_DISCLAIMER,
        "title_repeats_removed": 4,
        "mojibake_fixed": False,
    }


@pytest.mark.parametrize("repeats", [1, 2, 6])
def test_own_article_with_any_number_of_title_repeats(repeats: int) -> None:
    doc = article(raw_event(title=OWN_TITLE, body=own_aggregated_text(repeats)))
    assert doc["flags"]["title_repeats_removed"] == repeats
    assert doc["text"].split("\n\n") == list(OWN_PARAGRAPHS)


def test_own_aggregated_article_as_html_page() -> None:
    doc = article(raw_event(title=None, body=own_aggregated_html(), body_format="html"))
    assert_valid_article(doc)
    assert doc["title"] == OWN_TITLE
    assert doc["text"].split("\n\n") == list(OWN_PARAGRAPHS)
    assert "The Coastal Courier" in doc["attribution"]["image_credits"]
    assert doc["alternates"] == [
        {"language": "zh", "label": OWN_TRANSLATION, "url": "https://www.example-news.com/zh/harbour-council"}
    ]
    assert doc["flags"]["aggregated"] is True
    assert doc["flags"]["disclaimer"] == OWN_DISCLAIMER
    html = doc["html"]
    assert html is not None and OWN_PARAGRAPHS[0] in html
    for absent in ("TRACKER_SCRIPT_TEXT", "Advertisement", "Home", OWN_CREDIT, "Disclaimer", "<script", "<h1"):
        assert absent not in html
    for absent in ("TRACKER_SCRIPT_TEXT", "Advertisement", "Copyright", OWN_CREDIT):
        assert absent not in doc["text"]


def test_disclaimer_in_a_page_footer_still_flags_the_article() -> None:
    page = (
        "<html><body><article><p>" + OWN_PARAGRAPHS[0] + "</p><p>" + OWN_PARAGRAPHS[1] + "</p></article>"
        "<footer><p>Disclaimer: This content is aggregated from public sources online.</p></footer></body></html>"
    )
    doc = article(raw_event(body=page, body_format="html"))
    assert doc["flags"]["aggregated"] is True
    assert "Disclaimer" not in doc["text"]


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"url": "https://e.com/a", "body": "x"', "invalid_json"),
        (b'{"url": "https://e.com/a", "body": "x"} trailing', "invalid_json"),
        (b"{'url': 'single quotes'}", "invalid_json"),
        (b'{"url": NaN}', "invalid_json"),
        (b'{"body": "raw NUL \x00 inside a string"}', "invalid_json"),  # unescaped control: not JSON
        (b'{"body": "\\ud800 lone surrogate"}', "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"url": "https://e.com/\xc3\x28", "body": "x"}', "invalid_utf8"),
        (b"[1]", "schema_violation"),
        (b'"just a string"', "schema_violation"),
        (b"42", "schema_violation"),
        (b"null", "schema_violation"),
        (b"{}", "schema_violation"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    result = rejection(payload)
    assert result.reason == reason
    assert result.message and "\n" not in result.message


def test_invalid_utf8_reports_the_first_bad_byte() -> None:
    payload = b'{"url": "https://e.com/a", "body": "ok \xe9 bad"}'
    result = rejection(payload)
    assert result.reason == "invalid_utf8"
    assert result.details == {"position": payload.index(b"\xe9")}


@pytest.mark.parametrize(
    "payload",
    [b'{"url": "https://e.com/a",, "body": "x"}', '{"title": "Zelenskyy’s «plan» 阅读",, "body": "x"}'.encode()],
)
def test_invalid_json_reports_the_byte_position(payload: bytes) -> None:
    result = rejection(payload)
    assert result.reason == "invalid_json"
    assert result.details == {"position": payload.index(b",,") + 1}


@pytest.mark.parametrize(
    ("change", "pointer", "keyword"),
    [
        ({"url": 42}, "/url", "type"),
        ({"url": None}, "", "required"),
        ({"body": None}, "", "required"),
        ({"body": ["a"]}, "/body", "type"),
        ({"title": 7}, "/title", "type"),
        ({"url": ""}, "/url", "minLength"),
        ({"url": "https://e.com/" + "a" * 9000}, "/url", "maxLength"),
        ({"body_format": "markdown"}, "/body_format", "enum"),
        ({"source": {"id": "x"}}, "/source", "required"),
        ({"source": {"name": "X", "priority": "high"}}, "/source/priority", "type"),
        ({"authors": "A. Reporter"}, "/authors", "type"),
        ({"authors": [1]}, "/authors/0", "type"),
        ({"event_id": ""}, "/event_id", "minLength"),
        ({"metadata": []}, "/metadata", "type"),
    ],
)
def test_schema_violation_names_pointer_and_keyword(change: dict[str, Any], pointer: str, keyword: str) -> None:
    result = rejection(raw_event(**change) if None not in change.values() else _without(change))
    assert result.reason == "schema_violation"
    assert result.details == {"pointer": pointer, "keyword": keyword}
    assert len(result.message) <= 300


def _without(change: dict[str, Any]) -> dict[str, Any]:
    event = raw_event()
    for key in change:
        event.pop(key)
    return event


def test_too_large_is_refused_before_decoding() -> None:
    body = "x" * (5 * 1024 * 1024)
    payload = encode(raw_event(body=body))
    result = rejection(payload)
    assert result.reason == "too_large"
    assert result.details == {"size": len(payload), "limit": 2 * 1024 * 1024}


def test_too_large_does_not_even_need_valid_bytes() -> None:
    result = rejection(b"\xff" * 101, config=NormalizeConfig(max_event_bytes=100))
    assert result.reason == "too_large"
    assert result.details == {"size": 101, "limit": 100}


def test_event_at_the_limit_is_accepted() -> None:
    payload = encode(raw_event())
    assert isinstance(run(payload, config=NormalizeConfig(max_event_bytes=len(payload))), Normalized)


@pytest.mark.parametrize(
    "url",
    [  # script URLs are shown inert: test_refused_urls.py
        "ftp://files.example.com/article.txt",
        "http://",
        "https:///no-host",
        "//example.com/relative",
        "http://exa mple.com/a",
        "http://[::1/a",
    ],
)
def test_bad_url_is_refused_with_the_url(url: str) -> None:
    result = rejection(raw_event(url=url))
    assert result.reason == "bad_url"
    assert result.details == {"url": url}


def test_bad_url_detail_is_cut_to_500_characters() -> None:
    url = "ftp://example.com/" + "a" * 2000
    assert rejection(raw_event(url=url)).details == {"url": url[:500]}


@pytest.mark.parametrize(
    "body",
    ["", "   \n\n \t ", "\u0000\u0000\u0000", "\u0000 \n\u0001\u200b\ufeff", "Image from The Guardian"],
)
def test_body_with_no_text_is_empty_text(body: str) -> None:
    assert rejection(raw_event(body=body)).reason == "empty_text"


def test_untitled_body_of_one_headline_is_title_only() -> None:
    assert rejection(raw_event(title=None, body="Explosion heard in city centre")).reason == "empty_text"


def test_title_only_body_is_empty_text() -> None:
    assert rejection(
        raw_event(title="Harbour vote delayed", body="Harbour vote delayed\n\nHarbour vote delayed")
    ).reason == ("empty_text")


@pytest.mark.parametrize(
    "body",
    ["<script>alert(1)</script>", "<style>p {}</style>", "<html><body></body></html>", "<!-- x -->"],
)
def test_html_without_content_is_empty_text(body: str) -> None:
    assert rejection(raw_event(body=body, body_format="html")).reason == "empty_text"


def test_tombstone_is_refused_not_raised() -> None:
    outcome = normalize(None, origin=origin(), now=NOW, config=NormalizeConfig())  # type: ignore[arg-type]
    assert isinstance(outcome, Rejected) and outcome.reason == "invalid_json"


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20250812)
    good = encode(raw_event(body_format="html", body="<p>Rates held.</p>"))
    for _ in range(300):
        mutated = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        outcome = run(bytes(mutated))
        assert isinstance(outcome, Normalized | Rejected)
        if isinstance(outcome, Rejected):
            assert outcome.reason in REJECTION_REASONS
        else:
            assert_valid_article(outcome.article)


# --- cleaning -------------------------------------------------------------------------------------------------


def test_nul_and_control_characters_are_stripped_not_refused() -> None:
    doc = article(raw_event(title="Vote\u0000 delayed\u0007", body="The vote\u0000 was\u0001 delayed.\u001b\n\nAgain."))
    assert doc["title"] == "Vote delayed"
    assert doc["text"] == "The vote was delayed.\n\nAgain."


def test_mojibake_in_body_and_title_is_fixed_and_flagged() -> None:
    doc = article(raw_event(title="Russiaâ€™s offer", body="Itâ€™s a ceasefire â€“ for now.\n\nMore soon."))
    assert doc["title"] == "Russia’s offer"
    assert doc["text"] == "It’s a ceasefire – for now.\n\nMore soon."
    assert doc["flags"]["mojibake_fixed"] is True


def test_clean_text_is_not_flagged_as_mojibake() -> None:
    doc = article(raw_event(body="Russia’s “offer” – naïve café, 90,000 km²."))
    assert doc["flags"]["mojibake_fixed"] is False
    assert doc["text"] == "Russia’s “offer” – naïve café, 90,000 km²."


def test_text_is_nfc_with_whitespace_collapsed_within_paragraphs() -> None:
    doc = article(raw_event(body="Cafe\u0301   opens\r\nits doors.\r\n\r\n\r\nSecond\u00a0\u00a0para."))
    assert doc["text"] == "Café opens its doors.\n\nSecond para."


NASTY_HTML = """<html><head><script>document.write("HEAD_SCRIPT")</script></head><body>
<div onclick="steal()"><p>The council approved the harbour budget on Thursday after a long debate.</p>
<script>alert(1)</script>
<p>Repairs to the <a href="javascript:alert('x')" onclick="evil()">north pier</a> start next month,
<a href="/budget">officials said</a>.</p>
<iframe src="https://evil.example/">IFRAME_FALLBACK</iframe>
<p><img src=x onerror="alert(2)">The sailing club said it would appeal the levy.</p></div></body></html>"""


def test_html_body_script_iframe_and_handlers_never_survive() -> None:
    doc = article(raw_event(body=NASTY_HTML, body_format="html"))
    assert_valid_article(doc)
    assert doc["text"] == (
        "The council approved the harbour budget on Thursday after a long debate.\n\n"
        "Repairs to the north pier start next month, officials said.\n\n"
        "The sailing club said it would appeal the levy."
    )
    for leak in ("alert", "HEAD_SCRIPT", "IFRAME_FALLBACK", "document.write"):
        assert leak not in doc["text"]
    html = doc["html"].lower()
    for danger in ("<script", "<iframe", "onclick", "onerror", "javascript:", "alert", "<img"):
        assert danger not in html
    assert 'href="https://www.example-news.com/budget"' in html


def test_text_body_has_no_html() -> None:
    assert article(raw_event())["html"] is None


def test_html_line_breaks_stay_line_breaks() -> None:
    doc = article(raw_event(body="<p>Flat 2<br>12 Harbour Road</p><p>Second paragraph.</p>", body_format="html"))
    assert doc["text"] == "Flat 2\n12 Harbour Road\n\nSecond paragraph."


def test_html_title_comes_from_the_page_when_the_event_has_none() -> None:
    page = (
        "<html><head><title>Pier vote | Gazette</title></head><body><h1>Pier vote</h1><p>Body text.</p></body></html>"
    )
    doc = article(raw_event(title=None, body=page, body_format="html"))
    assert doc["title"] == "Pier vote"
    assert doc["text"] == "Body text."


def test_html_language_is_the_hint_when_the_event_has_none() -> None:
    page = '<html lang="de"><body><p>Der Rat hat abgestimmt.</p></body></html>'
    assert article(raw_event(language=None, body=page, body_format="html"))["language_hint"] == "de"
    assert article(raw_event(language="fr", body=page, body_format="html"))["language_hint"] == "fr"


def test_hreflang_anchor_becomes_an_alternate_with_url() -> None:
    page = '<p>Body text of the article.</p><p><a href="/uk/a" hreflang="uk">Українською</a></p>'
    doc = article(raw_event(body=page, body_format="html"))
    assert {"language": "uk", "label": "Українською", "url": "https://www.example-news.com/uk/a"} in doc["alternates"]


# --- ids, times and fields ------------------------------------------------------------------------------------


def test_article_fields() -> None:
    doc = article(
        raw_event(
            url="HTTPS://WWW.Example-News.com:443/world/harbour-vote?utm_source=rss&b=2&a=1#top",
            authors=["  A. Reporter ", "A. Reporter", "B.\u0000 Writer"],
            language="EN-gb",
            published_at="Tue, 12 Aug 2025 09:30:00 +0200",
            source={"name": "Example News", "id": "example-news", "url": "https://example-news.com", "priority": 2},
            metadata={"feed": "world", "n": 1},
        )
    )
    assert_valid_article(doc)
    assert doc["schema"] == "article.v1"
    assert doc["event_id"] == "test-0001"
    assert doc["url"] == "HTTPS://WWW.Example-News.com:443/world/harbour-vote?utm_source=rss&b=2&a=1#top"
    assert doc["canonical_url"] == "https://www.example-news.com/world/harbour-vote?a=1&b=2"
    assert (doc["host"], doc["domain"]) == ("www.example-news.com", "example-news.com")
    assert doc["article_id"] == codec.short_hash(doc["canonical_url"])
    assert doc["revision"] == codec.short_hash(doc["text"])
    assert doc["published_at"] == "2025-08-12T07:30:00Z"
    assert doc["ingested_at"] == "2025-08-12T07:31:02Z"
    assert doc["language_hint"] == "en-GB"
    assert doc["authors"] == ["A. Reporter", "B. Writer"]
    assert doc["source"] == {
        "name": "Example News",
        "id": "example-news",
        "url": "https://example-news.com",
        "priority": 2,
    }
    assert doc["origin"] == {"topic": "articles.raw", "partition": 3, "offset": 41, "timestamp_ms": RECORD_MS}
    assert doc["pipeline"] == {"normalize": NORMALIZE_VERSION}
    assert doc["metadata"] == {"feed": "world", "n": 1}


def test_missing_optional_fields_get_defaults() -> None:
    doc = article({"url": "https://news.example.co.uk/a", "body": "Text."})
    assert_valid_article(doc)
    assert doc["event_id"] is None
    assert doc["source"] == {"name": "example.co.uk", "id": None, "url": None, "priority": None}
    assert (doc["published_at"], doc["language_hint"], doc["authors"], doc["html"]) == (None, None, [], None)
    assert doc["alternates"] == [] and doc["attribution"] == {"image_credits": [], "original_publishers": []}
    assert "metadata" not in doc


def test_article_id_is_stable_across_spellings_of_the_url() -> None:
    a = article(raw_event(url="https://www.example.com/a?id=1&utm_source=x"))
    b = article(raw_event(url="HTTPS://www.EXAMPLE.com:443/a?fbclid=zz&id=1#frag"))
    assert a["article_id"] == b["article_id"]
    assert a["url"] != b["url"]


def test_revision_changes_with_the_text_only() -> None:
    a = article(raw_event(body="First version.\n\nSame end."))
    b = article(raw_event(body="Corrected version.\n\nSame end."))
    c = article(raw_event(body="First version.\n\nSame end.", title="Another title"))
    assert a["article_id"] == b["article_id"]
    assert a["revision"] != b["revision"]
    assert a["revision"] == c["revision"]


def test_same_input_gives_the_same_output() -> None:
    event = raw_event(title=OWN_TITLE, body=own_aggregated_html(), body_format="html")
    assert orjson.dumps(article(event)) == orjson.dumps(article(event))


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [
        (RECORD_MS, "2025-08-12T07:31:02Z"),
        (RECORD_MS + 120, "2025-08-12T07:31:02.120000Z"),
        (None, "2025-01-01T12:00:00Z"),
        (-1, "2025-01-01T12:00:00Z"),  # Kafka's "no timestamp"
        (10**20, "2025-01-01T12:00:00Z"),  # out of datetime's range
    ],
)
def test_ingested_at_is_the_record_time_else_now(timestamp_ms: int | None, expected: str) -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert article(raw_event(), now=now, timestamp_ms=timestamp_ms)["ingested_at"] == expected


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("Tue, 12 Aug 2025 09:30:00 +0200", "2025-08-12T07:30:00Z"),
        ("Tue, 12 Aug 2025 09:30:00 GMT", "2025-08-12T09:30:00Z"),
        ("Tue, 12 Aug 2025 09:30:00 EST", "2025-08-12T14:30:00Z"),
        ("12 Aug 2025 09:30 -0000", "2025-08-12T09:30:00Z"),
        ("2025-08-12T09:30:00Z", "2025-08-12T09:30:00Z"),
        ("2025-08-12T09:30:00+02:00", "2025-08-12T07:30:00Z"),
        ("2025-08-12T09:30:00.250-04:00", "2025-08-12T13:30:00.250000Z"),
        ("2025-08-12T09:30:00", "2025-08-12T09:30:00Z"),  # no zone = UTC
        ("2025-08-12 09:30", "2025-08-12T09:30:00Z"),
        ("2025-08-12", "2025-08-12T00:00:00Z"),
        ("20250812T093000Z", "2025-08-12T09:30:00Z"),
        ("August 12, 2025 9:30 AM CEST", "2025-08-12T07:30:00Z"),
        ("12 August 2025", "2025-08-12T00:00:00Z"),
        ("Tue, 12 Aug 2025 09:30:00 CEST", "2025-08-12T07:30:00Z"),
        ("Tue, 12 Aug 2025 09:30:00 XYZT", "2025-08-12T09:30:00Z"),  # unknown zone name: as if UTC
    ],
)
def test_published_at_formats(raw: str, utc: str) -> None:
    parsed = parse_published(raw)
    assert parsed is not None and codec.rfc3339(parsed) == utc
    assert article(raw_event(published_at=raw))["published_at"] == utc


@pytest.mark.parametrize(
    "raw", [None, "", "   ", "yesterday", "not a date", "12 Aug", "August", "99/99/9999", "0001-01-01T00:00:00+05:00"]
)
def test_unreadable_or_partial_published_at_is_none_not_now(raw: str | None) -> None:
    assert parse_published(raw) is None
    doc = article(raw_event(published_at=raw))
    assert doc["published_at"] is None


def test_utf8_bom_is_ignored() -> None:
    assert isinstance(run(b"\xef\xbb\xbf" + encode(raw_event())), Normalized)


def test_escaped_nul_in_url_is_not_a_crash() -> None:
    outcome = run(raw_event(url="https://example.com/a\u0000b"))
    assert isinstance(outcome, Normalized | Rejected)


# --- outputs always validate against article.v1 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        raw_event(),
        raw_event(title=None, body="One line body.\n\nA second one."),
        raw_event(title=None, body="A first sentence that ends with a period.\n\nAnd more."),
        raw_event(body_format="html", body="<p>Fragment.</p>"),
        raw_event(body_format="html", body=NASTY_HTML, language="xx-invalid-tag-value"),
        raw_event(body_format="html", body=own_aggregated_html(), title=OWN_TITLE),
        raw_event(body=own_aggregated_text(), title=OWN_TITLE, published_at="garbage", authors=[]),
        raw_event(url="http://192.0.2.7:8080/a", source={"name": "\u0000"}),
        raw_event(url="https://bücher.example/ä?utm_campaign=x", body="Ünïcödé body ✓ 😀"),
        raw_event(title="", body="Body when title is empty."),
    ],
)
def test_outputs_validate_against_article_schema(event: dict[str, Any]) -> None:
    assert_valid_article(article(event))


# --- config ---------------------------------------------------------------------------------------------------


def test_config_from_settings() -> None:
    config = NormalizeConfig.from_settings(Settings(max_event_bytes=1234))
    assert config == NormalizeConfig(max_event_bytes=1234)
    assert NormalizeConfig().max_event_bytes == Settings().max_event_bytes == 2 * 1024 * 1024


def test_config_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        NormalizeConfig().max_event_bytes = 1  # type: ignore[misc]


def test_module_docstring_example_holds() -> None:
    doc = article(
        {
            "url": "HTTPS://News.Example.com/a?utm_source=x#top",
            "title": "Talks open",
            "body": "Talks open\n\nImage from The Guardian\n\nDelegations met.\n\nRead in English",
        }
    )
    assert (doc["canonical_url"], doc["domain"], doc["title"]) == (
        "https://news.example.com/a",
        "example.com",
        "Talks open",
    )
    assert doc["text"] == "Delegations met."
    assert doc["attribution"]["image_credits"] == ["The Guardian"]
    assert doc["alternates"] == [{"language": "en", "label": "Read in English", "url": None}]
    assert rejection(b'{"url": 42, "body": "x"}').details == {"pointer": "/url", "keyword": "type"}


_rfc822_spellings = st.builds(
    lambda wd, d, mon, y, h, mi, sec, sign, zh, zm: (
        f"{wd}{d} {mon} {y} {h:02d}:{mi:02d}:{sec:02d} {sign}{zh:02d}{zm:02d}"
    ),
    st.sampled_from(["", "Tue, ", "Sun, ", "Xyz, "]),
    st.integers(0, 32),
    st.sampled_from(["Jan", "Feb", "Aug", "Dec", "Foo"]),
    st.integers(0, 9999).map(lambda y: f"{y:04d}"),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["+", "-"]),
    st.integers(0, 25),
    st.integers(0, 99),
)


@settings(max_examples=500, deadline=None)
@given(_rfc822_spellings)
def test_plain_rfc822_reader_agrees_with_email_utils(raw: str) -> None:
    fast = stage._rfc822_plain(raw)
    if fast is not None:
        assert fast == email.utils.parsedate_to_datetime(raw)
        assert fast.utcoffset() == email.utils.parsedate_to_datetime(raw).utcoffset()


# --- plain-text fields and safe links ---------------------------------------------------------------------------


def test_title_with_markup_comes_out_as_plain_text() -> None:
    doc = article(raw_event(title="<script>alert(1)</script> Headline &amp; more"))
    assert doc["title"] == "Headline & more"


def test_literal_less_than_in_a_title_stays() -> None:
    assert article(raw_event(title="Profits < forecast"))["title"] == "Profits < forecast"


def test_title_of_only_markup_falls_back_to_the_first_line() -> None:
    doc = article(raw_event(title="<script>alert(1)</script>", body="Harbour vote delayed\n\nThe vote was delayed."))
    assert doc["title"] == "Harbour vote delayed"


def test_authors_source_and_ids_carry_no_markup() -> None:
    doc = article(
        raw_event(
            event_id="evt-<b>1</b>",
            authors=["<img src=x onerror=alert(1)>A. Reporter", "B. &lt;b&gt;Writer&lt;/b&gt;", "<script>C.</script>"],
            source={"name": "<i>Example</i> News", "id": "ex<script>alert(1)</script>", "url": "javascript:alert(1)"},
        )
    )
    assert doc["event_id"] == "evt-1"
    assert doc["authors"] == ["A. Reporter", "B. Writer"]
    assert doc["source"]["name"] == "Example News"
    assert doc["source"]["id"] == "ex"
    assert doc["source"]["url"] is None


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("https://example-news.com/", "https://example-news.com/"),
        ("example-news.com", "example-news.com"),
        (" java\tscript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("file:///etc/passwd", None),
        ('https://example-news.com/"><script>', "https://example-news.com/%22%3E%3Cscript%3E"),
    ],
)
def test_source_url_is_a_web_link_or_nothing(sent: str, kept: str | None) -> None:
    assert article(raw_event(source={"name": "X", "url": sent}))["source"]["url"] == kept


def test_url_as_sent_is_spelt_so_it_opens_no_tag() -> None:
    doc = article(raw_event(url='https://example-news.com/a"><script>alert(1)</script>'))
    assert "<" not in doc["url"] and '"' not in doc["url"]
    assert doc["url"].startswith("https://example-news.com/a%22%3E%3Cscript%3E")


def test_markup_in_a_text_body_is_removed_not_published() -> None:
    doc = article(raw_event(body="The vote was delayed.<script>alert(1)</script>\n\n<b>Councillors</b> meet again."))
    assert doc["text"] == "The vote was delayed.\n\nCouncillors meet again."


def test_escaped_markup_in_html_text_does_not_become_a_tag() -> None:
    body = "<p>Rates held &lt;script&gt;alert(1)&lt;/script&gt; today.</p><p>Second paragraph.</p>"
    doc = article(raw_event(body=body, body_format="html"))
    assert doc["text"] == "Rates held today.\n\nSecond paragraph."
    assert "<script" not in doc["html"] and "&lt;script&gt;" in doc["html"]  # shown as text in the HTML


def test_metadata_is_carried_except_what_could_turn_active() -> None:
    metadata = {
        "feed": "world",
        "score": 3.5,
        "tags": ["a", "<b>bold</b>", {"deep": "javascript:alert(1)"}],
        "thumb": "data:image/png;base64,iVBORw0KGgo=",
        "page": "data:text/html;base64,PHNjcmlwdD4=",
        "<script>key</script>x": "v",
        "note": "AT&amp;T",
    }
    assert article(raw_event(metadata=metadata))["metadata"] == {
        "feed": "world",
        "score": 3.5,
        "tags": ["a", "bold", {"deep": None}],
        "thumb": "data:image/png;base64,iVBORw0KGgo=",
        "page": None,
        "x": "v",
        "note": "AT&amp;T",
    }


def test_deeply_nested_metadata_is_carried_without_recursion() -> None:
    deep: dict[str, Any] = {"leaf": "<i>x</i>"}
    for _ in range(stage.MAX_METADATA_DEPTH - 1):
        deep = {"d": deep}
    node = article(raw_event(metadata=deep))["metadata"]
    for _ in range(stage.MAX_METADATA_DEPTH - 1):
        node = node["d"]
    assert node == {"leaf": "x"}


@pytest.mark.parametrize("depth", [stage.MAX_METADATA_DEPTH + 1, 1000])
def test_metadata_nested_past_the_limit_is_too_large(depth: int) -> None:
    # orjson reads 1,024 levels but writes only 254: the article must stay encodable, so deeper is refused
    payload = b'{"url": "https://example.com/a", "body": "Text.", "metadata": ' + b'{"d": ' * (depth - 1) + b"{}"
    payload += b"}" * depth
    result = rejection(payload)
    assert (result.reason, result.details) == ("too_large", {"depth": depth, "depth_limit": stage.MAX_METADATA_DEPTH})


def test_schema_violation_message_quotes_no_markup() -> None:
    result = rejection(raw_event(url=None, title="x") | {"url": ["<script>alert(1)</script>"]})
    assert result.reason == "schema_violation"
    assert "<script" not in result.message
