"""The clean-shutdown marker that decides whether a worker may trust its local tables after a restart."""

from __future__ import annotations

from pathlib import Path

from streams.local_state import MARKER, LocalState


def tables(tmp_path: Path) -> Path:
    tabledir = tmp_path / "v1" / "tables"
    (tabledir / "dedup-articles-0.db").mkdir(parents=True)
    (tabledir / "dedup-articles-0.db" / "CURRENT").write_text("x")
    return tabledir


def test_tables_left_by_a_crash_are_discarded_under_exactly_once(tmp_path):
    tabledir = tables(tmp_path)
    state = LocalState(tabledir, exactly_once=True)
    assert state.on_start() is True
    assert not tabledir.exists()


def test_tables_left_by_a_clean_stop_are_kept_and_the_marker_is_consumed(tmp_path):
    tabledir = tables(tmp_path)
    state = LocalState(tabledir, exactly_once=True)
    state.on_clean_stop()
    assert (tmp_path / "v1" / MARKER).exists()
    assert state.on_start() is False
    assert (tabledir / "dedup-articles-0.db" / "CURRENT").exists()
    assert not (tmp_path / "v1" / MARKER).exists()  # a crash during this run leaves no marker behind
    assert LocalState(tabledir, exactly_once=True).on_start() is True  # ... so the next start discards


def test_at_least_once_keeps_whatever_it_finds(tmp_path):
    tabledir = tables(tmp_path)
    assert LocalState(tabledir, exactly_once=False).on_start() is False
    assert tabledir.exists()


def test_a_first_start_has_nothing_to_discard(tmp_path):
    assert LocalState(tmp_path / "v1" / "tables", exactly_once=True).on_start() is False


def test_the_empty_backup_dirs_faust_makes_when_it_builds_the_app_are_no_state(tmp_path):
    tabledir = tmp_path / "v1" / "tables"
    (tabledir / "takedown-registry-backups").mkdir(parents=True)  # what Pipeline(...) leaves before any start
    assert LocalState(tabledir, exactly_once=True).on_start() is False
