"""Takedown requests and lifts: built by the CLI, the HTTP endpoint and the desk, checked again by the registry.

One code path for every way in. `new_request` and `lift_request` build takedown.v1 records, or return the
list of what is wrong, each with the JSON pointer of its field (the desk shows them beside the fields);
`request_from_body` does the same for a JSON body (HTTP, desk form); `validate` checks a record read from
the `takedowns` topic and gives the record or one `Refusal`. For example

    new_request("url", "HTTPS://Example.com/a?utm_source=x#top", "Copyright claim", "legal@example.com",
                expires_in="90d", ground="legal", legal_basis="Copyright", now=2025-08-13T10:00:00Z)
    -> {"schema": "takedown.v1", "takedown_id": "td-<uuid4 hex>", "action": "request", "scope": "url",
        "value": "https://example.com/a", "requested_at": "2025-08-13T10:00:00Z",
        "expires_at": "2025-11-11T10:00:00Z", "statement": {"ground": "legal", ...}, ...}

while `new_request("page", ...)` returns `[FieldError("/scope", "...", "enum")]`.

Ids: `td-` and a uuid4 (random, so two requests never collide), unless the caller brings its own
`takedown_id` (a ticket number), which then makes re-sending the same request harmless.

Values are normalised per scope so that they compare with what normalize and dedup put in articles:
url → `streams.stages.normalize.urls.canonicalize`; domain → the lower-case (punycode) host, refused when
it is a public suffix such as `co.uk`; source → trimmed (matches source.id exactly or source.name in any
case); fingerprint, cluster → 32 lower-case hex digits.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import tldextract

from streams.codec import rfc3339
from streams.schemas import validator
from streams.stages.normalize.urls import BadUrl, canonicalize

SCHEMA = "takedown.v1.json"
SCOPES = ("url", "domain", "source", "fingerprint", "cluster")
GROUNDS = ("legal", "terms")
TICK_KEY = b"\x00takedown-expiry-tick"  # takedown ids cannot start with NUL, so a tick never shadows one
_HEX32 = re.compile(r"[0-9a-f]{32}")
_DURATION = re.compile(r"\s*(\d+)\s*(w|d|h|m|s)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_MAX_DURATION = timedelta(days=3660)  # ten years: beyond that a "temporary" takedown is a typo
_UTF8_BOM = b"\xef\xbb\xbf"
_BODY_FIELDS = {
    "takedown_id",
    "scope",
    "value",
    "reason",
    "requested_by",
    "expires_at",
    "expires_in",
    "republish_on_lift",
    "statement",
}
_STATEMENT_FIELDS = (
    "restriction",
    "ground",
    "legal_basis",
    "terms_clause",
    "territorial_scope",
    "explanation",
    "automated",
    "redress",
)
_SERVER_FIELDS = {"schema", "action", "requested_at", "lifted_at", "lifted_by", "lift_reason"}


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field of a request: its JSON pointer, a sentence, and the schema keyword."""

    pointer: str
    message: str
    keyword: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why a record on `takedowns` is refused: a code, the JSON pointer of the field ('' = the whole record)
    and a sentence. Codes: tombstone, too_large, invalid_utf8, invalid_json, schema_violation, bad_value,
    bad_time, bad_expiry, key_mismatch (and, from the registry, unknown_takedown, immutable_field,
    expired_on_arrival)."""

    reason: str
    pointer: str
    message: str
    keyword: str = ""


# --- durations and values --------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `1w2d`, `30m`, `45s` (units w, d, h, m, s, combinable) → timedelta. Raises ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a duration is a number and a unit, e.g. 90d or 12h")
    total, pos, raw = 0, 0, text.strip()
    while pos < len(raw):
        match = _DURATION.match(raw, pos)
        if match is None:
            raise ValueError(f"{raw!r} is not a duration: use a number and a unit (w, d, h, m, s), e.g. 90d or 12h")
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        pos = match.end()
        if total > _MAX_DURATION.total_seconds():
            raise ValueError(f"{raw!r} is longer than ten years")
    if total <= 0:
        raise ValueError(f"{raw!r} is not a positive duration")
    return timedelta(seconds=total)


def normalize_value(scope: str, value: str) -> str | FieldError:
    """The value as articles carry it (see the module docstring), or what is wrong with it (pointer /value)."""
    if not isinstance(value, str) or not value.strip():
        return FieldError("/value", "The value is empty.", "minLength")
    text = value.strip()
    if scope == "url":
        canonical = canonicalize(text)
        if isinstance(canonical, BadUrl):
            return FieldError("/value", f"The URL is not usable: {canonical.reason}.", "format")
        return canonical.url
    if scope == "domain":
        return _domain(text)
    if scope in ("fingerprint", "cluster"):
        lowered = text.lower()
        if not _HEX32.fullmatch(lowered):
            what = "an article's revision" if scope == "fingerprint" else "a dedup cluster_id"
            return FieldError("/value", f"A {scope} is {what}: 32 hexadecimal digits.", "pattern")
        return lowered
    if scope == "source":
        return text
    return FieldError("/scope", f"{scope!r} is not a scope; use one of {', '.join(SCOPES)}.", "enum")


def _domain(text: str) -> str | FieldError:
    lowered = text.lower()
    if "://" in lowered:  # someone pasted a URL: its host is what they mean
        canonical = canonicalize(text)
    else:
        bare = lowered.removeprefix("*.").strip(".")
        if any(ch in bare for ch in "/?#@ ") or (":" in bare and not bare.startswith("[")):
            return FieldError("/value", "A domain is a host name such as example.com, without path or port.", "format")
        canonical = canonicalize(f"http://{bare}/")
    if isinstance(canonical, BadUrl):
        return FieldError("/value", f"The domain is not usable: {canonical.reason.replace('its host', 'it')}.")
    host = canonical.host
    if host.startswith("[") or _is_ip(host):
        return host
    if "." not in host or _public_suffix(host):
        return FieldError(
            "/value",
            f"{host} is a public suffix or a bare name; a takedown on it would cover every site under it.",
            "format",
        )
    return host


@functools.cache
def _suffixes() -> tldextract.TLDExtract:
    # The snapshot shipped inside tldextract, as normalize uses it: no fetch, no disk cache, ICANN suffixes only.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=False)


def _public_suffix(host: str) -> bool:
    """Whether `host` is itself a public suffix (co.uk, com), so that nothing registrable is under it."""
    return bool(_suffixes()(host).suffix == host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time with a zone (Z or an offset), in UTC; None when it is not one."""
    if not isinstance(text, str) or "T" not in text.upper():
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without a zone means different instants to different producers
    return parsed.astimezone(UTC)


# --- checking a record -----------------------------------------------------------------------------------


def check(record: Any) -> list[FieldError]:
    """Every problem of a takedown.v1 record: schema violations first (in schema order), then the rules a
    schema cannot say (times readable and zoned, expiry after the request, value valid for its scope)."""
    schema_errors, rule_errors = _problems(record)
    return schema_errors + [e for _, e in rule_errors]


def _problems(record: Any) -> tuple[list[FieldError], list[tuple[str, FieldError]]]:
    """(schema violations, [(refusal code, error)] of the rules beyond the schema)."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for err in validator(SCHEMA).iter_errors(record):
        error = _field_error(err)
        if error.pointer in seen:
            continue  # one message per field is what a form can show
        seen.add(error.pointer)
        errors.append(error)
    rules: list[tuple[str, FieldError]] = []
    if not isinstance(record, dict):
        return errors, rules
    times: dict[str, datetime] = {}
    for name in ("requested_at", "expires_at", "lifted_at"):
        value = record.get(name)
        if not isinstance(value, str) or f"/{name}" in seen:
            continue
        parsed = parse_time(value)
        if parsed is None:
            message = f"{name} is not an RFC 3339 time with a zone: {value[:40]!r}."
            rules.append(("bad_time", FieldError(f"/{name}", message, "format")))
        else:
            times[name] = parsed
    if "expires_at" in times and "requested_at" in times and times["expires_at"] <= times["requested_at"]:
        rules.append(("bad_expiry", FieldError("/expires_at", "expires_at must be after requested_at.", "minimum")))
    scope, value = record.get("scope"), record.get("value")
    if scope in SCOPES and isinstance(value, str) and "/value" not in seen:
        normal = normalize_value(scope, value)
        if isinstance(normal, FieldError):
            rules.append(("bad_value", normal))
    return errors, rules


def normalized(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its value in normal form (call after `check` found nothing)."""
    normal = normalize_value(record["scope"], record["value"])
    if isinstance(normal, FieldError) or normal == record["value"]:
        return record
    return {**record, "value": normal}


def validate(payload: bytes | None, *, max_bytes: int, key: bytes | None = None) -> dict[str, Any] | Refusal:
    """A record read from `takedowns` → the takedown.v1 record (value normalised) or a Refusal. Never raises.

    `key`, when given, must be the record's takedown_id (the topic is compacted by key)."""
    if payload is None:
        return Refusal("tombstone", "", "The record has no value (a tombstone): a takedown ends with a lift.")
    if len(payload) > max_bytes:
        return Refusal("too_large", "", f"The record is {len(payload)} bytes, over the limit of {max_bytes} bytes.")
    data = payload[len(_UTF8_BOM) :] if payload.startswith(_UTF8_BOM) else payload
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refusal("invalid_utf8", "", f"The record is not UTF-8 (byte {exc.start}).")
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Refusal("invalid_json", "", _sentence(f"The record is not JSON: {exc}"))
    schema_errors, rule_errors = _problems(record)
    if schema_errors:
        first = schema_errors[0]
        return Refusal("schema_violation", first.pointer, first.message, first.keyword)
    if rule_errors:
        code, first = rule_errors[0]
        return Refusal(code, first.pointer, first.message, first.keyword)
    assert isinstance(record, dict)
    if key is not None and key != record["takedown_id"].encode("utf-8"):
        return Refusal(
            "key_mismatch",
            "/takedown_id",
            f"The record's key {key[:80].decode('utf-8', 'replace')!r} is not its takedown_id "
            f"{record['takedown_id']!r}; the topic is compacted by that id.",
        )
    return normalized(record)


# --- building requests and lifts -------------------------------------------------------------------------


def new_id() -> str:
    return "td-" + uuid.uuid4().hex


def new_request(
    scope: str,
    value: str,
    reason: str,
    requested_by: str,
    *,
    now: datetime,
    expires_at: datetime | str | None = None,
    expires_in: timedelta | str | None = None,
    takedown_id: str | None = None,
    republish_on_lift: bool = True,
    restriction: str = "removal",
    ground: str | None = None,
    legal_basis: str | None = None,
    terms_clause: str | None = None,
    territorial_scope: list[str] | str | None = None,
    explanation: str | None = None,
    automated: bool = False,
    redress: str | None = None,
    make_id: Callable[[], str] = new_id,
) -> dict[str, Any] | list[FieldError]:
    """A takedown.v1 request record, or every problem with its fields (JSON pointers).

    `takedown_id` and `requested_at` (= `now`) are assigned here; the expiry is `expires_at` (a time after
    `now`) or `now + expires_in` (`90d`, `12h`, a timedelta). The statement of reasons holds `restriction`,
    `ground` (legal → `legal_basis` required; terms → `terms_clause` required), `territorial_scope` (codes
    or a comma-separated string; default worldwide), `explanation` (default: the reason), `automated`,
    `redress`."""
    errors: list[FieldError] = []
    if not isinstance(reason, str) or not reason.strip():
        errors.append(FieldError("/reason", "Say why: the reason is required.", "minLength"))
    expiry = _expiry(now, expires_at, expires_in, errors)
    normal: str | FieldError = value
    if scope in SCOPES:
        normal = normalize_value(scope, value)
        if isinstance(normal, FieldError):
            errors.append(normal)
            normal = value
    statement: dict[str, Any] = {
        "restriction": restriction,
        "territorial_scope": _territories(territorial_scope),
        "automated": automated,
    }
    optional = {
        "ground": ground,
        "legal_basis": legal_basis,
        "terms_clause": terms_clause,
        "explanation": explanation if explanation is not None else (reason if isinstance(reason, str) else None),
        "redress": redress,
    }
    statement.update({k: v.strip() if isinstance(v, str) else v for k, v in optional.items() if v is not None})
    record: dict[str, Any] = {
        "schema": "takedown.v1",
        "takedown_id": takedown_id.strip() if isinstance(takedown_id, str) and takedown_id.strip() else make_id(),
        "action": "request",
        "scope": scope,
        "value": normal,
        "requested_by": requested_by.strip() if isinstance(requested_by, str) else requested_by,
        "reason": reason.strip() if isinstance(reason, str) else reason,
        "requested_at": rfc3339(now),
        "expires_at": rfc3339(expiry) if expiry is not None else None,
        "republish_on_lift": republish_on_lift,
        "statement": statement,
    }
    known = {e.pointer for e in errors}
    errors.extend(e for e in check(record) if e.pointer not in known and not e.pointer.startswith("/value"))
    if errors:
        return errors
    return record


def _expiry(
    now: datetime, expires_at: datetime | str | None, expires_in: timedelta | str | None, errors: list[FieldError]
) -> datetime | None:
    if expires_at not in (None, "") and expires_in not in (None, ""):
        errors.append(FieldError("/expires_at", "Give expires_at or expires_in, not both."))
        return None
    when: datetime | None = None
    if isinstance(expires_in, str) and expires_in.strip():
        try:
            when = now + parse_duration(expires_in)
        except ValueError as exc:
            errors.append(FieldError("/expires_in", _sentence(str(exc).capitalize()), "format"))
            return None
    elif isinstance(expires_in, timedelta):
        if expires_in <= timedelta(0):
            errors.append(FieldError("/expires_in", "expires_in must be positive.", "minimum"))
            return None
        when = now + expires_in
    elif isinstance(expires_at, datetime):
        when = expires_at if expires_at.tzinfo is not None else None
        if when is None:
            errors.append(FieldError("/expires_at", "expires_at needs a time zone.", "format"))
            return None
    elif isinstance(expires_at, str) and expires_at.strip():
        when = parse_time(expires_at.strip())
        if when is None:
            errors.append(
                FieldError("/expires_at", "expires_at is not an RFC 3339 time with a zone, e.g. 2025-12-31T00:00:00Z.")
            )
            return None
    if when is not None and when <= now:
        errors.append(FieldError("/expires_at", f"The expiry {rfc3339(when)} is in the past.", "minimum"))
        return None
    return when.astimezone(UTC) if when is not None else None


def _territories(value: list[str] | str | None) -> list[str] | Any:
    if value is None or value == "" or value == []:
        return ["worldwide"]
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return items  # the schema says what is wrong
    out = []
    for item in items:
        if not isinstance(item, str):
            out.append(item)
            continue
        text = item.strip()
        out.append("worldwide" if text.lower() == "worldwide" else text.upper())
    return [t for t in out if t != ""]


def request_from_body(
    body: Any, *, now: datetime, make_id: Callable[[], str] = new_id
) -> dict[str, Any] | list[FieldError]:
    """A JSON body (HTTP POST /takedowns, the desk form) → a request record, or every field error.

    Fields: scope, value, reason, requested_by (required); takedown_id, expires_at | expires_in,
    republish_on_lift, statement {restriction, ground, legal_basis, terms_clause, territorial_scope,
    explanation, automated, redress}. Unknown fields and those the server assigns are errors."""
    if not isinstance(body, dict):
        return [FieldError("", "The body must be a JSON object.", "type")]
    errors: list[FieldError] = []
    for name in body:
        if name in _SERVER_FIELDS:
            errors.append(FieldError(f"/{name}", f"{name} is assigned by the server; leave it out.", "readOnly"))
        elif name not in _BODY_FIELDS:
            message = f"{name} is not a field of a takedown request."
            errors.append(FieldError(f"/{name}", message, "additionalProperties"))
    for name in ("scope", "value", "reason", "requested_by"):
        if name not in body or body[name] is None:
            errors.append(FieldError(f"/{name}", f"{name} is required.", "required"))
        elif not isinstance(body[name], str):
            errors.append(FieldError(f"/{name}", f"{name} must be a string.", "type"))
    for name in ("takedown_id", "expires_at", "expires_in"):
        if body.get(name) is not None and not isinstance(body[name], str):
            errors.append(FieldError(f"/{name}", f"{name} must be a string.", "type"))
    if "republish_on_lift" in body and not isinstance(body["republish_on_lift"], bool):
        errors.append(FieldError("/republish_on_lift", "republish_on_lift must be true or false.", "type"))
    statement = body.get("statement") or {}
    if not isinstance(statement, dict):
        errors.append(FieldError("/statement", "statement must be an object.", "type"))
        statement = {}
    for name in statement:
        if name not in _STATEMENT_FIELDS:
            message = f"{name} is not a field of a statement."
            errors.append(FieldError(f"/statement/{name}", message, "additionalProperties"))
    if errors:
        return errors
    kwargs = {k: statement[k] for k in _STATEMENT_FIELDS if statement.get(k) is not None}
    return new_request(
        body["scope"],
        body["value"],
        body["reason"],
        body["requested_by"],
        now=now,
        expires_at=body.get("expires_at"),
        expires_in=body.get("expires_in"),
        takedown_id=body.get("takedown_id"),
        republish_on_lift=body.get("republish_on_lift", True),
        make_id=make_id,
        **kwargs,
    )


def lift_request(current: Any, reason: str, by: str, *, now: datetime) -> dict[str, Any] | list[FieldError]:
    """The lift of `current` (the takedown's latest record): it repeats the request's fields, so the compacted
    topic keeps the whole story, and adds action lift, lifted_at (= now), lifted_by and lift_reason."""
    if not isinstance(current, dict) or current.get("schema") != "takedown.v1":
        return [FieldError("", "There is no takedown record to lift.", "required")]
    errors: list[FieldError] = []
    if current.get("action") == "lift":
        errors.append(FieldError("/action", f"The takedown was already lifted at {current.get('lifted_at')}.", "const"))
    if not isinstance(reason, str) or not reason.strip():
        errors.append(FieldError("/lift_reason", "Say why the takedown is lifted.", "minLength"))
    if not isinstance(by, str) or not by.strip():
        errors.append(FieldError("/lifted_by", "Say who lifts the takedown.", "minLength"))
    if errors:
        return errors
    record = {
        **current,
        "action": "lift",
        "lifted_at": rfc3339(now),
        "lifted_by": by.strip(),
        "lift_reason": reason.strip(),
    }
    problems = check(record)
    return problems or record


def is_active(record: dict[str, Any], now: datetime) -> bool:
    """Whether a takedown's latest record still blocks at `now`, as a reader of the compacted topic sees it
    (the registry's `expired` is the same rule applied at its ticks)."""
    if record.get("action") != "request":
        return False
    expiry = parse_time(record.get("expires_at"))
    return expiry is None or expiry > now


# --- ticks -----------------------------------------------------------------------------------------------


def tick_record(now_ms: int) -> bytes:
    """The value of a tick (key TICK_KEY) the tick service sends to the registry when an expiry is due."""
    return orjson.dumps({"tick_ms": int(now_ms)})


def tick(now_ms: int) -> tuple[bytes, bytes, int]:
    """(key, value, partition) of a tick into `takedowns` (`streams.ticks.Tick.record`)."""
    return TICK_KEY, tick_record(now_ms), 0


def tick_ms(key: bytes | None, payload: bytes | None) -> int | None:
    """The tick's time (ms since the epoch) when the record is a tick, else None."""
    if key != TICK_KEY or payload is None:
        return None
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    ms = value.get("tick_ms") if isinstance(value, dict) else None
    return ms if isinstance(ms, int) and not isinstance(ms, bool) else None


# --- helpers ---------------------------------------------------------------------------------------------


def payload_b64(payload: bytes | None, limit: int) -> str:
    return base64.b64encode((payload or b"")[:limit]).decode("ascii")


def _field_error(err: Any) -> FieldError:
    """A schema error as a form shows it: a missing field names its own pointer, an enum lists its options."""
    pointer, keyword, kind = _pointer(err.instance_path), _keyword(err), getattr(err, "kind", None)
    name = pointer.rsplit("/", 1)[-1] or "the record"
    prop = getattr(kind, "property", None)
    if keyword == "required" and isinstance(prop, str):
        return FieldError(f"{pointer}/{_escape(prop)}", f"{prop} is required.", keyword)
    options = getattr(kind, "options", None)
    if keyword == "enum" and isinstance(options, list):
        allowed = ", ".join("null" if o is None else str(o) for o in options)
        try:
            value = orjson.dumps(getattr(err, "instance", None)).decode()[:80]
        except TypeError:
            value = "that"
        return FieldError(pointer, _sentence(f"{name} must be one of {allowed}, not {value}"), keyword)
    return FieldError(pointer, _sentence(f"{_where(pointer)} {err.message}"), keyword)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _pointer(path: Any) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def _keyword(err: Any) -> str:
    for seg in reversed(list(getattr(err, "schema_path", []) or [])):
        if isinstance(seg, str):
            return seg
    return ""


def _where(pointer: str) -> str:
    return f"{pointer[1:]}:" if pointer else "The record:"


def _sentence(text: str) -> str:
    text = text.strip()
    if len(text) > 300:
        text = text[:297] + "..."
    return text if text.endswith((".", "?", "!")) else text + "."


__all__ = [
    "SCOPES",
    "TICK_KEY",
    "FieldError",
    "Refusal",
    "check",
    "is_active",
    "lift_request",
    "new_id",
    "new_request",
    "normalize_value",
    "parse_duration",
    "parse_time",
    "request_from_body",
    "tick_ms",
    "tick_record",
    "validate",
]
