"""dedup's snapshots on Kafka: the active worker writes its three tables to a topic, a worker starting empty loads them.

Why. A worker with an empty state dir (every kill -9 restart, since the local state is discarded after an
unclean stop) gets dedup's state back through Faust's changelog replay: 7,600 to 9,700 records a second, 214 to
265 s for 1M indexed articles (25 s from a snapshot; BENCHMARKS.md). `streams.stages.dedup.snapshot` holds
the same state in a few dozen columnar records; this module puts them on `articles.dedup-snapshots` and back
into Faust's stores, so that Faust replays only the changelog records written after the snapshot.

**Writing** (`SnapshotService.on_commit`, every STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS). Right after an
exactly-once commit of the dedup sequence's transaction, still under its gate (`streams.eos.on_commit`), the
local stores hold exactly what committed transactions wrote. There, without awaiting anything, one RocksDB
iterator per table is created (a RocksDB iterator reads the implicit snapshot taken when it is created,
whatever is written after) and each store's persisted changelog offset is read: the view and its offsets
are one instant. The gate is released at once; a thread reads the iterators and builds the records
(`write_snapshot`), which go out without a transaction, chunks first, the manifest last (with the view's
time as the records' timestamp), and then the previous snapshot's chunks are tombstoned. A writer that dies
half-way leaves the previous manifest in force; what it left behind is tombstoned by the next writer (the
manifest lists the chunks it supersedes, `extra.previous`; chunks after the newest manifest are orphans).

**Restoring** (`SnapshotService.on_start`: the worker's services start before the Faust app, so this runs
after `streams.local_state` discarded an unclean state and before Faust opens a store, while /metrics and
/ready already answer). For each dedup table whose local store is missing or empty, the latest snapshot is
used when (`plan`): it covers that changelog, its offset is not past the changelog's end (a restored store
is never ahead of its changelog, the rule `streams.local_state` enforces), and it is younger than the
changelog's ``delete.retention.ms`` less a margin (a tombstone written after the snapshot is kept at least
that long: an older snapshot could bring back a key deleted since). Its entries, then the changelog records
committed after it (the tail, read here up to the changelog's last stable offset), are written into a new
RocksDB store as Faust writes them (keys and values in Faust's json codec), with Faust's persisted-offset
key set to the offset before that end, and the store is moved into place whole. Faust's recovery then has
nothing left to replay but what was committed since (reading the tail here also spares Faust's wait of
about 10 s for a record after a changelog's final commit marker), and the index is built from the
snapshot's columns plus the articles the tail touched (`Deduplicator.rebuild(snapshot=..., changed=...)`)
instead of from the tables. Anything unusable (no topic, no manifest, another configuration, a missing
chunk) is logged and falls back to the changelog. While it runs, /ready says 503 (``waiting_for:
dedup_snapshot``) and the recovery gauges count the entries and tail records still to load.

Faust internals read here (faust-streaming 0.15.3, refused otherwise): a table's RocksDB store (`_dbs`,
`partition_path`, `rocksdb_options`, `offset_key`) and its json serializer; the table's
`on_changelog_event` callback (a constructor argument) notes the keys Faust's own replay touches.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from faust.utils import json as faust_json
from mode import Service

from streams import eos, topics
from streams.kafka.client import aiokafka_kwargs
from streams.logs import event
from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.snapshot import MANIFEST_KEY, Snapshot, SnapshotError, read_snapshot, write_snapshot

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("streams.dedup.snapshots")

FAUST_VERSION = "0.15.3"
TOPIC = "articles.dedup-snapshots"
KIND = {"dedup-articles": "articles", "dedup-content": "content", "dedup-held": "held"}  # table -> snapshot kind
OFFSET_KEY = b"__faust\x00offset__"  # faust.stores.rocksdb.Store.offset_key
RESTORING_SUFFIX = ".restoring"  # a store being written; moved into place only once whole
BATCH_ROWS = 20_000  # entries per RocksDB write batch while restoring
# A record must fit the topic (10 MiB); the chunks aim at STREAMS_DEDUP_SNAPSHOT_CHUNK_BYTES, well below.
MAX_RECORD_BYTES = topics.DEDUP_SNAPSHOTS.max_message_bytes - 64 * 1024
SCAN_TIMEOUT_SECONDS = 60.0  # reading a range of the snapshot topic without progress for this long fails


# --- what to restore: pure -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangelogFacts:
    """What the restore needs to know about one table's changelog (partition 0) and local store."""

    table: str
    topic: str
    end: int  # the changelog's end offset (the next offset to be written)
    delete_retention_ms: int | None  # the topic's delete.retention.ms; None when it could not be read
    local_empty: bool  # no local store, or an empty one


@dataclass(frozen=True)
class TablePlan:
    """Whether a table's store is loaded from the snapshot, from which offset Faust replays, and why."""

    table: str
    use: bool
    offset: int  # the next changelog offset the snapshot covers (Faust replays from here); 0 when not used
    tail: int  # changelog offsets after it up to the end (the whole changelog when not used)
    reason: str


def tombstone_margin_ms(delete_retention_ms: int) -> int:
    """How much younger than delete.retention.ms a snapshot must be: time to load it and replay the tail
    before a tombstone written just after it may be cleaned (a quarter of the retention, at least a minute)."""
    return max(60_000, delete_retention_ms // 4)


def plan(
    offsets: Mapping[str, int], snapshot_ms: int, now_ms: int, facts: Iterable[ChangelogFacts]
) -> dict[str, TablePlan]:
    """Per table: load it from a snapshot with these changelog `offsets`, taken at `snapshot_ms`, or not.

    >>> f = ChangelogFacts("dedup-articles", "app-dedup-articles-changelog", 900, 86_400_000, True)
    >>> plan({"app-dedup-articles-changelog": 850}, 0, 60_000, [f])["dedup-articles"].tail
    50
    """
    out = {}
    age_ms = now_ms - snapshot_ms
    for f in facts:
        offset = offsets.get(f.topic)
        reason = "snapshot"
        if not f.local_empty:
            reason = "local state kept"  # a store that survived a clean stop replays its own short tail
        elif offset is None:
            reason = "changelog not in the snapshot"
        elif offset > f.end:
            reason = f"snapshot ahead of the changelog (offset {offset}, changelog end {f.end})"
        elif f.delete_retention_ms is None:
            reason = "delete.retention.ms of the changelog unknown"
        elif age_ms > f.delete_retention_ms - tombstone_margin_ms(f.delete_retention_ms):
            reason = (
                f"snapshot {age_ms / 1000:.0f} s old; the changelog keeps tombstones "
                f"{f.delete_retention_ms / 1000:.0f} s"
            )
        use = reason == "snapshot"
        assert not use or offset is not None
        out[f.table] = TablePlan(
            f.table,
            use,
            offset if use and offset is not None else 0,
            f.end - offset if use and offset is not None else (f.end if f.local_empty else 0),
            reason,
        )
    return out


def stale_keys(manifest: Mapping[str, Any], after: Mapping[str, bool]) -> set[str]:
    """Keys a writer tombstones once its next manifest is written: the chunks of the manifest in force, those
    it superseded but which may not have been tombstoned (its writer died), and chunks written after it
    (`after`: key -> whether its newest record after the manifest has a value), orphans of a writer that died
    before its manifest."""
    extra = manifest.get("extra") or {}
    keys = {*manifest.get("chunks", ()), *extra.get("previous", ())}
    keys.update(k for k, live in after.items() if live and k != MANIFEST_KEY)
    return keys


def next_offset(persisted: bytes | None) -> int:
    """The changelog offset a store resumes from, given Faust's persisted offset (the last one applied)."""
    return int(persisted) + 1 if persisted is not None else 0


def persisted_for(offset: int) -> bytes | None:
    """Faust's persisted-offset value for a store that covers the changelog up to `offset` (exclusive).

    >>> persisted_for(851), persisted_for(0)
    (b'850', None)
    """
    return str(offset - 1).encode() if offset > 0 else None


def faust_dumps(value: Any) -> bytes:
    """A key or value as Faust's json serializer writes it into a table's store."""
    out: bytes | str = faust_json.dumps(value)  # orjson's bytes (typed str upstream)
    return out if isinstance(out, bytes) else out.encode()


def snapshot_entries(snapshot: Snapshot, kind: str) -> Iterator[tuple[bytes, bytes]]:
    """The snapshot's entries of one table, encoded as Faust stores them."""
    if kind == "articles":
        for cols in snapshot.articles():
            for key, entry in cols.entries():
                yield faust_dumps(key), faust_dumps(entry)
    else:
        for key, value in snapshot.pairs(kind):
            yield faust_dumps(key), faust_dumps(value)


# --- RocksDB: a store written whole, a table read at one instant -------------------------------------------


def store_is_empty(path: Path) -> bool:
    return not path.is_dir() or not any(path.iterdir())


def identity(path: Path) -> str | None:
    """RocksDB's IDENTITY of the database at `path` (a new one for every database created there)."""
    try:
        return (path / "IDENTITY").read_text().strip()
    except OSError:
        return None


def write_store(
    path: Path,
    options: Any,
    items: Iterable[tuple[bytes, bytes | None]],
    persisted: bytes | None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Writes `items` in order (a value None deletes the key, as a changelog tombstone does) and Faust's
    persisted offset into a new RocksDB store at `path`; returns how many items were applied.

    Built beside it (RESTORING_SUFFIX) without a write-ahead log, flushed, closed, then moved into place: a
    store at `path` is whole or absent, whatever stops the process. `options` is the table's
    faust RocksDBOptions, so Faust opens it as one of its own."""
    from rocksdict import WriteBatch, WriteOptions

    tmp = path.with_name(path.name + RESTORING_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    db = options.open(tmp)
    n = 0
    try:
        no_wal = WriteOptions()
        # the store is flushed before it is used; a crash leaves only `tmp` (a property at run time; the
        # package's stub calls it a method)
        no_wal.disable_wal = True  # type: ignore[method-assign,assignment]
        batch, in_batch = WriteBatch(raw_mode=True), 0
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            in_batch += 1
            if in_batch == BATCH_ROWS:
                db.write(batch, no_wal)
                n += in_batch
                progress(in_batch)
                batch, in_batch = WriteBatch(raw_mode=True), 0
        if persisted is not None:
            batch.put(OFFSET_KEY, persisted)
        db.write(batch, no_wal)
        n += in_batch
        progress(in_batch)
        db.flush()
    finally:
        db.close()
    if path.exists():
        shutil.rmtree(path)  # an empty store (only empty ones are restored)
    os.replace(tmp, path)
    return n


class TableView(Mapping[str, Any]):
    """A table's entries at one instant (a RocksDB iterator made then), decoded with Faust's json codec.

    Read once, in key order (`items()`), as `write_snapshot` reads it; the persisted offset key is left out."""

    def __init__(self, iterator: Any) -> None:
        self._it = iterator
        self._used = False

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        if self._used:
            raise RuntimeError("a table view is read once")
        self._used = True
        it = self._it
        it.seek_to_first()
        loads = orjson.loads
        while it.valid():
            key = it.key()
            if key != OFFSET_KEY:
                yield loads(key), loads(it.value())
            it.next()

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items())

    def __getitem__(self, key: str) -> Any:
        raise TypeError("a table view is read in order, not by key")

    def __len__(self) -> int:
        raise TypeError("a table view does not know its size before it is read")


def open_view(db: Any) -> tuple[TableView, int]:
    """A view of the store `db` now and the changelog offset it reflects (next offset). Synchronous: call it
    where nothing else can write the store (under the transaction's gate, right after a commit)."""
    iterator = db.iter()  # the implicit snapshot: this instant
    return TableView(iterator), next_offset(db.get(OFFSET_KEY))


# --- the snapshot topic ----------------------------------------------------------------------------------


@dataclass
class Located:
    """The newest manifest on the topic: its record and what was written after it (key -> has a value)."""

    manifest: dict[str, Any]
    offset: int
    timestamp_ms: int
    after: dict[str, bool] = field(default_factory=dict)

    @property
    def taken_ms(self) -> int:
        """When the view was taken (the writer's record timestamp, or its manifest's own note)."""
        extra = self.manifest.get("extra") or {}
        return int(extra.get("taken_ms", self.timestamp_ms))


class SnapshotTopic:
    """Reads of the one partition of articles.dedup-snapshots: find the newest manifest from the end, read
    the chunks it names (normally the records just before it), never the whole topic."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.name = settings.topic(TOPIC)
        self.tp = TopicPartition(self.name, 0)
        self.consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> SnapshotTopic:
        self.consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_uncommitted",  # no transactions write this topic
            # every scan seeks: a fetch left waiting at the end of the log would hold the next one up
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
            fetch_max_bytes=4 * topics.MAX_REQUEST_BYTES,
            client_id="article-streams-dedup-snapshots",
        )
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.consumer is not None:
            await stop_quietly(self.consumer)
            self.consumer = None

    async def exists(self) -> bool:
        assert self.consumer is not None
        parts = self.consumer.partitions_for_topic(self.name)
        if not parts:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(self.name)
        if parts:
            self.consumer.assign([self.tp])
        return bool(parts)

    async def bounds(self) -> tuple[int, int]:
        assert self.consumer is not None
        start = (await self.consumer.beginning_offsets([self.tp]))[self.tp]
        end = (await self.consumer.end_offsets([self.tp]))[self.tp]
        return start, end

    async def scan(self, lo: int, hi: int, keep: Callable[[Any], None]) -> None:
        assert self.consumer is not None
        await scan(self.consumer, self.tp, lo, hi, keep)

    async def locate(self) -> Located | None:
        """The newest manifest, read backwards from the end in growing windows (only tombstones and the
        manifest itself are usually in the way); None when the topic holds none."""
        start, end = await self.bounds()
        after: dict[str, bool] = {}
        hi, width = end, 16
        while hi > start:
            lo = max(start, hi - width)
            seen: list[tuple[int, str, bool, bytes | None, int]] = []

            def keep(rec: Any, seen: list[tuple[int, str, bool, bytes | None, int]] = seen) -> None:
                key = rec.key.decode() if rec.key is not None else ""
                value = rec.value if key == MANIFEST_KEY else None  # a chunk's bytes are not kept
                seen.append((rec.offset, key, rec.value is not None, value, rec.timestamp))

            await self.scan(lo, hi, keep)
            for offset, key, live, value, ts in reversed(seen):
                if key == MANIFEST_KEY and value is not None:
                    try:
                        manifest = orjson.loads(value)
                    except orjson.JSONDecodeError as exc:
                        raise SnapshotError(f"corrupt snapshot manifest at offset {offset}: {exc}") from exc
                    return Located(manifest, offset, ts, after)
                after.setdefault(key, live)
            hi, width = lo, width * 4
        return None

    async def chunks(self, located: Located) -> dict[str, bytes]:
        """The records the manifest names (and the manifest), as `read_snapshot` wants them. The chunks are
        looked for just before the manifest, then further back if a writer's records were interleaved."""
        wanted = set(located.manifest.get("chunks", ()))
        gone = sorted(k for k in wanted if located.after.get(k) is False)
        if gone:
            raise SnapshotError(f"snapshot chunks tombstoned after its manifest: {gone[:3]}")
        found: dict[str, bytes] = {}
        start, _ = await self.bounds()
        hi, width = located.offset, max(len(wanted), 1)
        while wanted - found.keys() and hi > start:
            lo = max(start, hi - width)

            def keep(rec: Any) -> None:
                key = rec.key.decode() if rec.key is not None else ""
                if key in wanted and key not in found and rec.value is not None:
                    found[key] = rec.value

            await self.scan(lo, hi, keep)
            hi, width = lo, width * 4
        found[MANIFEST_KEY] = orjson.dumps(located.manifest)
        return found


async def scan(consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int, keep: Callable[[Any], None]) -> None:
    """Hands every record of `tp` with lo <= offset < hi to `keep`, in order (the consumer is assigned `tp`)."""
    if hi <= lo:
        return
    consumer.seek(tp, lo)
    last_progress = time.monotonic()
    while await consumer.position(tp) < hi:
        batch = await consumer.getmany(tp, timeout_ms=500)
        records = batch.get(tp, [])
        if records:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > SCAN_TIMEOUT_SECONDS:
            raise TimeoutError(f"no record of {tp.topic} [{lo}, {hi}) for {SCAN_TIMEOUT_SECONDS:.0f} s")
        for rec in records:
            if rec.offset >= hi:
                return
            keep(rec)


async def changelog_tails(
    settings: Any, ranges: Mapping[str, tuple[str, int, int]]
) -> dict[str, list[tuple[bytes, bytes | None]]]:
    """{table: (changelog, lo, hi)} -> the committed records of each changelog (partition 0) in [lo, hi)."""
    out: dict[str, list[tuple[bytes, bytes | None]]] = {table: [] for table in ranges}
    wanted = {table: r for table, r in ranges.items() if r[2] > r[1]}
    if not wanted:
        return out
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # as Faust's recovery reads it: aborted writes never arrive
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
        fetch_max_bytes=4 * topics.MAX_REQUEST_BYTES,
    )
    await consumer.start()
    try:
        for table, (topic, lo, hi) in wanted.items():
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            into = out[table]

            def keep(rec: Any, into: list[tuple[bytes, bytes | None]] = into) -> None:
                into.append((rec.key, rec.value))

            await scan(consumer, tp, lo, hi, keep)
    finally:
        await stop_quietly(consumer)
    return out


async def stop_quietly(client: Any) -> None:
    """Stops an aiokafka client. aiokafka 0.14's consumer can raise the CancelledError of one of its own
    tasks out of stop() (seen when it stops right after an assignment); that one is not ours to propagate:
    a CancelledError escaping a service's start makes mode stop the whole worker, without a word."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("an aiokafka client's stop() raised its own task's CancelledError", exc_info=True)


async def changelog_facts(settings: Any, changelogs: Mapping[str, str], empty: Mapping[str, bool]) -> dict[str, Any]:
    """End offsets and delete.retention.ms of the changelogs ({table: topic}), as ChangelogFacts by table."""
    tps = {table: TopicPartition(topic, 0) for table, topic in changelogs.items()}
    consumer = AIOKafkaConsumer(
        # read_committed: the end is the last stable offset, as Faust's recovery sees it (streams.eos)
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        known = {tp for tp in tps.values() if consumer.partitions_for_topic(tp.topic)}
        ends = await consumer.end_offsets(sorted(known)) if known else {}
    finally:
        await stop_quietly(consumer)
    retention: dict[str, int] = {}
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        names = sorted(tp.topic for tp in known)
        if names:
            resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
            for resp in await admin.describe_configs(resources):
                for res in resp.resources:
                    for entry in res[4]:
                        if entry[0] == "delete.retention.ms" and entry[1] is not None:
                            retention[res[3]] = int(entry[1])
    except Exception:  # no DescribeConfigs ACL: unknown retention, the snapshot is not used for it
        log.warning("could not read delete.retention.ms of the dedup changelogs", exc_info=True)
    finally:
        await admin.close()
    return {
        table: ChangelogFacts(table, tp.topic, int(ends.get(tp, 0)), retention.get(tp.topic), empty[table])
        for table, tp in tps.items()
    }


# --- the service: restore at start, write after commits ----------------------------------------------------


class Restored:
    """What the restore left for the first index build: the snapshot, and the article keys the changelog
    replay touched since (noted by the table's on_changelog_event)."""

    def __init__(self, snapshot: Snapshot, articles_path: Path) -> None:
        self.snapshot = snapshot
        self.path = articles_path
        self.identity = identity(articles_path)
        self.changed: dict[str, None] = {}

    def still_ours(self) -> bool:
        """The store Faust recovered is the one restored (not discarded and rebuilt since)."""
        return self.identity is not None and identity(self.path) == self.identity


class SnapshotService(Service):
    """Loads dedup's stores from the latest snapshot at start (before the app), writes snapshots after commits.

    Wiring (streams.agents.dedup): create it before the tables, pass `on_changelog_event` to the articles
    table, `add_service` it, call `take_restored()` when the index is built, `on_revoked()` when the sequence
    partition leaves, and register `ready` and `remaining` with the pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        config: DedupConfig,
        *,
        tables: Callable[[], Mapping[str, Any]],
        sequence: Any,
        owner: Callable[[], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.p = pipeline
        self.settings = pipeline.settings
        self.config = config
        self._tables = tables
        self.sequence = sequence
        self.owner = owner  # True while the active Deduplicator of the sequence partition is built here
        self.interval = float(self.settings.dedup_snapshot_interval_seconds)
        self.rocksdb = self.settings.store == "rocksdb"
        # restoring
        self.restoring = False
        self.restored: Restored | None = None
        self._left: dict[str, int] = {}  # table -> records still to load or replay, while restoring
        self._tails: dict[str, int] = {}  # table -> changelog records Faust replays after the restore
        self._replaying = False  # restored; Faust's recovery has not finished yet
        # writing
        self._task: asyncio.Task[None] | None = None
        self._due: float | None = None  # monotonic time of the next snapshot
        self._stale: set[str] | None = None  # keys to tombstone after the next manifest (None: read the topic)
        self._producer: AIOKafkaProducer | None = None
        self.written = 0
        if faust.__version__ != FAUST_VERSION:
            raise RuntimeError(f"{__name__} reads faust-streaming {FAUST_VERSION}'s stores; found {faust.__version__}")

    # -- readiness and progress ---------------------------------------------------------------------------
    def ready(self) -> bool:
        return not self.restoring

    def remaining(self) -> dict[str, int]:
        """Records per table still to load (snapshot entries and tail records), and, once loaded, what
        Faust will replay itself (the changelogs of empty stores not restored) until its recovery reports."""
        if self.restoring:
            return dict(self._left)
        if self._replaying:
            recovery = self.p.facts.recovery()
            if recovery is None or not recovery.in_recovery:
                return dict(self._tails)
        return {}

    async def on_changelog_event(self, ev: Any) -> None:
        """The articles table's changelog callback: while a restored snapshot waits for its index build,
        note each key the replay writes or deletes."""
        restored = self.restored
        if restored is not None:
            key = ev.message.key
            try:
                restored.changed[orjson.loads(key) if isinstance(key, bytes | bytearray) else str(key)] = None
            except orjson.JSONDecodeError:
                pass

    def take_restored(self) -> tuple[Snapshot | None, list[str]]:
        """For the first index build after a restore: the snapshot and the keys changed since, once. Call it
        on the event loop (the changelog callback writes the keys there)."""
        restored, self.restored = self.restored, None
        self._replaying = False
        if restored is None:
            return None, []
        if not restored.still_ours():
            log.warning("the restored dedup-articles store was replaced during recovery: index from the tables")
            return None, []
        return restored.snapshot, list(restored.changed)

    # -- restore --------------------------------------------------------------------------------------------
    async def on_start(self) -> None:
        if not (self.settings.dedup_snapshot_restore and self.rocksdb):
            return
        self.restoring = True
        try:
            await self._restore()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker is stopping
            self._not_used(exc)
        except Exception as exc:  # never a crash: the changelog is the truth, the snapshot only a shortcut
            self._not_used(exc)
        finally:
            self.restoring = False
            self._left = {}

    def _not_used(self, exc: BaseException) -> None:
        log.error("restoring dedup's tables from the snapshot failed; recovering from the changelogs", exc_info=exc)
        event(log, "dedup_snapshot_not_used", level=logging.WARNING, reason=f"restore failed: {exc!r}")
        self.restored = None

    def _stores(self) -> dict[str, Any]:
        return {name: table.data for name, table in self._tables().items()}

    async def _restore(self) -> None:
        started = time.perf_counter()
        tables = self._tables()
        stores = self._stores()
        paths = {name: Path(store.partition_path(0)) for name, store in stores.items()}
        for path in paths.values():  # what a stopped restore left
            shutil.rmtree(path.with_name(path.name + RESTORING_SUFFIX), ignore_errors=True)
        empty = {name: store_is_empty(path) for name, path in paths.items()}
        if not any(empty.values()):
            return
        for name, table in tables.items():
            if (table.key_serializer, table.value_serializer) != ("json", "json"):
                event(log, "dedup_snapshot_not_used", reason=f"table {name} is not serialised as json")
                return
        changelogs = {name: table.changelog_topic.get_topic_name() for name, table in tables.items()}
        facts = await changelog_facts(self.settings, changelogs, empty)
        self._left = {name: f.end for name, f in facts.items() if f.local_empty}
        async with SnapshotTopic(self.settings) as topic:
            if not await topic.exists():
                event(log, "dedup_snapshot_not_used", reason=f"no topic {topic.name}")
                return
            located = await topic.locate()
            if located is None:
                event(log, "dedup_snapshot_not_used", reason="no snapshot written yet")
                return
            plans = plan(located.manifest.get("offsets", {}), located.taken_ms, int(time.time() * 1000), facts.values())
            used = [name for name, pl in plans.items() if pl.use]
            if not used:
                event(
                    log,
                    "dedup_snapshot_not_used",
                    reason="; ".join(f"{n}: {pl.reason}" for n, pl in sorted(plans.items()) if facts[n].local_empty),
                )
                return
            records = await topic.chunks(located)
        snapshot = read_snapshot(records, self.config)  # SnapshotError: another configuration, a missing chunk
        del records
        tails = await changelog_tails(
            self.settings, {name: (facts[name].topic, plans[name].offset, facts[name].end) for name in used}
        )
        read_s = time.perf_counter() - started
        counts = snapshot.manifest.get("counts", {})
        for name, pl in plans.items():
            if facts[name].local_empty:
                self._left[name] = int(counts.get(KIND[name], 0)) + len(tails[name]) if pl.use else pl.tail
        loaded_at = time.perf_counter()
        loaded: dict[str, int] = {}
        for name in used:

            def progress(n: int, name: str = name) -> None:
                self._left[name] = max(0, self._left[name] - n)

            entries = itertools.chain(snapshot_entries(snapshot, KIND[name]), tails[name])
            loaded[name] = await asyncio.to_thread(
                write_store,
                paths[name],
                stores[name].rocksdb_options,
                entries,
                persisted_for(facts[name].end),  # the snapshot and the tail: the changelog up to its end
                progress,
            )
        load_s = time.perf_counter() - loaded_at
        # What Faust still replays: the whole changelog of an empty store not restored
        self._tails = {name: pl.tail for name, pl in plans.items() if facts[name].local_empty and not pl.use}
        self._replaying = True
        if "dedup-articles" in used:
            self.restored = Restored(snapshot, paths["dedup-articles"])
            for key, _value in tails["dedup-articles"]:
                try:
                    self.restored.changed[orjson.loads(key)] = None
                except orjson.JSONDecodeError:
                    pass
        event(
            log,
            "dedup_snapshot_restored",
            seconds=round(time.perf_counter() - started, 3),
            read_seconds=round(read_s, 3),
            load_seconds=round(load_s, 3),
            snapshot_age_seconds=round((time.time() * 1000 - located.taken_ms) / 1000, 1),
            snapshot_id=snapshot.manifest.get("snapshot_id"),
            tables={
                name: {
                    "entries": loaded.get(name, 0) - len(tails.get(name, ())),
                    "offset": pl.offset,
                    "tail": len(tails[name]) if name in tails else 0,
                    "end": facts[name].end,
                    "how": pl.reason,
                }
                for name, pl in sorted(plans.items())
            },
        )

    # -- write ----------------------------------------------------------------------------------------------
    def writing(self) -> bool:
        return self._task is not None and not self._task.done()

    def on_commit(self, tid: str) -> None:
        """streams.eos.on_commit: under the gate of `tid`, right after its commit."""
        if self.interval <= 0 or not self.rocksdb or self.writing() or not self.owner():
            return
        try:
            if tid != eos.transactional_id(self.p.app, self.sequence):
                return
        except KeyError:  # no assignment yet
            return
        now = time.monotonic()
        if self._due is None:
            self._due = now + self.interval  # the clock starts when this worker begins deciding
        if now < self._due:
            return
        views = self.take_view()
        if views is None:
            return
        self._due = now + self.interval
        self._task = asyncio.ensure_future(self._write(views, int(time.time() * 1000)))

    def take_view(self) -> dict[str, tuple[TableView, int, str]] | None:
        """Every table's view and offset at this instant (see open_view); None when a store is not open."""
        views = {}
        for name, table in self._tables().items():
            db = getattr(table.data, "_dbs", {}).get(0)
            if db is None:
                return None
            view, offset = open_view(db)
            views[name] = (view, offset, table.changelog_topic.get_topic_name())
        return views

    def on_revoked(self) -> None:
        """The sequence partition left this worker: stop a write in flight, forget what it knew."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self._due = None
        self._stale = None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **aiokafka_kwargs(self.settings),
                acks="all",
                enable_idempotence=True,
                max_request_size=topics.MAX_REQUEST_BYTES,
                linger_ms=5,
                client_id="article-streams-dedup-snapshots",
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _write(self, views: dict[str, tuple[TableView, int, str]], taken_ms: int) -> None:
        started = time.perf_counter()
        topic = self.settings.topic(TOPIC)
        sid = f"{taken_ms}-{uuid.uuid4().hex[:8]}"
        sent: list[str] = []
        records = None
        try:
            if self._stale is None:
                async with SnapshotTopic(self.settings) as reader:
                    if not await reader.exists():
                        raise SnapshotError(f"no topic {topic}")
                    located = await reader.locate()
                self._stale = stale_keys(located.manifest, located.after) if located is not None else set()
            stale = set(self._stale)
            producer = await self._ensure_producer()
            offsets = {name: offset for (_, offset, name) in views.values()}
            records = write_snapshot(
                self.config,
                views["dedup-articles"][0],
                views["dedup-content"][0],
                views["dedup-held"][0],
                offsets=offsets,
                chunk_bytes=self.settings.dedup_snapshot_chunk_bytes,
                snapshot_id=sid,
                extra={"previous": sorted(stale), "taken_ms": taken_ms},
            )
            pending: list[asyncio.Future[Any]] = []
            nbytes = 0
            manifest: dict[str, Any] = {}
            while True:
                record = await asyncio.to_thread(next, records, None)  # a chunk is built in a thread
                if record is None:
                    break
                key, value = record
                if not self.owner():
                    raise SnapshotError("the sequence partition left this worker")
                if len(value) > MAX_RECORD_BYTES:
                    raise SnapshotError(f"record {key} is {len(value):,} bytes, over {MAX_RECORD_BYTES:,}")
                if key == MANIFEST_KEY:
                    await asyncio.gather(*pending)  # every chunk is on the broker before a manifest names it
                    pending = []
                    manifest = orjson.loads(value)
                else:
                    sent.append(key)
                pending.append(
                    await producer.send(topic, key=key.encode(), value=value, partition=0, timestamp_ms=taken_ms)
                )
                nbytes += len(value)
            await asyncio.gather(*pending)
            self._stale = set(sent)  # the next snapshot supersedes these
            tombstones = sorted(stale - set(sent))
            await asyncio.gather(
                *[await producer.send(topic, key=k.encode(), value=None, partition=0) for k in tombstones]
            )
            self.written += 1
            event(
                log,
                "dedup_snapshot_written",
                seconds=round(time.perf_counter() - started, 3),
                snapshot_id=sid,
                records=len(sent) + 1,
                bytes=nbytes,
                counts=manifest.get("counts"),
                offsets=offsets,
                tombstoned=len(tombstones),
            )
        except asyncio.CancelledError:
            self._note_orphans(sent)
            raise
        except Exception as exc:
            self._note_orphans(sent)
            event(log, "dedup_snapshot_failed", level=logging.WARNING, reason=str(exc) or repr(exc))
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                try:
                    close()  # releases the RocksDB iterators
                except ValueError:  # still running in its thread (cancelled): it ends with that call
                    pass

    def _note_orphans(self, sent: list[str]) -> None:
        if self._stale is not None:
            self._stale.update(sent)  # chunks of a snapshot never named by a manifest: tombstoned next time

    async def on_stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
