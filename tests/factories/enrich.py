"""Factories for enrich tests: articles as normalize makes them, from the seed and from our own invented text."""

from __future__ import annotations

from typing import Any

from tests.factories.raw import article, raw_event

SEED_URL = "https://aggregator.example.com/world/zelenskyy-rejects-land-cession?utm_source=x"

# Our own article with the seed's structure (title four times, a credit, paragraphs with people, places,
# organisations and figures, a translation link, a disclaimer). Invented text, written for these tests.
OWN_TITLE = "Ortega Backs Dam Repairs, Warns of Dry Summer Ahead of Lisbon Water Talks"
OWN_CREDIT = "Image from The Iberian Ledger"
OWN_PARAGRAPHS = (
    "Maria Santos, the environment minister, said on Tuesday that Portugal would not drain the reservoir "
    "at Alqueva before the summer, warning that farmers near Evora depend on its water. Her remarks came before "
    "a meeting in Lisbon between Spanish Prime Minister Rafael Ortega and officials of the European Commission.",
    "Santos said the reservoir covers approximately 250 square kilometers and supplies about 120,000 people in "
    "the south. Engineers told her that the water level had fallen by roughly 4 meters since April.",
    "Ortega, who flew to Lisbon from Madrid, said Spain was ready to share the cost of repairs, estimated at 45 "
    "million euros, and that Ortega-Santos talks would continue in Seville. Around 3,000 farmers marched nine "
    "miles along the main road on Monday.",
    "The European Commission said losses from the dry spring had reached 2 percent of farm income, and that "
    "leaks were draining water at 500 tonnes per hour.",
)
OWN_TRANSLATION = "阅读中文版 (Read Chinese Version)"
OWN_DISCLAIMER = (
    "Disclaimer: This content is aggregated from public sources online. Please verify information "
    "independently. If you believe your rights have been infringed, contact us for removal."
)
# A Ukrainian article (invented): enrich has no Ukrainian model by default.
UK_TITLE = "Міська рада Харкова ухвалила новий бюджет на ремонт шкіл"
UK_TEXT = (
    "Міська рада Харкова у вівторок ухвалила бюджет, який передбачає ремонт двадцяти шкіл до початку осені. "
    "Депутати зазначили, що роботи коштуватимуть близько 40 мільйонів гривень.\n\n"
    "Мер міста сказав, що першими відремонтують школи у північних районах, де найбільше учнів."
)


def own_aggregated_text() -> str:
    top = "\n\n".join([OWN_TITLE] * 4) + "\n" + OWN_CREDIT
    return "\n\n".join([top, *OWN_PARAGRAPHS, OWN_TRANSLATION, OWN_DISCLAIMER])


def seed_article(seed_text: str) -> dict[str, Any]:
    """The seed as normalize hands it on (what dedup passes to enrich)."""
    return article(
        raw_event(
            url=SEED_URL,
            title=seed_text.splitlines()[0],
            body=seed_text,
            body_format="text",
            source={"name": "Aggregator Example"},
            event_id=None,
        )
    )


def own_article() -> dict[str, Any]:
    return article(
        raw_event(
            url="https://aggregator.example.com/europe/ortega-backs-dam-repairs",
            title=OWN_TITLE,
            body=own_aggregated_text(),
            source={"name": "Aggregator Example"},
        )
    )


def ukrainian_article() -> dict[str, Any]:
    return article(
        raw_event(
            url="https://news.example.com.ua/kharkiv/budget",
            title=UK_TITLE,
            body=UK_TEXT,
            source={"name": "Example UA"},
        )
    )


def plain_article(text: str, title: str = "A test article", **fields: Any) -> dict[str, Any]:
    """A normalised article around `text` (normalize keeps plain text as it is, bar whitespace)."""
    return article(raw_event(title=title, body=text, **fields))
