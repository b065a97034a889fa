"""The one agent runner: the exactly-once gate, counting, timing, the internal-error rule, outcomes to topics.

An agent module only wires: it names the topics a stage reads, gives a handler (the stage's pure function or
object) and a route table mapping each outcome type to a topic, key and value. The runner does the rest the
same way for every stage:

- every record is processed inside `streams.eos.processing` (or `processing_batch`), so its output and its
  offset commit in one transaction, or not at all; records the gate refuses are counted by reason;
- `streams_events_in_total`, `streams_events_out_total{outcome}`, `streams_processing_seconds` and
  `streams_end_to_end_latency_seconds` are kept here;
- **the internal-error rule**: a handler that raises has met a bug, not bad data (bad data is an outcome).
  The record is refused as `internal_error` on `articles.rejected`, with the stage's name, the exception, the
  coordinates of the record the stage read and its bytes (replayable to that stage's input once the bug is
  fixed: `streams replay-rejected`), the raw event's `origin` when the record is an article, and
  `streams_stage_errors_total` counts it. Nothing is lost and the stage goes on. In a batch, a handler that
  raises is retried one record at a time, so one bad record cannot take the others with it.

Routing keeps per-key order: a record's outcomes are sent in the order the handler returned them, before the
next record is processed, and every article topic is keyed by `article_id`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streams import eos
from streams.codec import dumps, loads
from streams.outcomes import Rejected
from streams.rejections import rejection_record

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("streams.runner")
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class Input:
    """One record a stage reads: where it was, when, and its bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, message: Any) -> Input:
        ts = message.timestamp  # Faust gives the Kafka timestamp in seconds
        return cls(
            message.topic, message.partition, message.offset, int(ts * 1000) if ts else None, message.key, message.value
        )

    @property
    def coordinates(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
        }

    def json(self) -> Any:
        """The value decoded (stages after normalize read JSON their own stage wrote); None if it is not."""
        if self.value is None:
            return None
        try:
            return loads(self.value)
        except ValueError:
            return None


@dataclass(frozen=True)
class Route:
    """Where one outcome type goes: a registry topic, the record's key and value, and how it is counted."""

    topic: str  # logical name (streams.topics)
    value: Callable[[Any, Input], bytes]
    key: Callable[[Any, Input], bytes | None]
    outcome: str | Callable[[Any], str] | None = None  # label of streams_events_out_total (None: not counted)
    partition: Callable[[Any], int] | None = None  # explicit partition (fan-out); else the key's
    count: Callable[[Any], None] | None = None  # a metric of its own (duplicates by match, rejections by reason)
    latency: Callable[[Any, Input], int | None] | None = None  # ingestion time (ms) to observe latency from


@dataclass(frozen=True)
class Forwarded:
    """A record passed on unchanged (STREAMS_BENCH_IDENTITY: the plumbing measured without stage work)."""

    key: bytes | None
    value: bytes


Outcomes = Sequence[Any]
Handler = Callable[[Input], Any]  # returns an outcome, a sequence of them, or None (or awaitable of those)
BatchHandler = Callable[[list[Input]], Any]  # returns one sequence of outcomes per input, in order


def article_key(outcome: Any, _input: Input) -> bytes:
    return str(outcome.article["article_id"]).encode()


def article_value(outcome: Any, _input: Input) -> bytes:
    return dumps(outcome.article)


def record_key(outcome: Any, _input: Input) -> bytes:
    return str(outcome.record["article_id"]).encode()


def record_value(outcome: Any, _input: Input) -> bytes:
    return dumps(outcome.record)


def article_ingested_ms(outcome: Any, _input: Input) -> int | None:
    """The raw event's Kafka timestamp that the article carries in `origin` (normalize put it there)."""
    article = getattr(outcome, "article", None)
    if article is None:
        article = (getattr(outcome, "record", None) or {}).get("article")
    origin = (article or {}).get("origin") or {}
    ms = origin.get("timestamp_ms")
    return ms if isinstance(ms, int) and not isinstance(ms, bool) else None


ARTICLE_SCHEMA = "article.v1"


def article_of(inp: Input) -> dict[str, Any] | Rejected:
    """The article a record of an article topic carries, or why it is refused: not JSON, not an object, or a
    schema this stage does not know (a producer from another version wrote into the pipeline's topics)."""
    value = inp.json()
    if not isinstance(value, dict):
        what = "not JSON" if value is None and inp.value is not None else f"a JSON {type(value).__name__}"
        return Rejected("schema_violation", f"The record is {what}, not an {ARTICLE_SCHEMA} object.", {"pointer": ""})
    if value.get("schema") != ARTICLE_SCHEMA:
        found = value.get("schema")
        return Rejected(
            "schema_violation",
            f"The record's schema is {found!r}; this stage reads {ARTICLE_SCHEMA}.",
            {"pointer": "/schema", "keyword": "const", "expected": ARTICLE_SCHEMA, "found": found},
        )
    return value


def rejected_route(pipeline: Pipeline, stage: str) -> Route:
    """Every stage may refuse a record: to articles.rejected, keyed like the input, with the original bytes."""
    s, m = pipeline.settings, pipeline.metrics

    def value(outcome: Rejected, inp: Input) -> bytes:
        article = outcome.article if outcome.article is not None else (inp.json() if stage != "normalize" else None)
        payload = dumps(outcome.article) if outcome.article is not None else (inp.value or b"")
        origin = inp.coordinates
        details = dict(outcome.details)
        if isinstance(article, dict) and isinstance(article.get("origin"), dict):
            origin = {k: article["origin"].get(k) for k in ("topic", "partition", "offset", "timestamp_ms")}
            details.setdefault("input", inp.coordinates)
            details.setdefault("article_id", article.get("article_id"))
        record = rejection_record(
            Rejected(outcome.reason, outcome.message, details),
            payload=payload,
            key=inp.key,
            origin=origin,
            stage=stage,
            payload_limit=s.reject_payload_limit_bytes,
            now=datetime.now(UTC),
        )
        return dumps(record)

    def count(outcome: Rejected) -> None:
        m.rejections.labels(stage, outcome.reason).inc()

    return Route("articles.rejected", value=value, key=lambda _o, inp: inp.key, outcome="rejected", count=count)


class StageRunner:
    """Runs one stage as one Faust agent: gate, handler, routes, metrics."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        stage: str,
        source: str | Sequence[str],
        routes: Mapping[type, Route | Sequence[Route]],
        handle: Handler | None = None,
        handle_batch: BatchHandler | None = None,
        batch_size: int = 1,
        is_control: Callable[[Input], bool] | None = None,
        name: str | None = None,
    ) -> None:
        if (handle is None) == (handle_batch is None):
            raise ValueError("give exactly one of handle and handle_batch")
        self.p = pipeline
        self.stage = stage
        self.sources = (source,) if isinstance(source, str) else tuple(source)
        self.routes: dict[type, tuple[Route, ...]] = {
            kind: (r,) if isinstance(r, Route) else tuple(r)
            for kind, r in {Rejected: rejected_route(pipeline, stage), **routes}.items()
        }
        if pipeline.settings.bench_identity:
            # The plumbing alone (streams bench): every record goes on unchanged to the stage's main output,
            # through the same gate, transactions, routing and counting, with no stage work.
            main = next(rs for kind, rs in self.routes.items() if kind is not Rejected)
            self.routes = {
                Forwarded: tuple(
                    Route(r.topic, key=lambda o, _i: o.key, value=lambda o, _i: o.value, outcome="forwarded")
                    for r in main
                )
            }
            handle = (lambda inp: Forwarded(inp.key, inp.value or b"")) if handle is not None else None
            handle_batch = (
                (lambda inputs: [[Forwarded(i.key, i.value or b"")] for i in inputs])
                if handle_batch is not None
                else None
            )
        self.handle = handle
        self.handle_batch = handle_batch
        self.batch_size = max(1, batch_size)
        self.is_control = is_control
        self.name = name or stage
        m = pipeline.metrics
        self._in = m.events_in.labels(stage)
        self._seconds = m.processing_seconds.labels(stage)
        self._latency = m.end_to_end_seconds.labels(stage)
        self._errors = m.stage_errors.labels(stage)
        self._out_counter = m.events_out
        for rs in self.routes.values():
            for r in rs:
                if isinstance(r.outcome, str):
                    m.events_out.labels(stage, r.outcome)
        m.prime(stage, reasons=(INTERNAL_ERROR,))
        for why in eos.SKIP_REASONS:
            m.redeliveries_skipped.labels(stage, why)
        self._skipped = m.redeliveries_skipped
        self._names: dict[str, str] = {}  # logical topic -> physical name

    # -- registration --------------------------------------------------------------------------------------
    def register(self) -> None:
        channel = self.p.channel(*self.sources)
        if self.handle_batch is not None:
            self.p.app.agent(channel, name=f"{self.p.settings.topic_prefix}{self.name}")(self._run_batches)
        else:
            self.p.app.agent(channel, name=f"{self.p.settings.topic_prefix}{self.name}")(self._run)

    # -- one record at a time --------------------------------------------------------------------------------
    async def _run(self, stream: Any) -> None:
        app = self.p.app
        queue = stream.channel.queue
        async for ev in stream.events():
            async with eos.processing(app, ev) as skip:
                if skip:
                    self._skipped.labels(self.stage, skip).inc()
                    continue
                started = time.perf_counter()
                inp = Input.of(ev.message)
                counted = self.is_control is None or not self.is_control(inp)
                if counted:
                    self._in.inc()
                outcomes = await self._call(inp)
                await self._route(inp, outcomes)
                if counted:
                    self._seconds.observe(time.perf_counter() - started)
            if queue.empty():  # the input ran dry: commit now rather than at the next interval
                eos.request_commit(app, ev.message.tp)

    async def _call(self, inp: Input) -> list[Any]:
        assert self.handle is not None
        try:
            result = self.handle(inp)
            if inspect.isawaitable(result):
                result = await result
            return _as_list(result)
        except Exception as exc:  # a bug in the stage: refuse the record, keep it, go on
            return [self._internal_error(inp, exc)]

    # -- batches ----------------------------------------------------------------------------------------------
    async def _run_batches(self, stream: Any) -> None:
        app = self.p.app
        events = stream.events()
        queue = stream.channel.queue
        while True:
            try:
                first = await events.__anext__()
            except StopAsyncIteration:
                return
            batch = [first]
            # take what is already waiting, never wait for more: a batch costs no latency at low rates
            while len(batch) < self.batch_size and not queue.empty():
                try:
                    batch.append(await events.__anext__())
                except StopAsyncIteration:
                    break
            async with eos.processing_batch(app, batch) as (accepted, skipped):
                for _ev, why in skipped:
                    self._skipped.labels(self.stage, why).inc()
                if not accepted:
                    continue
                started = time.perf_counter()
                inputs = [Input.of(ev.message) for ev in accepted]
                counted = [self.is_control is None or not self.is_control(i) for i in inputs]
                self._in.inc(sum(counted))
                results = await self._call_batch(inputs)
                for ev, inp, outcomes in zip(accepted, inputs, results, strict=True):
                    with eos.sending_for(ev):
                        await self._route(inp, outcomes)
                per_record = (time.perf_counter() - started) / len(inputs)
                for c in counted:
                    if c:
                        self._seconds.observe(per_record)
            if queue.empty():
                for tp in {ev.message.tp for ev in batch}:
                    eos.request_commit(app, tp)

    async def _call_batch(self, inputs: list[Input]) -> list[list[Any]]:
        assert self.handle_batch is not None
        try:
            result = self.handle_batch(inputs)
            if inspect.isawaitable(result):
                result = await result
            out = [_as_list(r) for r in result]
            if len(out) != len(inputs):
                raise RuntimeError(f"{self.stage} returned {len(out)} results for {len(inputs)} records")
            return out
        except Exception:
            if len(inputs) == 1:
                return [[self._internal_error(inputs[0], _last_exception())]]
            log.warning("%s failed on a batch of %d; retrying one record at a time", self.stage, len(inputs))
            out = []
            for inp in inputs:
                out.extend(await self._call_batch([inp]))
            return out

    # -- the shared parts -------------------------------------------------------------------------------------------
    def _internal_error(self, inp: Input, exc: BaseException) -> Rejected:
        log.exception("%s failed on %s[%s]@%s", self.stage, inp.topic, inp.partition, inp.offset, exc_info=exc)
        self._errors.inc()
        return Rejected(
            INTERNAL_ERROR,
            f"{self.stage} raised {type(exc).__name__}: {exc}"[:300],
            {"stage": self.stage, "error": type(exc).__name__},
        )

    async def _route(self, inp: Input, outcomes: list[Any]) -> None:
        for outcome in outcomes:
            routes = self.routes.get(type(outcome))
            if routes is None:
                raise TypeError(f"{self.stage} returned {type(outcome).__name__}, which has no route")
            for route in routes:
                partition = route.partition(outcome) if route.partition is not None else None
                topic = self._names.get(route.topic) or self._names.setdefault(
                    route.topic, self.p.settings.topic(route.topic)
                )
                await eos.send(self.p.app, topic, route.key(outcome, inp), route.value(outcome, inp), partition)
                if route.outcome is not None:
                    label = route.outcome if isinstance(route.outcome, str) else route.outcome(outcome)
                    self._out_counter.labels(self.stage, label).inc()
                if route.count is not None:
                    route.count(outcome)
                if route.latency is not None:
                    ms = route.latency(outcome, inp)
                    if ms is not None:
                        self._latency.observe(max(0.0, time.time() - ms / 1000))


def _as_list(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, list | tuple):
        return list(result)
    return [result]


def _last_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    return exc if exc is not None else RuntimeError("unknown error")


def register(pipeline: Pipeline, **kwargs: Any) -> StageRunner:
    """Build and register a stage's agent (see StageRunner)."""
    runner = StageRunner(pipeline, **kwargs)
    runner.register()
    return runner
