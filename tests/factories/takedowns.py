"""Factories for takedown tests: enriched articles, request records, and a small in-memory topology that
wires the registry and the partition stage the way the agents do (fan-out routed by partition, an
articles.enriched log per partition that `fetch` re-reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from streams.codec import short_hash
from streams.outcomes import Audited, FannedOut, Published, Rejected, Retracted
from streams.schemas import first_violation
from streams.settings import Settings
from streams.stages.takedown import TakedownConfig, TakedownRegistry, TakedownStage, new_request, tick_record
from streams.stages.takedown.requests import TICK_KEY, lift_request
from tests.factories import stories

T0 = stories.T0
NOW = T0 + timedelta(days=1)


def config(**overrides: Any) -> TakedownConfig:
    """The production defaults (Settings()), with overrides of Settings fields where a test says why."""
    return TakedownConfig.from_settings(Settings(**overrides))


def enriched(
    seed: int,
    *,
    url: str | None = None,
    source: str = "example-news",
    source_name: str | None = None,
    cluster: str | None = None,
    text: str | None = None,
    raw_offset: int | None = None,
) -> dict[str, Any]:
    """An article as articles.enriched carries it: article.v1 with dedup and origin."""
    link = url or f"https://www.{source}.com/news/{seed}"
    art = stories.article(seed, url=link, source=source, text=text)
    if source_name is not None:
        art["source"]["name"] = source_name
    art["domain"] = ".".join(art["host"].split(".")[-2:])
    art["dedup"] = {
        "cluster_id": cluster or art["article_id"],
        "revision_number": 1,
        "previous_revision": None,
        "is_update": False,
    }
    art["origin"] = {
        "topic": "articles.raw",
        "partition": 0,
        "offset": seed if raw_offset is None else raw_offset,
        "timestamp_ms": 1754983862000,
    }
    art["enrichment"] = {}
    art["pipeline"] = {"normalize": "1", "dedup": "1", "enrich": "1"}
    return art


def revised(article: dict[str, Any], text: str) -> dict[str, Any]:
    """A new revision of `article` (same URL and id, new text)."""
    out = dict(article)
    out["text"] = text
    out["revision"] = short_hash(text)
    out["dedup"] = {
        **article["dedup"],
        "revision_number": 2,
        "previous_revision": article["revision"],
        "is_update": True,
    }
    return out


def request(scope: str, value: str, *, now: datetime = NOW, tid: str | None = None, **kw: Any) -> dict[str, Any]:
    """A valid request record (legal ground), built by the code the CLI and the desk use."""
    kw.setdefault("ground", "legal")
    kw.setdefault("legal_basis", "Copyright")
    record = new_request(scope, value, kw.pop("reason", "Copyright claim"), kw.pop("by", "legal@rights.example"),
                         now=now, takedown_id=tid, **kw)  # fmt: skip
    assert isinstance(record, dict), record
    return record


def lift(record: dict[str, Any], *, now: datetime, reason: str = "Licence agreed") -> dict[str, Any]:
    out = lift_request(record, reason, "desk@aggregator.example", now=now)
    assert isinstance(out, dict), out
    return out


def encode(record: Any) -> bytes:
    return orjson.dumps(record)


SCHEMA_OF = {Published: "article.v1.json", Retracted: "retraction.v1.json", Audited: "audit_entry.v1.json"}


def assert_valid(outcomes: list[Any]) -> None:
    """Every record an outcome carries validates against its schema file."""
    for o in outcomes:
        if isinstance(o, FannedOut):
            assert first_violation("takedown_fanout.v1.json", o.record) is None, o.record
            assert first_violation("takedown.v1.json", o.record["takedown"]) is None, o.record
            continue
        if isinstance(o, Rejected):
            continue
        payload = o.article if isinstance(o, Published) else o.record
        violation = first_violation(SCHEMA_OF[type(o)], payload)
        assert violation is None, (violation, payload)


@dataclass
class Topology:
    """The registry and a TakedownStage wired with dicts for tables, as the lead's agents wire them."""

    partitions: int = 2
    cfg: TakedownConfig = field(default_factory=config)
    registry_table: dict[str, Any] = field(default_factory=dict)
    takedowns: dict[str, Any] = field(default_factory=dict)
    articles: dict[str, Any] = field(default_factory=dict)
    log: dict[int, list[dict[str, Any] | None]] = field(default_factory=dict)  # articles.enriched per partition
    offset: int = 0  # next offset of the takedowns topic
    outcomes: list[Any] = field(default_factory=list)  # everything emitted, in order

    def __post_init__(self) -> None:
        self.registry = TakedownRegistry(self.cfg, self.registry_table, partitions=self.partitions)
        self.stage = TakedownStage(self.cfg, self.takedowns, self.articles)
        for p in range(self.partitions):
            self.log.setdefault(p, [])

    def partition_of(self, article_id: str) -> int:
        return int(article_id, 16) % self.partitions

    async def fetch(self, partition: int, offset: int) -> dict[str, Any] | None:
        records = self.log.get(partition, [])
        return records[offset] if 0 <= offset < len(records) else None

    def expire_log(self) -> None:
        """articles.enriched's retention removed every record."""
        for p in self.log:
            self.log[p] = [None] * len(self.log[p])

    def article(self, art: dict[str, Any], *, now: datetime = NOW) -> list[Any]:
        p = self.partition_of(art["article_id"])
        self.log[p].append(art)
        out = self.stage.on_article(art, partition=p, offset=len(self.log[p]) - 1, now=now)
        self.outcomes.extend(out)
        return out

    async def send(self, record: Any, *, now: datetime = NOW, key: bytes | None = None) -> list[Any]:
        """A record on `takedowns` (a dict is encoded; bytes go as they are); returns the registry's outcomes
        and what the partitions did with the fan-out."""
        payload = record if isinstance(record, bytes) or record is None else encode(record)
        if key is None and isinstance(record, dict) and isinstance(record.get("takedown_id"), str):
            key = record["takedown_id"].encode()
        origin = {"topic": "takedowns", "partition": 0, "offset": self.offset, "timestamp_ms": None}
        self.offset += 1
        out = self.registry.handle(key, payload, now=now, origin=origin)
        return await self._deliver(out, now)

    async def tick(self, now: datetime) -> list[Any]:
        ms = int(now.timestamp() * 1000)
        out = self.registry.handle(TICK_KEY, tick_record(ms), now=now)
        return await self._deliver(out, now)

    async def _deliver(self, out: list[Any], now: datetime) -> list[Any]:
        self.outcomes.extend(out)
        result = list(out)
        for o in out:
            if isinstance(o, FannedOut):
                done = await self.stage.on_fanout(o.record, partition=o.partition, now=now, fetch=self.fetch)
                self.outcomes.extend(done)
                result.extend(done)
        return result


def of(kind: type, outcomes: list[Any]) -> list[Any]:
    return [o for o in outcomes if isinstance(o, kind)]


def actions(outcomes: list[Any]) -> list[str]:
    return [o.record["action"] for o in outcomes if isinstance(o, Audited)]
