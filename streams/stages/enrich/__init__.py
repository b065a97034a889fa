"""Stage 3, enrich: language, entities, places, figures, keywords, summary and reading time (see `stage`)."""

from streams.stages.enrich.stage import ENRICH_VERSION, ENRICHERS, EnrichConfig, Enricher, EnrichStats, parse_models

__all__ = ["ENRICHERS", "ENRICH_VERSION", "EnrichConfig", "EnrichStats", "Enricher", "parse_models"]
