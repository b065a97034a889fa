"""The pure and the RocksDB parts of dedup's snapshots on Kafka (streams.agents.dedup_snapshots): which tables a
restore may load and from which offset, what a writer tombstones, and stores written as Faust writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.agents import dedup_snapshots as ds
from streams.settings import Settings
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.snapshot import MANIFEST_KEY, read_snapshot, write_snapshot

DAY_MS = 86_400_000
TOPIC = "app-dedup-articles-changelog"


def facts(end: int = 1_000, retention: int | None = DAY_MS, empty: bool = True) -> ds.ChangelogFacts:
    return ds.ChangelogFacts("dedup-articles", TOPIC, end, retention, empty)


# --- plan ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "age_ms", "f", "use", "reason"),
    [
        ({TOPIC: 900}, 60_000, facts(), True, "snapshot"),
        ({TOPIC: 1_000}, 60_000, facts(), True, "snapshot"),  # nothing written since: no tail at all
        ({TOPIC: 900}, 60_000, facts(empty=False), False, "local state kept"),
        ({}, 60_000, facts(), False, "changelog not in the snapshot"),
        ({TOPIC: 1_001}, 60_000, facts(), False, "snapshot ahead of the changelog"),
        ({TOPIC: 900}, 60_000, facts(retention=None), False, "delete.retention.ms of the changelog unknown"),
        ({TOPIC: 900}, DAY_MS - DAY_MS // 4 + 1, facts(), False, "the changelog keeps tombstones"),
        ({TOPIC: 900}, DAY_MS - DAY_MS // 4, facts(), True, "snapshot"),
        # the reorder hold's changelog keeps tombstones 10 minutes: a snapshot must be under 9 minutes old
        ({TOPIC: 900}, 9 * 60_000 + 1, facts(retention=600_000), False, "the changelog keeps tombstones"),
    ],
    ids=[
        "fresh",
        "no-tail",
        "local-state-kept",
        "not-covered",
        "ahead-of-changelog",
        "retention-unknown",
        "older-than-retention-margin",
        "at-the-margin",
        "hold-10-minutes",
    ],
)
def test_a_table_is_loaded_from_the_snapshot_only_when_that_is_exact(
    offsets: dict[str, int], age_ms: int, f: ds.ChangelogFacts, use: bool, reason: str
) -> None:
    got = ds.plan(offsets, snapshot_ms=1_000_000, now_ms=1_000_000 + age_ms, facts=[f])["dedup-articles"]
    assert got.use is use and reason in got.reason
    if use:
        assert got.tail == f.end - offsets[TOPIC]
    else:
        assert got.offset == 0 and got.tail == (f.end if f.local_empty else 0)


@given(
    offset=st.integers(0, 10_000),
    end=st.integers(0, 10_000),
    age_ms=st.integers(-1_000, 2 * DAY_MS),
    retention=st.one_of(st.none(), st.integers(0, 3 * DAY_MS)),
)
def test_a_restored_store_is_never_ahead_of_its_changelog(offset: int, end: int, age_ms: int, retention: Any) -> None:
    got = ds.plan({TOPIC: offset}, 0, age_ms, [facts(end=end, retention=retention)])["dedup-articles"]
    if got.use:
        persisted = ds.persisted_for(got.offset)
        applied = int(persisted) if persisted is not None else -1
        assert applied <= end - 1  # streams.local_state's rule: applied offset <= the changelog's last
        assert got.tail >= 0 and got.offset + got.tail == end
        assert retention is not None and age_ms <= retention - ds.tombstone_margin_ms(retention)


@pytest.mark.parametrize("offset", [0, 1, 851, 10**9])
def test_the_persisted_offset_resumes_the_replay_at_the_snapshots_offset(offset: int) -> None:
    assert ds.next_offset(ds.persisted_for(offset)) == offset


# --- what a writer tombstones ------------------------------------------------------------------------------


def test_a_writer_tombstones_the_snapshot_in_force_what_it_superseded_and_orphans_after_it() -> None:
    manifest = {"chunks": ["b/000000", "b/000001"], "extra": {"previous": ["a/000000"]}}
    after = {"a/000000": False, "c/000000": True, "c/000001": False, MANIFEST_KEY: True}
    assert ds.stale_keys(manifest, after) == {"b/000000", "b/000001", "a/000000", "c/000000"}


def test_a_manifest_without_the_writers_notes_still_names_its_chunks() -> None:
    assert ds.stale_keys({"chunks": ["x/000000"]}, {}) == {"x/000000"}


# --- RocksDB: stores as Faust writes them ------------------------------------------------------------------


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:
    from streams.app import Pipeline

    return Pipeline(Settings(data_dir=str(tmp_path / "var"), topic_prefix="u."), stages=["dedup"])


VALUES = [
    "8f14e45fceea167a5a36dedd4bea2543",
    {"canonical_url": "https://ex.example/é?q=1", "previous_revisions": [], "event_ms": 17, "x": 2.5, "n": None},
    {"article": {"title": "Zaporizhzhia – 阅读中文版", "nested": [1, [2, {"k": True}]]}, "arrival_ms": 10_000},
]


@pytest.mark.parametrize("value", VALUES, ids=["string", "entry", "held"])
def test_keys_and_values_are_encoded_exactly_as_faust_stores_them(pipeline: Any, value: Any) -> None:
    store = pipeline.tables["dedup-articles"].data
    assert ds.faust_dumps("8f14e45fceea167a5a36dedd4bea2543") == store._encode_key("8f14e45fceea167a5a36dedd4bea2543")
    assert ds.faust_dumps(value) == store._encode_value(value)


def test_faust_opens_a_restored_store_with_its_entries_and_resumes_after_the_snapshot(pipeline: Any) -> None:
    table = pipeline.tables["dedup-articles"]
    store = table.data
    path = Path(store.partition_path(0))
    entries = {f"{i:032x}": {"revision": f"r{i}", "seen_ms": i} for i in range(25_000)}
    progress: list[int] = []
    n = ds.write_store(
        path,
        store.rocksdb_options,
        ((ds.faust_dumps(k), ds.faust_dumps(v)) for k, v in entries.items()),
        ds.persisted_for(851),
        progress.append,
    )
    assert n == len(entries) == sum(progress) and len(progress) == 2
    assert not path.with_name(path.name + ds.RESTORING_SUFFIX).exists()
    store._db_for_partition(0)  # as Faust opens it on assignment
    assert store.persisted_offset(TP(table.changelog_topic.get_topic_name(), 0)) == 850
    assert store[f"{7:032x}"] == {"revision": "r7", "seen_ms": 7}
    assert len(list(store._visible_keys(store._dbs[0]))) == len(entries)  # the offset key is not an entry


def test_a_stopped_restore_leaves_no_store_behind(pipeline: Any) -> None:
    store = pipeline.tables["dedup-content"].data
    path = Path(store.partition_path(0))

    def items() -> Any:
        for i in range(30_000):
            if i == 25_000:
                raise KeyboardInterrupt  # the worker told to stop half-way
            yield ds.faust_dumps(f"r{i}"), ds.faust_dumps(f"a{i}")

    with pytest.raises(KeyboardInterrupt):
        ds.write_store(path, store.rocksdb_options, items(), ds.persisted_for(5))
    assert ds.store_is_empty(path)  # Faust finds no store and replays the whole changelog


def test_a_view_is_the_table_at_the_instant_it_was_opened(pipeline: Any) -> None:
    store = pipeline.tables["dedup-content"].data
    db = store._db_for_partition(0)
    for i in range(100):
        db[ds.faust_dumps(f"r{i}")] = ds.faust_dumps(f"a{i}")
    db[ds.OFFSET_KEY] = b"99"
    view, offset = ds.open_view(db)
    db[ds.faust_dumps("r5")] = ds.faust_dumps("changed")  # the next transaction's writes ...
    db[ds.faust_dumps("r1000")] = ds.faust_dumps("new")
    del db[ds.faust_dumps("r7")]
    db[ds.OFFSET_KEY] = b"140"
    got = dict(view.items())  # ... are not in the view, read afterwards (in a thread, in production)
    assert offset == 100
    assert got == {f"r{i}": f"a{i}" for i in range(100)}


def test_a_snapshot_of_faust_stores_restores_every_key_byte_for_byte_with_its_value(
    pipeline: Any, tmp_path: Path
) -> None:
    config = DedupConfig.from_settings(Settings())
    source: dict[str, dict[bytes, bytes]] = {
        "dedup-articles": {
            ds.faust_dumps(f"{i:032x}"): ds.faust_dumps(
                {
                    "canonical_url": f"https://e.example/{i}",
                    "revision": f"{i:032x}",
                    "revision_number": 1,
                    "previous_revisions": [],
                    "cluster_id": f"{i:032x}",
                    "event_ms": i,
                    "seen_ms": i + 1,
                    "source": "e",
                    "minhash": "",
                    "shingles": 0,
                }
            )
            for i in range(500)
        },
        "dedup-content": {ds.faust_dumps(f"rev{i}"): ds.faust_dumps(f"{i:032x}") for i in range(700)},
        "dedup-held": {ds.faust_dumps("00000000000000000042"): ds.faust_dumps({"article": {"t": "x"}})},
    }
    views, offsets = {}, {}
    for name, rows in source.items():
        db = pipeline.tables[name].data._db_for_partition(0)
        for k, v in rows.items():
            db[k] = v
        db[ds.OFFSET_KEY] = str(len(rows) + 3).encode()
        views[name], offsets[f"{name}-changelog"] = ds.open_view(db)
    records = dict(
        write_snapshot(config, views["dedup-articles"], views["dedup-content"], views["dedup-held"], offsets=offsets)
    )
    snapshot = read_snapshot(records, config)
    assert snapshot.offsets == {f"{name}-changelog": len(rows) + 4 for name, rows in source.items()}
    for name, rows in source.items():
        restored = Path(tmp_path / "restored" / f"{name}-0.db")
        ds.write_store(
            restored, pipeline.tables[name].data.rocksdb_options, ds.snapshot_entries(snapshot, ds.KIND[name]), None
        )
        db = pipeline.tables[name].data.rocksdb_options.open(restored)
        try:
            got = dict(db.items())
            assert got.keys() == rows.keys()  # keys as Faust looks them up; values equal (field order aside)
            assert {k: orjson.loads(v) for k, v in got.items()} == {k: orjson.loads(v) for k, v in rows.items()}
        finally:
            db.close()


def test_a_manifest_is_json_the_restore_can_read() -> None:
    config = DedupConfig.from_settings(Settings())
    records = list(write_snapshot(config, {}, {}, {}, offsets={TOPIC: 3}, extra={"previous": [], "taken_ms": 12}))
    located = ds.Located(orjson.loads(records[-1][1]), offset=4, timestamp_ms=99)
    assert located.taken_ms == 12  # the view's time, not the record's
