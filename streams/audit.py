"""The accounting behind `streams audit`: every raw event ends in exactly one outcome, proved from the topics.

Pure: records go in as (logical topic, partition, offset, timestamp, key, value), a `Report` comes out; nothing
here talks to Kafka (`streams.kafka.audit` reads the topics into a `Ledger`). The rule, for each committed raw
record (topic, partition, offset) of `articles.raw`:

- its **outcome** is the one record that names it in `origin`: a publication on `articles.published` (not a
  reinstatement), a `duplicate.v1` on `articles.duplicates` (`article.origin`), a `rejection.v1` on
  `articles.rejected` (from any stage), or a `blocked` entry on `takedowns.audit`. Exactly one: none is
  *unaccounted for*, two or more is *accounted more than once*;
- a retraction (`articles.retractions`) and a reinstatement (a publication with `takedown.reinstated`) change
  where an accounted event stands, not how often it is accounted: published, then retracted, is taken down;
  blocked, then reinstated, is published again. More reinstatements than withdrawals (or a withdrawal of a
  duplicate or a rejection) is a *mismatch*;
- an event without an outcome is **in flight**, not lost, while the pipeline's consumer group has not
  committed past it on `articles.raw`, or its origin sits on an intermediate topic (
  `articles.dedup-sequenced`, `articles.unique`, `articles.enriched`) at or after the group's committed offset
  there, or in dedup's reorder hold (the `dedup-held` table's changelog). Under exactly-once the group's
  offsets and a stage's output commit in one transaction, so anything the group has committed past has its
  output on the next topic;
- an article (article_id) is **published twice** when two consecutive publications of it on
  `articles.published` carry the same revision and no retraction of that revision lies between them
  (record timestamps). A new revision (an update) between them, or a retraction then a reinstatement, is fine.

For example: raw@0 → published; raw@1 → duplicate; raw@2 → published and published again (same origin) is
accounted twice *and* its article is published twice; raw@3 with no outcome is lost once the group committed
past offset 3, in flight before.

Memory is per raw offset, not per record object: four bytes (flags, outcome count, net withdrawals, where in
flight) in per-partition bytearrays indexed by offset, plus 32 bytes per publication and 24 per retraction in
flat arrays for the published-twice check, sorted once with numpy at the end.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

RAW = "articles.raw"
PUBLISHED = "articles.published"
DUPLICATES = "articles.duplicates"
REJECTED = "articles.rejected"
RETRACTIONS = "articles.retractions"
AUDIT = "takedowns.audit"
HELD = "dedup-held"  # the table of dedup's reorder hold; its changelog is <group>-dedup-held-changelog
OUTCOMES = (PUBLISHED, DUPLICATES, REJECTED, RETRACTIONS, AUDIT)
# Where a raw event can wait between stages, in flow order (the last one an event is seen on is where it is).
# (articles.normalized is a side output for consumers: normalize writes dedup's input, the sequence, itself.)
INTERMEDIATES = ("articles.dedup-sequenced", "articles.unique", "articles.enriched")

# flags: one byte per raw offset
PRESENT = 0x01  # a committed raw record is at this offset
IN_SCOPE = 0x02  # ... and it is after --since
K_PUBLISHED, K_DUPLICATE, K_REJECTED, K_BLOCKED = 0x04, 0x08, 0x10, 0x20
KINDS = K_PUBLISHED | K_DUPLICATE | K_REJECTED | K_BLOCKED
TOUCHED = 0x40  # retracted or reinstated at least once
KIND_NAMES = {K_PUBLISHED: "published", K_DUPLICATE: "duplicate", K_REJECTED: "rejected", K_BLOCKED: "blocked"}
# where: one byte per raw offset, a bit per place an event still in flight was seen
W_SEQUENCED, W_HELD, W_UNIQUE, W_ENRICHED = 0x02, 0x04, 0x08, 0x10
WHERE_BITS = {
    "articles.dedup-sequenced": W_SEQUENCED,
    HELD: W_HELD,
    "articles.unique": W_UNIQUE,
    "articles.enriched": W_ENRICHED,
}
# furthest downstream first: an event seen in several places is where it got to
WHERE_ORDER = ("articles.enriched", "articles.unique", HELD, "articles.dedup-sequenced")
NOT_READ = "articles.raw"  # not yet read (committed past) by normalize
FLOW_ORDER = (NOT_READ, *WHERE_ORDER[::-1])  # how in-flight counts are shown
# How far before --since the outcome topics are read: an outcome is written after its raw event, but producers
# stamp raw records with their own clocks, so a raw event stamped after T may have been processed before T.
SINCE_SLACK = timedelta(hours=1)
NET_ZERO = 128  # net byte: 128 + reinstatements - retractions, clamped to 0..255
_LOC_BITS = 40  # a publication's place packed as partition << 40 | offset (offsets below 10^12)


class AuditError(Exception):
    """The audit could not be made (a topic missing, a read that stalled); the message says what to do."""


def parse_since(text: str, now: datetime) -> int:
    """`--since` in ms since the epoch: an RFC 3339 time (`2025-08-12T07:00:00Z`), a date (`2025-08-12`, UTC
    midnight) or a duration before `now` (`90m`, `2h`, `7d`, `1w2d`). Raises ValueError saying what is accepted."""
    from streams.stages.takedown.requests import parse_duration, parse_time

    raw = text.strip()
    when = parse_time(raw)
    if when is None and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
        try:
            when = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError:
            when = None
    if when is None:
        try:
            when = now - parse_duration(raw)
        except ValueError:
            raise ValueError(
                f"--since {text!r}: give an RFC 3339 time with a zone (2025-08-12T07:00:00Z), a date (2025-08-12) "
                "or a duration before now (90m, 2h, 7d)"
            ) from None
    return int(when.timestamp() * 1000)


def _id64(text: Any) -> int:
    """An article_id or revision (32 hex digits) folded to 64 bits (its two halves xor-ed); any other string is
    hashed to 64 bits. 0 means none (a retraction without a revision matches any revision)."""
    if not isinstance(text, str) or not text:
        return 0
    if len(text) == 32:
        try:
            return (int(text[:16], 16) ^ int(text[16:], 16)) or 1
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest(), "big") or 1


@dataclass
class _Partition:
    """The state of one raw partition: a byte of each kind per offset in [start, end)."""

    partition: int
    start: int
    end: int
    committed: int | None  # the group's committed offset on this raw partition (next to read); None: never
    flags: bytearray = field(init=False)
    count: bytearray = field(init=False)  # outcomes seen, saturating at 255
    net: bytearray = field(init=False)  # NET_ZERO + reinstatements - retractions
    where: bytearray = field(init=False)  # WHERE bits

    def __post_init__(self) -> None:
        n = max(0, self.end - self.start)
        self.flags = bytearray(n)
        self.count = bytearray(n)
        self.net = bytearray([NET_ZERO]) * n
        self.where = bytearray(n)

    def __len__(self) -> int:
        return len(self.flags)


@dataclass
class Report:
    """What the audit found. `balanced` is the verdict; `as_dict()` is the --json object, `lines()` the text."""

    raw_topic: str
    group: str | None
    since_ms: int | None
    counts: dict[str, Any]
    accounting: dict[str, int]
    final: dict[str, int]
    in_flight_by: dict[str, int]
    outside: dict[str, int]
    offenders: dict[str, list[dict[str, Any]]]
    totals: dict[str, int]
    state_bytes: int
    seconds: float | None = None
    limit: int = 20
    notes: list[str] = field(default_factory=list)  # what the reader could not read, and why

    @property
    def balanced(self) -> bool:
        return not any(self.totals[k] for k in ("unaccounted", "accounted_more_than_once", "published_twice")) and not (
            self.totals["outcome_without_raw"] or self.totals["withdrawal_mismatch"]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "balanced": self.balanced,
            "summary": self.summary(),
            "raw_topic": self.raw_topic,
            "group": self.group,
            "since_ms": self.since_ms,
            "accounting": self.accounting,
            "final": self.final,
            "counts": self.counts,
            "in_flight_by": self.in_flight_by,
            "outside": self.outside,
            "offenders_total": self.totals,
            **self.offenders,
            "state_bytes": self.state_bytes,
            "seconds": self.seconds,
            "notes": self.notes,
        }

    def summary(self) -> str:
        a, t = self.accounting, self.totals
        flight = f"{a['in_flight']:,} in flight"
        if self.balanced:
            return (
                f"balanced: {a['raw']:,} raw events = {a['published']:,} published + {a['duplicate']:,} duplicates + "
                f"{a['rejected']:,} rejected + {a['blocked']:,} blocked + {flight}; none lost or accounted twice, "
                "no article published twice"
            )
        parts = [
            f"{t['unaccounted']:,} unaccounted for" if t["unaccounted"] else "",
            f"{t['accounted_more_than_once']:,} accounted more than once" if t["accounted_more_than_once"] else "",
            f"{t['published_twice']:,} published twice without an update" if t["published_twice"] else "",
            f"{t['outcome_without_raw']:,} outcomes of no raw record" if t["outcome_without_raw"] else "",
            f"{t['withdrawal_mismatch']:,} retracted/reinstated out of turn" if t["withdrawal_mismatch"] else "",
        ]
        return f"IMBALANCE: {', '.join(p for p in parts if p)} (of {a['raw']:,} raw events; {flight})"

    def lines(self) -> list[str]:
        c, a, f = self.counts, self.accounting, self.final
        out = [self.summary()]
        scope = f" since {_iso(self.since_ms)}" if self.since_ms is not None else ""
        out.append(f"  raw events {a['raw']:,} on {self.raw_topic}{scope}; group {self.group or '(none)'}")
        out.append(
            f"  outcomes   published {a['published']:,}, duplicate {a['duplicate']:,}, rejected {a['rejected']:,}, "
            f"blocked {a['blocked']:,}; in flight {a['in_flight']:,}; unaccounted {a['unaccounted']:,}; "
            f"more than once {a['accounted_more_than_once']:,}"
        )
        out.append(
            f"  now        published {f['published']:,} (of which reinstated {f['reinstated']:,}), taken down "
            f"{f['taken_down']:,} (blocked {f['blocked']:,}, retracted {f['retracted']:,}), duplicate "
            f"{f['duplicate']:,}, rejected {f['rejected']:,}"
        )
        out.append(
            f"  records    published {c['published']:,} + reinstated {c['reinstated']:,}, duplicates "
            f"{c['duplicates']:,}, rejected {c['rejected']:,}, blocked {c['blocked']:,}, retracted {c['retracted']:,}"
        )
        if c["rejected_by"]:
            by = "; ".join(
                f"{stage}: " + ", ".join(f"{reason} {n:,}" for reason, n in sorted(reasons.items()))
                for stage, reasons in sorted(c["rejected_by"].items())
            )
            out.append(f"  rejected   {by}")
        if c["duplicates_by"]:
            out.append("  duplicates " + ", ".join(f"{m} {n:,}" for m, n in sorted(c["duplicates_by"].items())))
        if self.in_flight_by:
            out.append("  in flight  " + ", ".join(f"{w} {n:,}" for w, n in self.in_flight_by.items()))
        if self.outside:
            out.append("  not counted " + ", ".join(f"{w} {n:,}" for w, n in sorted(self.outside.items())))
        for kind, title in (
            ("unaccounted", "unaccounted for"),
            ("accounted_more_than_once", "accounted more than once"),
            ("published_twice", "published twice without an update between"),
            ("outcome_without_raw", "outcomes naming a raw offset that holds no committed record"),
            ("withdrawal_mismatch", "retracted or reinstated out of turn"),
        ):
            total, listed = self.totals[kind], self.offenders[kind]
            if not total:
                continue
            out.append(f"  {title} ({total:,}; first {len(listed):,}):")
            out.extend(f"    {_describe(kind, o)}" for o in listed)
        out.extend(f"  note: {n}" for n in self.notes)
        if self.offenders["in_flight"]:
            out.append(f"  in flight (first {len(self.offenders['in_flight']):,}):")
            out.extend(f"    {_describe('in_flight', o)}" for o in self.offenders["in_flight"])
        return out


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _describe(kind: str, o: dict[str, Any]) -> str:
    where = f"{o.get('topic')}[{o.get('partition')}]@{o.get('offset')}"
    if kind == "published_twice":
        first, again = o["first"], o["again"]
        aid = o.get("article_id") or f"(hash {o['article_id_hash']})"
        rev = f" revision {o['revision']}" if o.get("revision") else ""
        return (
            f"article {aid}{rev}: {o['topic']}[{first['partition']}]@{first['offset']} and again "
            f"@{again['offset']} (origin {_coords(o.get('origin'))}), no retraction between"
        )
    if kind == "accounted_more_than_once":
        return f"{where}: {o['outcomes']} outcomes ({', '.join(o['kinds'])})"
    if kind == "withdrawal_mismatch":
        return f"{where}: {o['outcome']}, reinstated minus retracted = {o['net']:+d}"
    if kind == "in_flight":
        return f"{where}: {o['where']}"
    if kind == "outcome_without_raw":
        return f"{where}: {', '.join(o['kinds']) or 'retracted/reinstated'}"
    return where


def _coords(origin: Any) -> str:
    if not isinstance(origin, dict):
        return "?"
    return f"{origin.get('topic')}[{origin.get('partition')}]@{origin.get('offset')}"


class Ledger:
    """Folds the records of the audited topics into per-raw-offset state; `report()` gives the verdict.

    `partitions` maps each raw partition to the offsets audited, [start, end): its first offset (or the first
    at or after --since) to the end offset seen at the start of the audit. `committed` maps (logical topic,
    partition) to the pipeline group's committed offset (the next record it will process); a record of an
    intermediate topic below it has been processed and is ignored. `raw_topic` is the physical name origins
    carry. Records may come in any order, topic by topic."""

    def __init__(
        self,
        raw_topic: str,
        partitions: Mapping[int, tuple[int, int]],
        *,
        committed: Mapping[tuple[str, int], int] | None = None,
        since_ms: int | None = None,
        group: str | None = None,
    ) -> None:
        self.raw_topic = raw_topic
        self.since_ms = since_ms
        self.group = group
        self.committed = dict(committed or {})
        self.parts = {
            p: _Partition(p, start, end, self.committed.get((RAW, p))) for p, (start, end) in partitions.items()
        }
        self.counts: Counter[str] = Counter()
        self.rejected_by: dict[str, Counter[str]] = defaultdict(Counter)
        self.duplicates_by: Counter[str] = Counter()
        self.audit_actions: Counter[str] = Counter()
        self.outside: Counter[str] = Counter()
        self.held: dict[str, tuple[int, int]] = {}  # dedup-held key -> raw (partition, offset), live entries only
        # publications: 64-bit article_id and revision, record timestamp (ms), partition << 40 | offset
        self._pub_aid, self._pub_rev, self._pub_ts, self._pub_loc = array("Q"), array("Q"), array("q"), array("Q")
        self._ret_aid, self._ret_rev, self._ret_ts = array("Q"), array("Q"), array("q")
        self._handlers = {
            RAW: self._raw,
            PUBLISHED: self._published,
            DUPLICATES: self._duplicate,
            REJECTED: self._rejected,
            RETRACTIONS: self._retraction,
            AUDIT: self._audit,
            HELD: self._held,
            **{t: self._intermediate for t in INTERMEDIATES},
        }

    # -- feeding --------------------------------------------------------------------------------------------
    def feed(
        self, topic: str, partition: int, offset: int, timestamp_ms: int | None, key: bytes | None, value: bytes | None
    ) -> None:
        """One committed record of a logical topic (the prefix removed); tombstones only matter on HELD."""
        handler = self._handlers.get(topic)
        if handler is None:
            raise ValueError(f"the audit does not read {topic!r}")
        handler(topic, partition, offset, timestamp_ms, key, value)

    def feeder(self, topic: str) -> Any:
        """`feed` bound to one topic: `(topic, partition, offset, timestamp_ms, key, value)` without the lookup."""
        handler = self._handlers.get(topic)
        if handler is None:
            raise ValueError(f"the audit does not read {topic!r}")
        return handler

    def feed_all(self, records: Iterable[tuple[str, int, int, int | None, bytes | None, bytes | None]]) -> None:
        for record in records:
            self.feed(*record)

    def _raw(self, _t: str, partition: int, offset: int, ts: int | None, _k: Any, _v: Any) -> None:
        part = self.parts.get(partition)
        if part is None:
            return  # a partition added after the audit started
        i = offset - part.start
        if 0 <= i < len(part):
            in_scope = self.since_ms is None or ts is None or ts >= self.since_ms
            part.flags[i] |= PRESENT | (IN_SCOPE if in_scope else 0)

    def _slot(self, origin: Any) -> tuple[_Partition, int] | None:
        """The raw offset an origin names, or None (counted in `outside` by why)."""
        if not isinstance(origin, dict):
            self.outside["no origin"] += 1
            return None
        if origin.get("topic") != self.raw_topic:
            self.outside[f"origin on {origin.get('topic')}"] += 1
            return None
        partition, offset = origin.get("partition"), origin.get("offset")
        if not isinstance(partition, int) or not isinstance(offset, int):
            self.outside["no origin"] += 1
            return None
        part = self.parts.get(partition)
        if part is None:
            self.outside["raw partition not audited"] += 1
            return None
        i = offset - part.start
        if i < 0:
            self.outside["raw event before the audited range"] += 1
            return None
        if i >= len(part):
            self.outside["raw event after the audit started"] += 1
            return None
        return part, i

    def _outcome(self, origin: Any, kind: int) -> None:
        slot = self._slot(origin)
        if slot is not None:
            part, i = slot
            part.flags[i] |= kind
            if part.count[i] < 255:
                part.count[i] += 1

    def _withdrawal(self, origin: Any, delta: int) -> None:
        slot = self._slot(origin)
        if slot is not None:
            part, i = slot
            part.flags[i] |= TOUCHED
            part.net[i] = min(255, max(0, part.net[i] + delta))

    def _json(self, topic: str, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            self.outside[f"not JSON objects on {topic}"] += 1
            return None
        return doc

    def _in_scope_origin(self, origin: Any) -> bool:
        if self.since_ms is None:
            return True
        ts = origin.get("timestamp_ms") if isinstance(origin, dict) else None
        return isinstance(ts, int) and ts >= self.since_ms

    def _published(self, topic: str, partition: int, offset: int, ts: int | None, _k: Any, value: Any) -> None:
        doc = self._json(topic, value)
        if doc is None:
            return
        origin = doc.get("origin")
        takedown = doc.get("takedown")
        if isinstance(takedown, dict) and takedown.get("reinstated") is True:
            self.counts["reinstated"] += 1
            self._withdrawal(origin, +1)
        else:
            self.counts["published"] += 1
            self._outcome(origin, K_PUBLISHED)
        if self._in_scope_origin(origin):
            self._pub_aid.append(_id64(doc.get("article_id")))
            self._pub_rev.append(_id64(doc.get("revision")))
            self._pub_ts.append(ts if ts is not None else 0)
            self._pub_loc.append(partition << _LOC_BITS | offset)

    def _duplicate(self, topic: str, _p: int, _o: int, _ts: Any, _k: Any, value: Any) -> None:
        doc = self._json(topic, value)
        if doc is None:
            return
        self.counts["duplicates"] += 1
        self.duplicates_by[str(doc.get("match"))] += 1
        article = doc.get("article")
        self._outcome(article.get("origin") if isinstance(article, dict) else None, K_DUPLICATE)

    def _rejected(self, topic: str, _p: int, _o: int, _ts: Any, _k: Any, value: Any) -> None:
        doc = self._json(topic, value)
        if doc is None:
            return
        self.counts["rejected"] += 1
        self.rejected_by[str(doc.get("stage"))][str(doc.get("reason"))] += 1
        self._outcome(doc.get("origin"), K_REJECTED)

    def _retraction(self, topic: str, _p: int, _o: int, ts: int | None, _k: Any, value: Any) -> None:
        doc = self._json(topic, value)
        if doc is None:
            return
        self.counts["retracted"] += 1
        origin = doc.get("origin")
        if origin is None:
            self.outside["retractions without origin"] += 1
        else:
            self._withdrawal(origin, -1)
        self._ret_aid.append(_id64(doc.get("article_id")))
        self._ret_rev.append(_id64(doc.get("revision")))
        self._ret_ts.append(ts if ts is not None else 0)

    def _audit(self, topic: str, _p: int, _o: int, _ts: Any, _k: Any, value: Any) -> None:
        doc = self._json(topic, value)
        if doc is None:
            return
        action = str(doc.get("action"))
        self.audit_actions[action] += 1
        if action == "blocked":
            self.counts["blocked"] += 1
            self._outcome(doc.get("origin"), K_BLOCKED)

    def _intermediate(self, topic: str, partition: int, offset: int, _ts: Any, _k: Any, value: Any) -> None:
        committed = self.committed.get((topic, partition))
        if committed is not None and offset < committed:
            return  # the next stage has processed it: its output is on the next topic
        doc = self._json(topic, value) if value is not None and value[:1] == b"{" else None
        origin = doc.get("origin") if doc is not None else None
        if not isinstance(origin, dict) or origin.get("topic") != self.raw_topic:
            return  # a tick of the reorder hold, or a record that is no raw event's
        self._mark_where(origin, WHERE_BITS[topic])

    def _mark_where(self, origin: dict[str, Any], bit: int) -> None:
        part = self.parts.get(origin.get("partition"))  # type: ignore[arg-type]
        offset = origin.get("offset")
        if part is not None and isinstance(offset, int) and 0 <= offset - part.start < len(part):
            part.where[offset - part.start] |= bit

    def _held(self, _t: str, _p: int, _o: int, _ts: Any, key: bytes | None, value: bytes | None) -> None:
        name = key.decode("utf-8", "replace") if key is not None else ""
        if value is None:
            self.held.pop(name, None)  # released: its outcome went out in the same transaction
            return
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        article = doc.get("article") if isinstance(doc, dict) else None
        origin = article.get("origin") if isinstance(article, dict) else None
        if isinstance(origin, dict) and origin.get("topic") == self.raw_topic:
            p, o = origin.get("partition"), origin.get("offset")
            if isinstance(p, int) and isinstance(o, int):
                self.held[name] = (p, o)
                return
        self.held.pop(name, None)

    # -- the verdict ----------------------------------------------------------------------------------------
    def state_bytes(self) -> int:
        """Bytes of per-event state held now (the per-offset arrays and the publication/retraction arrays)."""
        per_offset = sum(4 * len(p) for p in self.parts.values())
        arrays = (self._pub_aid, self._pub_rev, self._pub_ts, self._pub_loc, self._ret_aid, self._ret_rev, self._ret_ts)
        return per_offset + sum(a.itemsize * len(a) for a in arrays)

    def report(self, limit: int = 20, *, published_topic: str = PUBLISHED) -> Report:
        """The verdict; `limit` offenders of each kind are listed (0: all), every one is counted."""
        state = self.state_bytes()
        for p, o in self.held.values():
            self._mark_where({"partition": p, "offset": o}, W_HELD)
        acc = Counter[str]()
        final = Counter[str]()
        in_flight_by: Counter[str] = Counter()
        totals = Counter[str]()
        offenders: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "unaccounted",
                "accounted_more_than_once",
                "published_twice",
                "outcome_without_raw",
                "withdrawal_mismatch",
                "in_flight",
            )
        }
        cap = limit if limit > 0 else None

        def listed(kind: str, part: _Partition, mask: Any, make: Any) -> None:
            idx = np.flatnonzero(mask)
            totals[kind] += len(idx)
            room = None if cap is None else max(0, cap - len(offenders[kind]))
            for i in idx[:room].tolist():
                offenders[kind].append(
                    {"topic": self.raw_topic, "partition": part.partition, "offset": part.start + i, **make(i)}
                )

        for part in sorted(self.parts.values(), key=lambda x: x.partition):
            if not len(part):
                continue
            flags = np.frombuffer(part.flags, dtype=np.uint8)
            count = np.frombuffer(part.count, dtype=np.uint8)
            net = np.frombuffer(part.net, dtype=np.uint8).astype(np.int16) - NET_ZERO
            where = np.frombuffer(part.where, dtype=np.uint8)
            scope = (flags & (PRESENT | IN_SCOPE)) == (PRESENT | IN_SCOPE)
            kind = flags & KINDS
            acc["raw"] += int(scope.sum())
            none = scope & (count == 0)
            unread = none.copy()
            if part.committed is not None:  # below the group's committed offset: normalize has processed it
                unread[: max(0, part.committed - part.start)] = False
            flying = none & (unread | (where != 0))
            lost = none & ~flying
            more = scope & (count > 1)
            one = scope & (count == 1)
            touched = (flags & TOUCHED) != 0
            pub, blk = one & (kind == K_PUBLISHED), one & (kind == K_BLOCKED)
            out = pub.astype(np.int16) + net  # 1: published now, 0: withheld now
            mismatch = one & touched & (~(pub | blk) | (out < 0) | (out > 1))
            sound = one & ~mismatch
            acc["published"] += int(pub.sum())
            acc["blocked"] += int(blk.sum())
            acc["duplicate"] += int((one & (kind == K_DUPLICATE)).sum())
            acc["rejected"] += int((one & (kind == K_REJECTED)).sum())
            acc["in_flight"] += int(flying.sum())
            acc["unaccounted"] += int(lost.sum())
            acc["accounted_more_than_once"] += int(more.sum())
            final["published"] += int((sound & (pub | blk) & (out == 1)).sum())
            final["reinstated"] += int((sound & blk & (out == 1)).sum() + (sound & pub & touched & (out == 1)).sum())
            final["blocked"] += int((sound & blk & (out == 0)).sum())
            final["retracted"] += int((sound & pub & (out == 0)).sum())
            final["duplicate"] += int((sound & (kind == K_DUPLICATE)).sum())
            final["rejected"] += int((sound & (kind == K_REJECTED)).sum())
            remaining = flying.copy()
            for name in WHERE_ORDER:
                here = remaining & ((where & WHERE_BITS[name]) != 0)
                if here.any():
                    in_flight_by[name] += int(here.sum())
                    remaining &= ~here
            if remaining.any():
                in_flight_by[NOT_READ] += int(remaining.sum())

            def flight(i: int, where: Any = where) -> dict[str, Any]:
                w = int(where[i])
                return {"where": next((n for n in WHERE_ORDER if w & WHERE_BITS[n]), NOT_READ)}

            def kinds(i: int, flags: Any = flags, count: Any = count) -> dict[str, Any]:
                return {
                    "outcomes": int(count[i]),
                    "kinds": [n for b, n in KIND_NAMES.items() if int(flags[i]) & b],
                }

            def balance(i: int, flags: Any = flags, net: Any = net) -> dict[str, Any]:
                k = int(flags[i]) & KINDS
                return {"outcome": KIND_NAMES.get(k, "?"), "net": int(net[i])}

            listed("unaccounted", part, lost, lambda i: {})
            listed("accounted_more_than_once", part, more, kinds)
            listed("withdrawal_mismatch", part, mismatch, balance)
            listed("in_flight", part, flying, flight)
            orphan = ((flags & PRESENT) == 0) & ((count > 0) | touched)
            listed("outcome_without_raw", part, orphan, kinds)
        final["taken_down"] = final["blocked"] + final["retracted"]
        # in flight is listed for orientation, not counted as an offence
        totals_out = {k: int(totals[k]) for k in offenders if k != "in_flight"}
        twice, twice_total = self._published_twice(cap, published_topic)
        offenders["published_twice"] = twice
        totals_out["published_twice"] = twice_total
        counts: dict[str, Any] = {
            "raw": acc["raw"],
            **{k: int(self.counts[k]) for k in ("published", "reinstated", "duplicates", "rejected", "blocked")},
            "retracted": int(self.counts["retracted"]),
            "rejected_by": {stage: dict(reasons) for stage, reasons in self.rejected_by.items()},
            "duplicates_by": dict(self.duplicates_by),
            "takedown_actions": dict(self.audit_actions),
            "in_flight": acc["in_flight"],
        }
        accounting = {
            k: int(acc[k])
            for k in (
                "raw",
                "published",
                "duplicate",
                "rejected",
                "blocked",
                "in_flight",
                "unaccounted",
                "accounted_more_than_once",
            )
        }
        return Report(
            raw_topic=self.raw_topic,
            group=self.group,
            since_ms=self.since_ms,
            counts=counts,
            accounting=accounting,
            final={
                k: int(final[k])
                for k in ("published", "reinstated", "taken_down", "blocked", "retracted", "duplicate", "rejected")
            },
            in_flight_by={n: in_flight_by[n] for n in FLOW_ORDER if in_flight_by[n]},
            outside=dict(self.outside),
            offenders=offenders,
            totals=totals_out,
            state_bytes=state,
            limit=limit,
        )

    def _published_twice(self, cap: int | None, topic: str) -> tuple[list[dict[str, Any]], int]:
        """Consecutive publications of one article with one revision and no retraction of it between."""
        n = len(self._pub_aid)
        if n < 2:
            return [], 0
        aid = np.frombuffer(self._pub_aid, dtype=np.uint64)
        rev = np.frombuffer(self._pub_rev, dtype=np.uint64)
        order = np.argsort(aid, kind="stable")  # stable: one article's publications stay in offset order
        a, r = aid[order], rev[order]
        repeat = np.flatnonzero((a[1:] == a[:-1]) & (r[1:] == r[:-1]))
        if not len(repeat):
            return [], 0
        ts = np.frombuffer(self._pub_ts, dtype=np.int64)
        loc = np.frombuffer(self._pub_loc, dtype=np.uint64)
        pairs = [(int(order[j]), int(order[j + 1])) for j in repeat.tolist()]
        # the retractions of the articles concerned, by (article, revision): timestamps, each usable once
        wanted = np.unique(a[repeat])
        ret_aid = np.frombuffer(self._ret_aid, dtype=np.uint64)
        retractions: dict[tuple[int, int], list[int]] = defaultdict(list)
        if len(ret_aid):
            ret_rev = np.frombuffer(self._ret_rev, dtype=np.uint64)
            ret_ts = np.frombuffer(self._ret_ts, dtype=np.int64)
            for k in np.flatnonzero(np.isin(ret_aid, wanted)).tolist():
                retractions[(int(ret_aid[k]), int(ret_rev[k]))].append(int(ret_ts[k]))
        for times in retractions.values():
            times.sort()
        found: list[dict[str, Any]] = []
        total = 0
        for prev, cur in sorted(pairs, key=lambda pc: int(ts[pc[1]])):
            key, t0, t1 = (int(aid[cur]), int(rev[cur])), int(ts[prev]), int(ts[cur])
            if _take(retractions.get(key), t0, t1) or _take(retractions.get((key[0], 0)), t0, t1):
                continue
            total += 1
            if cap is None or len(found) < cap:
                first, again = int(loc[prev]), int(loc[cur])
                found.append(
                    {
                        "topic": topic,
                        "article_id_hash": f"{key[0]:016x}",
                        "first": {"partition": first >> _LOC_BITS, "offset": first & ((1 << _LOC_BITS) - 1)},
                        "again": {"partition": again >> _LOC_BITS, "offset": again & ((1 << _LOC_BITS) - 1)},
                    }
                )
        return found, total


def _take(times: list[int] | None, t0: int, t1: int) -> bool:
    """Uses up the first retraction time in [t0, t1]; False when there is none."""
    if not times:
        return False
    i = bisect.bisect_left(times, t0)
    if i < len(times) and times[i] <= t1:
        del times[i]
        return True
    return False
