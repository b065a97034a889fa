"""Every Prometheus metric of the pipeline, defined once. Units in names; durations in seconds."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

# The _created series double every counter for no use on dashboards.
disable_created_metrics()

# Stage work per event is sub-millisecond to tens of milliseconds.
PROCESSING_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
# enrich: one nlp.pipe batch of 32 BBC-sized articles takes ~1 s on one core (~30 ms an article).
NER_BATCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Ingestion to output crosses Kafka transactions (commit interval ~0.1-1 s) and queues.
# A takedown crosses the registry, the fan-out topic and every partition: seconds to minutes.
TAKEDOWN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class Metrics:
    """All metrics, registered against one registry (tests pass a fresh CollectorRegistry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._totals: dict[int, tuple[int, float]] = {}
        r = self.registry
        self.build_info = Info("streams_build", "Version of article-streams and the pinned Kafka.", registry=r)
        self.events_in = Counter("streams_events_in_total", "Events a stage consumed.", ["stage"], registry=r)
        self.events_out = Counter(
            "streams_events_out_total",
            "Events a stage emitted, by outcome (normalized, rejected, unique, update, duplicate, ...).",
            ["stage", "outcome"],
            registry=r,
        )
        self.processing_seconds = Histogram(
            "streams_processing_seconds",
            "Time a stage spends on one event (decode, rule, encode), in seconds.",
            ["stage"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "streams_end_to_end_latency_seconds",
            "From the raw event's Kafka timestamp (ingestion) to the stage's output, in seconds.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streams_consumer_lag_records",
            "Records between the committed offset and the high watermark, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.rejections = Counter(
            "streams_rejections_total",
            "Events refused, by stage and reason code.",
            ["stage", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "streams_duplicates_total", "Duplicates dropped by dedup, by match kind.", ["match"], registry=r
        )
        self.dedup_index_articles = Gauge(
            "streams_dedup_index_articles", "Articles held in the dedup index.", registry=r
        )
        self.dedup_index_bytes = Gauge(
            "streams_dedup_index_bytes", "Estimated memory of the dedup index, in bytes.", registry=r
        )
        self.dedup_evictions = Counter(
            "streams_dedup_evictions_total",
            "Articles that left the dedup index, by cause (window, capacity).",
            ["cause"],
            registry=r,
        )
        self.dedup_held = Gauge(
            "streams_dedup_held_articles",
            "Articles waiting in dedup's reorder hold to be decided in event-time order.",
            registry=r,
        )
        self.dedup_reordered = Counter(
            "streams_dedup_reordered_total",
            "Articles the reorder hold decided after one that reached dedup later but was published earlier.",
            registry=r,
        )
        self.recovery_remaining = Gauge(
            "streams_state_recovery_records_remaining",
            "Changelog records still to replay before a table is recovered.",
            ["table"],
            registry=r,
        )
        self.recovery_ratio = Gauge(
            "streams_state_recovery_progress_ratio",
            "Recovery progress of a table's state, 0 to 1 (1 = recovered).",
            ["table"],
            registry=r,
        )
        self.ready = Gauge("streams_worker_ready", "1 when partitions are assigned and state is recovered.", registry=r)
        self.redeliveries_skipped = Counter(
            "streams_redeliveries_skipped_total",
            "Records the exactly-once gate did not process: fetched before a seek or in an older consumer "
            "generation, already processed, after a hole, or while their transaction was being rewound.",
            ["stage", "reason"],
            registry=r,
        )
        self.stage_errors = Counter(
            "streams_stage_errors_total",
            "Unexpected errors inside a stage: the record is refused as internal_error on articles.rejected, "
            "with its bytes, and the stage goes on.",
            ["stage"],
            registry=r,
        )
        # enrich
        self.enrich_enricher_seconds = Counter(
            "streams_enrich_enricher_seconds_total",
            "Seconds enrich spent in each enricher (language, ner, entities, figures, keywords, summary, reading); "
            "rate() over rate(streams_events_in_total{stage='enrich'}) is the time per article.",
            ["enricher"],
            registry=r,
        )
        self.enrich_ner_batch_seconds = Histogram(
            "streams_enrich_ner_batch_seconds",
            "Time of one spaCy nlp.pipe batch (one language of one enrich batch), in seconds.",
            buckets=NER_BATCH_BUCKETS,
            registry=r,
        )
        self.enrich_without_model = Counter(
            "streams_enrich_articles_without_model_total",
            "Articles enriched without entities because no spaCy model is configured for their language.",
            ["language"],
            registry=r,
        )
        self.enrich_entities = Counter(
            "streams_enrich_entities_total",
            "Entities found, by type (person, organisation, place).",
            ["type"],
            registry=r,
        )
        self.enrich_figures = Counter(
            "streams_enrich_figures_total",
            "Figures found, by kind (area, distance, mass, people, money, percent, rate).",
            ["kind"],
            registry=r,
        )

        # takedown
        self.takedowns_active = Gauge(
            "streams_takedowns_active",
            "Takedowns in force, by scope (url, domain, source, fingerprint, cluster), as the registry holds them.",
            ["scope"],
            registry=r,
        )
        self.takedown_actions = Counter(
            "streams_takedown_actions_total",
            "Takedown actions on takedowns.audit, by action (requested, refused, updated, lifted, expired, "
            "blocked, retracted, reinstated, not_reinstated).",
            ["action"],
            registry=r,
        )
        self.takedown_to_retraction_seconds = Histogram(
            "streams_takedown_request_to_retraction_seconds",
            "From a takedown's requested_at to the moment a partition has retracted what it covers, in seconds "
            "(one observation per partition; the slowest is the last retraction).",
            buckets=TAKEDOWN_BUCKETS,
            registry=r,
        )

    def sync_total(self, child: Any, total: float, *, source: int) -> None:
        """Advance a counter series to a cumulative total that a stage object keeps itself.

        `source` names that object (a counter the caller bumps when it builds a new one, whose totals start
        again from 0): a new source counts from its own 0."""
        last_source, last = self._totals.get(id(child), (None, 0.0))
        if last_source is not source:
            last = 0.0
        if total > last:
            child.inc(total - last)
        self._totals[id(child)] = (source, max(last, total))

    def prime(self, stage: str, outcomes: tuple[str, ...] = (), reasons: tuple[str, ...] = ()) -> None:
        """Create a stage's series at 0 at start-up, so the first burst after a start shows as an increase."""
        self.events_in.labels(stage)
        self.processing_seconds.labels(stage)
        self.end_to_end_seconds.labels(stage)
        self.stage_errors.labels(stage)
        for outcome in outcomes:
            self.events_out.labels(stage, outcome)
        for reason in reasons:
            self.rejections.labels(stage, reason)

    # enrich
    def observe_enrich(self, stats: Any) -> None:
        """Adds what `Enricher.stats()` returned (an EnrichStats) to the enrich metrics."""
        for enricher, seconds in stats.seconds.items():
            self.enrich_enricher_seconds.labels(enricher).inc(seconds)
        for seconds in stats.ner_batches:
            self.enrich_ner_batch_seconds.observe(seconds)
        for language, n in stats.without_model.items():
            self.enrich_without_model.labels(language).inc(n)
        for kind, n in stats.entities.items():
            self.enrich_entities.labels(kind).inc(n)
        for kind, n in stats.figures.items():
            self.enrich_figures.labels(kind).inc(n)

    def prime_enrich(self, enrichers: tuple[str, ...]) -> None:
        """The enrich series at 0 at start-up (with `prime("enrich", ...)`)."""
        for enricher in enrichers:
            self.enrich_enricher_seconds.labels(enricher)
        for kind in ("person", "organisation", "place"):
            self.enrich_entities.labels(kind)
        for kind in ("area", "distance", "mass", "people", "money", "percent", "rate"):
            self.enrich_figures.labels(kind)
