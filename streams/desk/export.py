"""The transparency export: a period's audit as CSV rows, and the counts a transparency report needs.

    period("2025-08-01", "2025-08-31") -> [2025-08-01T00:00Z, 2025-09-01T00:00Z)   (both days included, UTC)
    audit_csv(view, entries) -> "at,action,takedown_id,scope,value,...\\r\\n2025-08-13T10:00:00Z,requested,..."
    counts_csv(counts, start, end) -> "section,key,value\\r\\nrequests_by_scope,domain,3\\r\\n..."

Titles and URLs come from the internet, and a spreadsheet runs a cell that starts with = + - @ as a formula:
such cells are written with a leading apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from streams.takedowns import TakedownView

AUDIT_COLUMNS = (
    "at",
    "action",
    "takedown_id",
    "scope",
    "value",
    "requested_by",
    "requested_at",
    "by",
    "reason",
    "restriction",
    "ground",
    "legal_basis",
    "terms_clause",
    "territorial_scope",
    "article_id",
    "canonical_url",
    "title",
    "audit_id",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_DAYS = 30


def parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """The days asked for (both included); missing or unreadable: the last 30 days up to today."""
    last = parse_day(end) or today
    first = parse_day(start) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
    return first, last


def bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 UTC, the day after last 00:00 UTC)."""
    return datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _write(rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


def audit_rows(view: TakedownView, entries: Iterable[dict[str, Any]]) -> list[list[Any]]:
    """One row per audit entry; the statement of reasons from the entry, else from its takedown's record."""
    rows = []
    for e in entries:
        record = view.records.get(str(e.get("takedown_id"))) or {}
        statement = e.get("statement") if isinstance(e.get("statement"), dict) else record.get("statement")
        statement = statement if isinstance(statement, dict) else {}
        merged = {
            **{k: record.get(k) for k in ("scope", "value", "requested_by", "requested_at", "reason")},
            **{k: v for k, v in e.items() if v is not None},
            **{k: statement.get(k) for k in ("restriction", "ground", "legal_basis", "terms_clause")},
            "territorial_scope": statement.get("territorial_scope"),
        }
        rows.append([merged.get(c) for c in AUDIT_COLUMNS])
    return rows


def audit_csv(view: TakedownView, entries: Iterable[dict[str, Any]]) -> str:
    return _write([AUDIT_COLUMNS, *audit_rows(view, entries)])


def counts_rows(counts: dict[str, Any], first: date, last: date) -> list[list[Any]]:
    rows: list[list[Any]] = [["period", "from", first.isoformat()], ["period", "to", last.isoformat()]]
    for section in ("requests_by_scope", "requests_by_ground", "actions"):
        rows.extend([section, key, n] for key, n in sorted(counts.get(section, {}).items()))
    median = counts.get("median_seconds_to_action")
    rows.append(["median_seconds_to_action", "", "" if median is None else round(float(median), 3)])
    return rows


def counts_csv(counts: dict[str, Any], first: date, last: date) -> str:
    return _write([("section", "key", "value"), *counts_rows(counts, first, last)])
