"""The values a stage returns; the agent routes each kind to its topic. Bad data is an outcome, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Normalized:
    """normalize accepted the event; `article` is an article.v1 document."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A stage refused the event. `reason` is one of rejection.v1's codes; `details` holds pointer, limit..."""

    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unique:
    """dedup let the article through: first seen, or an update (`article["dedup"]["is_update"]`)."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """dedup dropped the article; `record` is a duplicate.v1 document."""

    record: dict[str, Any]


NormalizeOutcome = Normalized | Rejected
DedupOutcome = Unique | Duplicate
