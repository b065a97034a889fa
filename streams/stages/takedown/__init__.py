"""Stage 4, takedown: the registry of requests (`registry`), each partition's blocking, retroactive
retraction and reinstatement (`stage`), what a takedown covers (`matching`), and the request-building code
that the CLI, the HTTP endpoint and the desk share (`requests`). No Kafka here: the agents are wiring."""

from streams.stages.takedown.config import TakedownConfig
from streams.stages.takedown.matching import ActiveIndex, ArticleIndex, Facts, covers, facts_of
from streams.stages.takedown.registry import TakedownRegistry
from streams.stages.takedown.requests import (
    SCOPES,
    TICK_KEY,
    FieldError,
    Refusal,
    check,
    is_active,
    lift_request,
    new_request,
    normalize_value,
    parse_duration,
    request_from_body,
    tick_ms,
    tick_record,
    validate,
)
from streams.stages.takedown.stage import Fetch, PartitionState, TakedownStage

__all__ = [
    "SCOPES",
    "TICK_KEY",
    "ActiveIndex",
    "ArticleIndex",
    "Facts",
    "Fetch",
    "FieldError",
    "PartitionState",
    "Refusal",
    "TakedownConfig",
    "TakedownRegistry",
    "TakedownStage",
    "check",
    "covers",
    "facts_of",
    "is_active",
    "lift_request",
    "new_request",
    "normalize_value",
    "parse_duration",
    "request_from_body",
    "tick_ms",
    "tick_record",
    "validate",
]
