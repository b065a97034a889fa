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
        return self.tabledir.is_dir() and any(self.tabledir.iterdir())

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
