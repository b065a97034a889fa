"""Exactly-once for faust-streaming 0.15.3 (aiokafka 0.14.0): what is committed is what was processed.

Faust's exactly-once mode commits, per source partition, the offsets its streams acked, in the transaction of
that partition's producer. Found by tests here against the real broker (kill -9 mid-stream, two workers,
rebalances, a broker restart), that does not hold across crashes. This module replaces the offset
bookkeeping with the rule Kafka Streams uses and corrects the paths around it. It refuses to install on any
other faust-streaming or aiokafka version, or when a method it replaces has changed its signature.

**The rule** (Kafka Streams' ``committableOffsetsAndMetadata``, KAFKA-6607). Per source partition, the
records the consumer hands to Faust are noted in order, in the *epoch* in which they were fetched. An epoch
ends at every seek, assignment and revocation of the partition (`OffsetLedger`); a record fetched in an
older epoch is never processed (``stale_epoch``). A record is processed only when it is the next noted
record of the current epoch; one below it was already processed (``already_processed``); one above it means
records were lost on the way (``hole``: the partition is rewound, below). The offset committed with a
transaction is that of the first noted record not yet processed, or, when every noted record is processed,
the consumer's position, so that the commit markers after the last record do not read as lag. Nothing is
derived from Faust's acks or offset gaps.

The corrections, each with the upstream report it answers:

1. **Offsets from processing, not acks** (faust-streaming 606, 596, 312/313, 378-380; the lag of a commit
   interval seen here: offset 396 committed while output to 622 was). Faust infers gaps left by transaction
   markers as intervals that include the next record, counts that record twice and stops the committed run
   short; acks also arrive for records that were never processed (skipped after a generation change, or
   after a revocation popped the committed offset). `force_commit` now commits the ledger's offsets, per
   transactional producer and concurrently; Faust's ack and gap bookkeeping is not kept under exactly-once
   (it grew without bound once nothing consumed it); `_drain_messages` hands every fetched record to the
   streams (its drop of records below a read offset could lose records after a rewind; the epoch does that
   job exactly).
2. **Transaction routing** (faust-streaming 517, 177: 86 duplicates in 1,200 after kill -9 here). Faust
   picks the transactional producer of a record from its *destination* partition while it commits offsets
   in the producer of the *source* partition. While an event is processed, its output now joins its source
   partition's transaction.
3. **A gate per transaction.** Processing an event and committing its transaction exclude each other
   (`processing`); other transactions go on while one commits (Faust's commit stopped the world).
4. **Table writes** (faust-streaming 323). Faust queues changelog records for a background task, outside
   any transaction. A write made while processing an event is published in that event's transaction and
   awaited before the event counts as processed; the value it replaced is kept until the transaction
   commits, so that an abort also undoes the write in the local store (`_undo`).
5. **A just-assigned changelog's end** (Faust reads -1 from an empty fetch cache and fails its consistency
   check, or skips recovery): the end is asked of the broker (the last stable offset).
6. **Seeking to the committed offset.** A transactional offset commit is visible to OffsetFetch only once
   its markers are written (aiokafka cannot ask to wait: KIP-447's require_stable), so what this process
   committed is the floor of a seek; and aiokafka does not move a partition with no committed offset at
   all, so Faust's rewind left it where it was (records processed in an aborted transaction were then never
   processed again): it now goes to the beginning (``auto.offset.reset=earliest``).
7. **Rewinds abort first.** Faust rewinds every partition when a recovery ends, over records it may already
   have processed in the same generation. Their output sits in open transactions: those are aborted (their
   table writes undone) before the seek. The same rewind answers a ``hole``, a failed commit (a broker
   restart) and an error while an event was being processed. Stages with in-memory state over their tables
   are told (`on_rewind`) so they rebuild it.
8. **Zombie fencing at rebalances** (Kafka's transactional-id fencing, which Faust's reuse of its producers
   defeated). Faust kept the producer of a transactional id that went to another worker and came back (fenced
   meanwhile without knowing it), and a rewind on a worker that had just lost its partitions began a
   transaction whose InitProducerId fenced the new owner (seen here: the remaining worker's producer stayed in
   a fatal state after a second worker left). At a rebalance every producer of an id no longer ours is
   stopped and every newly owned id gets a new producer (`_on_rebalance`); a rewind begins a transaction only
   for an id still ours, and replaces a fenced producer only then (`_restart_transaction`).
9. **Persisted changelog offsets** (under exactly-once Faust looked a table's changelog offset up by the
   source partition, found none, and never wrote it to RocksDB: every start replayed whole changelogs). The
   offsets a transaction's table writes got are kept per transaction and written when it commits.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import aiokafka
import faust
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.errors import ProducerFenced
from faust.exceptions import ProducerSendError
from faust.streams import _current_event, current_event
from faust.tables.base import Collection as Table
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ConsumerRebalanceListener, ensure_aiokafka_TP
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from mode.utils.futures import notify

log = logging.getLogger("streams.eos")

FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"
REWIND_BACKOFF_SECONDS = 0.5  # between rewinds of one transaction, so a broker that is away is not hammered
# A fetched record that no event of its partition has followed for this long was lost on the way to the stage
# (nothing after it revealed the hole): its transaction is rewound. Far above any stage's time per event.
STALL_SECONDS = 60.0

# Skip reasons `processing` yields; metrics label them.
STALE_EPOCH = "stale_epoch"
STALE_GENERATION = "stale_generation"
ALREADY_PROCESSED = "already_processed"
HOLE = "hole"
REWINDING = "rewinding"
SKIP_REASONS = (STALE_EPOCH, STALE_GENERATION, ALREADY_PROCESSED, HOLE, REWINDING)


# --- the ledger: pure bookkeeping, no Faust ---------------------------------------------------------------


@dataclass
class _Partition:
    epoch: int = 0
    noted: collections.deque[int] = field(default_factory=collections.deque)  # fetched, not yet processed
    last_noted: int | None = None
    position: int | None = None  # the consumer's position after the last fetch of this epoch
    committed: int | None = None  # the offset last committed (the next record to read)
    progress_at: float = 0.0  # when the first noted record last changed (monotonic seconds)


class OffsetLedger:
    """What was fetched and what was processed, per partition and epoch; what may be committed.

    The consumer thread calls `bump` (seek, assignment, revocation) and `note` (records handed to Faust, with
    the position after them); the event loop calls `admit`, `processed`, `committable` and `committed`. One
    lock makes each call atomic across the two threads.

    >>> ledger = OffsetLedger()
    >>> e = ledger.note("t0", [5, 7], position=9)      # 6 and 8 are transaction markers
    >>> ledger.admit("t0", e, 5), ledger.processed("t0", e, 5), ledger.committable(["t0"])
    (None, None, {'t0': 7})
    >>> ledger.admit("t0", e, 7), ledger.processed("t0", e, 7), ledger.committable(["t0"])
    (None, None, {'t0': 9})
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._parts: dict[Any, _Partition] = {}
        self._clock = clock

    def _part(self, tp: Any) -> _Partition:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        return part

    def epoch(self, tp: Any) -> int:
        with self._lock:
            return self._part(tp).epoch

    def bump(self, tp: Any) -> int:
        """A new epoch: records fetched before this moment will not be processed; the position is unknown."""
        with self._lock:
            part = self._part(tp)
            part.epoch += 1
            part.noted.clear()
            part.last_noted = None
            part.position = None
            part.progress_at = self._clock()
            return part.epoch

    def note(self, tp: Any, offsets: Iterable[int], position: int | None) -> int:
        """Records handed to Faust, in order, and the consumer's position after them; returns their epoch.

        A record at or below one already noted in this epoch means the position went back without a seek we
        saw: a new epoch starts, so that nothing below it counts as processed."""
        with self._lock:
            part = self._part(tp)
            offsets = list(offsets)
            if offsets and part.last_noted is not None and offsets[0] <= part.last_noted:
                log.warning("%s went back from %s to %s without a seek: new epoch", tp, part.last_noted, offsets[0])
                part.epoch += 1
                part.noted.clear()
            if not part.noted:
                part.progress_at = self._clock()
            part.noted.extend(offsets)
            if offsets:
                part.last_noted = offsets[-1]
            if position is not None:
                part.position = position
            return part.epoch

    def admit(self, tp: Any, epoch: int | None, offset: int) -> str | None:
        """None when the record may be processed now; else why not (STALE_EPOCH, ALREADY_PROCESSED, HOLE)."""
        with self._lock:
            part = self._part(tp)
            if epoch != part.epoch:
                return STALE_EPOCH
            if not part.noted or offset < part.noted[0]:
                return ALREADY_PROCESSED
            if offset > part.noted[0]:
                return HOLE
            return None

    def admit_run(self, tp: Any, epoch: int | None, offsets: list[int]) -> list[str | None]:
        """`admit` for several records of one partition in delivery order, as if each before it was processed."""
        with self._lock:
            part = self._part(tp)
            out: list[str | None] = []
            i = 0
            broken = False
            for offset in offsets:
                if epoch != part.epoch:
                    out.append(STALE_EPOCH)
                elif broken:
                    out.append(HOLE)
                elif i >= len(part.noted) or offset < part.noted[i]:
                    out.append(ALREADY_PROCESSED)
                elif offset == part.noted[i]:
                    out.append(None)
                    i += 1
                else:
                    out.append(HOLE)
                    broken = True  # nothing after a hole may be processed before the rewind
            return out

    def processed(self, tp: Any, epoch: int | None, offset: int) -> None:
        with self._lock:
            part = self._part(tp)
            if epoch == part.epoch and part.noted and part.noted[0] == offset:
                part.noted.popleft()
                part.progress_at = self._clock()

    def stalled(self, tps: Iterable[Any], after: float) -> list[Any]:
        """Partitions whose first noted record has waited `after` seconds with nothing of theirs processed.

        A record can only wait that long if it was lost between the fetch and the stage without a record
        after it to reveal the hole (or a stage is stuck): the caller rewinds, rather than stall for ever."""
        now = self._clock()
        with self._lock:
            return [
                tp
                for tp in tps
                if (part := self._parts.get(tp)) is not None and part.noted and now - part.progress_at >= after
            ]

    def committable(self, tps: Iterable[Any]) -> dict[Any, int]:
        """Offset to commit per partition, where it is past the last commit: the first noted record not yet
        processed, else the position after the last fetch (so the markers after the last record count)."""
        out: dict[Any, int] = {}
        with self._lock:
            for tp in tps:
                part = self._parts.get(tp)
                if part is None:
                    continue
                offset = part.noted[0] if part.noted else part.position
                if offset is not None and (part.committed is None or offset > part.committed):
                    out[tp] = offset
        return out

    def committed(self, tp: Any, offset: int) -> None:
        with self._lock:
            part = self._part(tp)
            if part.committed is None or offset > part.committed:
                part.committed = offset

    def last_committed(self, tp: Any) -> int | None:
        with self._lock:
            part = self._parts.get(tp)
            return part.committed if part is not None else None

    def outstanding(self, tp: Any) -> int:
        """Records noted and not processed (for the lag gauge and tests)."""
        with self._lock:
            part = self._parts.get(tp)
            return len(part.noted) if part is not None else 0

    def forget(self, tp: Any) -> None:
        """The partition left this worker: bump its epoch and forget what it committed."""
        with self._lock:
            part = self._part(tp)
            part.epoch += 1
            part.noted.clear()
            part.last_noted = None
            part.position = None
            part.committed = None
            part.progress_at = self._clock()


# --- per-app state ------------------------------------------------------------------------------------------

_APPS: weakref.WeakSet[Any] = weakref.WeakSet()  # apps with a ledger


@dataclass
class _Undo:
    table: Any
    partition: int
    key: Any
    old: Any  # _MISSING when the key was absent


_MISSING = object()


class _AppState:
    """Everything this module keeps for one Faust app (attached to it, created on first use)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ledger = OffsetLedger()
        self.gates: dict[str, asyncio.Lock] = {}
        self.table_writes: dict[str, list[asyncio.Future[Any]]] = collections.defaultdict(list)
        self.last_table_write: dict[str, asyncio.Future[Any]] = {}  # per transaction: the next write waits for it
        self.undo: dict[str, list[_Undo]] = collections.defaultdict(list)
        # changelog partition -> (store, offset) of the table writes a transaction sent: persisted at its commit
        self.persist: dict[str, dict[Any, tuple[Any, int]]] = collections.defaultdict(dict)
        self.poisoned: set[str] = set()
        self.rewind_callbacks: list[Callable[[set[Any]], Awaitable[None] | None]] = []
        self.commit_callbacks: list[Callable[[str], None]] = []
        self.last_rewind: dict[str, float] = {}
        self.logged: set[tuple[Any, int | None, str]] = set()  # (partition, epoch, reason) already logged
        self.commit_requested: set[str] = set()
        self._sources: frozenset[str] | None = None

    def sources(self) -> frozenset[str]:
        """Topics the agents read (changelogs and Faust's internal topics are not processed by agents)."""
        if self._sources is None:
            topics: set[str] = set()
            for agent in self.app.agents.values():
                topics.update(getattr(agent.channel, "topics", ()) or ())
            self._sources = frozenset(str(t) for t in topics)
        return self._sources

    def gate(self, tid: str) -> asyncio.Lock:
        lock = self.gates.get(tid)
        if lock is None:
            lock = self.gates[tid] = asyncio.Lock()
        return lock


def state(app: Any) -> _AppState:
    st = app.__dict__.get("_streams_eos")
    if st is None:
        st = app.__dict__["_streams_eos"] = _AppState(app)
        _APPS.add(app)  # the consumer-thread hooks (seeks) bump the epochs of every app that has a ledger
    return cast(_AppState, st)


def transactional_id(app: Any, tp: Any) -> str:
    """Faust's transactional id for a source partition: one producer per (topic group, partition)."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(tp.topic)}-{tp.partition}"


def on_rewind(app: Any, callback: Callable[[set[Any]], Awaitable[None] | None]) -> None:
    """Call `callback(tps)` after partitions were rewound and their aborted table writes undone."""
    state(app).rewind_callbacks.append(callback)


def on_commit(app: Any, callback: Callable[[str], None]) -> None:
    """Call `callback(tid)` right after transaction `tid` committed, before its next event is processed.

    Additive hook, no correction: the callback runs synchronously under the transaction's gate, after the
    committed changelog offsets were persisted to the stores, so the local stores of the tables written in
    `tid` hold exactly what its committed transactions wrote (no write of an open transaction that may still
    abort). For a consistent view of them (streams.agents.dedup_snapshots); it must not block: take the view
    (e.g. RocksDB iterators, whose implicit snapshot is fixed when they are created) and work on it later.
    An exception in it is logged and does not fail the commit."""
    state(app).commit_callbacks.append(callback)


# The source partition of the event being processed: `_send` routes output into its transaction. A context
# variable rather than Faust's current_event, so that a batch of events can route each event's output.
_SOURCE: contextvars.ContextVar[Any] = contextvars.ContextVar("streams_eos_source", default=None)


class _Stand:
    """A stand-in for Faust's current event while undoing a table write: stores read its partition."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int) -> None:
        self.message = type("M", (), {"partition": partition})()


# --- processing --------------------------------------------------------------------------------------------


@asynccontextmanager
async def processing(app: Any, event: Any) -> AsyncIterator[str | None]:
    """Process one event under its transaction's gate; it counts as processed only if the body returns.

    Yields None for an event to process, or why it must not be (SKIP_REASONS). Under at-least-once it only
    acks. An exception out of the body aborts the event's transaction and rewinds its partitions.
    """
    if not app.in_transaction:
        yield None
        event.ack()
        return
    st = state(app)
    message = event.message
    tp = message.tp
    tid = transactional_id(app, tp)
    async with st.gate(tid):
        skip = _admit(app, st, tid, message)
        if skip is not None:
            yield skip
            if skip == HOLE:
                await _rewind(app, {tid}, reason=f"{tp.topic}[{tp.partition}] skipped records before {message.offset}")
            return
        token = _SOURCE.set(tp)
        try:
            yield None
            await _drain_table_writes(st, tid)
        except BaseException:
            st.poisoned.add(tid)
            asyncio.ensure_future(
                _rewind_later(app, tid, f"processing {tp.topic}[{tp.partition}]@{message.offset} failed")
            )
            raise
        finally:
            _SOURCE.reset(token)
        st.ledger.processed(tp, _epoch_of(message), message.offset)
        event.ack()


@asynccontextmanager
async def processing_batch(app: Any, events: list[Any]) -> AsyncIterator[tuple[list[Any], list[tuple[Any, str]]]]:
    """Process a batch of events under the gates of every transaction they belong to.

    Yields (accepted events, [(skipped event, reason)]). The body routes each accepted event's output inside
    `sending_for(event)`. Stages in batch mode must not write tables (their writes could not be attributed
    to one event's partition).
    """
    if not app.in_transaction:
        yield list(events), []
        for ev in events:
            ev.ack()
        return
    st = state(app)
    tids = sorted({transactional_id(app, ev.message.tp) for ev in events})
    async with _gates(st, tids):
        accepted: list[Any] = []
        skipped: list[tuple[Any, str]] = []
        holes: set[str] = set()
        by_tp: dict[Any, list[Any]] = collections.defaultdict(list)
        for ev in events:
            by_tp[ev.message.tp].append(ev)
        verdict: dict[int, str | None] = {}
        for tp, evs in by_tp.items():
            tid = transactional_id(app, tp)
            fresh = []
            for ev in evs:
                fast = _admit_fast(app, st, tid, ev.message)
                if fast is None:
                    fresh.append(ev)
                else:
                    verdict[id(ev)] = fast
            epoch = _epoch_of(fresh[0].message) if fresh else None
            for ev, reason in zip(
                fresh, st.ledger.admit_run(tp, epoch, [ev.message.offset for ev in fresh]), strict=True
            ):
                if _epoch_of(ev.message) != epoch:
                    reason = STALE_EPOCH
                verdict[id(ev)] = reason
                if reason == HOLE:
                    holes.add(tid)
        for ev in events:  # delivery order is kept
            reason = verdict[id(ev)]
            if reason is None:
                accepted.append(ev)
            else:
                skipped.append((ev, reason))
        try:
            yield accepted, skipped
        except BaseException:
            for tid in tids:
                st.poisoned.add(tid)
                asyncio.ensure_future(_rewind_later(app, tid, "processing a batch failed"))
            raise
        for ev in accepted:
            st.ledger.processed(ev.message.tp, _epoch_of(ev.message), ev.message.offset)
            ev.ack()
        if holes:
            await _rewind(app, holes, reason="a batch skipped records", held=True)


@asynccontextmanager
async def _gates(st: _AppState, tids: list[str]) -> AsyncIterator[None]:
    acquired: list[asyncio.Lock] = []
    try:
        for tid in tids:  # sorted: two batches never wait on each other's gates in opposite orders
            lock = st.gate(tid)
            await lock.acquire()
            acquired.append(lock)
        yield
    finally:
        for lock in reversed(acquired):
            lock.release()


async def send(app: Any, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
    """Send one record in the transaction of the event being processed (`processing`, `sending_for`).

    The runner's path for every output: straight to the aiokafka producer of the source partition's
    transaction, without Faust's per-record FutureMessage, channel and sensor machinery (a tenth of a
    record's cost in the plumbing, measured). The gate of that transaction is held by the caller, so the
    commit cannot run meanwhile, and Faust's per-producer lock is not needed. Delivery is not awaited: the
    transaction's commit flushes the producer first. Outside exactly-once, or outside an event, it goes
    through Faust's producer as any send."""
    source = _SOURCE.get()
    if app.in_transaction and source is not None:
        tid = transactional_id(app, source)
        producer = app.producer._transaction_producers.get(tid)
        if producer is None:
            raise ProducerSendError(f"no transactional producer for {tid} (its partitions are not ours)")
        await producer.send(topic, value, key=key, partition=partition)
        return
    await app.producer.send(topic, key, value, partition, None, None)


def request_commit(app: Any, tp: Any) -> None:
    """Commit the transaction of `tp`'s partition soon (its input ran dry): latency is then a commit's round
    trips, not half the commit interval. At most one such commit is pending per transaction."""
    if not app.in_transaction:
        return
    st = state(app)
    tid = transactional_id(app, tp)
    if tid in st.commit_requested:
        return
    st.commit_requested.add(tid)
    asyncio.ensure_future(_requested_commit(app, st, tid))


async def _requested_commit(app: Any, st: _AppState, tid: str) -> None:
    try:
        await asyncio.sleep(0)  # let the events already fetched for this transaction go first
        consumer = app.consumer
        sources = st.sources()
        tps = {
            ensure_aiokafka_TP(tp)
            for tp in consumer.assignment()
            if tp.topic in sources and not app.assignor.is_standby(tp) and _tid_or_none(app, tp) == tid
        }
        st.commit_requested.discard(tid)
        if tps:
            await _commit_one(consumer, st, tid, tps, True)
    except Exception:  # the periodic commit does it instead
        st.commit_requested.discard(tid)
        log.debug("a requested commit of %s failed", tid, exc_info=True)


class sending_for:  # used as a context manager, like contextlib's
    """Routes the output sent inside it into the transaction of `event`'s source partition (batch mode)."""

    def __init__(self, event: Any) -> None:
        self.tp = event.message.tp
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> None:
        self._token = _SOURCE.set(self.tp)

    def __exit__(self, *exc: Any) -> None:
        assert self._token is not None
        _SOURCE.reset(self._token)


def _epoch_of(message: Any) -> int | None:
    return message.__dict__.get("streams_epoch") if hasattr(message, "__dict__") else None


def _admit_fast(app: Any, st: _AppState, tid: str, message: Any) -> str | None:
    """The checks that need no ledger: a transaction being rewound, a consumer generation gone."""
    if tid in st.poisoned:
        return REWINDING
    if message.generation_id != app.consumer_generation_id:
        return STALE_GENERATION
    return None


def _admit(app: Any, st: _AppState, tid: str, message: Any) -> str | None:
    fast = _admit_fast(app, st, tid, message)
    if fast is not None:
        return fast
    reason = st.ledger.admit(message.tp, _epoch_of(message), message.offset)
    if reason is not None and reason != ALREADY_PROCESSED:
        # Once per partition, epoch and reason: after a seek a whole prefetched batch is stale, and a line per
        # record (hundreds of thousands in a rebalance under load) costs more than the work itself.
        mark = (message.tp, _epoch_of(message), reason)
        if mark not in st.logged:
            st.logged.add(mark)
            if len(st.logged) > 10_000:
                st.logged.clear()
            log.warning(
                "not processing %s[%s]@%s: %s (epoch %s of %s; later records of that epoch are not logged)",
                message.topic,
                message.partition,
                message.offset,
                reason,
                _epoch_of(message),
                st.ledger.epoch(message.tp),
            )
    return reason


async def _drain_table_writes(st: _AppState, tid: str) -> None:
    pending = st.table_writes.get(tid)
    while pending:
        batch = list(pending)
        pending.clear()
        await asyncio.gather(*batch)


# --- rewinds ------------------------------------------------------------------------------------------------


async def _rewind_later(app: Any, tid: str, reason: str) -> None:
    st = state(app)
    async with st.gate(tid):
        await _rewind(app, {tid}, reason=reason, held=True)


async def _rewind(app: Any, tids: set[str], *, reason: str, held: bool = True) -> None:
    """Abort the open transactions of `tids`, undo their table writes, seek their partitions back to what
    was committed, begin new transactions, and tell the stages. The caller holds the gates of `tids`."""
    st = state(app)
    consumer = app.consumer
    now = time.monotonic()
    wait = max(st.last_rewind.get(t, 0.0) + REWIND_BACKOFF_SECONDS - now for t in tids)
    if wait > 0:
        await asyncio.sleep(wait)
    log.warning("rewinding %s: %s", sorted(tids), reason)
    producer = consumer.transactions.producer
    for tid in sorted(tids):
        st.last_rewind[tid] = time.monotonic()
        st.table_writes.pop(tid, None)
        st.persist.pop(tid, None)
        try:
            await producer.abort_transaction(tid)
        except Exception:  # the producer may be gone (revoked) or the broker away: its transaction dies anyway
            log.warning("aborting transaction %s failed", tid, exc_info=True)
        _undo(st, tid)
    sources = st.sources()
    try:
        assignment = consumer.assignment()
    except Exception:
        assignment = set()
    tps = {ensure_aiokafka_TP(tp) for tp in assignment if tp.topic in sources and _tid_or_none(app, tp) in tids}
    if tps:
        await consumer._thread.call_thread(_seek_back, consumer._thread, tps)
    for tid in sorted(tids):
        await _restart_transaction(app, tid)
        st.poisoned.discard(tid)
    for callback in list(st.rewind_callbacks):
        result = callback(tps)
        if inspect.isawaitable(result):
            await result


def _owned_tids(app: Any) -> set[str]:
    """Transactional ids of the partitions this worker processes now (actives, not standbys)."""
    try:
        assignment = app.consumer.assignment()
    except Exception:
        return set()
    sources = state(app).sources()
    return {
        tid
        for tp in assignment
        if tp.topic in sources and not app.assignor.is_standby(tp) and (tid := _tid_or_none(app, tp)) is not None
    }


async def _restart_transaction(app: Any, tid: str) -> None:
    """Begin the next transaction of `tid` after an abort, without ever making a zombie.

    A transactional producer is created only by Faust's rebalance handling, for the partitions assigned here.
    A rewind must not create one: on a worker whose partitions were just revoked (a worker leaving, or one that
    lost them), a new producer's InitProducerId would fence the producer of the worker that owns them now, and
    that worker's transaction would fail. (Seen here: a leaving worker's rewind fenced the remaining one, whose
    producer then stayed in a fatal state.) A producer that was fenced is replaced only while the partition is
    still actively ours: then the other producer is the zombie, and the new epoch fences it."""
    producer = app.consumer.transactions.producer
    current = producer._transaction_producers.get(tid)
    owned = tid in _owned_tids(app)
    if not owned:
        return
    if current is not None and current._txn_manager.is_fatal_error():
        log.warning("transactional producer %s is fenced or broken: replacing it (the partition is ours)", tid)
        producer._transaction_producers.pop(tid, None)
        try:
            await current.stop()
        except Exception:
            log.warning("stopping the broken producer %s failed", tid, exc_info=True)
    live = producer._transaction_producers.get(tid)
    if live is not None and live._txn_manager.is_in_transaction():
        return
    try:
        await producer.maybe_begin_transaction(tid)
    except Exception:
        log.warning("beginning transaction %s failed", tid, exc_info=True)


async def _on_rebalance(self: TransactionManager, assigned: Any, revoked: Any, newly_assigned: Any) -> None:
    # Faust stops the producers of the transactional ids of `revoked` and begins those of `assigned`, reusing a
    # producer it still holds. A producer of an id that was ours, went to another worker and came back was
    # fenced by that worker meanwhile (without knowing it until it next sends), and one Faust failed to stop
    # keeps a zombie alive. So: every producer whose id is not among this assignment's is stopped, and every id
    # that is newly ours gets a new producer, whose InitProducerId fences any other (Kafka's zombie fencing).
    app = self.app
    producer = cast(Any, self.producer)
    owned = self._tps_to_transactional_ids(set(assigned))
    fresh = self._tps_to_transactional_ids(set(newly_assigned))
    held = dict(producer._transaction_producers)
    for tid in sorted(set(held) - owned):
        log.info("stopping transactional producer %s: its partitions are no longer ours", tid)
        producer._transaction_producers.pop(tid, None)
        try:
            await held[tid].stop()
        except Exception:
            log.warning("stopping producer %s failed", tid, exc_info=True)
    for tid in sorted(owned):
        current = producer._transaction_producers.get(tid)
        if current is not None and (tid in fresh or current._txn_manager.is_fatal_error()):
            producer._transaction_producers.pop(tid, None)
            try:
                await current.stop()
            except Exception:
                log.warning("stopping producer %s failed", tid, exc_info=True)
            current = None
        if current is None or not current._txn_manager.is_in_transaction():
            await producer.maybe_begin_transaction(tid)
    state(app).poisoned.difference_update(owned)


def _tid_or_none(app: Any, tp: Any) -> str | None:
    try:
        return transactional_id(app, tp)
    except KeyError:
        return None


def _undo(st: _AppState, tid: str) -> None:
    """Restore, newest first, the values the aborted transaction's table writes replaced in the local store."""
    entries = st.undo.pop(tid, [])
    for entry in reversed(entries):
        stand = _Stand(entry.partition)
        token = _current_event.set(weakref.ref(stand))  # type: ignore[arg-type]
        try:
            data = entry.table.data
            if entry.old is _MISSING:
                if entry.key in data:
                    del data[entry.key]
            else:
                data[entry.key] = entry.old
        except Exception:
            log.exception("undoing a write to table %s failed", getattr(entry.table, "name", "?"))
        finally:
            _current_event.reset(token)


async def _seek_back(thread: AIOKafkaConsumerThread, tps: set[Any]) -> None:
    """In the consumer thread: each partition back to what this process committed, else to the broker's
    committed offset, else to the beginning (nothing committed yet)."""
    consumer = thread._ensure_consumer()
    st = state(thread.app)
    group = thread.app.conf.id
    to_beginning = []
    for tp in tps:
        offset = st.ledger.last_committed(tp)
        ours = _committed_here.get((group, tp.topic, tp.partition))
        if ours is not None and (offset is None or ours > offset):
            offset = ours
        if offset is None:
            offset = await consumer.committed(tp)
        if offset is None or offset < 0:
            to_beginning.append(tp)
        else:
            consumer.seek(tp, offset)
    if to_beginning:
        await consumer.seek_to_beginning(*to_beginning)


# --- the patches --------------------------------------------------------------------------------------------


async def _send(
    self: TransactionManager,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    timestamp: float | None,
    headers: Any,
    *,
    transactional_id: str | None = None,
) -> Any:
    destination = self.consumer.key_partition(topic, key, partition)
    source = _SOURCE.get()
    if source is None:
        event = current_event()
        source = event.message.tp if event is not None else None
    if source is not None:
        group = self.app.assignor.group_for_topic(source.topic)
        transactional_id = f"{self.app.conf.id}-{group}-{source.partition}"
    elif destination is not None:
        group = self.app.assignor.group_for_topic(topic)
        transactional_id = f"{self.app.conf.id}-{group}-{destination}"
    else:
        transactional_id = None
    return await self.producer.send(
        topic, key, value, destination, timestamp, headers, transactional_id=transactional_id
    )


def _send_changelog(
    self: Table,
    partition: int | None,
    key: Any,
    value: Any,
    key_serializer: Any = None,
    value_serializer: Any = None,
) -> Any:
    source = _SOURCE.get()
    in_event = self.app.in_transaction and source is not None and current_event() is not None
    tid = transactional_id(self.app, source) if in_event else None
    fut = self.changelog_topic.as_future_message(
        key=key,
        value=value,
        partition=partition,
        key_serializer=key_serializer if key_serializer is not None else self.key_serializer,
        value_serializer=value_serializer if value_serializer is not None else self.value_serializer,
        callback=functools.partial(_on_changelog_sent, self, tid) if tid is not None else self._on_changelog_sent,
        eager_partitioning=True,
    )
    if tid is not None:
        st = state(self.app)
        # Faust calls this before it writes the store: the value there now is the one to restore on abort.
        try:
            old = self.data[key] if key in self.data else _MISSING
        except Exception:
            old = _MISSING
        st.undo[tid].append(_Undo(self, cast(int, fut.message.partition), key, old))
        # Published by a task that inherits this context, so it joins the event's transaction; `processing`
        # awaits it before the event counts as processed. Each write waits for the previous one of its
        # transaction to be appended: aiokafka appends a small record to a batch that a larger one, waiting for
        # room, did not fit, so a held article's put and its delete in one event reached the changelog as
        # delete-then-put, and a restore from it brought back, and decided again, an article already decided.
        task = asyncio.ensure_future(_publish_in_order(self.changelog_topic, fut, st.last_table_write.get(tid)))
        st.last_table_write[tid] = task
        st.table_writes[tid].append(task)
    else:
        self.app.producer.send_soon(fut)
    return fut


async def _publish_in_order(topic: Any, fut: Any, previous: asyncio.Future[Any] | None) -> Any:
    """Publish one table write once the previous write of its transaction is appended (or failed)."""
    if previous is not None and not previous.done():
        await asyncio.wait([previous])
    return await topic.publish_message(fut)


def _on_changelog_sent(table: Table, tid: str, fut: Any) -> None:
    # Faust keeps, under exactly-once, the changelog offset a table write got "to persist on commit", keyed
    # by the changelog partition, and then looks it up by the *source* partitions it commits: never found, so
    # no offset is ever persisted and every start replays whole changelogs over the local store. Kept per
    # transaction here instead, and written to the store when that transaction commits.
    res = fut.result()
    pending = state(table.app).persist[tid]
    _store, before = pending.get(res.topic_partition, (None, -1))
    if res.offset > before:
        pending[res.topic_partition] = (table.data, res.offset)


# Offsets this process committed, by (group, topic, partition): the floor for seeking after a rebalance.
_committed_here: dict[tuple[str, str, int], int] = {}


async def _force_commit(self: Consumer, topics: Any = None, start_new_transaction: bool = True) -> bool:
    if not self.in_transaction:
        return await _original["force_commit"](self, topics, start_new_transaction=start_new_transaction)
    app = self.app
    st = state(app)
    sources = st.sources()
    try:
        assignment = self.assignment()
    except Exception:
        return False
    by_tid: dict[str, set[Any]] = collections.defaultdict(set)
    for tp in assignment:
        if tp.topic in sources and not app.assignor.is_standby(tp):
            tid = _tid_or_none(app, tp)
            if tid is not None:
                by_tid[tid].add(ensure_aiokafka_TP(tp))  # the producer's offset commit wants aiokafka's type
    if not by_tid:
        return False
    results = await asyncio.gather(
        *(_commit_one(self, st, tid, tps, start_new_transaction) for tid, tps in by_tid.items())
    )
    return any(results)


async def _commit_one(consumer: Consumer, st: _AppState, tid: str, tps: set[Any], start_new: bool) -> bool:
    app = consumer.app
    async with st.gate(tid):
        if tid in st.poisoned:
            await _rewind(app, {tid}, reason="an event of this transaction failed")
            return False
        stalled = st.ledger.stalled(tps, STALL_SECONDS)
        if stalled:
            await _rewind(app, {tid}, reason=f"no progress for {STALL_SECONDS:.0f} s on {sorted(map(str, stalled))}")
            return False
        offsets = st.ledger.committable(tps)
        if not offsets:
            return False
        producer = consumer.transactions.producer
        try:
            await producer.commit_transactions({tid: offsets}, app.conf.id, start_new_transaction=start_new)
        except ProducerFenced as exc:  # another worker owns this transactional id now: a zombie must stop
            log.warning("transactional producer %s fenced: %s", tid, exc)
            await app.crash(exc)
            return False
        except Exception as exc:  # broker away, transaction timed out ...: the work since the last commit is redone
            log.warning("committing %s failed (%r): rewinding to the last commit", tid, exc)
            await _rewind(app, {tid}, reason=f"commit failed: {exc!r}")
            return False
        st.undo.pop(tid, None)
        for changelog_tp, (store, offset) in st.persist.pop(tid, {}).items():
            store.set_persisted_offset(changelog_tp, offset)
        group = app.conf.id
        for tp, offset in offsets.items():
            st.ledger.committed(tp, offset)
            key = (group, tp.topic, tp.partition)
            if offset > _committed_here.get(key, -1):
                _committed_here[key] = offset
        consumer._committed_offset.update(offsets)  # Faust's lag and monitor read it
        committed_at = time.monotonic()  # Faust's livelock detector warns about partitions "never committed"
        cast(Any, consumer)._thread.tp_last_committed_at.update({tp: committed_at for tp in offsets})
        app.tables.on_commit(offsets)
        app.monitor.on_tp_commit(offsets)
        for callback in list(st.commit_callbacks):  # still under the gate: see on_commit
            try:
                callback(tid)
            except Exception:
                log.exception("a commit callback of %s failed", tid)
        return True


def _ack(self: Consumer, message: Any) -> bool:
    if not self.in_transaction:
        return bool(_original["ack"](self, message))
    if message.acked:
        return False
    message.acked = True
    self._unacked_messages.discard(message)
    notify(self._waiting_for_ack)
    return True


async def _add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
    if not self.in_transaction:
        await _original["add_gap"](self, tp, offset_from, offset_to)


async def _drain_messages(self: Consumer, fetcher: Any) -> None:  # pragma: no cover - run by the worker
    """Faust's fetch loop under exactly-once, without its read-offset drop and gap inference."""
    if not self.in_transaction:
        await _original["drain_messages"](self, fetcher)
        return
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    yield_every = 100
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag("FETCHING")
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for _tp, message in ait:
                    since_yield += 1
                    if since_yield > yield_every:
                        await asyncio.sleep(0)
                        since_yield = 0
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                    self._read_offset[_tp] = message.offset  # Faust's monitors read it
                self.diag.unset_flag("FETCHING")
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        self.diag.unset_flag("FETCHING")


async def _fetch_records(
    self: AIOKafkaConsumerThread,
    consumer: aiokafka.AIOKafkaConsumer,
    active_partitions: Any,
    timeout: float | None = None,
    max_records: int | None = None,
) -> Any:
    records = await _original["fetch_records"](self, consumer, active_partitions, timeout, max_records)
    if not self.consumer.in_transaction:
        return records
    # Synchronously after aiokafka handed the records over (no await in between), so no seek can come
    # between taking them and noting their epoch.
    st = state(self.app)
    sources = st.sources()
    assignment = consumer._subscription.subscription.assignment if consumer._subscription.subscription else None
    for tp, recs in records.items():
        if tp.topic not in sources:
            continue
        epoch = st.ledger.note(tp, [r.offset for r in recs], _position(assignment, tp))
        for r in recs:
            r.streams_epoch = epoch
    if assignment is not None:
        for tp in active_partitions or ():
            if tp.topic in sources and tp not in records:
                position = _position(assignment, tp)
                if position is not None:
                    st.ledger.note(tp, (), position)
    return records


def _position(assignment: Any, tp: Any) -> int | None:
    if assignment is None:
        return None
    try:
        state_value = assignment.state_value(tp)
    except Exception:
        return None
    if state_value is None or not state_value.has_valid_position:
        return None
    return int(state_value.position)


def _to_message(self: AIOKafkaConsumer, tp: Any, record: Any) -> Any:
    message = _original["to_message"](self, tp, record)
    epoch = getattr(record, "streams_epoch", None)
    if epoch is not None:
        message.__dict__["streams_epoch"] = epoch
    return message


def _fetcher_seek_to(self: Fetcher, tp: Any, offset: int) -> None:
    _original["seek_to"](self, tp, offset)
    for st in _live_states():
        st.ledger.bump(tp)


def _fetcher_request_offset_reset(self: Fetcher, tps: Any, strategy: Any) -> Any:
    result = _original["request_offset_reset"](self, tps, strategy)
    for st in _live_states():
        for tp in tps:
            st.ledger.bump(tp)
    return result


def _on_revoked(self: ConsumerRebalanceListener, revoked: Any) -> Any:
    st = state(self._thread.app)
    for tp in revoked:
        st.ledger.forget(tp)
    return _original["on_revoked"](self, revoked)


async def _on_assigned(self: ConsumerRebalanceListener, assigned: Any) -> None:
    st = state(self._thread.app)
    for tp in assigned:
        st.ledger.bump(tp)
    await _original["on_assigned"](self, assigned)


async def _stable_seek_to_committed(self: AIOKafkaConsumerThread) -> Any:
    consumer = self._ensure_consumer()
    group = self.app.conf.id
    committed = await consumer.seek_to_committed()
    to_beginning = []
    for tp, offset in list(committed.items()):
        ours = _committed_here.get((group, tp.topic, tp.partition))
        if ours is not None and (offset is None or ours > offset):
            consumer.seek(tp, ours)
            committed[tp] = ours
        elif not offset:  # aiokafka leaves a partition with no commit (or 0) where it is
            to_beginning.append(tp)
    if to_beginning:
        await consumer.seek_to_beginning(*to_beginning)
    return committed


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> Any:
    return await self.call_thread(_stable_seek_to_committed, self)


async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[Any]) -> Any:
    return await self._ensure_consumer().end_offsets(partitions)


async def _perform_seek(self: Consumer) -> None:
    if not self.in_transaction:
        await _original["perform_seek"](self)
        return
    app = self.app
    st = state(app)
    try:
        tps = set(self.assignment())
    except Exception:
        tps = set()
    tids = sorted({tid for tp in tps if tp.topic in st.sources() and (tid := _tid_or_none(app, tp)) is not None})
    async with _gates(st, tids):
        producer = self.transactions.producer
        for tid in tids:
            st.table_writes.pop(tid, None)
            st.persist.pop(tid, None)
            if st.undo.get(tid):
                log.warning("rewind after recovery aborts open transaction %s", tid)
            try:
                await producer.abort_transaction(tid)
            except Exception:
                log.warning("aborting transaction %s failed", tid, exc_info=True)
            _undo(st, tid)
            await _restart_transaction(app, tid)
            st.poisoned.discard(tid)
        await _original["perform_seek"](self)
    for callback in list(st.rewind_callbacks):
        result = callback(tps)
        if inspect.isawaitable(result):
            await result


# --- install ------------------------------------------------------------------------------------------------


def _live_states() -> list[_AppState]:
    return [state(app) for app in list(_APPS)]


def register_app(app: Any) -> None:
    """The app whose ledger the consumer-thread hooks (seeks) update."""
    _APPS.add(app)


# (owner, attribute, the parameters Faust's version has, our replacement)
_PATCHES: list[tuple[Any, str, tuple[str, ...], Any]] = [
    (TransactionManager, "on_rebalance", ("self", "assigned", "revoked", "newly_assigned"), _on_rebalance),
    (
        TransactionManager,
        "send",
        ("self", "topic", "key", "value", "partition", "timestamp", "headers", "transactional_id"),
        _send,
    ),
    (
        Table,
        "send_changelog",
        ("self", "partition", "key", "value", "key_serializer", "value_serializer"),
        _send_changelog,
    ),
    (Consumer, "force_commit", ("self", "topics", "start_new_transaction"), _force_commit),
    (Consumer, "ack", ("self", "message"), _ack),
    (Consumer, "_add_gap", ("self", "tp", "offset_from", "offset_to"), _add_gap),
    (Consumer, "_drain_messages", ("self", "fetcher"), _drain_messages),
    (Consumer, "perform_seek", ("self",), _perform_seek),
    (AIOKafkaConsumer, "_to_message", ("self", "tp", "record"), _to_message),
    (
        AIOKafkaConsumerThread,
        "_fetch_records",
        ("self", "consumer", "active_partitions", "timeout", "max_records"),
        _fetch_records,
    ),
    (AIOKafkaConsumerThread, "_highwaters", ("self", "partitions"), _highwaters),
    (AIOKafkaConsumerThread, "seek_to_committed", ("self",), _seek_to_committed),
    (ConsumerRebalanceListener, "on_partitions_revoked", ("self", "revoked"), _on_revoked),
    (ConsumerRebalanceListener, "on_partitions_assigned", ("self", "assigned"), _on_assigned),
    (Fetcher, "seek_to", ("self", "tp", "offset"), _fetcher_seek_to),
    (Fetcher, "request_offset_reset", ("self", "tps", "strategy"), _fetcher_request_offset_reset),
]
_original: dict[str, Any] = {}
_ORIGINAL_NAMES = {
    "force_commit": (Consumer, "force_commit"),
    "ack": (Consumer, "ack"),
    "add_gap": (Consumer, "_add_gap"),
    "drain_messages": (Consumer, "_drain_messages"),
    "perform_seek": (Consumer, "perform_seek"),
    "to_message": (AIOKafkaConsumer, "_to_message"),
    "fetch_records": (AIOKafkaConsumerThread, "_fetch_records"),
    "on_revoked": (ConsumerRebalanceListener, "on_partitions_revoked"),
    "on_assigned": (ConsumerRebalanceListener, "on_partitions_assigned"),
    "seek_to": (Fetcher, "seek_to"),
    "request_offset_reset": (Fetcher, "request_offset_reset"),
}
_INSTALLED = "_article_streams_eos_installed"


class UnsupportedVersion(RuntimeError):
    """The installed faust-streaming or aiokafka is not the one these corrections were written for."""


def check() -> None:
    """Raise UnsupportedVersion unless the versions and every replaced method's parameters are as expected."""
    found = (getattr(faust, "__version__", "?"), getattr(aiokafka, "__version__", "?"))
    if found != (FAUST_VERSION, AIOKAFKA_VERSION):
        raise UnsupportedVersion(
            f"streams.eos corrects faust-streaming {FAUST_VERSION} with aiokafka {AIOKAFKA_VERSION}; this "
            f"environment has faust-streaming {found[0]} and aiokafka {found[1]}. Pin those versions, or review "
            "every correction in streams/eos.py against the new sources and re-run tests/integration "
            "before you change the pins."
        )
    for owner, name, params, ours in _PATCHES:
        current = getattr(owner, name)
        if getattr(owner, _INSTALLED, False) and current is ours:
            continue
        have = tuple(inspect.signature(current).parameters)
        if have != params:
            raise UnsupportedVersion(
                f"{owner.__module__}.{owner.__qualname__}.{name} has parameters {have}, not {params}: "
                "streams.eos was written for another version of it"
            )


def install(app: Any | None = None) -> None:
    """Check the versions, then apply every correction once per process (idempotent)."""
    check()
    if app is not None:
        register_app(app)
    if getattr(TransactionManager, _INSTALLED, False):
        return
    for key, (owner, name) in _ORIGINAL_NAMES.items():
        _original[key] = getattr(owner, name)
    for owner, name, _params, ours in _PATCHES:
        setattr(owner, name, ours)
        setattr(owner, _INSTALLED, True)


CORRECTIONS = (
    "offsets from processing, not acks",
    "transaction routing by source partition",
    "a gate per transaction",
    "table writes in the event's transaction, undone on abort",
    "a just-assigned changelog's end from the broker",
    "seeking to the committed offset: our floor, and the beginning when none",
    "rewinds abort first, and stages rebuild",
    "zombie fencing at rebalances",
    "persisted changelog offsets",
)
