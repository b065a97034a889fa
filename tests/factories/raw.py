"""Small factories for normalize tests: raw events, Kafka origins, and our own aggregated article (invented text)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.outcomes import Normalized, Rejected
from streams.settings import Settings
from streams.stages.normalize import NormalizeConfig, normalize

NOW = datetime(2025, 8, 12, 7, 31, 2, tzinfo=UTC)
RECORD_MS = 1754983862000  # 2025-08-12T07:31:02Z

# Our own article with the seed's structure (title four times, a credit, six paragraphs, a translation link,
# a disclaimer). Invented text, written for these tests.
OWN_TITLE = "Harbour Council Rejects Pier Sale, Warns of Storm Season Ahead of Budget Vote"
OWN_CREDIT = "Image from The Coastal Courier"
OWN_PARAGRAPHS = (
    "The harbour council of Westmere voted on Monday against selling the old north pier to a private "
    "developer, arguing that the town would lose its only deep-water berth for lifeboats.",
    "Council leader Maren Osei said the offer of about 4.2 million pounds did not cover the cost of moving the "
    "lifeboat station, and that the developer’s plans for flats had not been tested against winter floods.",
    "Engineers told the meeting that the pier’s southern supports had moved by roughly 12 centimetres since "
    "the spring surveys, and that repairs would take at least six weeks once the weather allowed.",
    "The fishing cooperative, which lands around 300 tonnes of catch a year at the pier, welcomed the vote "
    "but asked the council to publish the full engineering report before the budget debate.",
    "Forecasters expect an early storm season along the coast, with three named storms likely before "
    "December, and the coastguard has asked boat owners to check moorings this week.",
    "The budget vote on Thursday will decide whether the repairs are paid from reserves or from a new "
    "harbour levy of 2 per cent on berth fees, a proposal opposed by the sailing club.",
)
OWN_TRANSLATION = "阅读中文版 (Read Chinese Version)"
OWN_DISCLAIMER = (
    "Disclaimer: This content is aggregated from public sources online. Please verify information "
    "independently. If you believe your rights have been infringed, contact us for removal."
)


def own_aggregated_text(title_repeats: int = 4) -> str:
    """Our article as an aggregator shows it: the seed's layout, line for line."""
    top = "\n\n".join([OWN_TITLE] * title_repeats) + "\n" + OWN_CREDIT
    return "\n\n".join([top, *OWN_PARAGRAPHS, OWN_TRANSLATION, OWN_DISCLAIMER])


def own_aggregated_html() -> str:
    """The same article as an HTML page, with the furniture a scraper brings along."""
    paragraphs = "\n".join(f"<p>{p}</p>" for p in OWN_PARAGRAPHS)
    return f"""<!DOCTYPE html><html lang="en"><head><title>{OWN_TITLE} | Aggregator</title>
<script>var tracker = "TRACKER_SCRIPT_TEXT";</script></head><body>
<nav><a href="/">Home</a> <a href="/world">World</a></nav>
<div class="ad">Advertisement</div>
<article><h1>{OWN_TITLE}</h1>
<figure><img src="/pier.jpg"><figcaption>{OWN_CREDIT}</figcaption></figure>
{paragraphs}
<p><a href="/zh/harbour-council" hreflang="zh">{OWN_TRANSLATION}</a></p>
<p>{OWN_DISCLAIMER}</p>
</article>
<footer><p>Copyright Aggregator 2025</p></footer></body></html>"""


def raw_event(**fields: Any) -> dict[str, Any]:
    """A valid raw_article.v1 event; keyword arguments override or add fields (None removes one)."""
    event: dict[str, Any] = {
        "event_id": "test-0001",
        "url": "https://www.example-news.com/world/2025/aug/12/harbour-vote?utm_source=rss",
        "title": "Harbour vote delayed",
        "body": "The vote was delayed on Tuesday.\n\nCouncillors will meet again next week.",
        "body_format": "text",
        "source": {"name": "Example News", "id": "example-news"},
    }
    for key, value in fields.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def origin(**fields: Any) -> dict[str, Any]:
    """The Kafka coordinates of a raw record."""
    return {"topic": "articles.raw", "partition": 3, "offset": 41, "timestamp_ms": RECORD_MS, **fields}


def encode(event: Any) -> bytes:
    return orjson.dumps(event)


def run(
    payload: bytes | dict[str, Any],
    *,
    config: NormalizeConfig | None = None,
    now: datetime = NOW,
    **origin_fields: Any,
) -> Normalized | Rejected:
    """normalize() with test defaults; a dict is encoded first."""
    data = encode(payload) if isinstance(payload, dict) else payload
    return normalize(
        data, origin=origin(**origin_fields), now=now, config=config or NormalizeConfig.from_settings(Settings())
    )


def article(payload: bytes | dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """The article of an event that must normalise."""
    outcome = run(payload, **kwargs)
    assert isinstance(outcome, Normalized), outcome
    return outcome.article


def rejection(payload: bytes | dict[str, Any], **kwargs: Any) -> Rejected:
    """The rejection of an event that must be refused."""
    outcome = run(payload, **kwargs)
    assert isinstance(outcome, Rejected), outcome
    return outcome
