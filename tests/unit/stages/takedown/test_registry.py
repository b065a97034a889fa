"""Unit tests of the takedown registry: lifecycle audit, idempotent re-sends, updates, refusals, expiry, fan-out."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from streams.outcomes import Audited, FannedOut
from streams.stages.takedown import TakedownRegistry
from streams.stages.takedown.requests import TICK_KEY, tick_record
from tests.factories.takedowns import NOW, actions, assert_valid, config, encode, lift, of, request


def registry(partitions: int = 3, table: dict | None = None) -> TakedownRegistry:
    return TakedownRegistry(config(), {} if table is None else table, partitions=partitions)


def handle(reg: TakedownRegistry, record: object, *, now=NOW, key: bytes | None = None, offset: int = 0) -> list:
    payload = record if isinstance(record, bytes) or record is None else encode(record)
    if key is None and isinstance(record, dict):
        key = record["takedown_id"].encode()
    origin = {"topic": "takedowns", "partition": 0, "offset": offset, "timestamp_ms": None}
    out = reg.handle(key, payload, now=now, origin=origin)
    assert_valid(out)
    return out


def tick(reg: TakedownRegistry, at) -> list:
    out = reg.handle(TICK_KEY, tick_record(int(at.timestamp() * 1000)), now=NOW)
    assert_valid(out)
    return out


def test_a_request_is_audited_and_fanned_out_to_every_partition():
    reg = registry(partitions=3)
    req = request("domain", "example.com", tid="TD-1")
    out = handle(reg, req)
    assert actions(out) == ["requested"]
    fans = of(FannedOut, out)
    assert [(f.partition, f.key, f.record["op"]) for f in fans] == [(p, "TD-1", "apply") for p in range(3)]
    assert all(f.record["takedown"] == req for f in fans)
    entry = out[0].record
    assert (entry["by"], entry["requested_by"], entry["scope"], entry["value"]) == (
        "legal@rights.example",
        "legal@rights.example",
        "domain",
        "example.com",
    )
    assert entry["statement"]["ground"] == "legal"
    assert reg.active_by_scope()["domain"] == 1


def test_an_identical_resend_is_a_no_op():
    reg = registry()
    req = request("url", "https://example.com/a")
    handle(reg, req)
    assert handle(reg, req, offset=1) == []


def test_a_changed_request_is_an_update_with_the_changed_fields():
    reg = registry()
    req = request("url", "https://example.com/a", expires_in="30d")
    handle(reg, req)
    later = {**req, "expires_at": "2026-01-01T00:00:00Z", "reason": "Copyright claim, second notice"}
    out = handle(reg, later, offset=1)
    assert actions(out) == ["updated"]
    assert out[0].record["details"]["changed"] == ["expires_at", "reason"]
    assert {f.record["op"] for f in of(FannedOut, out)} == {"apply"}
    assert reg.next_expiry_ms() == 1767225600000


@pytest.mark.parametrize("field", ["scope", "value"])
def test_scope_and_value_never_change(field):
    reg = registry()
    req = request("domain", "example.com")
    handle(reg, req)
    changed = {**req, "scope": "source"} if field == "scope" else {**req, "value": "other.com"}
    out = handle(reg, changed, offset=1)
    assert actions(out) == ["refused"]
    assert (out[0].record["reason"], out[0].record["pointer"]) == ("immutable_field", f"/{field}")


def test_a_lift_stops_the_takedown_and_fans_out():
    reg = registry(partitions=2)
    req = request("source", "Example News")
    handle(reg, req)
    out = handle(reg, lift(req, now=NOW + timedelta(hours=1)), now=NOW + timedelta(hours=1), offset=1)
    assert actions(out) == ["lifted"]
    entry = out[0].record
    assert (entry["by"], entry["reason"]) == ("desk@aggregator.example", "Licence agreed")
    assert [f.record["op"] for f in of(FannedOut, out)] == ["lift", "lift"]
    assert reg.active_by_scope()["source"] == 0
    assert handle(reg, lift(req, now=NOW + timedelta(hours=1)), offset=2) == []  # the same lift again


def test_a_lift_of_an_unknown_takedown_is_refused():
    out = handle(registry(), lift(request("domain", "example.com", tid="TD-404"), now=NOW))
    assert actions(out) == ["refused"]
    assert (out[0].record["reason"], out[0].record["pointer"]) == ("unknown_takedown", "/takedown_id")


def test_a_request_after_a_lift_reactivates_the_takedown():
    reg = registry(partitions=1)
    req = request("domain", "example.com")
    handle(reg, req)
    handle(reg, lift(req, now=NOW), offset=1)
    out = handle(reg, req, offset=2)
    assert actions(out) == ["requested"]
    assert out[0].record["details"] == {"reactivated": True, "previous_status": "lifted"}


def test_expiry_runs_on_the_ticks_time_not_the_clock():
    reg = registry(partitions=2)
    req = request("fingerprint", "9b2e4d6f8a0c1e3f5a7b9c0d2e4f6a8b", expires_in="12h")
    handle(reg, req)
    due = NOW + timedelta(hours=12)
    assert reg.next_expiry_ms() == int(due.timestamp() * 1000)
    assert reg.expiry_due(int(due.timestamp() * 1000)) and not reg.expiry_due(int(due.timestamp() * 1000) - 1)
    assert tick(reg, due - timedelta(milliseconds=1)) == []
    out = tick(reg, due)
    assert actions(out) == ["expired"]
    assert out[0].record["by"] == "expiry" and out[0].record["at"] == "2025-08-13T19:30:00Z"
    assert [f.record["op"] for f in of(FannedOut, out)] == ["expire", "expire"]
    assert reg.next_expiry_ms() is None
    assert tick(reg, due + timedelta(days=1)) == []  # expires once
    assert handle(reg, req, offset=5) == []  # the expired request re-sent: nothing changes


def test_a_lifted_takedown_does_not_expire():
    reg = registry()
    req = request("domain", "example.com", expires_in="1h")
    handle(reg, req)
    handle(reg, lift(req, now=NOW), offset=1)
    assert reg.next_expiry_ms() is None
    assert tick(reg, NOW + timedelta(hours=2)) == []


def test_an_updated_expiry_moves_the_expiry():
    reg = registry(partitions=1)
    req = request("domain", "example.com", expires_in="1h")
    handle(reg, req)
    handle(reg, {**req, "expires_at": "2025-08-13T09:30:00Z"}, offset=1)
    assert tick(reg, NOW + timedelta(hours=1)) == []
    assert actions(tick(reg, NOW + timedelta(hours=2))) == ["expired"]


def test_a_request_that_expired_before_it_arrived_is_refused():
    req = request("domain", "example.com", expires_in="1h")
    out = handle(registry(), req, now=NOW + timedelta(hours=2))
    assert actions(out) == ["refused"] and out[0].record["reason"] == "expired_on_arrival"


@pytest.mark.parametrize(
    ("key", "payload", "reason", "pointer"),
    [
        (b"TD-1", b"{broken", "invalid_json", ""),
        (b"TD-1", None, "tombstone", ""),
        (b"TD-1", encode({"schema": "takedown.v1", "takedown_id": "TD-1"}), "schema_violation", "/action"),
        (b"TD-1", encode({**request("url", "https://e.com/a", tid="TD-1"), "scope": "page"}), "schema_violation",
         "/scope"),
        (b"TD-9", encode(request("url", "https://e.com/a", tid="TD-1")), "key_mismatch", "/takedown_id"),
    ],
)  # fmt: skip
def test_a_bad_record_is_refused_with_its_payload_and_never_raises(key, payload, reason, pointer):
    out = handle(registry(), payload, key=key, offset=7)
    assert len(out) == 1 and isinstance(out[0], Audited)
    entry = out[0].record
    assert (entry["action"], entry["reason"], entry["pointer"]) == ("refused", reason, pointer)
    assert entry["takedown_id"] == key.decode()
    assert base64.b64decode(entry["payload_b64"]) == (payload or b"")
    assert entry["origin"] == {"topic": "takedowns", "partition": 0, "offset": 7, "timestamp_ms": None}
    assert entry["audit_id"] == f"{key.decode()}:refused:takedowns-0-7"


def test_a_refused_payload_is_kept_up_to_the_limit():
    reg = TakedownRegistry(config(reject_payload_limit_bytes=10), {}, partitions=1)
    out = reg.handle(b"TD-1", b"{" + b"x" * 100, now=NOW)
    assert base64.b64decode(out[0].record["payload_b64"]) == b"{" + b"x" * 9
    assert out[0].record["payload_size"] == 101


def test_the_registry_rebuilt_from_its_table_keeps_active_takedowns_and_expiries():
    table: dict = {}
    reg = registry(table=table)
    kept = request("domain", "example.com", expires_in="2h")
    gone = request("url", "https://example.com/a")
    handle(reg, kept)
    handle(reg, gone, offset=1)
    handle(reg, lift(gone, now=NOW), offset=2)
    again = registry(table=table)
    assert again.active_by_scope() == {"url": 0, "domain": 1, "source": 0, "fingerprint": 0, "cluster": 0}
    assert again.next_expiry_ms() == reg.next_expiry_ms()
    assert actions(tick(again, NOW + timedelta(hours=2))) == ["expired"]


def test_audit_ids_are_deterministic():
    req = request("domain", "example.com", tid="TD-7")
    a = handle(registry(), req, offset=3)[0].record["audit_id"]
    b = handle(registry(), req, offset=3)[0].record["audit_id"]
    assert a == b == "TD-7:requested:takedowns-0-3"
