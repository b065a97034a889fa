"""The takedown registry: every record of `takedowns` in, lifecycle audit entries and fan-out copies out.

Rule, per record of the compacted `takedowns` topic (one partition, read by one worker at a time):

- a tick (key TICK_KEY, `{"tick_ms": T}`) → every active takedown whose expires_at ≤ T expires: an
  `expired` audit entry and one `expire` fan-out per partition;
- a record that fails `requests.validate` (broken JSON, schema violation, bad value or time, key ≠ id) →
  one `refused` audit entry with the code, the JSON pointer, a sentence and the payload (base64); never raises;
- a request for an id that is new, lifted or expired → `requested` and an `apply` fan-out (refused as
  `expired_on_arrival` when its expiry has already passed);
- the same request again (identical record) → nothing; a changed one (new expiry, reason, statement) →
  `updated` (details.changed) and an `apply` fan-out. Scope and value never change (`immutable_field`:
  lift it and file a new one);
- a lift of an active takedown → `lifted` and a `lift` fan-out; of an expired one → `lifted`, nothing to
  fan out; the same lift again → nothing; a lift of an unknown id → `unknown_takedown`.

For example, with 4 partitions, `{"takedown_id": "TD-1", "action": "request", "scope": "domain",
"value": "example.com", ...}` gives [Audited(requested), FannedOut(0), FannedOut(1), FannedOut(2),
FannedOut(3)], and the partitions then block and retract (see `stage`).

State: `table` (takedown_id → {"record": the latest accepted takedown.v1 record, "status": active | lifted
| expired, "since": when}), injected; in memory only the expiry heap, rebuilt by `rebuild()`. Time is the
injected `now` for records and the tick's own time for expiries, never the wall clock.
"""

from __future__ import annotations

import heapq
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import orjson

from streams.codec import rfc3339, utc_from_ms
from streams.outcomes import Audited, FannedOut
from streams.stages.takedown.config import TakedownConfig
from streams.stages.takedown.records import (
    EXPIRY_ACTOR,
    fanout_record,
    lifecycle_entry,
    ms,
    refused_entry,
)
from streams.stages.takedown.requests import Refusal, parse_time, tick_ms, validate

RegistryOutcome = Audited | FannedOut


class TakedownRegistry:
    """The registry table and the rules above. `partitions` is the partition count of takedowns.fanout
    (= articles.enriched's)."""

    def __init__(self, config: TakedownConfig, table: MutableMapping[str, Any], *, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("the fan-out needs at least one partition")
        self.config = config
        self.table = table
        self.partitions = partitions
        self._expiry: dict[str, int] = {}  # active takedown with an expiry → expires_at in ms
        self._heap: list[tuple[int, str]] = []  # (expires_ms, id); stale items skipped when popped
        self._active: dict[str, str] = {}  # active takedown → scope (for the gauge)
        self.rebuild()

    # --- state -------------------------------------------------------------------------------------------

    def rebuild(self) -> int:
        """Re-reads the table (after a restart or a rebalance); returns how many takedowns are active."""
        self._expiry.clear()
        self._heap.clear()
        self._active.clear()
        for tid, state in self.table.items():
            if isinstance(state, dict) and state.get("status") == "active" and isinstance(state.get("record"), dict):
                self._track(str(tid), state["record"])
        heapq.heapify(self._heap)
        return len(self._active)

    def _track(self, tid: str, record: dict[str, Any]) -> None:
        self._active[tid] = str(record.get("scope"))
        self._expiry.pop(tid, None)
        expiry = parse_time(record.get("expires_at"))
        if expiry is not None:
            self._expiry[tid] = ms(expiry)
            heapq.heappush(self._heap, (ms(expiry), tid))

    def _untrack(self, tid: str) -> None:
        self._active.pop(tid, None)
        self._expiry.pop(tid, None)

    def state(self, takedown_id: str) -> dict[str, Any] | None:
        value = self.table.get(takedown_id)
        return value if isinstance(value, dict) else None

    def active_by_scope(self) -> dict[str, int]:
        """Active takedowns per scope (every scope present, 0 when none): the gauge."""
        out = {"url": 0, "domain": 0, "source": 0, "fingerprint": 0, "cluster": 0}
        for scope in self._active.values():
            out[scope] = out.get(scope, 0) + 1
        return out

    def expiry_due(self, now_ms: int) -> bool:
        """Whether a tick should be sent now (`streams.ticks.Tick.due`)."""
        due = self.next_expiry_ms()
        return due is not None and due <= now_ms

    def next_expiry_ms(self) -> int | None:
        """When the next active takedown expires (ms since the epoch), or None: when to send a tick."""
        heap = self._heap
        while heap and self._expiry.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # --- records -----------------------------------------------------------------------------------------

    def handle(
        self, key: bytes | None, payload: bytes | None, *, now: datetime, origin: dict[str, Any] | None = None
    ) -> list[RegistryOutcome]:
        """One record of `takedowns` (key and value bytes as read) → audit entries and fan-out copies.

        `origin` (topic, partition, offset, timestamp_ms of the record) makes audit ids unique and goes into
        refusals; `now` is when it is processed (the record's timestamp or the clock, injected)."""
        tick = tick_ms(key, payload)
        if tick is not None:
            return self.expire_due(utc_from_ms(tick))
        ref = _ref(origin, now)
        result = validate(payload, max_bytes=self.config.max_request_bytes, key=key)
        if isinstance(result, Refusal):
            return [self._refused(result, key, payload, now, origin, ref)]
        if result["action"] == "lift":
            return self._lift(result, key, payload, now=now, origin=origin, ref=ref)
        return self._request(result, key, payload, now=now, origin=origin, ref=ref)

    def _request(
        self,
        rec: dict[str, Any],
        key: bytes | None,
        payload: bytes | None,
        *,
        now: datetime,
        origin: dict[str, Any] | None,
        ref: str,
    ) -> list[RegistryOutcome]:
        tid = rec["takedown_id"]
        prev = self.state(tid)
        expiry = parse_time(rec.get("expires_at"))
        late = expiry is not None and expiry <= now
        if prev is not None and prev.get("status") == "active":
            old = prev["record"]
            immutable = _immutable(old, rec)
            if immutable is not None:
                return [self._refused(immutable, key, payload, now, origin, ref)]
            if old == rec:
                return []  # a re-send
            if late:
                return [self._refused(_late(rec), key, payload, now, origin, ref)]
            changed = sorted(k for k in set(old) | set(rec) if old.get(k) != rec.get(k))
            self._store(tid, rec, "active", now)
            entry = lifecycle_entry(
                "updated", rec, at=now, by=rec.get("requested_by"), ref=ref, details={"changed": changed}
            )
            return [Audited(entry), *self._fan_out("apply", rec, now)]
        if prev is not None and prev.get("status") == "expired" and prev.get("record") == rec:
            return []  # the request that expired, sent again: its state has not changed
        if late:
            return [self._refused(_late(rec), key, payload, now, origin, ref)]
        self._store(tid, rec, "active", now)
        details = {"reactivated": True, "previous_status": prev.get("status")} if prev is not None else {}
        entry = lifecycle_entry("requested", rec, at=now, by=rec.get("requested_by"), ref=ref, details=details)
        return [Audited(entry), *self._fan_out("apply", rec, now)]

    def _lift(
        self,
        rec: dict[str, Any],
        key: bytes | None,
        payload: bytes | None,
        *,
        now: datetime,
        origin: dict[str, Any] | None,
        ref: str,
    ) -> list[RegistryOutcome]:
        tid = rec["takedown_id"]
        prev = self.state(tid)
        if prev is None or not isinstance(prev.get("record"), dict):
            refusal = Refusal(
                "unknown_takedown", "/takedown_id", f"There is no takedown {tid!r} to lift.", "unknown_takedown"
            )
            return [self._refused(refusal, key, payload, now, origin, ref)]
        old = prev["record"]
        immutable = _immutable(old, rec)
        if immutable is not None:
            return [self._refused(immutable, key, payload, now, origin, ref)]
        status = prev.get("status")
        if status == "lifted":
            if old == rec:
                return []  # the same lift again
            changed = sorted(k for k in set(old) | set(rec) if old.get(k) != rec.get(k))
            self._store(tid, rec, "lifted", now)
            by = rec.get("lifted_by")
            entry = lifecycle_entry("updated", rec, at=now, by=by, ref=ref, details={"changed": changed})
            return [Audited(entry)]
        self._store(tid, rec, "lifted", now)
        details: dict[str, Any] = {"lifted_at": rec.get("lifted_at"), "republish_on_lift": _republish(rec)}
        if status == "expired":
            details["had_expired"] = True
        entry = lifecycle_entry(
            "lifted", rec, at=now, by=rec.get("lifted_by"), ref=ref, reason=rec.get("lift_reason"), details=details
        )
        if status != "active":
            return [Audited(entry)]
        return [Audited(entry), *self._fan_out("lift", rec, now)]

    def expire_due(self, now: datetime) -> list[RegistryOutcome]:
        """Expires every active takedown whose expires_at ≤ `now` (the tick's time)."""
        now_ms = ms(now)
        out: list[RegistryOutcome] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            expires_ms, tid = heapq.heappop(heap)
            if self._expiry.get(tid) != expires_ms:
                continue  # lifted, updated or already expired since it was pushed
            state = self.state(tid)
            if state is None or state.get("status") != "active":
                self._untrack(tid)
                continue
            rec = state["record"]
            self._store(tid, rec, "expired", now)
            details = {"expires_at": rec.get("expires_at"), "republish_on_lift": _republish(rec)}
            entry = lifecycle_entry("expired", rec, at=now, by=EXPIRY_ACTOR, ref=str(expires_ms), details=details)
            out.append(Audited(entry))
            out.extend(self._fan_out("expire", rec, now))
        return out

    # --- helpers -----------------------------------------------------------------------------------------

    def _store(self, tid: str, rec: dict[str, Any], status: str, now: datetime) -> None:
        self.table[tid] = {"record": rec, "status": status, "since": rfc3339(now)}
        if status == "active":
            self._track(tid, rec)
        else:
            self._untrack(tid)

    def _fan_out(self, op: str, rec: dict[str, Any], now: datetime) -> list[RegistryOutcome]:
        n = self.partitions
        tid = rec["takedown_id"]
        return [FannedOut(p, tid, fanout_record(op, rec, at=now, partition=p, partitions=n)) for p in range(n)]

    def _refused(
        self,
        refusal: Refusal,
        key: bytes | None,
        payload: bytes | None,
        now: datetime,
        origin: dict[str, Any] | None,
        ref: str,
    ) -> Audited:
        tid = _id_for_refusal(key, payload)
        entry = refused_entry(
            refusal,
            takedown_id=tid,
            payload=payload,
            payload_limit=self.config.payload_limit_bytes,
            at=now,
            origin=origin,
            ref=ref,
        )
        return Audited(entry)


def _immutable(old: dict[str, Any], rec: dict[str, Any]) -> Refusal | None:
    for name in ("scope", "value"):
        if old.get(name) != rec.get(name):
            return Refusal(
                "immutable_field",
                f"/{name}",
                f"Takedown {rec['takedown_id']!r} has {name} {old.get(name)!r}; it cannot change to "
                f"{rec.get(name)!r}. Lift it and file a new takedown.",
                "const",
            )
    return None


def _late(rec: dict[str, Any]) -> Refusal:
    return Refusal(
        "expired_on_arrival",
        "/expires_at",
        f"The request expires at {rec.get('expires_at')}, which had passed when it reached the registry.",
        "minimum",
    )


def _republish(rec: dict[str, Any]) -> bool:
    value = rec.get("republish_on_lift", True)
    return value if isinstance(value, bool) else True


def _ref(origin: dict[str, Any] | None, now: datetime) -> str:
    if isinstance(origin, dict) and isinstance(origin.get("offset"), int):
        return f"{origin.get('topic', 'takedowns')}-{origin.get('partition', 0)}-{origin['offset']}"
    return str(ms(now))


def _id_for_refusal(key: bytes | None, payload: bytes | None) -> str:
    """The record's key (compacted topics always have one), else the id inside the payload, else 'unknown'."""
    if key:
        return key[:200].decode("utf-8", "replace")
    try:
        value = orjson.loads(payload) if payload is not None else None
    except orjson.JSONDecodeError:
        value = None
    tid = value.get("takedown_id") if isinstance(value, dict) else None
    return tid[:200] if isinstance(tid, str) and tid else "unknown"
