"""The takedown stage on articles as normalize really makes them: the seed and our own aggregated article
taken down by their domain, and public-suffix domains (co.uk) matched on real hosts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from streams.outcomes import Published, Retracted
from tests.factories.raw import OWN_TITLE, article, own_aggregated_text, raw_event
from tests.factories.takedowns import NOW, Topology, actions, assert_valid, lift, request

SEED_URL = "https://aggregator.example.com/world/2025/aug/12/zelenskyy-rejects-land-cession?utm_source=feed"


def as_enriched(doc: dict[str, Any], offset: int) -> dict[str, Any]:
    """What dedup and enrich add to a normalised article before this stage sees it."""
    return {
        **doc,
        "dedup": {"cluster_id": doc["article_id"], "revision_number": 1, "previous_revision": None, "is_update": False},
        "enrichment": {},
        "origin": {"topic": "articles.raw", "partition": 0, "offset": offset, "timestamp_ms": 1754983862000},
    }


async def _published_then_taken_down_by_domain(doc: dict[str, Any]) -> None:
    t = Topology(partitions=2)
    art = as_enriched(doc, 0)
    assert [type(o) for o in t.article(art)] == [Published]
    td = request("domain", art["domain"])
    out = await t.send(td, now=NOW + timedelta(minutes=5))
    assert_valid(out)
    assert [o.record["article_id"] for o in out if isinstance(o, Retracted)] == [art["article_id"]]
    story = [o.record for o in t.outcomes if hasattr(o, "record") and o.record.get("schema") == "audit_entry.v1"]
    assert [(e["action"], e.get("article_id")) for e in story] == [
        ("requested", None),
        ("retracted", art["article_id"]),
    ]
    assert story[1]["title"] == art["title"] and story[1]["canonical_url"] == art["canonical_url"]
    back = await t.send(lift(td, now=NOW + timedelta(days=1)), now=NOW + timedelta(days=1))
    reinstated = [o.article for o in back if isinstance(o, Published)]
    assert len(reinstated) == 1 and reinstated[0]["text"] == art["text"] and reinstated[0]["takedown"]["reinstated"]


async def test_the_seed_published_then_taken_down_by_its_domain_is_retracted(seed_text: str) -> None:
    doc = article(raw_event(url=SEED_URL, title=seed_text.splitlines()[0], body=seed_text, event_id=None))
    assert doc["domain"] == "example.com"
    await _published_then_taken_down_by_domain(doc)


async def test_our_aggregated_article_taken_down_by_its_domain_is_retracted() -> None:
    await _published_then_taken_down_by_domain(article(raw_event(title=OWN_TITLE, body=own_aggregated_text())))


async def test_a_domain_under_a_public_suffix_covers_its_hosts_only() -> None:
    t = Topology(partitions=2)
    urls = {
        "https://news.bbc.co.uk/1/hi/world/123.stm": True,
        "https://www.bbc.co.uk/news/world-1": True,
        "https://BBC.co.uk/sport": True,
        "https://www.notbbc.co.uk/news": False,
        "https://www.itv.co.uk/news": False,
    }
    docs = [as_enriched(article(raw_event(url=u, event_id=None)), i) for i, u in enumerate(urls)]
    for d in docs:
        t.article(d)
    out = await t.send(request("domain", "BBC.CO.UK"))
    retracted = {o.record["canonical_url"] for o in out if isinstance(o, Retracted)}
    assert retracted == {d["canonical_url"] for d, hit in zip(docs, urls.values(), strict=True) if hit}
    later = as_enriched(article(raw_event(url="https://sport.bbc.co.uk/x", event_id=None)), 9)
    assert actions(t.article(later)) == ["blocked"]
