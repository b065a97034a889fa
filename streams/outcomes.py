"""The values a stage returns; the agent routes each kind to its topic. Bad data is an outcome, never an exception.

A stage returns one outcome or a list of them for one input record (takedown answers one request with a
retraction per article it covers, plus audit entries). Each type names one destination: the agent's route
table (`streams.agents.runner.Route`) says which topic, key and value each type becomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Normalized:
    """normalize accepted the event; `article` is an article.v1 document."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A stage refused the event. `reason` is one of rejection.v1's codes; `details` holds pointer, limit...

    `article` is set when what is refused is not the record the stage read but an article it held (dedup's
    reorder hold releases articles while it reads another record): that article is then the payload kept."""

    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    article: dict[str, Any] | None = None


@dataclass(frozen=True)
class Unique:
    """dedup let the article through: first seen, or an update (`article["dedup"]["is_update"]`)."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """dedup dropped the article; `record` is a duplicate.v1 document."""

    record: dict[str, Any]


@dataclass(frozen=True)
class Enriched:
    """enrich added `article["enrichment"]`; the article goes on to the takedown stage."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Published:
    """takedown found no active takedown covering the article: it goes to articles.published.

    `article["takedown"]["reinstated"]` is true when it was blocked or retracted before and a lift or an
    expiry lets it out again."""

    article: dict[str, Any]


@dataclass(frozen=True)
class Retracted:
    """An already-published article that a takedown now covers; `record` is a retraction.v1 document."""

    record: dict[str, Any]


@dataclass(frozen=True)
class Audited:
    """One takedown action (requested, refused, blocked, retracted, reinstated, lifted, expired): audit_entry.v1."""

    record: dict[str, Any]


@dataclass(frozen=True)
class FannedOut:
    """A takedown action copied to one partition of the internal fan-out topic, so that every partition's
    state applies it in its own transaction. `partition` is explicit; `record` is what that partition reads."""

    partition: int
    key: str
    record: dict[str, Any]


NormalizeOutcome = Normalized | Rejected
DedupOutcome = Unique | Duplicate
Outcome = Normalized | Rejected | Unique | Duplicate | Enriched | Published | Retracted | Audited | FannedOut
