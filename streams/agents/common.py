"""What every agent shares: the origin of a Kafka record and the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def origin_of(message: Any) -> dict[str, Any]:
    """topic/partition/offset/timestamp of the record being processed (for rejections and articles)."""
    ts = message.timestamp
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": int(ts * 1000) if ts else None,  # Faust gives the Kafka timestamp in seconds
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


def seconds_since_ms(ms: int | None) -> float | None:
    if not ms:
        return None
    return max(0.0, datetime.now(UTC).timestamp() - ms / 1000)
