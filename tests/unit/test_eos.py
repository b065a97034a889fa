"""The exactly-once bookkeeping (streams.eos.OffsetLedger) against a model of one partition, no broker.

The model: a partition log whose offsets are records or transaction markers; a consumer that fetches from a
position and may be sought back; a stream that delivers fetched records in order (and, after a seek, still
delivers records fetched before it); a stage that processes what the ledger admits, its output going into
the open transaction; commits that make the open transaction's output and the ledger's offset durable
together; aborts that throw the open transaction away. Hypothesis interleaves everything.

The invariant that matters to downstream consumers: after every commit, the committed output is exactly one
copy of the output of every record below the committed offset, and nothing else.
"""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streams import eos
from streams.eos import ALREADY_PROCESSED, HOLE, STALE_EPOCH, OffsetLedger

TP = ("articles.raw", 0)


class PartitionModel(RuleBasedStateMachine):
    """One source partition under the ledger's rule."""

    @initialize(
        kinds=st.lists(st.booleans(), min_size=1, max_size=60),
        lead_markers=st.integers(0, 3),
    )
    def make_log(self, kinds: list[bool], lead_markers: int) -> None:
        # True = a record, False = a transaction marker (or an aborted record: never delivered)
        log = [False] * lead_markers + kinds
        self.records = [o for o, is_record in enumerate(log) if is_record]
        assume(self.records)
        self.end = len(log)
        self.is_record = set(self.records)
        self.now = 0.0
        self.ledger = OffsetLedger(clock=lambda: self.now)
        self.position = 0  # the consumer's fetch position
        self.delivered: deque[tuple[int, int]] = deque()  # (epoch, offset) handed to the stream, in order
        self.open_txn: list[int] = []  # outputs of the open transaction (offsets of the records processed)
        self.committed_out: list[int] = []  # outputs of committed transactions
        self.committed_offset = 0
        self.ledger.bump(TP)  # assignment

    # -- the consumer thread ------------------------------------------------------------------------------
    @rule(n=st.integers(1, 8), over_markers=st.booleans())
    def fetch(self, n: int, over_markers: bool) -> None:
        got: list[int] = []
        pos = self.position
        while pos < self.end and len(got) < n:
            if pos in self.is_record:
                got.append(pos)
            pos += 1
        if over_markers:  # the fetch also read the markers that follow
            while pos < self.end and pos not in self.is_record:
                pos += 1
        else:  # the position stops right after the last record returned
            pos = got[-1] + 1 if got else self.position
        self.position = pos
        epoch = self.ledger.note(TP, got, pos)
        self.delivered.extend((epoch, o) for o in got)

    @rule()
    def seek_back_to_committed(self) -> None:
        """A rewind (a hole, a failed commit, Faust's rewind after recovery): abort, then seek."""
        self.open_txn.clear()
        self.position = self.committed_offset
        self.ledger.bump(TP)

    @rule()
    def revoke_and_reassign(self) -> None:
        self.open_txn.clear()  # the transaction of a revoked partition never commits
        self.ledger.forget(TP)
        self.ledger.committed(TP, self.committed_offset)  # what the broker has (a seek to committed follows)
        self.position = self.committed_offset
        self.ledger.bump(TP)

    # -- the stream and the stage -----------------------------------------------------------------------------
    @precondition(lambda self: self.delivered)
    @rule(drop=st.booleans())
    def process_next(self, drop: bool) -> None:
        epoch, offset = self.delivered.popleft()
        if drop:  # lost on the way to the stage (the stream skipped it): the next one must not be processed
            return
        reason = self.ledger.admit(TP, epoch, offset)
        if reason is None:
            self.open_txn.append(offset)
            self.ledger.processed(TP, epoch, offset)
        elif reason == HOLE:
            self.seek_back_to_committed()
        else:
            assert reason in (STALE_EPOCH, ALREADY_PROCESSED)

    @precondition(lambda self: len(self.delivered) >= 2)
    @rule()
    def process_out_of_order(self) -> None:
        """The second delivered record reaches the stage before the first."""
        (e1, o1), (e2, o2) = self.delivered[0], self.delivered[1]
        del self.delivered[1]
        reason = self.ledger.admit(TP, e2, o2)
        if reason is None:  # only when the first one is stale or was processed already
            assert self.ledger.admit(TP, e1, o1) is not None or o1 >= o2
            self.open_txn.append(o2)
            self.ledger.processed(TP, e2, o2)
        elif reason == HOLE:
            self.seek_back_to_committed()

    @rule()
    def stale_redelivery(self) -> None:
        """A record already processed reaches the stage again (in its old epoch, or the current one)."""
        for offset in self.committed_out[-2:]:
            assert self.ledger.admit(TP, self.ledger.epoch(TP) - 1, offset) == STALE_EPOCH
            assert self.ledger.admit(TP, self.ledger.epoch(TP), offset) in (ALREADY_PROCESSED, HOLE)

    @rule()
    def time_passes(self) -> None:
        self.now += 30.0

    @rule()
    def watchdog(self) -> None:
        """What the commit does for a partition whose first fetched record no event has followed for a minute."""
        if self.ledger.stalled([TP], after=60.0):
            self.seek_back_to_committed()

    # -- commits ----------------------------------------------------------------------------------------------
    @rule()
    def commit(self) -> None:
        offsets = self.ledger.committable([TP])
        if TP not in offsets:
            return
        offset = offsets[TP]
        assert offset >= self.committed_offset
        self.committed_out.extend(self.open_txn)
        self.open_txn.clear()
        self.committed_offset = offset
        self.ledger.committed(TP, offset)
        self.check_committed_output()

    def check_committed_output(self) -> None:
        below = [o for o in self.records if o < self.committed_offset]
        assert sorted(self.committed_out) == below, "committed output must be each record below the offset, once"

    @invariant()
    def committed_never_passes_an_unprocessed_record(self) -> None:
        if hasattr(self, "ledger"):
            self.check_committed_output()

    @invariant()
    def bookkeeping_is_bounded(self) -> None:
        if hasattr(self, "ledger"):
            assert self.ledger.outstanding(TP) <= len(self.records)

    def teardown(self) -> None:
        """Drain everything: one commit then gives the position after the last record (and its markers)."""
        if not hasattr(self, "ledger"):
            return
        for _ in range(len(self.delivered) + 8 * len(self.records) + 16):
            if self.position >= self.end and not self.delivered:
                if not self.ledger.outstanding(TP):
                    break
                self.now += 61.0  # a record was lost at the tail: only the watchdog can find it
                self.watchdog()
            elif self.delivered:
                self.process_next(drop=False)
            else:
                self.fetch(n=8, over_markers=True)
        self.commit()
        assert self.committed_offset == self.end
        assert sorted(self.committed_out) == self.records


TestPartitionModel = PartitionModel.TestCase
TestPartitionModel.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _processed_run(ledger: OffsetLedger, epoch: int, offsets: list[int]) -> None:
    for o in offsets:
        assert ledger.admit(TP, epoch, o) is None
        ledger.processed(TP, epoch, o)


def test_upstream_606_acked_past_the_commit_are_not_committed_until_processed() -> None:
    """faust-streaming 606: committed 2585 while 2586..2589 were acked but 2585 itself never processed."""
    ledger = OffsetLedger()
    epoch = ledger.bump(TP)
    ledger.committed(TP, 2585)
    epoch = ledger.note(TP, [2585, 2586, 2587, 2588, 2589], position=2590)
    # 2586..2589 arrive first (acked out of order upstream): none may be processed before 2585
    assert [ledger.admit(TP, epoch, o) for o in (2586, 2587, 2588, 2589)] == [HOLE] * 4
    assert ledger.committable([TP]) == {}
    _processed_run(ledger, epoch, [2585, 2586])
    assert ledger.committable([TP]) == {TP: 2587}


def test_markers_between_records_do_not_stop_the_committed_run() -> None:
    """The lag seen here before: each marker gap cost one commit interval. Now the run goes on."""
    ledger = OffsetLedger()
    epoch = ledger.note(TP, [96, 98, 100, 102], position=103)  # 97, 99, 101: commit markers
    _processed_run(ledger, epoch, [96, 98, 100, 102])
    assert ledger.committable([TP]) == {TP: 103}


@pytest.mark.parametrize("start", [0, 1])
def test_first_records_at_offset_0_and_1_commit(start: int) -> None:
    ledger = OffsetLedger()
    epoch = ledger.note(TP, [start], position=start + 1)
    assert ledger.committable([TP]) == {TP: start}
    _processed_run(ledger, epoch, [start])
    assert ledger.committable([TP]) == {TP: start + 1}


def test_trailing_markers_are_committed_once_everything_is_processed() -> None:
    ledger = OffsetLedger()
    epoch = ledger.note(TP, [10, 11], position=12)
    _processed_run(ledger, epoch, [10, 11])
    ledger.committed(TP, 12)
    ledger.note(TP, [], position=14)  # a later fetch read only the commit markers
    assert ledger.committable([TP]) == {TP: 14}


def test_stall_523_of_2000_unprocessed_records_are_never_committed() -> None:
    """Committing straight to max(acked) committed records whose output sat in a transaction that never
    committed; read_committed readers then stopped. Records acked without being processed (skipped after a
    generation change) never move the ledger."""
    ledger = OffsetLedger()
    old = ledger.note(TP, list(range(0, 10)), position=10)
    _processed_run(ledger, old, [0, 1, 2])
    ledger.bump(TP)  # generation changed: 3..9 were skipped by the stream, never processed
    assert ledger.admit(TP, old, 3) == STALE_EPOCH
    assert ledger.committable([TP]) == {}  # nothing known of the new epoch: commit nothing
    new = ledger.note(TP, list(range(3, 10)), position=10)  # after the seek back to 3
    assert ledger.committable([TP]) == {TP: 3}
    _processed_run(ledger, new, list(range(3, 10)))
    assert ledger.committable([TP]) == {TP: 10}


def test_scale_out_hang_a_hole_at_the_head_is_reported_not_waited_for() -> None:
    """Upstream 596: a permanent hole at the head blocked every later commit. Here the record after a hole is
    refused as HOLE, which makes the caller rewind, instead of waiting forever."""
    ledger = OffsetLedger()
    epoch = ledger.note(TP, [5, 6, 7], position=8)
    assert ledger.admit(TP, epoch, 6) == HOLE
    ledger.bump(TP)  # the rewind
    epoch = ledger.note(TP, [5, 6, 7], position=8)
    _processed_run(ledger, epoch, [5, 6, 7])
    assert ledger.committable([TP]) == {TP: 8}


def test_a_batch_run_stops_at_a_hole_and_after_it() -> None:
    ledger = OffsetLedger()
    epoch = ledger.note(TP, [1, 2, 3, 4], position=5)
    assert ledger.admit_run(TP, epoch, [1, 2, 4, 3]) == [None, None, HOLE, HOLE]
    assert ledger.admit_run(TP, epoch, [0, 1]) == [ALREADY_PROCESSED, None]
    assert ledger.admit_run(TP, epoch + 1, [1]) == [STALE_EPOCH]


def test_going_back_without_a_seek_starts_a_new_epoch() -> None:
    ledger = OffsetLedger()
    first = ledger.note(TP, [10, 11], position=12)
    second = ledger.note(TP, [10, 11], position=12)
    assert second == first + 1
    assert ledger.admit(TP, first, 10) == STALE_EPOCH


class _Accumulator:
    """A changelog topic whose appends wait for room as aiokafka's do: a large record waits, a small one fits."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def publish_message(self, fut: tuple[str, int]) -> None:
        key, size = fut
        if size > 1000:
            await asyncio.sleep(0.01)  # the batch is full: wait until it drains
        self.log.append(key)


@pytest.mark.parametrize("ordered", [True, False], ids=["chained", "unchained (the defect)"])
def test_table_writes_of_one_transaction_reach_the_changelog_in_the_order_made(ordered: bool) -> None:
    async def run() -> list[str]:
        topic = _Accumulator()
        writes = [("put 263", 2537), ("delete 263", 0), ("put 264", 4512), ("delete 264", 0)]
        tasks: list[asyncio.Future[None]] = []
        for write in writes:
            previous = tasks[-1] if tasks and ordered else None
            tasks.append(asyncio.ensure_future(eos._publish_in_order(topic, write, previous)))
        await asyncio.gather(*tasks)
        return topic.log

    log = asyncio.run(run())
    made = ["put 263", "delete 263", "put 264", "delete 264"]
    assert (log == made) is ordered, log


# --- the on_commit hook (for consistent views of the tables, streams.agents.dedup_snapshots) ----------------


class _App:
    """The few attributes of a Faust app and its consumer that a commit touches."""

    def __init__(self, fail: bool = False) -> None:
        self.conf = type("Conf", (), {"id": "app"})()
        self.committed: list[dict] = []
        app = self

        class Producer:
            async def commit_transactions(self, offsets: dict, group: str, start_new_transaction: bool) -> None:
                if fail:
                    raise RuntimeError("broker away")
                app.committed.append(offsets)

        self.tables = type("Tables", (), {"on_commit": lambda self, offsets: None})()
        self.monitor = type("Monitor", (), {"on_tp_commit": lambda self, offsets: None})()
        self.consumer = type(
            "Consumer",
            (),
            {
                "app": self,
                "transactions": type("T", (), {"producer": Producer()})(),
                "_committed_offset": {},
                "_thread": type("Thread", (), {"tp_last_committed_at": {}})(),
            },
        )()


async def test_a_commit_callback_runs_after_the_commit_under_the_transactions_gate() -> None:
    from aiokafka import TopicPartition

    from streams import eos

    tp = TopicPartition("articles.dedup-sequenced", 0)
    app = _App()
    st = eos.state(app)
    st.ledger.note(tp, [5, 6], position=7)
    calls: list[tuple[str, bool, int]] = []
    eos.on_commit(app, lambda tid: calls.append((tid, st.gate(tid).locked(), len(app.committed))))
    eos.on_commit(app, lambda tid: 1 / 0)  # a failing callback is logged; the commit stands
    assert await eos._commit_one(app.consumer, st, "app-0-0", {tp}, True) is True
    assert calls == [("app-0-0", True, 1)]  # after the commit, before the gate lets the next event in
    assert await eos._commit_one(app.consumer, st, "app-0-0", {tp}, True) is False  # nothing new: no commit
    assert len(calls) == 1
