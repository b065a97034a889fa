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

    def physical(self, settings: Settings) -> str:
        return settings.topic(self.name)

    def partition_count(self, settings: Settings) -> int:
        return self.partitions if self.partitions is not None else settings.topic_partitions

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
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
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL}


def get(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown topic {name!r}; known topics: {known}") from None
