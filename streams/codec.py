"""JSON encoding of events with orjson, and the few time helpers every stage shares."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def rfc3339(dt: datetime) -> str:
    """UTC timestamp as RFC 3339 with a Z, microseconds only when present."""
    dt = dt.astimezone(UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def short_hash(text: str) -> str:
    """First 128 bits of SHA-256, hex: stable ids (article_id, revision)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
