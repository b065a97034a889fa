"""Every schema file is valid 2020-12 with valid examples; every registry topic names a schema that exists."""

from __future__ import annotations

import pytest

from streams import schemas, topics
from streams.settings import Settings

BRIEF_TOPICS = {
    "articles.raw",
    "articles.normalized",
    "articles.unique",
    "articles.enriched",
    "articles.published",
    "articles.duplicates",
    "articles.rejected",
    "articles.retractions",
    "takedowns",
    "takedowns.audit",
}
SCHEMA_NAMES = [p.name for p in schemas.schema_files()]


def test_every_schema_named_in_the_brief_exists():
    assert set(SCHEMA_NAMES) >= {
        "raw_article.v1.json",
        "article.v1.json",
        "duplicate.v1.json",
        "rejection.v1.json",
        "takedown.v1.json",
        "retraction.v1.json",
        "audit_entry.v1.json",
    }


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_2020_12_and_has_examples(name):
    schema = schemas.load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.get("examples"), f"{name} has no examples"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_example_validates(name):
    for i, example in enumerate(schemas.load(name)["examples"]):
        assert schemas.first_violation(name, example) is None, f"{name} example {i}"


def test_registry_declares_every_topic_of_the_brief():
    assert {t.name for t in topics.ALL if not t.internal} == BRIEF_TOPICS


@pytest.mark.parametrize("topic", topics.ALL, ids=lambda t: t.name)
def test_registry_entry_is_complete(topic):
    # an internal topic of binary records (dedup's snapshots) has no JSON schema; its key says what it holds
    assert topic.schema in SCHEMA_NAMES or (topic.internal and topic.schema is None)
    assert topic.key and topic.description
    assert topic.cleanup_policy in {"delete", "compact"}


def test_takedowns_topic_is_compacted_and_kept_forever():
    assert topics.TAKEDOWNS.cleanup_policy == "compact"
    assert topics.TAKEDOWNS_AUDIT.retention_ms == -1


def test_prefix_applies_to_every_topic_and_the_group():
    s = Settings.from_env({"STREAMS_TOPIC_PREFIX": "staging."})
    assert topics.RAW.physical(s) == "staging.articles.raw"
    assert s.group_id == "staging.article-streams"


def test_unknown_topic_error_lists_the_known_ones():
    with pytest.raises(KeyError, match="articles.raw"):
        topics.get("articles.nope")


def test_raw_event_built_from_the_seed_validates(seed_text):
    event = {
        "url": "https://aggregator.example.com/world/zelenskyy-rejects-land-cession",
        "title": seed_text.splitlines()[0],
        "body": seed_text,
        "body_format": "text",
        "source": {"name": "Aggregator Example"},
    }
    assert schemas.first_violation("raw_article.v1.json", event) is None


@pytest.mark.parametrize(
    ("event", "pointer", "keyword"),
    [
        ({"url": 42, "body": "x"}, "/url", "type"),
        ({"body": "x"}, "", "required"),
        ({"url": "https://a.example/x", "body": "x", "source": {"name": 5}}, "/source/name", "type"),
        ({"url": "https://a.example/x", "body": "x", "body_format": "pdf"}, "/body_format", "enum"),
        ({"url": "https://a.example/x", "body": "x", "authors": "me"}, "/authors", "type"),
    ],
)
def test_violation_names_the_pointer_and_keyword(event, pointer, keyword):
    v = schemas.first_violation("raw_article.v1.json", event)
    assert v is not None and (v.pointer, v.keyword) == (pointer, keyword)


def test_readme_documents_every_setting():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [var for var, _ in Settings.from_env({}).as_env_doc() if f"`{var}`" not in readme]
    assert not missing, f"README lacks {missing}"


def test_readme_metrics_table_names_every_metric():
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from streams.metrics import Metrics

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    names = {m.name for m in Metrics(CollectorRegistry()).registry.collect()}
    missing = sorted(n for n in names if f"`{n}" not in readme)
    assert not missing, f"README metrics table lacks {missing}"
