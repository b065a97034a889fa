"""Builds rejection.v1 records: the reason, the origin, and the original payload (base64, truncated past a limit)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from streams.codec import rfc3339
from streams.outcomes import Rejected


def rejection_record(
    rejected: Rejected,
    *,
    payload: bytes,
    key: bytes | None,
    origin: dict[str, Any],
    stage: str,
    payload_limit: int,
    now: datetime,
) -> dict[str, Any]:
    kept = payload[:payload_limit]
    return {
        "schema": "rejection.v1",
        "reason": rejected.reason,
        "message": rejected.message,
        "stage": stage,
        "details": rejected.details,
        "origin": {
            **origin,
            "key_b64": base64.b64encode(key).decode("ascii") if key is not None else None,
        },
        "payload_b64": base64.b64encode(kept).decode("ascii"),
        "payload_size": len(payload),
        "payload_truncated": len(kept) < len(payload),
        "rejected_at": rfc3339(now),
    }


def original_payload(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["payload_b64"])


def original_key(record: dict[str, Any]) -> bytes | None:
    key = record.get("origin", {}).get("key_b64")
    return base64.b64decode(key) if key else None
