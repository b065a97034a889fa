"""The one registry of topics: name, partitions, cleanup, retention, key and the schema of each value."""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import Settings

DAY_MS = 24 * 3600 * 1000
MIB = 1024 * 1024
# The largest request a client sends or fetches: above the largest topic's max.message.bytes (articles.raw,
# 10 MiB), so that oversized events arrive and are refused with a reason instead of failing at the producer.
MAX_REQUEST_BYTES = 11 * MIB


@dataclass(frozen=True)
class Topic:
    """A logical topic. `partitions=None` means the configured STREAMS_TOPIC_PARTITIONS."""

    name: str
    schema: str | None  # file in schemas/ describing the value; None for internal topics of raw bytes
    key: str  # what the record key is, for producers and consumers
    description: str
    partitions: int | None = None
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS  # -1 keeps forever
    max_message_bytes: int = 4 * MIB
    internal: bool = False
    extra_config: tuple[tuple[str, str], ...] = ()  # further topic configs (e.g. compaction pace)

    def physical(self, settings: Settings) -> str:
        return settings.topic(self.name)

    def partition_count(self, settings: Settings) -> int:
        return self.partitions if self.partitions is not None else settings.topic_partitions

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
            **dict(self.extra_config),
        }


RAW = Topic(
    "articles.raw",
    "raw_article.v1.json",
    "the article URL (recommended; any key is accepted, the pipeline re-keys by article_id)",
    "Raw article events from scrapers, feed pollers and partner pushes.",
    max_message_bytes=10 * MIB,  # big enough that oversized bodies arrive and are refused with a reason
)
NORMALIZED = Topic("articles.normalized", "article.v1.json", "article_id", "Validated, canonicalised, clean articles.")
UNIQUE = Topic(
    "articles.unique",
    "article.v1.json",
    "article_id",
    "First-seen articles and updates (new revisions); duplicates removed.",
    retention_ms=30 * DAY_MS,
)
ENRICHED = Topic(
    "articles.enriched",
    "article.v1.json",
    "article_id",
    "Articles with language, entities, keywords and summary.",
    retention_ms=30 * DAY_MS,
)
PUBLISHED = Topic(
    "articles.published",
    "article.v1.json",
    "article_id",
    "Rights-cleared articles for downstream consumers.",
    retention_ms=90 * DAY_MS,
)
DUPLICATES = Topic(
    "articles.duplicates",
    "duplicate.v1.json",
    "article_id of the copy",
    "Dropped copies, each naming the article it duplicates.",
    retention_ms=30 * DAY_MS,
)
REJECTED = Topic(
    "articles.rejected",
    "rejection.v1.json",
    "the original record's key",
    "Refused events with a machine-readable reason and the original payload.",
    retention_ms=30 * DAY_MS,
)
RETRACTIONS = Topic(
    "articles.retractions",
    "retraction.v1.json",
    "article_id",
    "Published articles that consumers must remove.",
    retention_ms=365 * DAY_MS,
)
TAKEDOWNS = Topic(
    "takedowns",
    "takedown.v1.json",
    "takedown_id",
    "Takedown requests and lifts; compacted, the latest record per id is its state.",
    partitions=1,  # read whole by every takedown worker (a global table)
    cleanup_policy="compact",
    retention_ms=-1,
)
TAKEDOWNS_AUDIT = Topic(
    "takedowns.audit",
    "audit_entry.v1.json",
    "takedown_id",
    "Every takedown action: who asked, when, what was removed. Kept forever.",
    partitions=1,
    retention_ms=-1,
)
TAKEDOWNS_FANOUT = Topic(
    "takedowns.fanout",
    "takedown_fanout.v1.json",
    "takedown_id (the partition is explicit: every change goes to every partition)",
    "Internal: each takedown change copied to every partition, co-partitioned with articles.enriched, so that "
    "each partition of the takedown stage applies it to its own state in its own transaction.",
    internal=True,
)
DEDUP_SEQUENCED = Topic(
    "articles.dedup-sequenced",
    "article.v1.json",
    "article_id",
    "Internal: every normalized article in one sequence, so dedup sees copies whichever partition they came on.",
    partitions=1,
    internal=True,
)
DEDUP_SNAPSHOTS = Topic(
    "articles.dedup-snapshots",
    None,
    '"manifest" (the latest snapshot: its changelog offsets and chunk keys), or "<snapshot id>/<n>" (a chunk)',
    "Internal: snapshots of dedup's three tables, so a worker with an empty state dir loads them in seconds "
    "and replays only the changelog records written after the latest one (streams.agents.dedup_snapshots).",
    partitions=1,
    cleanup_policy="compact",
    retention_ms=-1,
    # 10 MiB, as articles.raw: under MAX_REQUEST_BYTES (11 MiB), which every producer and fetch allows; the
    # writer's chunks are a few MiB
    max_message_bytes=10 * MIB,
    internal=True,
    # An old snapshot's chunks are tombstoned once the next one is whole: short segments and eager cleaning
    # keep the topic near one snapshot's size (about 530 MB for 1M articles) instead of every one written.
    extra_config=(
        ("segment.ms", str(10 * 60 * 1000)),
        ("delete.retention.ms", str(10 * 60 * 1000)),
        ("min.cleanable.dirty.ratio", "0.1"),
    ),
)

ALL: tuple[Topic, ...] = (
    RAW,
    NORMALIZED,
    UNIQUE,
    ENRICHED,
    PUBLISHED,
    DUPLICATES,
    REJECTED,
    RETRACTIONS,
    TAKEDOWNS,
    TAKEDOWNS_AUDIT,
    TAKEDOWNS_FANOUT,
    DEDUP_SEQUENCED,
    DEDUP_SNAPSHOTS,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL}
# The largest request a client makes: producers' max_request_size and consumers' fetch sizes. One raw event may
# be up to articles.raw's max.message.bytes (10 MiB, so that oversized bodies arrive and get a reason), plus
# the request's own framing.
MAX_REQUEST_BYTES = max(t.max_message_bytes for t in ALL) + MIB


def get(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown topic {name!r}; known topics: {known}") from None


@dataclass(frozen=True)
class Changelog:
    """A stage's Faust table and its changelog topic (created by Faust, compacted, named
    <prefix><app_id>-<table>-changelog), with the settings the table needs on top of compaction."""

    table: str
    description: str
    partitions: int | None = None  # None: the configured STREAMS_TOPIC_PARTITIONS (co-partitioned with its input)
    config: tuple[tuple[str, str], ...] = ()

    def partition_count(self, settings: Settings) -> int:
        return self.partitions if self.partitions is not None else settings.topic_partitions

    def topic_config(self) -> dict[str, str]:
        return dict(self.config)


# A held article writes two changelog records (set, then tombstone) within seconds: short segments, quick
# cleaning and a short tombstone retention keep the replay of this changelog to what is held now, instead of
# a week of tombstones (Kafka's defaults: 7-day segments, 24 h delete.retention.ms, dirty ratio 0.5).
_SHORT_LIVED = (
    ("segment.ms", str(10 * 60 * 1000)),
    ("delete.retention.ms", str(10 * 60 * 1000)),
    ("min.cleanable.dirty.ratio", "0.1"),
    ("max.message.bytes", str(DEDUP_SEQUENCED.max_message_bytes)),
)
CHANGELOGS: tuple[Changelog, ...] = (
    Changelog("dedup-articles", "article_id -> dedup entry (signature, revision, cluster)", partitions=1),
    Changelog("dedup-content", "revision (text hash) -> article_id", partitions=1),
    Changelog(
        "dedup-held", "sequence offset -> article waiting in the reorder hold", partitions=1, config=_SHORT_LIVED
    ),
    Changelog("takedown-registry", "takedown_id -> latest accepted record and status", partitions=1),
    Changelog("takedown-applied", "partition/takedown_id -> the takedown that partition applied"),
    Changelog("takedown-articles", "article_id -> what the partition published or withheld (no text)"),
)
CHANGELOG_BY_TABLE: dict[str, Changelog] = {c.table: c for c in CHANGELOGS}
