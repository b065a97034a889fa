"""normalize through the real broker: 1,000 mixed events, each good one normalized, each bad one refused right."""

from __future__ import annotations

import asyncio
import base64
import random

import orjson

from tests.conftest import bbc_rows
from tests.integration.conftest import read_committed, send_all, values


def _bbc_events(n: int) -> list[dict]:
    rows = bbc_rows(n)
    return [
        {
            "event_id": f"bbc-{row['id']}",
            "url": f"https://www.bbc.example/news/{row['category']}/{row['id']}?utm_source=feed",
            "title": row["title"],
            "body": row["body"],
            "body_format": "text",
            "source": {"name": "BBC News", "id": "bbc"},
            "published_at": "2005-03-01T10:00:00Z",
        }
        for row in rows
    ]


HTML_PAGE = (
    "<html><head><title>Harbour reopens</title><script>steal(document.cookie)</script></head><body>"
    "<nav><a href='/'>Home</a> | <a href='/world'>World</a></nav>"
    "<div class='ad'>Buy now!</div><iframe src='https://ads.example/x'></iframe>"
    "<article><h1>Harbour reopens after storm</h1>"
    "<p onclick='evil()'>The harbour at Port Ellery reopened on Monday after a week of repairs to the sea wall.</p>"
    "<p>Fishing crews said the first boats left before dawn, and the harbour master expects full traffic by "
    "Friday. <a href='javascript:alert(1)'>More</a></p>"
    "<p>Repairs cost the town council an estimated 2.4 million pounds, paid from its emergency reserve.</p>"
    "</article><footer>© Port Ellery Gazette. All rights reserved.</footer></body></html>"
)

# (payload bytes, expected reason) — each kind the brief names, several variants each.
BAD: list[tuple[bytes, str]] = [
    (b'{"url": "https://a.example/1", "body": ', "invalid_json"),
    (b"not json at all", "invalid_json"),
    (b"\x00\x00\x00\x00", "invalid_json"),
    (b'{"url": "https://a.example/2", "body": "caf\xe9 au lait"}', "invalid_utf8"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (b'{"url": 42, "body": "Some text."}', "schema_violation"),
    (b'{"body": "No url here."}', "schema_violation"),
    (b'{"url": "https://a.example/3"}', "schema_violation"),
    (b'{"url": "https://a.example/4", "body": ["a", "list"]}', "schema_violation"),
    (b"[1, 2, 3]", "schema_violation"),
    (b'{"url": "javascript:alert(1)", "body": "Click me."}', "bad_url"),
    (b'{"url": "data:text/html,<b>x</b>", "body": "Data."}', "bad_url"),
    (b'{"url": "ftp://files.example/a", "body": "File."}', "bad_url"),
    (b'{"url": "http://", "body": "No host."}', "bad_url"),
    (b'{"url": "https://a.example/5", "body": "   \\n\\n  "}', "empty_text"),
    (b'{"url": "https://a.example/6", "body": "<script>only()</script>", "body_format": "html"}', "empty_text"),
    (orjson.dumps({"url": "https://a.example/big", "body": "word " * (1024 * 1024)}), "too_large"),
]


def test_thousand_mixed_events_each_routed_with_the_right_reason(topics, worker_factory):
    settings = topics
    good = _bbc_events(880)
    good.append(
        {
            "url": "https://gazette.example/harbour",
            "body": HTML_PAGE,
            "body_format": "html",
            "source": {"name": "Port Ellery Gazette"},
        }
    )
    good.append(
        {
            "url": "https://a.example/nul",
            "title": "Nul",
            "body": "Text with a \u0000 NUL byte inside.",
            "source": {"name": "A"},
        }
    )
    rng = random.Random(7)
    bad = [BAD[i % len(BAD)] for i in range(1000 - len(good))]
    items = [(None, orjson.dumps(e)) for e in good] + [(None, payload) for payload, _ in bad]
    rng.shuffle(items)
    assert len(items) == 1000

    worker = worker_factory(settings, stages="normalize")
    asyncio.run(send_all(settings, "articles.raw", items))
    worker.wait_ready()
    normalized = values(asyncio.run(read_committed(settings, "articles.normalized", expect=len(good), timeout=180)))
    rejected = values(asyncio.run(read_committed(settings, "articles.rejected", expect=len(bad), timeout=60)))
    assert worker.alive(), worker.tail()

    assert len(normalized) == len(good)
    assert {a["url"] for a in normalized} == {e["url"] for e in good}
    assert len(rejected) == len(bad)
    by_payload = {}
    for r in rejected:
        by_payload.setdefault(base64.b64decode(r["payload_b64"]), []).append(r)
    for payload, reason in bad:
        recs = by_payload.get(payload[: settings.reject_payload_limit_bytes])
        assert recs, f"no rejection for {payload[:60]!r}"
        assert {r["reason"] for r in recs} == {reason}, payload[:60]

    big = [r for r in rejected if r["reason"] == "too_large"]
    assert big and all(r["payload_truncated"] and r["payload_size"] > 5_000_000 for r in big)
    schema = [r for r in rejected if r["reason"] == "schema_violation" and r["details"].get("pointer") == "/url"]
    assert schema and schema[0]["details"]["keyword"] == "type"

    page = next(a for a in normalized if a["url"] == "https://gazette.example/harbour")
    assert "Port Ellery reopened" in page["text"]
    for bad_bit in ("steal(", "Buy now", "<script", "iframe", "onclick", "javascript:"):
        assert bad_bit not in page["text"] and bad_bit not in (page["html"] or ""), bad_bit
    nul = next(a for a in normalized if a["url"] == "https://a.example/nul")
    assert "\x00" not in nul["text"]

    status, body = worker.get("/metrics")
    assert b'streams_rejections_total{reason="too_large",stage="normalize"}' in body
