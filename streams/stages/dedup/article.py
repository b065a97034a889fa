"""What dedup reads from an article.v1 document: its id, revision, times (ms since the epoch) and source key.

Every reader tolerates missing or malformed fields (bad data never raises): an article without a usable
``published_at`` is ordered by ``ingested_at``, one without either by the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.codec import parse_rfc3339, short_hash


def ms(dt: datetime) -> int:
    """A datetime in ms since the epoch."""
    return int(dt.timestamp() * 1000)


def article_id(article: dict[str, Any]) -> str:
    """``article_id``, else a hash of the canonical URL (as normalize derives it)."""
    return str(article.get("article_id") or short_hash(str(article.get("canonical_url", ""))))


def revision(article: dict[str, Any], text: str) -> str:
    """``revision`` (the hash of the normalised text), else the hash of `text`."""
    return str(article.get("revision") or short_hash(text))


def first_time_ms(article: dict[str, Any], fields: tuple[str, ...], now_ms: int) -> int:
    """The first of `fields` that holds an RFC 3339 time, in ms since the epoch; else `now_ms`."""
    for field in fields:
        value = article.get(field)
        if isinstance(value, str) and value:
            try:
                return int(datetime.fromisoformat(value).timestamp() * 1000)  # RFC 3339, "Z" included (3.11)
            except (ValueError, OverflowError, OSError):
                try:
                    return ms(parse_rfc3339(value))
                except (ValueError, OverflowError, OSError):
                    continue
    return now_ms


def event_ms(article: dict[str, Any], now_ms: int) -> int:
    """published_at, else ingested_at, else the clock: orders canonicals."""
    return first_time_ms(article, ("published_at", "ingested_at"), now_ms)


def seen_ms(article: dict[str, Any], now_ms: int) -> int:
    """When the pipeline first saw the article (ingested_at, else the clock): the retention clock."""
    return first_time_ms(article, ("ingested_at",), now_ms)


def source_key(article: dict[str, Any]) -> str:
    """source.id, else source.name, else "": what ``source_priority`` lists."""
    source = article.get("source")
    if not isinstance(source, dict):
        return ""
    return str(source.get("id") or source.get("name") or "")
