"""The dedup stage's configuration, built only from `streams.settings.Settings` (no defaults of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class DedupConfig:
    """Thresholds and bounds of the dedup stage (Settings.dedup_*, source_priority). Build it with
    `DedupConfig.from_settings(settings)`; tests that need another value say why and use `dataclasses.replace`."""

    threshold: float  # estimated Jaccard similarity at or above which a copy is a near duplicate
    containment_threshold: float  # ... or estimated containment (either direction) at or above this
    containment_min_similarity: float  # ... with a Jaccard similarity no lower than this
    window_days: float  # entries ingested longer ago than this (before the watermark) leave the index
    max_entries: int  # hard bound on the index; the oldest leave first
    num_perm: int  # MinHash permutations (values per signature)
    shingle_size: int  # words per shingle
    source_priority: tuple[str, ...]  # source ids/names; earlier wins ties on event time
    lsh_bands: int  # LSH bands (tables)
    lsh_rows: int  # signature values per band; lsh_bands * lsh_rows <= num_perm
    max_candidates: int  # LSH candidates verified per article at most (bounds latency on floods)
    reorder_hold_ms: int  # the reorder hold (ms); 0 decides each article on arrival

    def __post_init__(self) -> None:
        for name in ("threshold", "containment_threshold", "containment_min_similarity"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"dedup {name} must be in (0, 1], got {value}")
        if self.window_days <= 0 or self.max_entries < 1 or self.max_candidates < 1:
            raise ValueError("dedup window_days, max_entries and max_candidates must be positive")
        if self.num_perm < 1 or self.shingle_size < 1:
            raise ValueError("dedup num_perm and shingle_size must be positive")
        if self.lsh_bands < 1 or self.lsh_rows < 1 or self.lsh_bands * self.lsh_rows > self.num_perm:
            raise ValueError(
                f"dedup LSH needs bands * rows <= num_perm ({self.num_perm}), got {self.lsh_bands} x {self.lsh_rows}"
            )
        if self.reorder_hold_ms < 0:
            raise ValueError(f"the reorder hold must be >= 0 ms, got {self.reorder_hold_ms}")

    @classmethod
    def from_settings(cls, s: Any) -> DedupConfig:
        return cls(
            threshold=float(s.dedup_threshold),
            containment_threshold=float(s.dedup_containment_threshold),
            containment_min_similarity=float(s.dedup_containment_min_similarity),
            window_days=float(s.dedup_window_days),
            max_entries=int(s.dedup_max_entries),
            num_perm=int(s.dedup_num_perm),
            shingle_size=int(s.dedup_shingle_size),
            source_priority=tuple(s.source_priority_list),
            lsh_bands=int(s.dedup_lsh_bands),
            lsh_rows=int(s.dedup_lsh_rows),
            max_candidates=int(s.dedup_max_candidates),
            reorder_hold_ms=int(round(float(s.dedup_reorder_seconds) * 1000)),
        )

    @property
    def window_ms(self) -> int:
        return int(self.window_days * DAY_MS)
