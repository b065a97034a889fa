"""The desk's forms as request bodies: the filing form becomes the JSON body `request_from_body` checks, and
each `FieldError`'s JSON pointer finds the form field it belongs beside.

    form {"scope": "url", "value": "https://ex.com/a", "ground": "legal", "legal_basis": "", ...}
    -> body {"scope": "url", "value": "https://ex.com/a", "statement": {"ground": "legal", ...}}
    -> request_from_body(body) -> [FieldError("/statement/legal_basis", "...", "required")]
    -> errors_by_field -> {"legal_basis": ["..."]}

Empty fields are left out (the schema's defaults apply), so the desk makes exactly the records the CLI and
the HTTP API make for the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streams.stages.takedown.requests import FieldError

# form field -> JSON pointer of the body field it fills
TOP_FIELDS = ("scope", "value", "reason", "requested_by", "takedown_id", "expires_at", "expires_in")
STATEMENT_FIELDS = (
    "restriction",
    "ground",
    "legal_basis",
    "terms_clause",
    "territorial_scope",
    "explanation",
    "redress",
)
CHECKBOXES = {"republish_on_lift": "/republish_on_lift", "automated": "/statement/automated"}
POINTERS = {
    **{name: f"/{name}" for name in TOP_FIELDS},
    **{name: f"/statement/{name}" for name in STATEMENT_FIELDS},
    **CHECKBOXES,
}
LIFT_POINTERS = {"lift_reason": "/lift_reason", "lifted_by": "/lifted_by"}
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def utc_from_local_input(text: str) -> str:
    """A browser's `datetime-local` value has no zone; the form says its times are UTC, so add Z."""
    text = text.strip()
    if _LOCAL_TIME.fullmatch(text):
        return (text if text.count(":") == 2 else text + ":00") + "Z"
    return text


def request_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The filing form (its field names are POINTERS' keys) as a `request_from_body` body."""
    body: dict[str, Any] = {}
    for name in TOP_FIELDS:
        value = (form.get(name) or "").strip()
        if name == "expires_at":
            value = utc_from_local_input(value)
        if value or name in ("scope", "value", "reason", "requested_by"):
            body[name] = value
    # An unchecked box sends nothing; the form shows republish checked by default, so its absence means no.
    body["republish_on_lift"] = form.get("republish_on_lift") == "on"
    statement: dict[str, Any] = {}
    for name in STATEMENT_FIELDS:
        value = (form.get(name) or "").strip()
        if value:
            statement[name] = value
    statement["automated"] = form.get("automated") == "on"
    body["statement"] = statement
    return body


def errors_by_field(errors: list[FieldError], pointers: Mapping[str, str] = POINTERS) -> dict[str, list[str]]:
    """{form field: [messages]} for every error whose pointer is a field's (or inside one, such as
    /statement/territorial_scope/1); the rest go under "" (shown above the form)."""
    out: dict[str, list[str]] = {}
    for error in errors:
        field = ""
        for name, pointer in pointers.items():
            if error.pointer == pointer or error.pointer.startswith(pointer + "/"):
                field = name
                break
        out.setdefault(field, []).append(error.message)
    return out
