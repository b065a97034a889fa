"""Builds the records the takedown stage emits: audit_entry.v1, retraction.v1 and takedown_fanout.v1.

Every audit_id is a function of the decision's inputs (takedown id, action, article, coordinates, time),
never random: a decision replayed after a crash carries the id it had, so a consumer can drop a copy.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from streams.codec import rfc3339
from streams.stages.takedown.requests import Refusal, payload_b64

STAGE_ACTOR = "takedown-stage"  # `by` of the actions the pipeline takes on a requester's behalf
EXPIRY_ACTOR = "expiry"


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@functools.lru_cache(maxsize=16)
def _stamp(dt: datetime) -> tuple[str, int]:
    """(RFC 3339 text, ms) of a decision time: one per event, shared by the many records a takedown makes."""
    return rfc3339(dt), ms(dt)


def _statement_ground(td: dict[str, Any]) -> str | None:
    statement = td.get("statement")
    ground = statement.get("ground") if isinstance(statement, dict) else None
    return ground if ground in ("legal", "terms") else None


def lifecycle_entry(
    action: str,
    td: dict[str, Any],
    *,
    at: datetime,
    by: str | None,
    ref: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """requested, updated, lifted, expired: the takedown's own story. `ref` makes the audit_id unique (the
    takedowns record's partition-offset, or the time in ms)."""
    tid = str(td["takedown_id"])
    return {
        "schema": "audit_entry.v1",
        "audit_id": f"{tid}:{action}:{ref}",
        "takedown_id": tid,
        "action": action,
        "at": rfc3339(at),
        "by": by,
        "requested_by": td.get("requested_by"),
        "requested_at": td.get("requested_at"),
        "scope": td.get("scope"),
        "value": td.get("value"),
        "reason": td.get("reason") if reason is None else reason,
        "statement": td.get("statement"),
        "expires_at": td.get("expires_at"),
        "details": details or {},
    }


def refused_entry(
    refusal: Refusal,
    *,
    takedown_id: str,
    payload: bytes | None,
    payload_limit: int,
    at: datetime,
    origin: dict[str, Any] | None,
    ref: str,
) -> dict[str, Any]:
    """A record on `takedowns` that was not accepted: the code, the pointer, a sentence and the payload."""
    return {
        "schema": "audit_entry.v1",
        "audit_id": f"{takedown_id}:refused:{ref}",
        "takedown_id": takedown_id,
        "action": "refused",
        "at": rfc3339(at),
        "by": STAGE_ACTOR,
        "reason": refusal.reason,
        "pointer": refusal.pointer,
        "message": refusal.message,
        "payload_b64": payload_b64(payload, payload_limit),
        "payload_size": len(payload) if payload is not None else 0,
        "origin": _origin(origin),
        "details": {"keyword": refusal.keyword} if refusal.keyword else {},
    }


def article_entry(
    action: str,
    td: dict[str, Any],
    *,
    article_id: str,
    entry: dict[str, Any],
    at: datetime,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """blocked, retracted, reinstated, not_reinstated: what happened to one article because of `td`.

    `entry` is the partition's compact record of the article (canonical_url, title, revision, origin,
    partition, offset)."""
    tid = str(td["takedown_id"])
    partition, offset = entry.get("partition"), entry.get("offset")
    at_text, at_ms = _stamp(at)
    return {
        "schema": "audit_entry.v1",
        "audit_id": f"{tid}:{action}:{article_id}:{partition}-{offset}:{at_ms}",
        "takedown_id": tid,
        "action": action,
        "at": at_text,
        "by": STAGE_ACTOR,
        "requested_by": td.get("requested_by"),
        "requested_at": td.get("requested_at"),
        "scope": td.get("scope"),
        "value": td.get("value"),
        "reason": td.get("reason"),
        "article_id": article_id,
        "canonical_url": entry.get("canonical_url"),
        "title": entry.get("title"),
        "revision": entry.get("revision"),
        "origin": _origin(entry.get("origin")),
        "enriched": {"partition": partition, "offset": offset} if isinstance(partition, int) else None,
        "details": details or {},
    }


def retraction_record(td: dict[str, Any], *, article_id: str, entry: dict[str, Any], at: datetime) -> dict[str, Any]:
    """retraction.v1: consumers must remove `article_id` (key: article_id, the publication's partitioning)."""
    return {
        "schema": "retraction.v1",
        "article_id": article_id,
        "canonical_url": entry.get("canonical_url"),
        "revision": entry.get("revision"),
        "takedown_id": str(td["takedown_id"]),
        "scope": td.get("scope"),
        "value": td.get("value"),
        "reason": td.get("reason"),
        "requested_at": td.get("requested_at"),
        "ground": _statement_ground(td),
        "retracted_at": _stamp(at)[0],
        "origin": _origin(entry.get("origin")),
    }


def fanout_record(op: str, td: dict[str, Any], *, at: datetime, partition: int, partitions: int) -> dict[str, Any]:
    """takedown_fanout.v1: one effective change, for one partition of takedowns.fanout."""
    return {
        "schema": "takedown_fanout.v1",
        "op": op,
        "takedown_id": str(td["takedown_id"]),
        "takedown": td,
        "at": rfc3339(at),
        "partition": partition,
        "partitions": partitions,
    }


def _origin(origin: Any) -> dict[str, Any] | None:
    """Raw coordinates as audit_entry.v1 and retraction.v1 describe them, or None when not usable."""
    if not isinstance(origin, dict):
        return None
    if not isinstance(origin.get("topic"), str):
        return None
    if not isinstance(origin.get("partition"), int) or not isinstance(origin.get("offset"), int):
        return None
    ts = origin.get("timestamp_ms")
    return {
        "topic": origin["topic"],
        "partition": origin["partition"],
        "offset": origin["offset"],
        "timestamp_ms": ts if isinstance(ts, int) else None,
    }
