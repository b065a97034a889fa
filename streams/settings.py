"""One settings object, read from STREAMS_* environment variables; every default works on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _default_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "article-streams")


@dataclass(frozen=True)
class Settings:
    """Every setting of the pipeline. `Settings.from_env()` reads STREAMS_<NAME> for each field."""

    # Kafka
    kafka_bootstrap: str = "localhost:9092"  # an existing cluster, or where the embedded broker listens
    topic_prefix: str = ""  # prepended to every topic and to the consumer group, e.g. "staging."
    topic_partitions: int = 4  # partitions of the article topics when `streams topics create` makes them
    topic_replication: int = 1
    app_id: str = "article-streams"  # consumer group id (the prefix is added)
    processing_guarantee: str = "exactly_once"  # or at_least_once
    session_timeout_seconds: float = 60.0  # a worker silent this long is dropped and its partitions move
    # Embedded broker (streams kafka start)
    kafka_home: str = field(default_factory=_default_cache)  # jar cache and broker data, outside the repo
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    # Worker
    stages: str = "all"  # comma-separated stage names, or all
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = "var"  # Faust table state (RocksDB) lives here
    store: str = "rocksdb"  # rocksdb or memory
    table_standby_replicas: int = 1
    log_level: str = "info"
    log_format: str = "json"  # json or text
    # normalize
    max_event_bytes: int = 2 * 1024 * 1024  # larger raw events are refused as too_large
    reject_payload_limit_bytes: int = 512 * 1024  # rejected payloads beyond this are kept truncated
    # dedup
    dedup_threshold: float = 0.6  # estimated Jaccard of word shingles at or above which a copy is near (BENCHMARKS.md)
    dedup_window_days: float = 30.0  # articles ingested longer ago than this leave the index
    dedup_max_entries: int = 3_000_000  # hard bound on the index: 30 days at 100k/day, ~270 B RAM each; oldest first
    dedup_num_perm: int = 64  # MinHash values per signature (16 LSH bands of 2 rows use 32 of them)
    dedup_shingle_size: int = 3
    dedup_reorder_seconds: float = 0.0  # hold before deciding, so copies arriving this close go in event-time order
    source_priority: str = ""  # comma-separated source ids/names, first wins ties on event time
    # dedup: containment and the compact index (issue 12; thresholds chosen in BENCHMARKS.md)
    dedup_containment_threshold: float = 0.7  # ... or this share of one text's shingles found in the other
    dedup_containment_min_similarity: float = 0.35  # ... with at least this Jaccard (a blurb is no copy of a long one)
    dedup_lsh_bands: int = 16  # LSH tables of the dedup index (about 11 bytes of RAM per article each)
    dedup_lsh_rows: int = 2  # values per band: 2 makes pairs with Jaccard 0.35 candidates 88% of the time, 0.5: 99%
    dedup_max_candidates: int = 256  # LSH candidates dedup screens per article at most (bounds latency on floods)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("STREAMS_" + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(f.type, raw, f.name)
        values.update(overrides)
        return cls(**values)

    def topic(self, logical: str) -> str:
        """The physical topic name for a logical one (the prefix applied)."""
        return self.topic_prefix + logical

    @property
    def group_id(self) -> str:
        return self.topic_prefix + self.app_id

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def source_priority_list(self) -> list[str]:
        return [s.strip() for s in self.source_priority.split(",") if s.strip()]

    def as_env_doc(self) -> list[tuple[str, str]]:
        """(variable, default) for every setting, for the README and `streams config`."""
        return [("STREAMS_" + f.name.upper(), str(getattr(self, f.name))) for f in fields(self)]


def _coerce(type_name: Any, raw: str, name: str) -> Any:
    t = str(type_name)
    try:
        if t == "int":
            return int(raw)
        if t == "float":
            return float(raw)
        if t == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
    except ValueError as exc:
        raise ValueError(f"STREAMS_{name.upper()}={raw!r} is not a valid {t}") from exc
    return raw
