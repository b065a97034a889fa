"""Unit tests of dedup's snapshot: what is stored, that it restores the tables exactly, and that the index
built from it decides as one rebuilt from the tables."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import orjson
import pytest

from streams.outcomes import Duplicate, Unique
from streams.settings import Settings
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.index import DedupState
from streams.stages.dedup.snapshot import (
    MANIFEST_KEY,
    SnapshotError,
    load_tables,
    read_snapshot,
    write_snapshot,
)
from streams.stages.dedup.stage import Deduplicator, dedup
from tests.factories import stories as f

PRODUCTION = DedupConfig.from_settings(Settings())
NOW = f.T0 + timedelta(hours=6)
OFFSETS = {"app-dedup-articles-changelog": 1234, "app-dedup-content-changelog": 2345, "app-dedup-held-changelog": 7}


def filled() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Tables as the stage writes them: originals, copies, revisions (previous_revisions), an id that is not
    hex, an article without words, one held article, and an entry of the old signature scheme."""
    articles: dict[str, Any] = {}
    content: dict[str, Any] = {}
    state = DedupState(PRODUCTION, articles, content)
    arts = [f.article(s) for s in range(12)]
    copies = [f.copy_of(a, url=f"https://copy.example/{i}", text=f.wrapped(a["text"])) for i, a in enumerate(arts[:4])]
    revised = f.revised(arts[5], arts[5]["text"] + "\n\nCorrection appended.")
    odd = dict(f.article(40), article_id="not-a-hex-id")
    empty = f.article(41, text="...", title="")
    for a in [*arts, *copies, revised, odd, empty]:
        dedup(a, state=state, now=NOW)
    articles["legacy"] = {"event_ms": 1, "seen_ms": 1, "signature": "AAAA", "cluster_id": "legacy", "revision": "r"}
    held = {"00000000000000000042": {"article": f.article(50), "arrival_ms": 10_000}}
    return orjson.loads(orjson.dumps(articles)), orjson.loads(orjson.dumps(content)), orjson.loads(orjson.dumps(held))


def snapshot_of(tables: tuple[dict[str, Any], ...], **kw: Any) -> dict[str, bytes]:
    return dict(write_snapshot(PRODUCTION, *tables, offsets=OFFSETS, **kw))


def test_a_snapshot_restores_the_three_tables_exactly_with_its_offsets() -> None:
    tables = filled()
    snap = read_snapshot(snapshot_of(tables), PRODUCTION)
    assert snap.offsets == OFFSETS
    restored: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    counts = load_tables(snap, *restored)
    assert restored == tables
    assert counts == {"articles": len(tables[0]), "content": len(tables[1]), "held": 1}


@pytest.mark.parametrize("chunk_bytes", [2_000, 64_000, 8 * 1024 * 1024])
def test_chunks_stay_within_the_bound_and_the_manifest_comes_last(chunk_bytes: int) -> None:
    records = list(write_snapshot(PRODUCTION, *filled(), offsets=OFFSETS, chunk_bytes=chunk_bytes))
    assert records[-1][0] == MANIFEST_KEY
    manifest = orjson.loads(records[-1][1])
    assert manifest["chunks"] == [k for k, _ in records[:-1]]
    rows_per_chunk_bound = 2 * chunk_bytes + 8_192  # one row may exceed a tiny bound; headers add a little
    assert all(len(v) <= rows_per_chunk_bound for _, v in records[:-1])
    restored: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    load_tables(read_snapshot(dict(records), PRODUCTION), *restored)
    assert restored == filled()


@pytest.mark.parametrize("kind", ["same_url", "same_content", "near", "unique"])
def test_the_index_built_from_a_snapshot_decides_as_the_one_rebuilt_from_the_tables(kind: str) -> None:
    tables = filled()
    snap = read_snapshot(snapshot_of(tables), PRODUCTION)
    a = f.article(3)
    probe = {
        "same_url": a,
        "same_content": f.copy_of(a, url="https://s.example/1"),
        "near": f.copy_of(a, url="https://s.example/2", text=f.agency_lines(a["text"])),
        "unique": f.article(77),
    }[kind]
    outcomes = []
    for from_snapshot in (False, True):
        articles, content, held = (
            ({}, {}, {}) if from_snapshot else tuple(orjson.loads(orjson.dumps(t)) for t in tables)
        )
        if from_snapshot:
            load_tables(snap, articles, content, held)
        state = DedupState(PRODUCTION, articles, content)
        assert (state.rebuild_from_snapshot(snap) if from_snapshot else state.rebuild()) == len(tables[0])
        outcomes.append(dedup(probe, state=state, now=NOW))
    first, second = outcomes
    assert type(first) is type(second)
    if isinstance(first, Duplicate) and isinstance(second, Duplicate):
        assert first.record == second.record and first.record["match"] == kind
    else:
        assert isinstance(first, Unique) and first == second and kind == "unique"


def test_the_deduplicator_rebuilds_from_a_snapshot_keeping_the_hold() -> None:
    tables = filled()
    snap = read_snapshot(snapshot_of(tables), PRODUCTION)
    articles: dict[str, Any] = {}
    content: dict[str, Any] = {}
    held: dict[str, Any] = {}
    load_tables(snap, articles, content, held)
    cfg = dataclasses.replace(PRODUCTION, reorder_hold_ms=2_000)
    d = Deduplicator(articles=articles, content=content, held=held, config=cfg, clock=lambda: NOW)
    assert d.rebuild(snapshot=snap) == len(tables[0])
    assert d.stats().held_articles == 1 and d.stats().index_articles == len(tables[0])


def test_expiry_after_a_snapshot_restore_evicts_what_a_rebuilt_index_evicts() -> None:
    tables = filled()
    snap = read_snapshot(snapshot_of(tables), PRODUCTION)
    cfg = dataclasses.replace(PRODUCTION, max_entries=3)  # a small bound, so that expiry has work
    evicted = []
    for from_snapshot in (False, True):
        articles, content = ({}, {}) if from_snapshot else (orjson.loads(orjson.dumps(tables[0])), dict(tables[1]))
        if from_snapshot:
            load_tables(snap, articles, content, {})
        state = DedupState(cfg, articles, content)
        state.rebuild_from_snapshot(snap) if from_snapshot else state.rebuild()
        evicted.append(state.expire())
        assert state.size() == 3 and len(articles) == 3
    assert evicted[0] == evicted[1] and len(evicted[0]) == len(tables[0]) - 3


def test_a_snapshot_of_another_configuration_or_incomplete_is_refused() -> None:
    records = snapshot_of(filled())
    other = dataclasses.replace(PRODUCTION, num_perm=128, lsh_bands=16, lsh_rows=2)
    with pytest.raises(SnapshotError, match="written for"):
        read_snapshot(records, other)
    first_chunk = orjson.loads(records[MANIFEST_KEY])["chunks"][0]
    with pytest.raises(SnapshotError, match="lacks 1 chunks"):
        read_snapshot({k: v for k, v in records.items() if k != first_chunk}, PRODUCTION)
    with pytest.raises(SnapshotError, match="no snapshot manifest"):
        read_snapshot({}, PRODUCTION)


def test_a_corrupt_chunk_is_refused_when_read() -> None:
    records = snapshot_of(filled())
    first_chunk = orjson.loads(records[MANIFEST_KEY])["chunks"][0]
    records[first_chunk] = records[first_chunk][:40]
    with pytest.raises(SnapshotError):
        load_tables(read_snapshot(records, PRODUCTION), {}, {}, {})


class Recording(dict[str, Any]):
    """A table that notes every key written or deleted: what Faust's replay of the changelog tail touches."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.touched: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.touched.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touched.append(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.append(key)
        return super().pop(key, *default)


def _after_the_snapshot() -> tuple[Any, dict[str, Any], dict[str, Any], list[str], dict[str, dict[str, Any]], str]:
    """A snapshot, then what the worker went on to do before it died: new articles, a revision, evictions.
    Returns (snapshot, articles now, content now, article_ids touched after the snapshot, probes, an evicted id)."""
    tables = filled()
    snap = read_snapshot(snapshot_of(tables), PRODUCTION)
    cfg = dataclasses.replace(PRODUCTION, max_entries=len(tables[0]) + 1)  # so that the tail evicts
    articles, content = Recording(orjson.loads(orjson.dumps(tables[0]))), dict(tables[1])
    live = DedupState(cfg, articles, content)
    live.rebuild()
    later = NOW + timedelta(hours=1)
    fresh = [f.article(200 + i, published_at=later) for i in range(3)]
    revised = f.revised(f.article(6), f.article(6)["text"] + "\n\nThe council corrected the figures on Friday.")
    for a in [*fresh, revised]:
        dedup(a, state=live, now=later)
    evicted = live.expire()
    assert evicted, "the tail should evict something, or the test proves less"
    gone = next(a for a in (f.article(s) for s in range(12)) if a["article_id"] in evicted)
    probes = {
        "copy of an article decided after the snapshot": f.copy_of(fresh[1], url="https://p.example/1"),
        "near copy of the new revision": f.copy_of(revised, url="https://p.example/2", text=f.wrapped(revised["text"])),
        "copy of an article from the snapshot": f.copy_of(f.article(3), url="https://p.example/3"),
        "copy of an evicted article": f.copy_of(gone, url="https://p.example/4"),
    }
    return snap, dict(articles), content, articles.touched, probes, gone["article_id"]


def _decisions(state: DedupState, probes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, probe in probes.items():
        o = dedup(probe, state=state, now=NOW + timedelta(hours=2))
        out[name] = (o.record["match"], o.record["duplicate_of"]) if isinstance(o, Duplicate) else ("unique", None)
    return out


def test_the_index_from_a_snapshot_and_the_changes_after_it_decides_as_one_rebuilt_from_the_tables() -> None:
    snap, articles, content, touched, probes, evicted = _after_the_snapshot()
    cfg = dataclasses.replace(PRODUCTION, max_entries=len(articles) + 10)
    rebuilt = DedupState(cfg, orjson.loads(orjson.dumps(articles)), dict(content))
    assert rebuilt.rebuild() == len(articles)
    restored = DedupState(cfg, orjson.loads(orjson.dumps(articles)), dict(content))
    assert restored.rebuild_from_snapshot(snap, touched) == len(articles)
    assert restored.size() == rebuilt.size() and restored.watermark_ms == rebuilt.watermark_ms
    assert set(restored.articles) == set(rebuilt.articles)
    assert all(a in restored for a in articles)
    decided = _decisions(rebuilt, probes)
    assert _decisions(restored, probes) == decided
    assert decided["copy of an article decided after the snapshot"][0] == "same_content"
    assert evicted not in restored and evicted not in restored.articles


def test_without_the_changes_after_it_the_index_from_a_snapshot_misses_the_new_articles() -> None:
    snap, articles, content, _touched, _probes, _evicted = _after_the_snapshot()
    cfg = dataclasses.replace(PRODUCTION, max_entries=len(articles) + 10)
    stale = DedupState(cfg, orjson.loads(orjson.dumps(articles)), dict(content))
    stale.rebuild_from_snapshot(snap)
    assert stale.size() != len(articles)  # ghosts of evicted articles, new ones missing


@pytest.mark.parametrize("chunk_bytes", [64 * 1024, 1024 * 1024])
def test_chunks_are_bounded_by_their_measured_size_with_large_held_articles_and_long_urls(chunk_bytes: int) -> None:
    articles, content, held = filled()
    for i in range(300):
        long_url = "https://long.example/" + "segment/" * 250 + str(i)
        articles[f"long-{i}"] = {**next(iter(articles.values())), "canonical_url": long_url}
    big = f.article(60, text=" ".join(["word"] * 40_000))  # ~200 kB of text
    for i in range(12):
        held[f"{i:020d}"] = {"article": big, "arrival_ms": i}
    records = list(write_snapshot(PRODUCTION, articles, content, held, offsets=OFFSETS, chunk_bytes=chunk_bytes))
    largest_row = len(orjson.dumps(held["00000000000000000000"]))
    assert all(len(v) <= max(chunk_bytes, largest_row) + 4_096 for _, v in records[:-1])
    restored: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    load_tables(read_snapshot(dict(records), PRODUCTION), *restored)
    assert restored == (articles, content, held)


def test_the_manifest_carries_the_writers_extra_fields() -> None:
    records = dict(write_snapshot(PRODUCTION, *filled(), offsets=OFFSETS, extra={"previous": ["a/000000"]}))
    assert read_snapshot(records, PRODUCTION).manifest["extra"] == {"previous": ["a/000000"]}
