"""The seed through the real broker, and rejected events replayed once their cause is fixed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson

from tests.integration.conftest import read_committed, send_all, settings_env, values


def test_seed_comes_out_clean_and_attributed(topics, worker_factory, seed_text):
    s = topics
    title = seed_text.splitlines()[0]
    event = {
        "url": "https://aggregator.example.com/world/zelenskyy-land-cession?utm_source=feed&fbclid=x",
        "title": title,
        "body": seed_text,
        "body_format": "text",
        "source": {"name": "Aggregator Example"},
    }
    worker = worker_factory(s, stages="normalize,dedup")
    asyncio.run(send_all(s, "articles.raw", [(event["url"].encode(), orjson.dumps(event))]))
    worker.wait_ready()
    [article] = values(asyncio.run(read_committed(s, "articles.unique", expect=1, timeout=120, settle=1)))

    assert article["title"] == title
    assert title not in article["text"]
    for mark in ("Image from", "阅读中文版", "Read Chinese Version", "Disclaimer", "contact us for removal"):
        assert mark not in article["text"], mark
    assert "The Guardian" in article["attribution"]["image_credits"]
    assert [a["language"] for a in article["alternates"]] == ["zh"]
    assert article["flags"]["aggregated"] is True and "contact us for removal" in article["flags"]["disclaimer"]
    assert article["canonical_url"] == "https://aggregator.example.com/world/zelenskyy-land-cession"
    body = [p.strip() for p in seed_text.split("\n\n") if p.strip()]
    paragraphs = [p for p in body if len(p) > 300]  # the six body paragraphs; the marks are all short lines
    assert len(paragraphs) == 6
    assert article["text"].split("\n\n") == paragraphs
    assert article["dedup"] == {
        "cluster_id": article["article_id"],
        "revision_number": 1,
        "previous_revision": None,
        "is_update": False,
    }


def test_replay_resends_rejected_events_once_the_cause_is_fixed(topics, worker_factory):
    s = topics
    long_article = {
        "url": "https://long.example/report",
        "title": "A long report",
        "body": "\n\n".join(f"Paragraph {i} of a long report on harbour repairs." for i in range(80)),
        "source": {"name": "Long Reports"},
    }
    items = [(b"https://long.example/report", orjson.dumps(long_article)), (None, b"{broken")]
    strict = worker_factory(s, stages="normalize", STREAMS_MAX_EVENT_BYTES=1000)  # the cause: a limit too low
    asyncio.run(send_all(s, "articles.raw", items))
    strict.wait_ready()
    rejected = values(asyncio.run(read_committed(s, "articles.rejected", expect=2, timeout=120, settle=1)))
    assert sorted(r["reason"] for r in rejected) == ["invalid_json", "too_large"]
    strict.stop()

    relaxed = worker_factory(s, stages="normalize")  # the fix: the default limit
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay-rejected", "--reason", "too_large"],
        env=settings_env(s),
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert b"replayed 1;" in out.stdout and b"1 of other reasons" in out.stdout
    relaxed.wait_ready()
    [article] = values(asyncio.run(read_committed(s, "articles.normalized", expect=1, timeout=120, settle=2)))
    assert article["url"] == long_article["url"] and article["text"].count("\n\n") == 79
    raw = asyncio.run(read_committed(s, "articles.raw", expect=3, timeout=10, settle=0.5))
    assert len(raw) == 3 and [m.key for m in raw].count(b"https://long.example/report") == 2  # the original key
    assert [m.value for m in raw].count(orjson.dumps(long_article)) == 2  # the original bytes


def test_the_seed_is_enriched_published_then_taken_down_by_its_domain(topics, worker_factory, seed_text):
    """raw -> normalize -> dedup -> enrich -> takedown -> published, then the rights desk takes the domain down:
    the seed is retracted and `streams takedown show` tells who asked, when, and what was removed."""
    s = topics
    url = "https://www.aggregator.example.com/world/zelenskyy-land-cession?utm_source=feed"
    event = {"url": url, "title": seed_text.splitlines()[0], "body": seed_text, "source": {"name": "Aggregator"}}
    worker = worker_factory(s)  # every stage
    asyncio.run(send_all(s, "articles.raw", [(url.encode(), orjson.dumps(event))]))
    worker.wait_ready(timeout=180)
    [enriched] = values(asyncio.run(read_committed(s, "articles.enriched", expect=1, timeout=180, settle=0.5)))
    e = enriched["enrichment"]
    assert e["language"]["code"] == "en"
    by_type: dict[str, dict[str, dict]] = {}
    for ent in e["entities"]:
        by_type.setdefault(ent["type"], {})[ent["name"]] = ent
    people = {"Volodymyr Zelenskyy", "Donald Trump", "Vladimir Putin", "Bohdan Krotevych"}
    assert people <= set(by_type["person"]), by_type["person"].keys()
    places = {"Ukraine": "UA", "Russia": "RU", "Alaska": "US", "Donbas": "UA", "Dnipro": "UA",
              "Zaporizhzhia": "UA", "Kharkiv": "UA", "Moscow": "RU"}  # fmt: skip
    assert {name: by_type["place"][name]["country_code"] for name in places} == places
    assert "Institute for the Study of War" in by_type["organisation"]
    kinds = {(f["kind"], f["unit"]) for f in e["figures"]}
    assert {("area", "km²"), ("people", "people"), ("distance", "km"), ("distance", "mi")} <= kinds
    assert any(f["kind"] == "rate" for f in e["figures"])
    [published] = values(asyncio.run(read_committed(s, "articles.published", expect=1, timeout=60, settle=0)))
    assert published["article_id"] == enriched["article_id"]

    env = settings_env(s)
    command = ["takedown", "add", "--scope", "domain", "--value", "aggregator.example.com"]
    command += ["--reason", "Copyright claim by the original publisher", "--requested-by", "legal@publisher.example"]
    command += ["--ground", "legal", "--legal-basis", "Copyright"]
    add = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert add.returncode == 0, add.stderr
    tid = add.stdout.strip()
    [retraction] = values(asyncio.run(read_committed(s, "articles.retractions", expect=1, timeout=60)))
    assert retraction["article_id"] == published["article_id"] and retraction["takedown_id"] == tid
    show = subprocess.run(
        [sys.executable, "-m", "streams.cli", "takedown", "show", tid], env=env, capture_output=True, text=True
    )
    assert show.returncode == 0, show.stderr
    assert "legal@publisher.example" in show.stdout and "retracted" in show.stdout
    assert published["title"] in show.stdout
