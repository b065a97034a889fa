"""The enrich agent: articles.unique -> articles.enriched (wiring only; the enrichers are in streams.stages.enrich).

Batched: the runner takes the records already waiting (up to STREAMS_ENRICH_BATCH_SIZE, never waiting for
more), the stage runs NER over the whole batch through one `nlp.pipe`, and each article's outcome is sent in
the batch's transaction, in input order, so per-article order and exactly-once hold as for single records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mode import Service

from streams.agents import runner
from streams.agents.runner import Input, Route, article_of
from streams.outcomes import Enriched, Rejected
from streams.stages.enrich.stage import ENRICHERS, EnrichConfig, Enricher

if TYPE_CHECKING:
    from streams.app import Pipeline

STAGE = "enrich"


def register(p: Pipeline) -> None:
    enricher = Enricher(EnrichConfig.from_settings(p.settings))  # loads the models once, at worker start
    p.metrics.prime_enrich(ENRICHERS)

    async def handle_batch(inputs: list[Input]) -> list[list[Any]]:
        results: list[list[Any]] = [[] for _ in inputs]
        articles, where = [], []
        for i, inp in enumerate(inputs):
            article = article_of(inp)
            if isinstance(article, Rejected):
                results[i] = [article]
            else:
                articles.append(article)
                where.append(i)
        if articles:
            for i, outcome in zip(where, await enricher.aenrich_batch(articles), strict=True):
                results[i] = [outcome]
        p.metrics.observe_enrich(enricher.stats())
        return results

    runner.register(
        p,
        stage=STAGE,
        source="articles.unique",
        handle_batch=handle_batch,
        batch_size=p.settings.enrich_batch_size,
        routes={
            Enriched: Route(
                "articles.enriched",
                key=runner.article_key,
                value=runner.article_value,
                outcome="enriched",
                latency=runner.article_ingested_ms,
            )
        },
    )
    p.add_service(_Closer(enricher))


class _Closer(Service):
    """Stops the NER process pool (if any) with the worker."""

    def __init__(self, enricher: Enricher, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enricher = enricher

    async def on_stop(self) -> None:
        self.enricher.close()
