"""The takedown agents: takedowns -> registry -> takedowns.fanout; articles.enriched + takedowns.fanout ->
articles.published | articles.retractions | takedowns.audit (wiring only; the rules are in
`streams.stages.takedown`).

The registry reads the single partition of `takedowns` and copies every change to every partition of the
fan-out topic, which is co-partitioned with articles.enriched: partition p of the takedown stage reads
articles.enriched p and takedowns.fanout p as one stream, so a takedown reaches every partition's record of
what it published, and each partition applies it in its own transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import TP
from mode import Service

from streams import eos, topics
from streams.agents import runner
from streams.agents.runner import Input, Route, article_of
from streams.kafka.reader import RecordReader
from streams.outcomes import Audited, FannedOut, Published, Rejected, Retracted
from streams.stages.takedown import TakedownConfig, TakedownRegistry, TakedownStage
from streams.stages.takedown import requests as takedown_requests
from streams.stages.takedown.requests import parse_time, tick_ms
from streams.takedown_api import TakedownApi
from streams.ticks import Tick

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "takedown"
log = logging.getLogger("streams.takedown")


def register(p: Pipeline) -> None:
    s, m, app = p.settings, p.metrics, p.app
    config = TakedownConfig.from_settings(s)
    partitions = topics.TAKEDOWNS_FANOUT.partition_count(s)
    registry_table = p.table("takedown-registry")
    applied, articles = p.table("takedown-applied"), p.table("takedown-articles")
    registry = TakedownRegistry(config, registry_table, partitions=partitions)
    stage = TakedownStage(config, applied, articles)
    reader = RecordReader(s)
    registry_tp = TP(s.topic("takedowns"), 0)
    fanout_topic, enriched_topic = s.topic("takedowns.fanout"), s.topic("articles.enriched")

    def export_registry() -> None:
        for scope, n in registry.active_by_scope().items():
            m.takedowns_active.labels(scope).set(n)

    for scope in takedown_requests.SCOPES:
        m.takedowns_active.labels(scope)
    for action in ("requested", "refused", "updated", "lifted", "expired", "blocked", "retracted", "reinstated"):
        m.takedown_actions.labels(action)

    def count_action(outcome: Audited) -> None:
        m.takedown_actions.labels(str(outcome.record.get("action"))).inc()

    audit_route = Route(
        "takedowns.audit",
        key=lambda o, _i: str(o.record["takedown_id"]).encode(),
        value=runner.record_value,
        outcome=lambda o: str(o.record.get("action")),
        count=count_action,
    )

    # -- the registry -----------------------------------------------------------------------------------------
    def handle_request(inp: Input) -> list[Any]:
        out = registry.handle(inp.key, inp.value, now=datetime.now(UTC), origin=inp.coordinates)
        export_registry()
        return out

    runner.register(
        p,
        stage="takedown-registry",
        source="takedowns",
        handle=handle_request,
        is_control=lambda inp: tick_ms(inp.key, inp.value) is not None,
        routes={
            Audited: audit_route,
            FannedOut: Route(
                "takedowns.fanout",
                key=lambda o, _i: o.key.encode(),
                value=runner.record_value,
                partition=lambda o: o.partition,
            ),
        },
    )

    @registry_table.on_recover
    async def registry_recovered() -> None:
        registry.rebuild()
        export_registry()

    # -- every partition ---------------------------------------------------------------------------------------
    async def fetch(partition: int, offset: int) -> dict[str, Any] | None:
        value = await reader.get("articles.enriched", partition, offset)
        if value is None:
            return None
        try:
            article = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return article if isinstance(article, dict) else None

    async def handle_partition(inp: Input) -> list[Any]:
        now = datetime.now(UTC)
        value = inp.json()
        if inp.topic == enriched_topic:
            article = article_of(inp)
            if isinstance(article, Rejected):
                return [article]
            return stage.on_article(article, partition=inp.partition, offset=inp.offset, now=now)
        out = await stage.on_fanout(value, partition=inp.partition, now=now, fetch=fetch)
        if isinstance(value, dict) and value.get("op") == "apply":
            requested = parse_time((value.get("takedown") or {}).get("requested_at"))
            if requested is not None:  # the partition has now retracted what the takedown covers
                m.takedown_to_retraction_seconds.observe(max(0.0, (now - requested).total_seconds()))
        return out

    runner.register(
        p,
        stage=STAGE,
        source=("articles.enriched", "takedowns.fanout"),
        handle=handle_partition,
        is_control=lambda inp: inp.topic == fanout_topic,
        routes={
            Published: Route(
                "articles.published",
                key=runner.article_key,
                value=runner.article_value,
                outcome=lambda o: "reinstated" if (o.article.get("takedown") or {}).get("reinstated") else "published",
                latency=runner.article_ingested_ms,
            ),
            Retracted: Route(
                "articles.retractions", key=runner.record_key, value=runner.record_value, outcome="retracted"
            ),
            Audited: audit_route,
        },
    )

    def own_partitions(tps: set[Any]) -> list[int]:
        return sorted({tp.partition for tp in tps if tp.topic in (enriched_topic, fanout_topic)})

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        stage.forget(own_partitions(revoked))  # rebuilt from the tables when next used here

    async def on_rewind(tps: set[Any]) -> None:
        stage.forget(own_partitions(tps))  # aborted decisions were undone in the tables
        if registry_tp in tps:
            registry.rebuild()

    eos.on_rewind(app, on_rewind)

    p.ticks.add(
        Tick(
            "takedown-expiry",
            "takedowns",
            due=lambda now_ms: registry_tp in p.facts.actives() and registry.expiry_due(now_ms),
            record=takedown_requests.tick,
            interval=s.takedown_tick_seconds,
        )
    )

    p.add_service(_ReaderCloser(reader))
    TakedownApi(p).register()


class _ReaderCloser(Service):
    """Closes the reinstatement reader's consumer when the worker stops."""

    def __init__(self, reader: RecordReader, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reader = reader

    async def on_stop(self) -> None:
        await self.reader.close()
