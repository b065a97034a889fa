"""Crafted topic contents for audit tests: raw events and the outcome records the stages write for them, with
offsets assigned per topic partition as a broker would, folded into a `streams.audit.Ledger`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams import audit
from streams.codec import short_hash

PREFIX = "t."
RAW_TOPIC = PREFIX + audit.RAW
T0 = 1_754_983_862_000  # 2025-08-12T07:31:02Z, ms


def aid(n: int) -> str:
    return short_hash(f"https://news.example/{n}")


def rev(text: str) -> str:
    return short_hash(text)


@dataclass
class Topics:
    """What the topics hold. Each method appends one record and returns its (partition, offset); `ledger()`
    folds everything in, with the group's committed offsets (next offset to process) per (topic, partition)."""

    partitions: int = 2
    records: list[tuple[str, int, int, int | None, bytes | None, bytes | None]] = field(default_factory=list)
    _next: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    clock: int = T0

    def _put(self, topic: str, partition: int, value: Any, *, key: bytes | None = None, ts: int | None = None) -> int:
        offset = self._next[(topic, partition)]
        self._next[(topic, partition)] += 1
        self.clock += 10
        body = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
        self.records.append((topic, partition, offset, self.clock if ts is None else ts, key, body))
        return offset

    def skip(self, topic: str, partition: int, n: int = 1) -> None:
        """Offsets that hold no committed record (an aborted transaction, a marker)."""
        self._next[(topic, partition)] += n

    def end(self, topic: str, partition: int) -> int:
        return self._next[(topic, partition)]

    # -- raw events and their coordinates --------------------------------------------------------------------
    def raw(self, partition: int = 0, *, ts: int | None = None, value: bytes = b'{"url": "x"}') -> dict[str, Any]:
        offset = self._put(audit.RAW, partition, value, ts=ts)
        ts_ms = self.records[-1][3]
        return {"topic": RAW_TOPIC, "partition": partition, "offset": offset, "timestamp_ms": ts_ms}

    # -- outcomes ----------------------------------------------------------------------------------------------
    def article(self, origin: dict[str, Any], n: int, text: str = "text", **extra: Any) -> dict[str, Any]:
        return {"schema": "article.v1", "article_id": aid(n), "revision": rev(text), "origin": origin, **extra}

    def published(self, origin: dict[str, Any], n: int, text: str = "text", *, reinstated: bool = False) -> int:
        extra = {"takedown": {"reinstated": True, "previously": "blocked"}} if reinstated else {}
        return self._put(audit.PUBLISHED, n % self.partitions, self.article(origin, n, text, **extra))

    def duplicate(self, origin: dict[str, Any], n: int, match: str = "same_content") -> int:
        record = {"schema": "duplicate.v1", "article_id": aid(n), "match": match, "article": self.article(origin, n)}
        return self._put(audit.DUPLICATES, n % self.partitions, record)

    def rejected(self, origin: dict[str, Any], *, stage: str = "normalize", reason: str = "invalid_json") -> int:
        record = {"schema": "rejection.v1", "stage": stage, "reason": reason, "origin": origin}
        return self._put(audit.REJECTED, origin.get("partition", 0) % self.partitions, record)

    def blocked(self, origin: dict[str, Any], n: int) -> int:
        entry = {"schema": "audit_entry.v1", "action": "blocked", "article_id": aid(n), "origin": origin}
        return self._put(audit.AUDIT, 0, entry)

    def audit_entry(self, action: str, origin: dict[str, Any] | None, n: int) -> int:
        return self._put(
            audit.AUDIT, 0, {"schema": "audit_entry.v1", "action": action, "article_id": aid(n), "origin": origin}
        )

    def retracted(self, origin: dict[str, Any] | None, n: int, text: str = "text") -> int:
        record = {"schema": "retraction.v1", "article_id": aid(n), "revision": rev(text), "origin": origin}
        return self._put(audit.RETRACTIONS, n % self.partitions, record)

    def on(self, topic: str, origin: dict[str, Any], n: int, partition: int | None = None) -> int:
        """The article of a raw event on an intermediate topic."""
        return self._put(topic, n % self.partitions if partition is None else partition, self.article(origin, n))

    def tick(self) -> int:
        return self._put("articles.dedup-sequenced", 0, b'{"tick_ms": 1}', key=b"\x00reorder-hold-tick")

    def held(self, seq_offset: int, origin: dict[str, Any] | None, n: int = 0) -> int:
        """dedup's reorder hold: a held article (origin given) or its release (None: a tombstone)."""
        key = orjson.dumps(f"{seq_offset:020d}")
        value = None if origin is None else {"article": self.article(origin, n), "arrival_ms": T0}
        return self._put(audit.HELD, 0, value, key=key)

    # -- the fold --------------------------------------------------------------------------------------------
    def ledger(self, committed: dict[tuple[str, int], int] | None = None, since_ms: int | None = None) -> audit.Ledger:
        parts = {p: (0, self.end(audit.RAW, p)) for p in range(self.partitions)}
        ledger = audit.Ledger(
            RAW_TOPIC, parts, committed=committed, since_ms=since_ms, group=PREFIX + "article-streams"
        )
        ledger.feed_all(self.records)
        return ledger

    def all_committed(self) -> dict[tuple[str, int], int]:
        """The group has processed everything on its input topics."""
        inputs = (audit.RAW, *audit.INTERMEDIATES)
        return {(t, p): n for (t, p), n in self._next.items() if t in inputs}

    def report(self, committed: dict[tuple[str, int], int] | None = None, **kw: Any) -> audit.Report:
        return self.ledger(self.all_committed() if committed is None else committed, **kw).report(limit=50)
