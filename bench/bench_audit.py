"""Benchmarks `streams audit` on N synthetic raw events and their outcomes, beside a plain read of the same topics."""

# Method (one run, on a fresh topic prefix; nothing is shared with other runs or tests):
#
# 1. Create the registry's topics (STREAMS_TOPIC_PARTITIONS partitions, default 4) and write N small raw events
#    (~20 bytes) round-robin to articles.raw, then one outcome per raw event, naming it in `origin` as the stages
#    do: 70% publications (article.v1 with article_id, revision and origin only, ~190 bytes), 20% duplicates,
#    8% rejections (normalize and enrich), 2% blocked audit entries; one publication in a hundred is then
#    retracted, and one in two of those reinstated (a publication marked takedown.reinstated). Records are kept
#    small so that the benchmark measures the audit, not the broker moving article text.
# 2. Commit the pipeline group's offsets on articles.raw to the end, as a worker that processed everything would.
# 3. Alternately, --rounds times each, in child processes (so each peak RSS is its own):
#    baseline: read every topic the audit reads, partition by partition, with read_committed and the audit's
#    fetch sizes, counting records and doing nothing else;
#    audit: `streams.kafka.audit.run()` (what `streams audit` runs), which must balance.
#    Each child prints its wall time and peak RSS (getrusage ru_maxrss) and, for the audit, the bytes of its
#    per-event state.
# 4. Delete the run's topics and consumer group (unless --keep).

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from typing import Any

import _common as c
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import audit, topics
from streams.codec import short_hash
from streams.kafka.admin import create_topics
from streams.kafka.audit import MAX_RECORDS, held_changelog, run
from streams.kafka.client import aiokafka_kwargs
from streams.settings import Settings

CHUNK = 20_000  # sends awaited together


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- writing ------------------------------------------------------------------------------------------------
async def write(s: Settings, n: int) -> dict[str, int]:
    prod = AIOKafkaProducer(
        **aiokafka_kwargs(s), enable_idempotence=True, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await prod.start()
    parts = s.topic_partitions
    raw = s.topic(audit.RAW)
    made: dict[str, int] = {}
    try:
        pending: list[Any] = []

        async def send(topic: str, value: bytes, partition: int, key: bytes | None = None) -> None:
            pending.append(await prod.send(s.topic(topic), value=value, key=key, partition=partition))
            made[topic] = made.get(topic, 0) + 1
            if len(pending) >= CHUNK:
                await asyncio.gather(*pending)
                pending.clear()

        for i in range(n):
            await send(audit.RAW, b'{"n": %d}' % i, i % parts)
        for i in range(n):
            p, offset = i % parts, i // parts  # fresh topic, idempotent producer: the i-th send to p is at i // parts
            origin = {"topic": raw, "partition": p, "offset": offset, "timestamp_ms": 0}
            aid, rev = short_hash(f"a{i}"), short_hash(f"r{i}")
            k = i % 100
            if k < 70:
                article = {"schema": "article.v1", "article_id": aid, "revision": rev, "origin": origin}
                await send(audit.PUBLISHED, orjson.dumps(article), p, aid.encode())
                if k == 0 and i % 200 < 100:  # one in a hundred retracted ...
                    retraction = {"schema": "retraction.v1", "article_id": aid, "revision": rev, "origin": origin}
                    await send(audit.RETRACTIONS, orjson.dumps(retraction), p, aid.encode())
                    if i % 200 == 0:  # ... and half of those reinstated
                        again = {**article, "takedown": {"reinstated": True, "previously": "retracted"}}
                        await send(audit.PUBLISHED, orjson.dumps(again), p, aid.encode())
            elif k < 90:
                dup = {"schema": "duplicate.v1", "match": "same_content", "article": {"origin": origin}}
                await send(audit.DUPLICATES, orjson.dumps(dup), p)
            elif k < 98:
                stage = "normalize" if k < 96 else "enrich"
                rej = {"schema": "rejection.v1", "stage": stage, "reason": "invalid_json", "origin": origin}
                await send(audit.REJECTED, orjson.dumps(rej), p)
            else:
                entry = {"schema": "audit_entry.v1", "action": "blocked", "article_id": aid, "origin": origin}
                await send(audit.AUDIT, orjson.dumps(entry), 0)
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return made


async def commit_raw(s: Settings) -> None:
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(s), group_id=s.group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(s.topic(audit.RAW), p) for p in range(s.topic_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(ends)
    finally:
        await consumer.stop()


# -- the children ---------------------------------------------------------------------------------------------
async def plain_read(s: Settings) -> int:
    """Every record of the topics the audit reads, partition by partition, read_committed, with the audit's fetch
    sizes and records per call, counted and nothing else."""
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(s),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=topics.MAX_REQUEST_BYTES,
        fetch_max_bytes=topics.MAX_REQUEST_BYTES,
    )
    await consumer.start()
    names = [s.topic(t) for t in (audit.RAW, *audit.OUTCOMES, *audit.INTERMEDIATES)] + [held_changelog(s)]
    count = 0
    try:
        await consumer._client.force_metadata_update()  # every partition first: assign() narrows the metadata
        tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            if starts[tp] >= ends[tp]:
                continue
            consumer.assign([tp])
            consumer.seek(tp, starts[tp])
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=MAX_RECORDS)
                count += len(batch.get(tp, ()))
    finally:
        await consumer.stop()
    return count


def child(kind: str, prefix: str) -> None:
    s = Settings.from_env(topic_prefix=prefix)
    rss_start = peak_rss_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    out: dict[str, Any] = {"kind": kind}
    if kind == "baseline":
        out["records"] = asyncio.run(plain_read(s))
    else:
        report = asyncio.run(run(s))
        out.update(balanced=report.balanced, summary=report.summary(), state_bytes=report.state_bytes)
        out["accounting"] = report.accounting
    out.update(seconds=time.perf_counter() - started, cpu_seconds=cpu_seconds() - cpu)
    out.update(peak_rss_mb=peak_rss_mb(), rss_after_imports_mb=rss_start)
    print(json.dumps(out))


def run_child(kind: str, prefix: str) -> dict[str, Any]:
    env = {**os.environ, "STREAMS_TOPIC_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--prefix", prefix],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="raw events (default 1,000,000)")
    ap.add_argument("--rounds", type=int, default=2, help="baseline/audit pairs, alternating")
    ap.add_argument("--keep", action="store_true", help="keep the topics (prints the prefix)")
    ap.add_argument("--child", choices=["baseline", "audit"], help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.prefix)
        return
    c.on_signals_exit()
    prefix = f"bench-audit-{uuid.uuid4().hex[:8]}."
    s = Settings.from_env(topic_prefix=prefix)
    c.require_broker(s)
    try:
        c.run(create_topics(s))
        t0 = time.perf_counter()
        made = c.run(write(s, args.n))
        c.run(commit_raw(s))
        wrote = time.perf_counter() - t0
        total = sum(made.values())
        print(f"wrote {total:,} records in {wrote:.0f} s: " + ", ".join(f"{t} {k:,}" for t, k in made.items()))
        rows = []
        results: dict[str, list[dict[str, Any]]] = {"baseline": [], "audit": []}
        for _ in range(args.rounds):
            for kind in ("baseline", "audit"):
                r = run_child(kind, prefix)
                results[kind].append(r)
                rows.append(
                    [kind, f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", f"{total / r['seconds']:,.0f}"]
                    + [f"{r['peak_rss_mb']:.0f}", f"{r['rss_after_imports_mb']:.0f}"]
                )
        headers = ["run", "seconds", "CPU s", "records/s", "peak RSS MB", "RSS after imports MB"]
        print(c.table(headers, rows))
        a = min(results["audit"], key=lambda r: r["seconds"])
        b = min(results["baseline"], key=lambda r: r["seconds"])
        print(a["summary"])
        counted = [r["records"] for r in results["baseline"]]
        assert all(n == total for n in counted), f"the plain read must see every record: {counted} of {total}"
        assert all(r["balanced"] for r in results["audit"]), "the synthetic topics must balance"
        per_m = a["state_bytes"] / args.n * 1e6 / 2**20
        print(
            f"audit {a['seconds']:.1f} s vs plain read {b['seconds']:.1f} s ({a['seconds'] / b['seconds']:.2f}x); "
            f"peak RSS {a['peak_rss_mb']:.0f} MB vs {b['peak_rss_mb']:.0f} MB "
            f"(+{a['peak_rss_mb'] - b['peak_rss_mb']:.0f} MB); per-event state {a['state_bytes'] / 2**20:.1f} MiB "
            f"= {per_m:.1f} MiB per million raw events"
        )
    finally:
        if args.keep:
            print(f"kept topics under {prefix}")
        else:
            c.run(c.delete_prefix(s, [prefix], groups=[s.group_id]))


if __name__ == "__main__":
    main()
