"""The raw chain: aiokafka consume -> transform -> produce over the pipeline's hops, exactly-once, well tuned.

    python -m streams.bench.chain identity|stages STATS.json     (settings from STREAMS_*; SIGTERM stops it)

Four hops on the pipeline's own topics and partitions, in one process and one event loop, like one worker:

    articles.raw[4] -> articles.normalized[4] + articles.dedup-sequenced[1]     (normalize)
    articles.dedup-sequenced[1] -> articles.unique[4] | articles.duplicates     (dedup)
    articles.unique[4] -> articles.enriched[4]                                   (enrich)
    articles.enriched[4] -> articles.published[4]                                (takedown)
    (every stage's refusals -> articles.rejected)

Each hop is one read_committed consumer (a group of its own) and one transactional producer: it takes what
`getmany` has (up to MAX_RECORDS), transforms it, and sends the outputs and the consumed offsets
(`send_offsets_to_transaction`) in one transaction per batch; the four hops overlap on the loop. `identity`
forwards every record unchanged to the hop's main output(s) (the limit of the plumbing); `stages` runs the
pipeline's stage functions: `normalize`, the `Deduplicator` over dict tables, `Enricher.enrich_batch` (in a
thread, as the worker's `aenrich_batch` does with STREAMS_ENRICH_NER_PROCESSES=0) and `TakedownStage.on_article`
over dict tables. No Faust anywhere. Prints BENCH-READY when every hop has its partitions; writes per-hop
counts and seconds spent in the transforms to STATS.json when stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import OffsetAndMetadata

from streams import topics
from streams.codec import dumps
from streams.kafka.client import aiokafka_kwargs
from streams.outcomes import Audited, Duplicate, Enriched, Normalized, Published, Rejected, Retracted, Unique
from streams.rejections import rejection_record
from streams.settings import Settings

READY = "BENCH-READY"
# Tuning (what a careful hand-written aiokafka service uses; each a round trip saved or a batch made bigger):
MAX_RECORDS = 1000  # records per getmany, hence per transaction at most
FETCH_WAIT_MS = 25  # the broker answers an empty fetch after this long (bounds the latency of an idle hop)
LINGER_MS = 5  # a partition's batch waits this long for more records (the commit flushes anyway)
BATCH_BYTES = 1024 * 1024  # per-partition produce batch
log = logging.getLogger("streams.bench.chain")

Out = tuple[str, bytes | None, bytes, int | None]  # (physical topic, key, value, partition or None: the key's)


@dataclass
class HopStats:
    records: int = 0
    outputs: int = 0
    transactions: int = 0
    transform_seconds: float = 0.0
    commit_seconds: float = 0.0


@dataclass
class Hop:
    """One consume-transform-produce hop: its source, and the transform of a batch of records to outputs."""

    name: str
    source: str  # logical topic
    transform: Callable[[list[ConsumerRecord]], Awaitable[list[Out]]]
    idle: Callable[[], list[Out]] = field(default=lambda: [])  # outputs due with no input (dedup's hold ticks)
    stats: HopStats = field(default_factory=HopStats)


# -- the transforms ---------------------------------------------------------------------------------------------
def identity_hops(s: Settings) -> list[Hop]:
    t = s.topic

    def forward(*targets: tuple[str, int | None]) -> Callable[[list[ConsumerRecord]], Awaitable[list[Out]]]:
        async def run(records: list[ConsumerRecord]) -> list[Out]:
            return [(t(name), m.key, m.value or b"", part) for m in records for name, part in targets]

        return run

    return [
        Hop("normalize", "articles.raw", forward(("articles.normalized", None), ("articles.dedup-sequenced", 0))),
        Hop("dedup", "articles.dedup-sequenced", forward(("articles.unique", None))),
        Hop("enrich", "articles.unique", forward(("articles.enriched", None))),
        Hop("takedown", "articles.enriched", forward(("articles.published", None))),
    ]


def stage_hops(s: Settings) -> list[Hop]:
    """The pipeline's stage functions on the same hops (state in dicts: the tables without changelogs)."""
    from streams.stages.dedup.config import DedupConfig
    from streams.stages.dedup.reorder import TICK_KEY, is_tick
    from streams.stages.dedup.stage import Deduplicator
    from streams.stages.enrich.stage import EnrichConfig, Enricher
    from streams.stages.normalize import NormalizeConfig, normalize
    from streams.stages.takedown import TakedownConfig, TakedownStage

    t = s.topic
    ncfg = NormalizeConfig.from_settings(s)
    dedup = Deduplicator(
        articles={}, content={}, held={}, config=DedupConfig.from_settings(s), clock=lambda: datetime.now(UTC)
    )
    enricher = Enricher(EnrichConfig.from_settings(s))
    takedown = TakedownStage(TakedownConfig.from_settings(s), {}, {})
    tick_every_ms = int(min(1.0, max(0.25, s.dedup_reorder_seconds / 2)) * 1000)  # the worker's tick interval

    def coords(m: ConsumerRecord) -> dict[str, Any]:
        return {"topic": m.topic, "partition": m.partition, "offset": m.offset, "timestamp_ms": m.timestamp}

    def refused(stage: str, m: ConsumerRecord, r: Rejected, now: datetime) -> Out:
        payload = dumps(r.article) if r.article is not None else (m.value or b"")
        record = rejection_record(
            r, payload=payload, key=m.key, origin=coords(m), stage=stage,
            payload_limit=s.reject_payload_limit_bytes, now=now,
        )  # fmt: skip
        return (t("articles.rejected"), m.key, dumps(record), None)

    def article(o: Any) -> tuple[bytes, bytes]:
        return str(o.article["article_id"]).encode(), dumps(o.article)

    async def do_normalize(records: list[ConsumerRecord]) -> list[Out]:
        out: list[Out] = []
        now = datetime.now(UTC)
        for m in records:
            o = normalize(m.value if m.value is not None else b"", origin=coords(m), now=now, config=ncfg)
            if isinstance(o, Normalized):
                k, v = article(o)
                out += [(t("articles.normalized"), k, v, None), (t("articles.dedup-sequenced"), k, v, 0)]
            else:
                out.append(refused("normalize", m, o, now))
        return out

    def dedup_outputs(outcomes: list[Any], m: ConsumerRecord | None, now: datetime) -> list[Out]:
        out: list[Out] = []
        for o in outcomes:
            if isinstance(o, Unique):
                out.append((t("articles.unique"), *article(o), None))
            elif isinstance(o, Duplicate):
                out.append((t("articles.duplicates"), str(o.record["article_id"]).encode(), dumps(o.record), None))
            elif isinstance(o, Rejected) and m is not None:
                out.append(refused("dedup", m, o, now))
        return out

    async def do_dedup(records: list[ConsumerRecord]) -> list[Out]:
        out: list[Out] = []
        now = datetime.now(UTC)
        for m in records:
            try:
                value = orjson.loads(m.value) if m.value is not None else None
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict) and not is_tick(m.key, value):
                out.append(refused("dedup", m, Rejected("schema_violation", "not an article", {"pointer": ""}), now))
                continue
            outcomes = dedup.on_record(key=m.key, value=value, offset=m.offset, timestamp_ms=m.timestamp or 0)
            out += dedup_outputs(outcomes, m, now)
        return out

    def dedup_idle() -> list[Out]:
        # The worker sends a tick into the sequence when the hold has due articles and no record moved the
        # watermark; here the tick is handed to the stage directly (its outputs still go in a transaction).
        now_ms = int(time.time() * 1000)
        if not dedup.tick_due(now_ms, tick_every_ms):
            return []
        outcomes = dedup.on_record(key=TICK_KEY, value={"tick_ms": now_ms}, offset=-1, timestamp_ms=now_ms)
        return dedup_outputs(outcomes, None, datetime.now(UTC))

    async def do_enrich(records: list[ConsumerRecord]) -> list[Out]:
        out: list[Out] = []
        now = datetime.now(UTC)
        size = max(1, s.enrich_batch_size)
        for j in range(0, len(records), size):
            chunk = records[j : j + size]
            docs, where = [], []
            for m in chunk:
                doc = _article_or_none(m)
                if doc is None:
                    out.append(refused("enrich", m, Rejected("schema_violation", "not an article", {}), now))
                else:
                    docs.append(doc)
                    where.append(m)
            if not docs:
                continue
            for m, o in zip(where, await asyncio.to_thread(enricher.enrich_batch, docs), strict=True):
                if isinstance(o, Enriched):
                    out.append((t("articles.enriched"), *article(o), None))
                else:
                    out.append(refused("enrich", m, o, now))
        return out

    async def do_takedown(records: list[ConsumerRecord]) -> list[Out]:
        out: list[Out] = []
        now = datetime.now(UTC)
        for m in records:
            doc = _article_or_none(m)
            if doc is None:
                out.append(refused("takedown", m, Rejected("schema_violation", "not an article", {}), now))
                continue
            for o in takedown.on_article(doc, partition=m.partition, offset=m.offset, now=now):
                if isinstance(o, Published):
                    out.append((t("articles.published"), *article(o), None))
                elif isinstance(o, Retracted):
                    out.append((t("articles.retractions"), str(o.record["article_id"]).encode(), dumps(o.record), None))
                elif isinstance(o, Audited):
                    out.append((t("takedowns.audit"), str(o.record["takedown_id"]).encode(), dumps(o.record), None))
                elif isinstance(o, Rejected):
                    out.append(refused("takedown", m, o, now))
        return out

    return [
        Hop("normalize", "articles.raw", do_normalize),
        Hop("dedup", "articles.dedup-sequenced", do_dedup, idle=dedup_idle),
        Hop("enrich", "articles.unique", do_enrich),
        Hop("takedown", "articles.enriched", do_takedown),
    ]


def _article_or_none(m: ConsumerRecord) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(m.value) if m.value is not None else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == "article.v1" else None


# -- the loop ---------------------------------------------------------------------------------------------------
class Chain:
    def __init__(self, settings: Settings, hops: list[Hop]) -> None:
        self.s = settings
        self.hops = hops
        self.stopping = asyncio.Event()
        self._clients: list[tuple[AIOKafkaConsumer, AIOKafkaProducer, str]] = []

    async def start(self) -> None:
        kw = aiokafka_kwargs(self.s)
        run = uuid.uuid4().hex[:8]
        for hop in self.hops:
            group = f"{self.s.topic_prefix}chain-{hop.name}"
            consumer = AIOKafkaConsumer(
                self.s.topic(hop.source),
                **kw,
                group_id=group,
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
                fetch_max_bytes=4 * topics.MAX_REQUEST_BYTES,
                fetch_max_wait_ms=FETCH_WAIT_MS,
                session_timeout_ms=int(self.s.session_timeout_seconds * 1000),
            )
            producer = AIOKafkaProducer(
                **kw,
                transactional_id=f"{group}-{run}",
                acks="all",
                enable_idempotence=True,
                linger_ms=LINGER_MS,
                max_batch_size=BATCH_BYTES,
                max_request_size=topics.MAX_REQUEST_BYTES,
            )
            await producer.start()
            await consumer.start()
            self._clients.append((consumer, producer, group))
        # The first getmany joins the group; ready when every hop holds its partitions. Nothing is sent before
        # READY, but should a record come, it is put back (seek) so that the loop processes it.
        while not all(c.assignment() for c, _, _ in self._clients):
            for c, _, _ in self._clients:
                if not c.assignment():
                    for tp, msgs in (await c.getmany(timeout_ms=200, max_records=1)).items():
                        c.seek(tp, msgs[0].offset)
        print(READY, flush=True)

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(h, *c) for h, c in zip(self.hops, self._clients, strict=True)))

    async def _loop(self, hop: Hop, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, group: str) -> None:
        st = hop.stats
        while not self.stopping.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
            if not batch:
                due = hop.idle()
                if due:
                    async with producer.transaction():
                        for topic, key, value, part in due:
                            await producer.send(topic, value, key=key, partition=part)
                    st.outputs += len(due)
                    st.transactions += 1
                continue
            records = [m for tp in sorted(batch, key=lambda tp: tp.partition) for m in batch[tp]]
            t0 = time.perf_counter()
            outs = await hop.transform(records)
            t1 = time.perf_counter()
            async with producer.transaction():
                for topic, key, value, part in outs:
                    await producer.send(topic, value, key=key, partition=part)
                offsets = {tp: OffsetAndMetadata(msgs[-1].offset + 1, "") for tp, msgs in batch.items()}
                await producer.send_offsets_to_transaction(offsets, group)
            st.transform_seconds += t1 - t0
            st.commit_seconds += time.perf_counter() - t1
            st.records += len(records)
            st.outputs += len(outs)
            st.transactions += 1

    async def stop(self) -> None:
        for consumer, producer, _ in self._clients:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    def stats(self) -> dict[str, Any]:
        return {h.name: vars(h.stats) for h in self.hops}


async def main_async(mode: str, stats_path: Path) -> None:
    s = Settings.from_env()
    hops = identity_hops(s) if mode == "identity" else stage_hops(s)
    chain = Chain(s, hops)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, chain.stopping.set)
    await chain.start()
    runner = asyncio.ensure_future(chain.run())
    await chain.stopping.wait()
    await asyncio.wait([runner], timeout=10)
    runner.cancel()
    stats_path.write_bytes(orjson.dumps(chain.stats()))
    await chain.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("identity", "stages"):
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries on topics created a moment ago are noise
    asyncio.run(main_async(args[0], Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
