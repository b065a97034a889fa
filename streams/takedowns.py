"""The rights desk's one way to make and read takedowns: the CLI, the worker's HTTP API and the desk page use it.

Writing: `submit` sends a takedown.v1 record (built by `streams.stages.takedown.requests`) to the compacted
`takedowns` topic, keyed by its id, with an idempotent producer, and returns once the broker has it.

Reading: `TakedownView` is what the topics say, folded: every takedown's latest record (from `takedowns`,
ticks skipped) and every audit entry (from `takedowns.audit`) by takedown and by article, read with
read_committed, so nothing an aborted transaction wrote is ever shown. `load` reads both topics to their end
once (the CLI); `ViewFollower` keeps a view current in a running process (the worker's API, the desk).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import topics
from streams.codec import short_hash
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings
from streams.stages.normalize import urls
from streams.stages.takedown.requests import is_active, parse_time, tick_ms

log = logging.getLogger("streams.takedowns")
ARTICLE_ACTIONS = ("blocked", "retracted", "reinstated", "not_reinstated")
LIFECYCLE_ACTIONS = ("requested", "refused", "updated", "lifted", "expired")


@dataclass(frozen=True)
class Summary:
    """One takedown as the desk lists it."""

    takedown_id: str
    status: str  # pending | active | lifted | expired | refused
    scope: str | None
    value: str | None
    requested_by: str | None
    requested_at: str | None
    reason: str | None
    expires_at: str | None
    blocked: int
    retracted: int
    reinstated: int
    record: dict[str, Any] | None


@dataclass
class TakedownView:
    """Takedowns and their audit trail, folded from the two topics in their order."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # takedown_id -> latest takedown.v1 record
    entries: list[dict[str, Any]] = field(default_factory=list)  # every audit entry, in topic order
    _by_takedown: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _by_article: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _lifecycle: dict[str, dict[str, Any]] = field(default_factory=dict)  # takedown_id -> last lifecycle entry
    _seen_audit: set[str] = field(default_factory=set)

    # -- folding ------------------------------------------------------------------------------------------
    def add_takedown_record(self, key: bytes | None, value: bytes | None) -> None:
        if value is None or tick_ms(key, value) is not None:
            return
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # the registry refuses it; its `refused` audit entry shows it
        tid = record.get("takedown_id") if isinstance(record, dict) else None
        if isinstance(tid, str) and record.get("schema") == "takedown.v1":
            self.records[tid] = record

    def add_audit(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            entry = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(entry, dict):
            return
        audit_id = entry.get("audit_id")
        if isinstance(audit_id, str):
            if audit_id in self._seen_audit:
                return
            self._seen_audit.add(audit_id)
        i = len(self.entries)
        self.entries.append(entry)
        details = entry["details"] if isinstance(entry.get("details"), dict) else {}
        tids = {entry.get("takedown_id"), *details.get("also_covered_by", ()), *details.get("still_covered_by", ())}
        for tid in tids:
            if isinstance(tid, str):
                self._by_takedown[tid].append(i)
        if isinstance(entry.get("article_id"), str):
            self._by_article[entry["article_id"]].append(i)
        if entry.get("action") in LIFECYCLE_ACTIONS and isinstance(entry.get("takedown_id"), str):
            self._lifecycle[entry["takedown_id"]] = entry

    def remember_submitted(self, record: dict[str, Any]) -> None:
        """What this process just sent, before its own read of the topic comes back with it."""
        self.records[str(record["takedown_id"])] = record

    # -- reading ------------------------------------------------------------------------------------------
    def status(self, takedown_id: str, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        last = self._lifecycle.get(takedown_id)
        record = self.records.get(takedown_id)
        if last is not None and last["action"] in ("lifted", "expired", "refused"):
            if not (record is not None and record.get("action") == "request" and last["action"] == "refused"):
                return str(last["action"])
        if record is None:
            return "refused" if last is not None else "unknown"
        if record.get("action") == "lift":
            return "lifted"
        if not is_active(record, now):
            return "expired"
        return "active" if last is not None else "pending"

    def timeline(self, takedown_id: str) -> list[dict[str, Any]]:
        """Every audit entry about the takedown (its own, and the articles it blocked, retracted, released)."""
        return [self.entries[i] for i in self._by_takedown.get(takedown_id, [])]

    def article_history(self, article_id: str) -> list[dict[str, Any]]:
        return [self.entries[i] for i in self._by_article.get(article_id, [])]

    def summary(self, takedown_id: str, now: datetime | None = None) -> Summary:
        record = self.records.get(takedown_id)
        last = self._lifecycle.get(takedown_id) or {}
        source = record or last
        counts = {a: 0 for a in ("blocked", "retracted", "reinstated")}
        for entry in self.timeline(takedown_id):
            if entry.get("takedown_id") == takedown_id and entry.get("action") in counts:
                counts[entry["action"]] += 1
        return Summary(
            takedown_id=takedown_id,
            status=self.status(takedown_id, now),
            scope=source.get("scope"),
            value=source.get("value"),
            requested_by=source.get("requested_by"),
            requested_at=source.get("requested_at"),
            reason=source.get("reason"),
            expires_at=source.get("expires_at"),
            blocked=counts["blocked"],
            retracted=counts["retracted"],
            reinstated=counts["reinstated"],
            record=record,
        )

    def takedown_ids(self) -> list[str]:
        ids = set(self.records) | set(self._lifecycle)
        return sorted(ids, key=lambda t: (self.summary(t).requested_at or "", t), reverse=True)

    def select(
        self,
        *,
        status: str | None = None,
        scope: str | None = None,
        requester: str | None = None,
        text: str | None = None,
        now: datetime | None = None,
    ) -> list[Summary]:
        """Newest first, filtered: status (active, lifted, expired...), scope, requester (substring), text
        (substring of id, value, reason)."""
        out = []
        needle = text.casefold() if text else None
        for tid in self.takedown_ids():
            s = self.summary(tid, now)
            if status and s.status != status:
                continue
            if scope and s.scope != scope:
                continue
            if requester and requester.casefold() not in (s.requested_by or "").casefold():
                continue
            if needle and not any(needle in (v or "").casefold() for v in (s.takedown_id, s.value, s.reason)):
                continue
            out.append(s)
        return out

    def lookup(self, url_or_id: str, now: datetime | None = None) -> dict[str, Any]:
        """Is this URL (or article_id) blocked, and by what? What the audit says happened to the article, and
        which active takedowns would cover its URL or domain today."""
        now = now or datetime.now(UTC)
        text = url_or_id.strip()
        article_id, canonical = text, None
        if "://" in text:
            canon = urls.canonicalize(text)
            if isinstance(canon, urls.CanonicalUrl):
                canonical = canon.url
                article_id = short_hash(canon.url)
        history = self.article_history(article_id)
        last = history[-1] if history else None
        if canonical is None and last is not None:
            canonical = last.get("canonical_url")
        covering = []
        host = urlsplit(canonical).hostname if canonical else None
        for tid, record in self.records.items():
            if not is_active(record, now):
                continue
            scope, value = record.get("scope"), record.get("value")
            if (scope == "url" and value == canonical) or (
                scope == "domain" and host and (host == value or host.endswith("." + str(value)))
            ):
                covering.append(tid)
        withheld = last is not None and last.get("action") in ("blocked", "retracted", "not_reinstated")
        return {
            "article_id": article_id,
            "canonical_url": canonical,
            "withheld": bool(withheld) or bool(covering),
            "last_action": last,
            "history": history,
            "covered_by_url_or_domain": sorted(covering),
        }

    def audit_between(self, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
        """Audit entries whose time is in [start, end)."""
        out = []
        for entry in self.entries:
            at = parse_time(entry.get("at"))
            if at is None:
                continue
            if (start is None or at >= start) and (end is None or at < end):
                out.append(entry)
        return out


def transparency_counts(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What a transparency report needs from a period's audit: requests by scope and by ground, actions by
    kind, and the median time from a request to its first action on an article (seconds)."""
    by_scope: dict[str, int] = defaultdict(int)
    by_ground: dict[str, int] = defaultdict(int)
    actions: dict[str, int] = defaultdict(int)
    requested_at: dict[str, datetime] = {}
    first_action: dict[str, datetime] = {}
    for e in entries:
        action = str(e.get("action"))
        actions[action] += 1
        tid = e.get("takedown_id")
        if action == "requested":
            by_scope[str(e.get("scope"))] += 1
            statement = e["statement"] if isinstance(e.get("statement"), dict) else {}
            by_ground[str(statement.get("ground") or "unspecified")] += 1
            when = parse_time(e.get("requested_at"))
            if isinstance(tid, str) and when is not None:
                requested_at[tid] = when
        elif action in ("blocked", "retracted") and isinstance(tid, str):
            at = parse_time(e.get("at"))
            if at is not None and (tid not in first_action or at < first_action[tid]):
                first_action[tid] = at
    waits = sorted((first_action[t] - requested_at[t]).total_seconds() for t in first_action if t in requested_at)
    median = None
    if waits:
        mid = len(waits) // 2
        median = waits[mid] if len(waits) % 2 else (waits[mid - 1] + waits[mid]) / 2
    return {
        "requests_by_scope": dict(by_scope),
        "requests_by_ground": dict(by_ground),
        "actions": dict(actions),
        "median_seconds_to_action": median,
    }


# --- Kafka --------------------------------------------------------------------------------------------------


async def submit(settings: Settings, record: dict[str, Any], producer: AIOKafkaProducer | None = None) -> None:
    """Send a takedown.v1 record to `takedowns` (key: its id) and wait until the broker has it."""
    own = producer is None
    if producer is None:
        producer = AIOKafkaProducer(
            **aiokafka_kwargs(settings), enable_idempotence=True, acks="all", client_id="article-streams-takedown"
        )
        await producer.start()
    try:
        await producer.send_and_wait(
            topics.TAKEDOWNS.physical(settings), key=str(record["takedown_id"]).encode(), value=orjson.dumps(record)
        )
    finally:
        if own:
            await producer.stop()


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
        client_id="article-streams-takedown-view",
    )


async def _assign(consumer: AIOKafkaConsumer, names: list[str]) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for name in names:
        parts = consumer.partitions_for_topic(name)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
        if not parts:
            raise SystemExit(f"topic {name} does not exist (run `streams topics create`)")
        tps.extend(TopicPartition(name, p) for p in sorted(parts))
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return tps


def _fold(view: TakedownView, settings: Settings, batch: dict[TopicPartition, list[Any]]) -> None:
    requests_topic = topics.TAKEDOWNS.physical(settings)
    for tp, msgs in batch.items():
        for msg in msgs:
            if tp.topic == requests_topic:
                view.add_takedown_record(msg.key, msg.value)
            else:
                view.add_audit(msg.value)


async def load(settings: Settings) -> TakedownView:
    """Both topics read to the end they had when this started."""
    view = TakedownView()
    consumer = _consumer(settings)
    await consumer.start()
    try:
        tps = await _assign(consumer, [topics.TAKEDOWNS.physical(settings), topics.TAKEDOWNS_AUDIT.physical(settings)])
        end = await consumer.end_offsets(tps)
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                return view
            _fold(view, settings, await consumer.getmany(timeout_ms=500))
    finally:
        await consumer.stop()


class ViewFollower:
    """Keeps a TakedownView current in a running process: reads both topics from the beginning, then follows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.view = TakedownView()
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            consumer = _consumer(self.settings)
            try:
                await consumer.start()
                names = [topics.TAKEDOWNS.physical(self.settings), topics.TAKEDOWNS_AUDIT.physical(self.settings)]
                tps = await _assign(consumer, names)
                end = await consumer.end_offsets(tps)
                # Read again from the beginning into the same view: records are replaced in topic order and
                # audit entries counted once (by audit_id), so the view ends as a fresh one would.
                while not self._stopping:
                    _fold(self.view, self.settings, await consumer.getmany(timeout_ms=500))
                    if not self.caught_up.is_set():
                        positions = [await consumer.position(tp) for tp in tps]
                        if all(p >= end[tp] for p, tp in zip(positions, tps, strict=True)):
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker may be away: read everything again once it is back
                log.warning("following the takedown topics failed; retrying", exc_info=True)
                self.caught_up.clear()
                await asyncio.sleep(2.0)
            finally:
                await consumer.stop()
