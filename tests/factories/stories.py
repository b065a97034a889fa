"""Factories for dedup tests: article.v1 dicts with invented deterministic text, and a syndicator's edits.

The edits: cut last paragraph, new headline, agency lines, boilerplate wrapper, reordered sentences.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.codec import rfc3339, short_hash

T0 = datetime(2025, 8, 12, 7, 30, tzinfo=UTC)

# Invented vocabulary: enough distinct words that two generated texts share almost no 3-shingles.
_WORDS = """
harbour council ferry timber quarry lantern orchard meadow glacier canal brewery festival tramway bridge
minister budget tariff treaty senate mayor district province village county island valley river summit
engineer farmer teacher nurse pilot sailor miner baker weaver potter tailor courier surveyor auditor
announced reported confirmed denied proposed approved delayed cancelled expanded reduced doubled restored
quickly quietly openly slowly sharply briefly largely partly firmly widely rarely nearly formally
northern southern eastern western coastal rural urban upland lowland remote central regional national
copper silver barley wool salt cotton coffee cocoa rubber granite marble amber cobalt nickel zinc tin
storm drought flood harvest frost heatwave landslide blizzard monsoon tide current breeze thaw surge
railway highway airport station terminal depot warehouse factory mill foundry dock pier lighthouse
committee agency union cooperative guild league tribunal assembly cabinet ministry bureau inspectorate
report survey census audit inquiry review ballot petition charter decree statute ordinance mandate
market price wage pension subsidy loan grant levy fee fine rent toll quota surplus deficit reserve
school clinic library museum theatre stadium archive gallery hospital college academy observatory
morning evening autumn spring winter summer weekend holiday season decade century quarter fortnight
green amber crimson violet golden silver pale bright dark narrow broad steep shallow deep hollow
plan project scheme programme strategy policy reform measure initiative campaign venture expansion
""".split()

_AGENCIES = ["Northwind Press", "Lakeside Wire", "Meridian News Service", "Harbour Syndicate"]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(_WORDS) for _ in range(n)]


def sentence(rng: random.Random) -> str:
    w = words(rng, rng.randint(8, 16))
    return " ".join([w[0].capitalize(), *w[1:]]) + "."


def paragraph(rng: random.Random, sentences: int | None = None) -> str:
    return " ".join(sentence(rng) for _ in range(sentences or rng.randint(2, 4)))


def story(seed: int, paragraphs: int = 8) -> tuple[str, str]:
    """(title, text) of an invented article: `paragraphs` paragraphs, ~250-400 words."""
    rng = random.Random(seed)
    title = " ".join(words(rng, 7)).capitalize()
    text = "\n\n".join(paragraph(rng, 3) for _ in range(paragraphs))
    return title, text


def article(
    seed: int | None = None,
    *,
    url: str | None = None,
    title: str | None = None,
    text: str | None = None,
    published_at: datetime | None = T0,
    ingested_at: datetime | None = None,
    source: str = "example-news",
) -> dict[str, Any]:
    """An article.v1 dict. Text and title come from `story(seed)` unless given; ids follow the schema."""
    if text is None or title is None:
        t, x = story(seed if seed is not None else 0)
        title = t if title is None else title
        text = x if text is None else text
    url = url or f"https://www.{source}.example/news/{seed if seed is not None else 0}"
    ingested = ingested_at or (published_at or T0) + timedelta(minutes=1)
    host = url.split("/")[2]
    return {
        "schema": "article.v1",
        "article_id": short_hash(url),
        "event_id": None,
        "url": url,
        "canonical_url": url,
        "host": host,
        "domain": ".".join(host.split(".")[-2:]),
        "title": title,
        "text": text,
        "html": None,
        "revision": short_hash(text),
        "published_at": rfc3339(published_at) if published_at else None,
        "ingested_at": rfc3339(ingested),
        "language_hint": "en",
        "authors": [],
        "source": {"name": source.replace("-", " ").title(), "id": source},
        "attribution": {"image_credits": [], "original_publishers": []},
        "alternates": [],
        "flags": {
            "aggregated": False,
            "disclaimer": None,
            "title_repeats_removed": 0,
            "mojibake_fixed": False,
        },
        "pipeline": {"normalize": "1"},
    }


def copy_of(
    original: dict[str, Any],
    *,
    url: str,
    text: str | None = None,
    title: str | None = None,
    source: str = "syndicator",
    published_at: datetime | None = None,
) -> dict[str, Any]:
    """The same story republished at `url` (optionally with edited text or title)."""
    when = published_at or datetime.fromisoformat(original["published_at"]) + timedelta(hours=1)
    return article(
        url=url,
        title=original["title"] if title is None else title,
        text=original["text"] if text is None else text,
        published_at=when,
        source=source,
    )


def revised(original: dict[str, Any], text: str) -> dict[str, Any]:
    """A correction: same URL, new text (a new revision)."""
    out = dict(original)
    out["text"] = text
    out["revision"] = short_hash(text)
    return out


# --- the edits a syndicator makes ----------------------------------------------------------------------


def cut_last_paragraph(text: str) -> str:
    return "\n\n".join(text.split("\n\n")[:-1])


def agency_lines(text: str, agency: str = _AGENCIES[0]) -> str:
    return f"{agency.upper()} - {text}\n\nAdditional reporting by {agency} staff."


def wrapped(text: str, agency: str = _AGENCIES[1]) -> str:
    return f"By {agency} Agency\n\n{text}\n\n\u00a9 2025 {agency}. All rights reserved."


def reorder_sentences(text: str, seed: int = 1) -> str:
    """Shuffles the sentences inside each paragraph (paragraph order kept)."""
    rng = random.Random(seed)
    out = []
    for para in text.split("\n\n"):
        parts = [s.strip() for s in para.split(". ") if s.strip()]
        rng.shuffle(parts)
        out.append(". ".join(p.rstrip(".") for p in parts) + ".")
    return "\n\n".join(out)


def new_headline(seed: int) -> str:
    return " ".join(words(random.Random(seed + 10_000), 6)).capitalize()


EDITS = {
    "cut_last_paragraph": lambda t: cut_last_paragraph(t),
    "agency_lines": lambda t: agency_lines(t),
    "boilerplate_wrapper": lambda t: wrapped(t),
    "reordered_sentences": lambda t: reorder_sentences(t),
    "wrapper_and_agency": lambda t: wrapped(agency_lines(t)),
}
