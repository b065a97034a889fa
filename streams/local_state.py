"""Local table state after a crash: discarded under exactly-once, so recovery rebuilds it from the changelogs.

Faust's RocksDB store writes a table update to the local database at once, while the update's changelog
record commits with the event's transaction. When a worker dies (kill -9, OOM, power) with a transaction
open, the broker aborts the changelog records and the input is delivered again, but the local database keeps
the writes: dedup would find a re-delivered article already in its table and judge it a copy of itself, so
it would never be published. Kafka Streams solves the same problem the same way: under exactly-once, local
state is trusted only after a clean shutdown.

So: a clean stop (SIGTERM, Ctrl-C: Faust commits and ends its transactions first) leaves a marker beside the
tables; a start that finds table state without the marker deletes it, and Faust restores the tables from
their changelogs (committed records only). The marker is removed while the worker runs. The cost is a full
restore after a crash (BENCHMARKS.md: about 38 s for 100k articles); a standby replica on another worker
(`STREAMS_TABLE_STANDBY_REPLICAS`) takes over without one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from streams.logs import event

log = logging.getLogger("streams.local_state")
MARKER = "clean-shutdown"


class LocalState:
    """The table directory of one worker and its clean-shutdown marker."""

    def __init__(self, tabledir: Path, exactly_once: bool) -> None:
        self.tabledir = Path(tabledir)
        self.marker = self.tabledir.parent / MARKER
        self.exactly_once = exactly_once

    def has_tables(self) -> bool:
        # RocksDB stores are `<table>-<partition>.db` directories; Faust makes an empty `<table>-backups`
        # directory when it builds the app, which is no state (counting it made every first start on an
        # empty state dir log local_state_discarded, unclean_shutdown)
        return self.tabledir.is_dir() and any(p.suffix == ".db" for p in self.tabledir.iterdir())

    def on_start(self) -> bool:
        """Before Faust opens the tables: discard them if the last run did not stop cleanly. True if it did."""
        discarded = False
        if self.exactly_once and self.has_tables() and not self.marker.exists():
            shutil.rmtree(self.tabledir)
            discarded = True
        self.marker.unlink(missing_ok=True)
        return discarded

    def announce(self, discarded: bool) -> None:
        """Logs the decision once logging is set up (the worker calls on_start before that)."""
        if discarded:
            event(
                log,
                "local_state_discarded",
                level=logging.WARNING,
                reason="unclean_shutdown",
                tabledir=str(self.tabledir),
                detail="the last run did not stop cleanly; tables are restored from their changelogs",
            )

    def on_clean_stop(self) -> None:
        """After Faust committed, ended its transactions and closed the tables."""
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text("the worker stopped cleanly; its local tables match the committed changelogs\n")


# --- local state ahead of its changelog ----------------------------------------------------------------------
#
# Faust 0.15.3 compares a table partition's persisted offset (the last changelog offset its local store
# applied) with the changelog's end when recovery starts, and raises ConsistencyError when the local store is
# ahead: the changelog was deleted and recreated, or the broker's log dir was reset, while the state dir
# stayed. The worker then crashes at every start. Kafka Streams treats the same finding as a corrupted task:
# it wipes the task's local state and restores it from the changelog. This correction does that, per
# partition, and logs why (`local_state_discarded`, reason ahead_of_changelog). Written for faust-streaming
# 0.15.3 (`Recovery._build_offsets(consumer, tps, destination, title)`); `install` refuses any other.

FAUST_VERSION = "0.15.3"
_INSTALLED = "_article_streams_recovery_check"


def install() -> None:
    """Patch Faust's recovery so a local store ahead of its changelog is discarded and restored (idempotent)."""
    import inspect

    import faust
    from faust.tables.recovery import Recovery

    if getattr(Recovery, _INSTALLED, False):
        return
    if faust.__version__ != FAUST_VERSION:
        raise RuntimeError(
            f"streams.local_state corrects faust-streaming {FAUST_VERSION}'s recovery; found {faust.__version__}"
        )
    params = tuple(inspect.signature(Recovery._build_offsets).parameters)
    if params != ("self", "consumer", "tps", "destination", "title"):
        raise RuntimeError(f"faust's Recovery._build_offsets has parameters {params}: streams.local_state is outdated")
    original = Recovery._build_offsets

    async def _build_offsets(self: Any, consumer: Any, tps: set[Any], destination: Any, title: str) -> None:
        await original(self, consumer, tps, destination, title)
        if not tps:
            return
        if title == "active":
            last = dict(self.active_highwaters)
        else:
            ends = await consumer.highwaters(*tps)
            last = {tp: (end - 1 if end is not None else -1) for tp, end in ends.items()}
        for tp in sorted(tps):
            applied, end = destination.get(tp), last.get(tp)
            if applied is None or end is None or applied < 0 or applied <= end:
                continue
            table = self.tp_to_table.get(tp)
            discard_partition(table, tp.partition)
            destination[tp] = -1  # restore the whole partition from its changelog
            event(
                log,
                "local_state_discarded",
                level=logging.WARNING,
                reason="ahead_of_changelog",
                table=getattr(table, "name", "?"),
                changelog=f"{tp.topic}[{tp.partition}]",
                applied_offset=applied,
                changelog_last_offset=end,
                detail="the changelog is behind what the local store applied (topics recreated or the broker "
                "reset); the partition's local state is deleted and restored from the changelog",
            )

    Recovery._build_offsets = _build_offsets  # type: ignore[method-assign]
    setattr(Recovery, _INSTALLED, True)


def discard_partition(table: Any, partition: int) -> None:
    """Close and delete the local store of one table partition (RocksDB); a memory store keeps no offsets."""
    store = getattr(table, "data", None)
    dbs = getattr(store, "_dbs", None)
    if store is None or dbs is None:
        return
    db = dbs.pop(partition, None)
    if db is not None:
        try:
            db.close()
        except Exception:  # already closed
            pass
    getattr(store, "_key_index", {}).clear()
    shutil.rmtree(store.partition_path(partition), ignore_errors=True)
