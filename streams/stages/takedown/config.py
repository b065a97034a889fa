"""What the takedown stage needs from the settings (built only from `Settings`, no defaults of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TakedownConfig:
    """Retention of a partition's article record, the reinstatement window, and request limits."""

    published_retention_ms: int  # a published article is remembered this long (ms) for retroactive retraction
    published_max_entries: int  # per partition; the oldest leave first beyond it
    reinstate_window_ms: int  # a blocked or retracted article can be reinstated this long (ms) after it was held
    max_request_bytes: int  # larger takedown records are refused as too_large
    payload_limit_bytes: int  # a refused record's payload is kept up to this many bytes in its audit entry

    def __post_init__(self) -> None:
        if self.published_retention_ms <= 0 or self.reinstate_window_ms <= 0:
            raise ValueError("takedown retention and reinstatement window must be positive")
        if self.published_max_entries < 1 or self.max_request_bytes < 1 or self.payload_limit_bytes < 0:
            raise ValueError("takedown max entries and request limit must be positive")

    @classmethod
    def from_settings(cls, s: Any) -> TakedownConfig:
        return cls(
            published_retention_ms=int(float(s.takedown_published_retention_days) * DAY_MS),
            published_max_entries=int(s.takedown_published_max_entries),
            reinstate_window_ms=int(float(s.takedown_reinstate_window_days) * DAY_MS),
            max_request_bytes=int(s.takedown_max_request_bytes),
            payload_limit_bytes=int(s.reject_payload_limit_bytes),
        )
