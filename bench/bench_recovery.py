"""Benchmarks how long a restarted dedup worker takes to recover the state of N articles from its changelogs."""

# Method (per size N, each on a fresh topic prefix, so nothing is shared with other runs or tests):
#
# 1. Create the registry's topics, then run a first `streams worker --stages dedup` on empty state and pass one
#    article through it. That worker creates the two changelog topics itself (Faust's own config: compacted,
#    one partition) and writes one entry to each; we read them back and check that the entries we are about to
#    write have the same shape (key: a JSON string; value: a JSON object with the stage's fields, or a JSON
#    string for dedup-content), so the synthetic state is byte-for-byte what the stage writes. Its time to
#    /ready is the start-up cost with no state (a baseline for (a)).
# 2. Write N dedup entries straight into "<app id>-dedup-articles-changelog" and their revisions into
#    "<app id>-dedup-content-changelog", in transactions of --txn-size entries as an exactly-once worker does
#    (so the log ends in a commit marker, as a real one does). The text is synthetic (sentences of Zipf-
#    distributed pseudo-words, 2-4 KB like a BBC article); every signature is the real MinHash of that text
#    (checked against the stage's MinHasher). One entry in ten is a near copy of an earlier article (same
#    cluster), one in twenty an updated article with an earlier revision; publication and ingestion times
#    span the last 25 days (inside the 30-day window, so the first article evicts nothing); the index bound
#    STREAMS_DEDUP_MAX_ENTRIES is raised to 1.5 N when N does not fit the default.
# 3. Baseline: read both changelogs end to end with a plain aiokafka consumer (read_committed, the worker's
#    fetch sizes, no processing), once before and once after the worker run; the mean is the baseline.
# 4. Start `streams worker --stages dedup` with an EMPTY data dir, so all state comes from the changelogs,
#    and measure (a) process start -> /ready 200, and "recovery proper" (partitions assigned -> ready, from the
#    worker's JSON log); then send one article, a near copy of a synthetic article, to articles.dedup-sequenced:
#    (b) the "dedup_index_rebuilt" event (seconds, articles), (c) process start -> the copy is decided on
#    articles.duplicates (read_committed; it must name the synthetic original, which proves the state came
#    back, else the run says STATE LOST), (d) peak RSS (VmHWM) at ready and at the end, beside the empty-state
#    worker's. Also: the seconds of the recovery in which the worker used < 5% CPU (waiting, not working), from
#    /proc/<pid>/stat. --restarts K repeats step 4 on the same changelogs (each restart adds one article).
# 5. Delete the run's topics and consumer groups and the temporary state dirs (unless --keep).

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.codec import dumps, rfc3339, short_hash
from streams.kafka.admin import create_topics
from streams.outcomes import Normalized
from streams.settings import Settings
from streams.stages.dedup.shingles import MinHasher, encode_signature
from streams.stages.dedup.stage import DedupConfig
from streams.stages.normalize import NormalizeConfig, normalize

# Every field this benchmark can fill in a dedup-articles entry. The order and the subset actually written are
# taken from the entry the stage itself writes in step 1, so the synthetic state follows the stage as it changes.
KNOWN_FIELDS = frozenset(
    {
        "canonical_url",
        "revision",
        "revision_number",
        "previous_revisions",
        "cluster_id",
        "event_ms",  # publication time (orders canonicals)
        "seen_ms",  # ingestion time (the retention clock)
        "source",
        "minhash",
        "shingles",
    }
)
DAY_MS = 86_400_000
# copies sent after each restart: other agencies than the synthetic copies', so the LSH index must find them
AGENCIES = (("AFP", "PARIS"), ("Reuters", "BERLIN"), ("AP", "NEW YORK"), ("DPA", "HAMBURG"), ("EFE", "MADRID"))
MB = 1024 * 1024


# -- synthetic articles ------------------------------------------------------------------------------------
class Corpus:
    """Synthetic article text: sentences of Zipf-distributed pseudo-words."""

    def __init__(self, seed: int, sentences: int = 60_000, vocabulary: int = 40_000) -> None:
        rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocab = ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(vocabulary)]
        weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(vocabulary)))
        self.sentences = [
            " ".join(rng.choices(vocab, cum_weights=weights, k=rng.randint(8, 34))).capitalize() + "."
            for _ in range(sentences)
        ]

    def pick(self, rng: random.Random) -> list[int]:
        """An article: a title sentence and 12-30 body sentences (2-4 KB of text)."""
        return rng.sample(range(len(self.sentences)), rng.randint(13, 31))

    def title_text(self, idx: list[int]) -> tuple[str, str]:
        s = self.sentences
        return s[idx[0]].rstrip("."), " ".join(s[i] for i in idx[1:])


def copy_of(title: str, text: str, agency: str = "Wire", city: str = "LONDON") -> tuple[str, str]:
    """A syndicated, lightly edited copy: an agency dateline and a sign-off (Jaccard ~0.9 with the original)."""
    return title, f"{city} ({agency}) - {text}\n\nAdditional reporting by {agency}."


@dataclass
class Written:
    articles: int = 0
    content: int = 0
    bytes: int = 0
    transactions: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=lambda: {"original": 0, "near copy": 0, "updated": 0})
    probe_index: int = -1  # a synthetic original whose copy is sent after the restart
    probe_title: str = ""
    probe_text: str = ""
    probe_id: str = ""


def entries(
    n: int, corpus: Corpus, cfg: DedupConfig, seed: int, now_ms: int, fields: tuple[str, ...], written: Written
) -> Any:
    """Yields (article_id, entry, [(revision, article_id), ...]) for n synthetic articles, oldest first."""
    rng = random.Random(seed)
    hasher = MinHasher(cfg.num_perm, cfg.shingle_size)
    start_ms = now_ms - 25 * DAY_MS
    recent: dict[int, tuple[list[int], str]] = {}  # i -> (sentences, article_id) of the last originals
    probe_at = n // 2
    while probe_at % 10 == 9 or probe_at % 20 == 4:
        probe_at += 1

    def signature(title: str, text: str) -> tuple[str, int]:
        sig = hasher.signature(title, text)
        assert sig is not None
        return encode_signature(sig.values), sig.shingles

    for i in range(n):
        source = f"site{i % 499}"
        url = f"https://www.{source}.example/news/2026/{i % 12 + 1:02d}/story-{i}"
        article_id = short_hash(url)
        event_ms = start_ms + (i * 25 * DAY_MS) // max(n, 1)
        kind = "near copy" if i % 10 == 9 and (i - 9) in recent else ("updated" if i % 20 == 4 else "original")
        previous: list[str] = []
        cluster_id = article_id
        if kind == "near copy":
            idx, cluster_id = recent[i - 9]
            title, text = copy_of(*corpus.title_text(idx))
            sig, nsh = signature(title, text)
        else:
            idx = corpus.pick(rng)
            if kind == "updated":  # the first revision had one sentence less
                title, old_text = corpus.title_text(idx[:-1])
                previous = [short_hash(old_text)]
            title, text = corpus.title_text(idx)
            sig, nsh = signature(title, text)
            recent[i] = (idx, article_id)
            recent.pop(i - 10, None)
        revision = short_hash(text)
        if i == probe_at:
            written.probe_index, written.probe_title, written.probe_text = i, title, text
            written.probe_id = article_id
        written.kinds[kind] += 1
        full = {
            "canonical_url": url,
            "revision": revision,
            "revision_number": 1 + len(previous),
            "previous_revisions": previous,
            "cluster_id": cluster_id,
            "event_ms": event_ms,
            "seen_ms": event_ms + rng.randint(60_000, 3_600_000),  # ingested 1-60 min after publication
            "source": source,
            "minhash": sig,
            "shingles": nsh,
        }
        entry = {f: full[f] for f in fields}
        yield article_id, entry, [(rev, article_id) for rev in (*previous, revision)]


async def write_changelogs(
    settings: Settings,
    names: tuple[str, str],
    n: int,
    corpus: Corpus,
    cfg: DedupConfig,
    seed: int,
    txn: int,
    fields: tuple[str, ...],
) -> Written:
    """Writes the N entries to the two changelogs, `txn` articles per transaction (0: no transactions)."""
    articles_cl, content_cl = names
    w = Written()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        transactional_id=f"{settings.topic_prefix}bench-changelog-writer" if txn else None,
        max_batch_size=512 * 1024,
        linger_ms=20,
        max_request_size=11 * MB,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        now_ms = int(time.time() * 1000)
        in_txn = 0
        for article_id, entry, revisions in entries(n, corpus, cfg, seed, now_ms, fields, w):
            if txn and in_txn == 0:
                await producer.begin_transaction()
            key, value = dumps(article_id), dumps(entry)  # what Faust's json codec (orjson) writes
            await producer.send(articles_cl, key=key, value=value, partition=0)
            w.articles += 1
            w.bytes += len(key) + len(value)
            for rev, owner in revisions:
                k, v = dumps(rev), dumps(owner)
                await producer.send(content_cl, key=k, value=v, partition=0)
                w.content += 1
                w.bytes += len(k) + len(v)
            in_txn += 1
            if txn and in_txn >= txn:
                await producer.commit_transaction()
                w.transactions += 1
                in_txn = 0
            if w.articles % 100_000 == 0:
                print(f"    wrote {w.articles:,} entries ({time.perf_counter() - started:.0f} s)", flush=True)
        if txn and in_txn:
            await producer.commit_transaction()
            w.transactions += 1
        await producer.flush()
    finally:
        await producer.stop()
    w.seconds = time.perf_counter() - started
    return w


# -- the probe article ---------------------------------------------------------------------------------------
def normalized(url: str, title: str, body: str, published: datetime) -> dict[str, Any]:
    """An article.v1 as the normalize stage makes it from a raw event."""
    raw = {
        "url": url,
        "title": title,
        "body": body,
        "body_format": "text",
        "source": {"name": "Wire", "id": "wire"},
        "published_at": rfc3339(published),
        "language": "en",
    }
    now = datetime.now(UTC)
    origin = {"topic": "articles.raw", "partition": 0, "offset": 0, "timestamp_ms": int(now.timestamp() * 1000)}
    out = normalize(dumps(raw), origin=origin, now=now, config=NormalizeConfig.from_settings(Settings()))
    if not isinstance(out, Normalized):
        raise RuntimeError(f"the probe article was refused: {out}")
    return out.article


async def send_and_wait_decision(
    settings: Settings, article: dict[str, Any], timeout: float
) -> tuple[float, float, Any]:
    """Sends `article` to dedup's input, the one partition of articles.dedup-sequenced (as normalize writes it);
    returns (sent at, decided at, the decision record) in time.time()."""
    outputs = [settings.topic("articles.unique"), settings.topic("articles.duplicates")]
    consumer = c.committed_consumer(settings)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await c.assign_all(consumer, outputs, from_end=True)
        sent = time.time()
        await producer.send_and_wait(
            settings.topic("articles.dedup-sequenced"),
            key=article["article_id"].encode(),
            value=dumps(article),
            partition=0,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50)
            for tp, msgs in batch.items():
                for m in msgs:
                    doc = orjson.loads(m.value)
                    if doc.get("article_id") == article["article_id"]:
                        return sent, time.time(), (tp.topic, doc)
        raise RuntimeError(f"article {article['article_id']} not decided within {timeout:.0f} s")
    finally:
        await producer.stop()
        await consumer.stop()


# -- changelog checks and the baseline --------------------------------------------------------------------------
async def read_changelog_records(settings: Settings, names: tuple[str, ...]) -> dict[str, list[Any]]:
    consumer = c.committed_consumer(settings)
    await consumer.start()
    try:
        tps = await c.assign_all(consumer, names, from_end=False)
        ends = await consumer.end_offsets(tps)
        out: dict[str, list[Any]] = {n: [] for n in names}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                out[tp.topic].extend(msgs)
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return out
        raise RuntimeError("could not read the changelogs to their end")
    finally:
        await consumer.stop()


async def topic_facts(settings: Settings, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
        facts = {d["topic"]: {"partitions": str(len(d["partitions"]))} for d in described}
        for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
            for res in resp.resources:
                for entry in res[4]:
                    if entry[0] in ("cleanup.policy", "retention.ms"):
                        facts.setdefault(res[3], {})[entry[0]] = entry[1]
        return facts
    finally:
        await admin.close()


def check_format(
    records: dict[str, list[Any]], names: tuple[str, str], article: dict[str, Any]
) -> tuple[tuple[str, ...], str]:
    """Checks the stage's own changelog records against what this benchmark writes; returns the entry's fields.

    Raises when they differ in a way the generator cannot follow (a new field, other encoding, headers).
    """
    articles_cl, content_cl = names
    a = [m for m in records[articles_cl] if m.key == dumps(article["article_id"])]
    b = [m for m in records[content_cl] if m.key == dumps(article["revision"])]
    if len(a) != 1 or len(b) != 1:
        raise RuntimeError(f"expected one changelog entry per table for the probe article, found {len(a)}, {len(b)}")
    value = orjson.loads(a[0].value)
    if not isinstance(value, dict) or not set(value) <= KNOWN_FIELDS:
        unknown = sorted(set(value) - KNOWN_FIELDS) if isinstance(value, dict) else value
        raise RuntimeError(f"dedup-articles entries have fields this benchmark cannot fill: {unknown}")
    if a[0].value != dumps(value):
        raise RuntimeError("dedup-articles values are not compact orjson JSON: the bench would write other bytes")
    if orjson.loads(b[0].value) != article["article_id"] or b[0].value != dumps(article["article_id"]):
        raise RuntimeError(f"dedup-content values changed shape: {b[0].value!r}")
    if a[0].headers or b[0].headers:
        raise RuntimeError(f"changelog records carry headers the bench does not write: {a[0].headers}")
    fields = tuple(value)
    text = (
        f"key JSON string; value JSON object {{{', '.join(fields)}}} ({len(a[0].value)} bytes, "
        f"{len(value.get('minhash', ''))}-char signature); content: JSON string -> JSON string; no headers"
    )
    return fields, text


async def plain_read(settings: Settings, names: tuple[str, str]) -> tuple[float, int, int]:
    """Baseline: read both changelogs from the beginning to their end offsets, nothing else; (s, records, bytes)."""
    started = time.perf_counter()
    consumer = c.committed_consumer(settings)
    await consumer.start()
    records = nbytes = 0
    try:
        tps = await c.assign_all(consumer, names, from_end=False)
        ends = await consumer.end_offsets(tps)
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for msgs in batch.values():
                records += len(msgs)
                for m in msgs:
                    nbytes += len(m.key) + len(m.value)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return time.perf_counter() - started, records, nbytes


# -- one size -----------------------------------------------------------------------------------------------
def log_time(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["ts"]).timestamp()


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


@dataclass
class Waited:
    ready_at: float  # time.time() when /ready first answered 200
    cpu: list[tuple[float, float]]  # (time.time(), CPU seconds used by the worker so far)
    gauge_max: float  # the most records the recovery gauge ever showed as remaining
    hwm_kb: int  # VmHWM when ready

    def idle_seconds(self, since: float, share: float = 0.05) -> float:
        """Seconds after `since` during which the worker used under `share` of a CPU: waiting, not working."""
        idle = 0.0
        for (t0, c0), (t1, c1) in itertools.pairwise(self.cpu):
            if t0 >= since and t1 > t0 and (c1 - c0) / (t1 - t0) < share:
                idle += t1 - t0
        return idle


def wait_ready_sampling(w: c.Proc, timeout: float) -> Waited:
    """Waits for /ready like Proc.wait_ready, sampling the worker's CPU time and the recovery gauge."""
    deadline = time.monotonic() + timeout
    cpu: list[tuple[float, float]] = []
    gauge_max = 0.0
    next_cpu = next_gauge = 0.0
    while time.monotonic() < deadline:
        if not w.alive():
            raise RuntimeError(f"worker exited with {w.proc.returncode}:\n{w.tail()}")
        if time.monotonic() >= next_cpu:
            next_cpu = time.monotonic() + 0.5
            cpu.append((time.time(), w.cpu_seconds()))
        try:
            status, _ = w.get("/ready", timeout=1.0)
            if status == 200:
                now = time.time()
                cpu.append((now, w.cpu_seconds()))
                return Waited(now, cpu, gauge_max, w.status_kb("VmHWM") or 0)
            if time.monotonic() >= next_gauge:
                next_gauge = time.monotonic() + 1.0
                m = w.metrics()
                left = sum(v for _, _, v in m.get("streams_state_recovery_records_remaining", []))
                gauge_max = max(gauge_max, left)
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout:.0f} s:\n{w.tail()}")


def restart(
    i: int,
    settings: Settings,
    written: Written,
    args: argparse.Namespace,
    work: Path,
    env: dict[str, str] | None = None,
    after: Any = None,
) -> dict[str, Any]:
    """Step 4: one worker on an empty data dir; recovery, the first decision, memory. `env`: more STREAMS_*
    variables for the worker; `after(worker, settings, r)`: called once the first decision is measured."""
    n, prefix = written.articles, settings.topic_prefix
    state = work / f"{n}-recovery-state-{i}"
    if state.exists():
        shutil.rmtree(state)
    rsettings = dataclasses.replace(settings, data_dir=str(state), web_port=c.free_port())
    print(f"  4.{i + 1} restart: streams worker --stages dedup, empty data dir {state} {env or ''}", flush=True)
    r: dict[str, Any] = {}
    w = c.Proc.worker(rsettings, work / f"{n}-worker-recovery-{i}.log", stages="dedup", **(env or {}))
    try:
        waited = wait_ready_sampling(w, timeout=args.timeout)
        ready = waited.ready_at
        r["ready_s"] = ready - w.started
        assigned = w.events("partitions_assigned")
        assigned_at = log_time(assigned[-1]) if assigned else w.started
        r["assigned_s"] = log_time(assigned[0]) - w.started if assigned else float("nan")
        r["recovery_s"] = ready - assigned_at
        r["rebalances"] = len(assigned)
        r["hwm_ready_kb"] = waited.hwm_kb
        r["tail_s"] = waited.idle_seconds(since=assigned_at)
        before = [cpu for t, cpu in waited.cpu if t <= assigned_at]
        r["cpu_recovery_s"] = waited.cpu[-1][1] - (before[-1] if before else 0.0)
        r["gauge_max"] = waited.gauge_max
        print(
            f"      ready after {r['ready_s']:.1f} s (partitions assigned at {r['assigned_s']:.1f} s, "
            f"idle {r['tail_s']:.1f} s of it)",
            flush=True,
        )
        # another agency's copy than the synthetic ones: found by the LSH index, not by its revision
        agency, city = AGENCIES[i % len(AGENCIES)]
        copy_title, copy_text = copy_of(written.probe_title, written.probe_text, agency=agency, city=city)
        article = normalized(
            f"https://www.copy.example/news/{written.probe_index}/{i}",
            copy_title,
            copy_text,
            datetime.now(UTC) - timedelta(hours=1),
        )
        sent, decided, (topic, doc) = c.run(send_and_wait_decision(rsettings, article, timeout=args.timeout))
        r["send_to_decided_s"] = decided - sent
        r["decided_s"] = decided - w.started
        r["decision"] = (topic[len(prefix) :], doc.get("match"), doc.get("duplicate_of"), doc.get("similarity"))
        r["state_ok"] = doc.get("duplicate_of") == written.probe_id
        rebuilt = w.events("dedup_index_rebuilt")
        r["rebuild_s"] = rebuilt[-1]["seconds"] if rebuilt else float("nan")
        r["rebuild_articles"] = rebuilt[-1]["articles"] if rebuilt else -1
        r["rebuilds"] = [(e["source"], e["seconds"]) for e in rebuilt if "source" in e]
        restored = w.events("dedup_snapshot_restored")
        r["restored"] = restored[-1] if restored else None
        r["not_restored"] = [e.get("reason") for e in w.events("dedup_snapshot_not_used")]
        done = w.events("recovery_done")
        r["recovery_done_s"] = done[-1]["seconds"] if done else None
        r["hwm_end_kb"] = w.status_kb("VmHWM") or 0
        m = w.metrics()
        r["index_bytes_estimate"] = sum(v for _, _, v in m.get("streams_dedup_index_bytes", []))
        r["evictions"] = c.counter(m, "streams_dedup_evictions")
        verdict = "state recovered" if r["state_ok"] else "STATE LOST: the copy passed as new"
        print(
            f"      first article decided after {r['decided_s']:.1f} s: {r['decision'][:2]}, index of "
            f"{r['rebuild_articles']:,} articles -> {verdict}",
            flush=True,
        )
        if after is not None:
            after(w, rsettings, r)
    finally:
        w.stop()
    r["state_bytes"] = du(state)
    shutil.rmtree(state, ignore_errors=True)
    return r


def one_size(n: int, args: argparse.Namespace, corpus: Corpus, work: Path) -> dict[str, Any]:
    wall = time.perf_counter()
    prefix = f"benchrec{uuid.uuid4().hex[:8]}."
    base = Settings.from_env()
    max_entries = max(base.dedup_max_entries, n + n // 2 + 1000)  # the state of N articles must fit the index
    settings = Settings.from_env(
        topic_prefix=prefix,
        data_dir=str(work / f"{n}-probe-state"),
        web_port=c.free_port(),
        log_format="json",
        log_level="info",
        dedup_max_entries=max_entries,
    )
    cfg = DedupConfig.from_settings(settings)
    names = (
        f"{settings.group_id}-dedup-articles-changelog",
        f"{settings.group_id}-dedup-content-changelog",
    )
    r: dict[str, Any] = {"n": n, "prefix": prefix, "max_entries": max_entries, "txn": args.txn_size}
    print(f"\n== {n:,} articles: topic prefix {prefix}, STREAMS_DEDUP_MAX_ENTRIES={max_entries:,}", flush=True)
    try:
        c.run(create_topics(settings))

        # 1. a worker on empty state creates the changelogs; its entries show the format
        print("  1. empty-state worker: creates the changelogs, one article through it", flush=True)
        w0 = c.Proc.worker(settings, work / f"{n}-worker-empty.log", stages="dedup")
        ready0 = w0.wait_ready(timeout=args.timeout)
        r["empty_ready_s"] = ready0 - w0.started
        first = normalized(
            "https://www.wire.example/news/probe-first",
            "Probe article",
            "Talks opened in Geneva on Monday. " * 40,
            datetime.now(UTC) - timedelta(hours=2),
        )
        c.run(send_and_wait_decision(settings, first, timeout=60))
        r["empty_hwm_kb"] = w0.status_kb("VmHWM") or 0
        w0.stop()
        records = c.run(read_changelog_records(settings, names))
        fields, r["format"] = check_format(records, names, first)
        r["topic_facts"] = c.run(topic_facts(settings, names))
        print(f"     ready in {r['empty_ready_s']:.2f} s; changelog format as written by the stage: {r['format']}")
        for name, facts in r["topic_facts"].items():
            print(f"     {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(facts.items())))

        # 2. the synthetic state
        txn = f"{args.txn_size} articles per transaction" if args.txn_size else "no transactions"
        print(f"  2. writing {n:,} entries into the changelogs ({txn})", flush=True)
        written = c.run(write_changelogs(settings, names, n, corpus, cfg, args.seed + n, args.txn_size, fields))
        r["written"] = written
        print(
            f"     {written.articles:,} article + {written.content:,} content entries, {written.bytes / MB:.0f} MB, "
            f"{written.transactions:,} transactions in {written.seconds:.0f} s ({written.kinds})",
            flush=True,
        )

        # 3. baseline, before
        print("  3. baseline: plain aiokafka read of both changelogs", flush=True)
        b1 = c.run(plain_read(settings, names))
        print(f"     {b1[1]:,} records, {b1[2] / MB:.0f} MB in {b1[0]:.2f} s", flush=True)

        # 4. restarts on empty state
        r["restarts"] = [restart(i, settings, written, args, work) for i in range(args.restarts)]

        # 3'. baseline, after
        b2 = c.run(plain_read(settings, names))
        r["baseline_s"] = (b1[0] + b2[0]) / 2
        r["baseline_runs"] = (b1[0], b2[0])
        r["records"], r["bytes"] = b1[1], b1[2]
        print(f"  3'. baseline again: {b2[0]:.2f} s", flush=True)
    finally:
        c.stop_all()
        if not args.keep:
            deleted = c.run(c.delete_prefix(settings, [prefix], groups=[settings.group_id]))
            print(f"  deleted {deleted} topics of {prefix}")
    r["wall_s"] = time.perf_counter() - wall
    return r


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The restart whose recovery time is the median of those that recovered the state (else the first)."""
    ok = sorted((x for x in r["restarts"] if x["state_ok"]), key=lambda x: x["recovery_s"])
    return ok[len(ok) // 2] if ok else r["restarts"][0]


def report(r: dict[str, Any]) -> None:
    n, base = r["n"], r["baseline_s"]
    w: Written = r["written"]
    x = headline(r)
    ok = sum(y["state_ok"] for y in r["restarts"])
    which = f"median of {ok} restarts that recovered" if len(r["restarts"]) > 1 else "one restart"
    recov = x["recovery_s"]
    rows = [
        (
            "baseline: plain read of both changelogs",
            f"{base:.2f} s",
            "-",
            "1.00",
            f"{r['records']:,} records, {r['bytes'] / MB:.0f} MB; "
            f"runs {r['baseline_runs'][0]:.2f} / {r['baseline_runs'][1]:.2f} s",
        ),
        (
            "(a) process start -> /ready 200",
            f"{x['ready_s']:.2f} s",
            f"{base:.2f} s",
            f"{x['ready_s'] / base:.1f}",
            f"empty-state worker: {r['empty_ready_s']:.2f} s",
        ),
        (
            "    recovery proper (assigned -> ready)",
            f"{recov:.2f} s",
            f"{base:.2f} s",
            f"{recov / base:.1f}",
            f"{n / recov:,.0f} articles/s, {r['records'] / recov:,.0f} records/s",
        ),
        (
            "    of which idle (worker < 5% CPU)",
            f"{x['tail_s']:.1f} s",
            "",
            "",
            f"CPU used in recovery {x['cpu_recovery_s']:.1f} s",
        ),
        (
            "(b) in-memory index rebuild",
            f"{x['rebuild_s']:.2f} s",
            "",
            "",
            f"{x['rebuild_articles']:,} articles, "
            f"{x['rebuild_s'] / max(x['rebuild_articles'], 1) * 1e6:.1f} µs/article",
        ),
        ("    copy sent -> decided", f"{x['send_to_decided_s']:.2f} s", "", "", "includes (b) and two EOS hops"),
        (
            "(c) process start -> first article decided",
            f"{x['decided_s']:.2f} s",
            f"{base:.2f} s",
            f"{x['decided_s'] / base:.1f}",
            f"{n / x['decided_s']:,.0f} articles/s overall",
        ),
        (
            "(d) peak RSS (VmHWM) at ready",
            f"{x['hwm_ready_kb'] / 1024:.0f} MB",
            f"{r['empty_hwm_kb'] / 1024:.0f} MB",
            f"{x['hwm_ready_kb'] / max(r['empty_hwm_kb'], 1):.2f}",
            "baseline: the empty-state worker",
        ),
        (
            "(d) peak RSS (VmHWM) after the rebuild",
            f"{x['hwm_end_kb'] / 1024:.0f} MB",
            f"{r['empty_hwm_kb'] / 1024:.0f} MB",
            f"{x['hwm_end_kb'] / max(r['empty_hwm_kb'], 1):.2f}",
            f"{(x['hwm_end_kb'] - r['empty_hwm_kb']) * 1024 / n:,.0f} B/article above empty; "
            f"index estimate {x['index_bytes_estimate'] / MB:.0f} MB",
        ),
        ("RocksDB state on disk", f"{x['state_bytes'] / MB:.0f} MB", "", "", f"changelogs {r['bytes'] / MB:.0f} MB"),
    ]
    txn = f"{r['txn']} per transaction" if r["txn"] else "no transactions"
    print(
        f"\n-- recovery of {n:,} articles ({w.articles:,} + {w.content:,} changelog entries, {txn}; {which}; "
        f"wall {r['wall_s']:.0f} s)"
    )
    print(c.table(("figure", "value", "baseline", "ratio", "notes"), rows))
    if len(r["restarts"]) > 1:
        print("every restart:")
        print(
            c.table(
                ("#", "ready s", "recovery s", "idle s", "rebuild s", "articles indexed", "decided s", "state"),
                [
                    (
                        i + 1,
                        f"{y['ready_s']:.1f}",
                        f"{y['recovery_s']:.1f}",
                        f"{y['tail_s']:.1f}",
                        f"{y['rebuild_s']:.2f}",
                        f"{y['rebuild_articles']:,}",
                        f"{y['decided_s']:.1f}",
                        "recovered" if y["state_ok"] else "LOST",
                    )
                    for i, y in enumerate(r["restarts"])
                ],
            )
        )
    verdict = "the copy names the synthetic original" if x["state_ok"] else "WRONG: the state was not recovered"
    print(f"first decision: {x['decision']} -> {verdict}; evictions {x['evictions']:.0f}")
    print(
        f"worker's recovery_done event: {x['recovery_done_s']}; most records remaining on the recovery gauge "
        f"while recovering: {x['gauge_max']:.0f}; partition assignments: {x['rebalances']}"
    )
    if ok < len(r["restarts"]):
        print(f"!! {len(r['restarts']) - ok} of {len(r['restarts'])} restarts came up WITHOUT the state")


# -- the snapshot path (--snapshot) -------------------------------------------------------------------------
class RocksTable(MutableMapping[str, Any]):
    """A table's local store as Faust keeps it: RocksDB, JSON keys and values (what a restore writes into)."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict

        self.db = Rdict(str(path), Options(raw_mode=True))

    def __getitem__(self, key: str) -> Any:
        raw = self.db.get(dumps(key))
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.db[dumps(key)] = dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.db[dumps(key)]

    def __iter__(self) -> Iterator[str]:
        return (orjson.loads(k) for k in self.db.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self.db.keys())

    def bulk(self, items: Iterable[tuple[str, Any]]) -> int:
        """Writes many entries in write batches (how a restore bypasses the changelog); returns the count."""
        from rocksdict import WriteBatch

        n = 0
        batch = WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(dumps(key), dumps(value))
            n += 1
            if n % 50_000 == 0:
                self.db.write(batch)
                batch = WriteBatch(raw_mode=True)
        self.db.write(batch)
        return n

    def close(self) -> None:
        self.db.close()


async def produce_records(settings: Settings, topic: str, records: Iterable[tuple[str, bytes]]) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=11 * MB)
    await producer.start()
    n = nbytes = 0
    try:
        for key, value in records:
            await producer.send(topic, key=key.encode(), value=value, partition=0)
            n += 1
            nbytes += len(value)
        await producer.flush()
    finally:
        await producer.stop()
    return n, nbytes


async def read_topic(settings: Settings, topic: str) -> dict[str, bytes]:
    """Every record of a one-partition topic, last value per key (a compacted topic read to its end)."""
    consumer = c.committed_consumer(settings)
    await consumer.start()
    out: dict[str, bytes] = {}
    try:
        tps = await c.assign_all(consumer, [topic], from_end=False)
        ends = await consumer.end_offsets(tps)
        while await consumer.position(tps[0]) < ends[tps[0]]:
            for msgs in (await consumer.getmany(timeout_ms=200, max_records=500)).values():
                for m in msgs:
                    out[m.key.decode()] = m.value
    finally:
        await consumer.stop()
    return out


def snapshot_size(n: int, args: argparse.Namespace, corpus: Corpus, work: Path) -> dict[str, Any]:
    """The stage side of fast recovery at N articles: a snapshot written to a topic, then read back into
    empty RocksDB stores and an index, and a first decision; beside a plain read of the same topic."""
    from streams.stages.dedup import snapshot as snap
    from streams.stages.dedup.stage import Deduplicator

    prefix = f"benchsnap{uuid.uuid4().hex[:8]}."
    settings = Settings.from_env(topic_prefix=prefix, dedup_max_entries=max(Settings().dedup_max_entries, 2 * n))
    cfg = DedupConfig.from_settings(settings)
    topic = settings.topic("articles.dedup-snapshots")
    r: dict[str, Any] = {"n": n}
    print(f"\n== snapshot path, {n:,} articles: topic {topic}", flush=True)
    try:
        c.run(create_snapshot_topic(settings, topic))
        articles: dict[str, Any] = {}
        content: dict[str, Any] = {}
        written = Written()
        t = time.perf_counter()
        for article_id, entry, revisions in entries(
            n, corpus, cfg, args.seed + n, int(time.time() * 1000), tuple(KNOWN_FIELDS), written
        ):
            articles[article_id] = entry
            for rev, owner in revisions:
                content[rev] = owner
        print(
            f"  synthetic state: {len(articles):,} entries, {len(content):,} revisions "
            f"({time.perf_counter() - t:.0f} s)"
        )
        offsets = {"dedup-articles-changelog": len(articles), "dedup-content-changelog": len(content)}
        t = time.perf_counter()
        r["records"], r["bytes"] = c.run(
            produce_records(settings, topic, snap.write_snapshot(cfg, articles, content, {}, offsets=offsets))
        )
        r["write_s"] = time.perf_counter() - t
        print(
            f"  snapshot written: {r['records']} records, {r['bytes'] / MB:.0f} MB in {r['write_s']:.1f} s", flush=True
        )
        del articles, content
        t = time.perf_counter()
        c.run(read_topic(settings, topic))
        r["baseline_s"] = time.perf_counter() - t
        print(f"  baseline, plain read of the snapshot topic: {r['baseline_s']:.1f} s", flush=True)

        started = time.perf_counter()
        records = c.run(read_topic(settings, topic))
        r["read_s"] = time.perf_counter() - started
        state_dir = work / f"{n}-snapshot-stores"
        stores = [RocksTable(state_dir / name) for name in ("articles", "content", "held")]
        t = time.perf_counter()
        loaded = snap.read_snapshot(records, cfg)
        r["articles_loaded"] = stores[0].bulk(e for cols in loaded.articles() for e in cols.entries())
        r["content_loaded"] = stores[1].bulk(loaded.pairs("content"))
        stores[2].bulk(loaded.pairs("held"))
        r["load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        d = Deduplicator(
            articles=stores[0], content=stores[1], held=stores[2], config=cfg, clock=lambda: datetime.now(UTC)
        )
        r["indexed"] = d.rebuild(snapshot=loaded)
        r["index_s"] = time.perf_counter() - t
        copy_title, copy_text = copy_of(written.probe_title, written.probe_text, agency="AFP", city="PARIS")
        probe = normalized(
            f"https://www.copy.example/news/{written.probe_index}/s",
            copy_title,
            copy_text,
            datetime.now(UTC) - timedelta(hours=1),
        )
        (out,) = d.on_record(
            key=probe["article_id"].encode(), value=probe, offset=0, timestamp_ms=int(time.time() * 1000)
        )
        r["total_s"] = time.perf_counter() - started
        r["state_ok"] = getattr(out, "record", {}).get("duplicate_of") == written.probe_id
        r["rss_gb"] = _peak_rss_gb()
        for store in stores:
            store.close()
        verdict = "the copy names the synthetic original" if r["state_ok"] else "WRONG: the copy passed as new"
        print(
            f"  restore: read {r['read_s']:.1f} s + tables into RocksDB {r['load_s']:.1f} s "
            f"({r['articles_loaded']:,} + {r['content_loaded']:,}) + index {r['index_s']:.1f} s "
            f"-> first decision after {r['total_s']:.1f} s "
            f"(x{r['total_s'] / r['baseline_s']:.1f} the plain read); {verdict}; peak RSS {r['rss_gb']:.1f} GiB",
            flush=True,
        )
    finally:
        if not args.keep:
            deleted = c.run(c.delete_prefix(settings, [prefix]))
            print(f"  deleted {deleted} topics of {prefix}")
    return r


# -- the snapshot path through the real worker (--worker-snapshot) ---------------------------------------------
def write_snapshot_from_worker(w: c.Proc, settings: Settings, r: dict[str, Any], timeout: float) -> None:
    """Keeps articles flowing into the recovered worker (commits happen only while records flow) until it has
    written a snapshot of its state; notes the writer's figures in `r`."""
    deadline = time.monotonic() + timeout
    sent = 0
    while not w.events("dedup_snapshot_written"):
        if time.monotonic() > deadline or not w.alive():
            raise RuntimeError(f"no snapshot written within {timeout:.0f} s:\n{w.tail()}")
        art = normalized(
            f"https://www.wire.example/news/after-recovery-{sent}",
            f"Filler {sent}",
            f"Harbour council report number {sent} approved. " * 30,
            datetime.now(UTC) - timedelta(minutes=5),
        )
        c.run(send_and_wait_decision(settings, art, timeout=60))
        sent += 1
        time.sleep(0.5)
    done = w.events("dedup_snapshot_written")[-1]
    r["snapshot_written"] = {k: done[k] for k in ("seconds", "records", "bytes", "counts")}
    r["fillers"] = sent
    print(
        f"      the worker wrote a snapshot: {done['records']} records, {done['bytes'] / MB:.0f} MB in "
        f"{done['seconds']:.1f} s ({done['counts']}), {sent} articles sent to get commits",
        flush=True,
    )


def worker_snapshot_size(n: int, args: argparse.Namespace, corpus: Corpus, work: Path) -> dict[str, Any]:
    """N articles in the changelogs; a worker with an empty state dir recovers them the old way (the
    changelog replay) and writes a snapshot; then another, empty again, recovers from that snapshot; beside
    plain reads of the changelogs and of the snapshot topic, in the same run."""
    wall = time.perf_counter()
    prefix = f"benchrecsnap{uuid.uuid4().hex[:8]}."
    base = Settings.from_env()
    max_entries = max(base.dedup_max_entries, n + n // 2 + 1000)
    settings = Settings.from_env(
        topic_prefix=prefix,
        data_dir=str(work / f"{n}-probe-state"),
        web_port=c.free_port(),
        log_format="json",
        log_level="info",
        dedup_max_entries=max_entries,
    )
    cfg = DedupConfig.from_settings(settings)
    names = (f"{settings.group_id}-dedup-articles-changelog", f"{settings.group_id}-dedup-content-changelog")
    snapshot_topic = settings.topic("articles.dedup-snapshots")
    r: dict[str, Any] = {"n": n, "prefix": prefix}
    print(f"\n== {n:,} articles through the worker, snapshot vs changelog: topic prefix {prefix}", flush=True)
    try:
        c.run(create_topics(settings))
        print("  1. empty-state worker: creates the changelogs, one article through it", flush=True)
        w0 = c.Proc.worker(
            settings, work / f"{n}-snap-worker-empty.log", stages="dedup", STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS="0"
        )
        ready0 = w0.wait_ready(timeout=args.timeout)
        r["empty_ready_s"] = ready0 - w0.started
        first = normalized(
            "https://www.wire.example/news/probe-first",
            "Probe article",
            "Talks opened in Geneva on Monday. " * 40,
            datetime.now(UTC) - timedelta(hours=2),
        )
        c.run(send_and_wait_decision(settings, first, timeout=60))
        w0.stop()
        records = c.run(read_changelog_records(settings, names))
        fields, r["format"] = check_format(records, names, first)
        print(f"     ready in {r['empty_ready_s']:.2f} s; changelog format: {r['format']}")
        print(f"  2. writing {n:,} entries into the changelogs", flush=True)
        written = c.run(write_changelogs(settings, names, n, corpus, cfg, args.seed + n, args.txn_size, fields))
        r["written"] = written
        print(f"     {written.articles:,} + {written.content:,} entries in {written.seconds:.0f} s", flush=True)
        print("  3. baseline: plain read of both changelogs", flush=True)
        b1 = c.run(plain_read(settings, names))
        print(f"     {b1[1]:,} records, {b1[2] / MB:.0f} MB in {b1[0]:.2f} s", flush=True)

        # 4.1 the old path: the whole changelogs replayed; this worker then writes the first snapshot
        old_env = {"STREAMS_DEDUP_SNAPSHOT_RESTORE": "false", "STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS": "1"}
        r["old"] = restart(
            0,
            settings,
            written,
            args,
            work,
            env=old_env,
            after=lambda w, s, rr: write_snapshot_from_worker(w, s, rr, args.timeout),
        )
        # 3'. baseline of the new path: the snapshot topic read plainly
        t = time.perf_counter()
        snap_records = c.run(read_topic(settings, snapshot_topic))
        r["snapshot_read_s"] = time.perf_counter() - t
        r["snapshot_bytes"] = sum(len(v) for v in snap_records.values() if v is not None)
        del snap_records
        print(
            f"  3'. plain read of {snapshot_topic}: {r['snapshot_bytes'] / MB:.0f} MB in {r['snapshot_read_s']:.2f} s"
        )

        # 4.2 the snapshot path: empty state dir again, the snapshot loaded, the changelog tail replayed
        r["new"] = restart(1, settings, written, args, work, env={"STREAMS_DEDUP_SNAPSHOT_INTERVAL_SECONDS": "0"})
        b2 = c.run(plain_read(settings, names))
        r["baseline_runs"] = (b1[0], b2[0])
        r["baseline_s"] = (b1[0] + b2[0]) / 2
        r["records"], r["bytes"] = b1[1], b1[2]
        print(f"  3''. baseline again: {b2[0]:.2f} s", flush=True)
    finally:
        c.stop_all()
        if not args.keep:
            deleted = c.run(c.delete_prefix(settings, [prefix], groups=[settings.group_id]))
            print(f"  deleted {deleted} topics of {prefix}")
    r["wall_s"] = time.perf_counter() - wall
    report_worker_snapshot(r)
    return r


def report_worker_snapshot(r: dict[str, Any]) -> None:
    old, new, base, sbase = r["old"], r["new"], r["baseline_s"], r["snapshot_read_s"]
    restored = new.get("restored") or {}
    tables = restored.get("tables", {})
    tail = sum(t.get("tail", 0) for t in tables.values())

    def rebuild(x: dict[str, Any]) -> str:
        return ", ".join(f"{src} {sec:.1f} s" for src, sec in x.get("rebuilds", [])) or "-"

    rows = [
        (
            "plain read of both changelogs (old path's baseline)",
            f"{base:.2f} s",
            "",
            f"{r['records']:,} records, {r['bytes'] / MB:.0f} MB; runs {r['baseline_runs'][0]:.2f} / "
            f"{r['baseline_runs'][1]:.2f} s",
        ),
        (
            "plain read of the snapshot topic (snapshot path's baseline)",
            f"{sbase:.2f} s",
            "",
            f"{r['snapshot_bytes'] / MB:.0f} MB",
        ),
        (
            "changelog replay: process start -> /ready 200",
            f"{old['ready_s']:.1f} s",
            f"x{old['ready_s'] / base:.1f} changelog read",
            f"assigned -> ready {old['recovery_s']:.1f} s; index {rebuild(old)}",
        ),
        (
            "changelog replay: process start -> first decision",
            f"{old['decided_s']:.1f} s",
            f"x{old['decided_s'] / base:.1f} changelog read",
            "state recovered" if old["state_ok"] else "STATE LOST",
        ),
        (
            "snapshot: process start -> /ready 200",
            f"{new['ready_s']:.1f} s",
            f"x{new['ready_s'] / sbase:.1f} snapshot read, x{new['ready_s'] / base:.2f} changelog read",
            f"restore {restored.get('seconds', float('nan')):.1f} s (read {restored.get('read_seconds', 0):.1f} + "
            f"load {restored.get('load_seconds', 0):.1f}); tail {tail:,} records; assigned -> ready "
            f"{new['recovery_s']:.1f} s; index {rebuild(new)}",
        ),
        (
            "snapshot: process start -> first decision",
            f"{new['decided_s']:.1f} s",
            f"x{new['decided_s'] / sbase:.1f} snapshot read; x{old['decided_s'] / new['decided_s']:.1f} faster",
            "state recovered" if new["state_ok"] else f"STATE LOST {new.get('not_restored')}",
        ),
        (
            "peak RSS at ready: changelog / snapshot",
            f"{old['hwm_ready_kb'] / 1024:.0f} / {new['hwm_ready_kb'] / 1024:.0f} MB",
            "",
            f"after the first decision {old['hwm_end_kb'] / 1024:.0f} / {new['hwm_end_kb'] / 1024:.0f} MB",
        ),
    ]
    sw = r["old"].get("snapshot_written", {})
    print(f"\n-- dedup recovery of {r['n']:,} articles with an empty state dir (wall {r['wall_s']:.0f} s)")
    print(c.table(("figure", "value", "ratio", "notes"), rows))
    if sw:
        print(
            f"the snapshot, written by the recovered worker: {sw['records']} records, {sw['bytes'] / MB:.0f} MB in "
            f"{sw['seconds']:.1f} s; counts {sw['counts']}"
        )


async def create_snapshot_topic(settings: Settings, topic: str) -> None:
    from aiokafka.admin import NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", "max.message.bytes": str(11 * MB)}
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=configs)])
    finally:
        await admin.close()


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run: .venv/bin/python bench/bench_recovery.py --sizes 100000,1000000. Needs the broker on "
        "STREAMS_KAFKA_BOOTSTRAP; the method is described at the top of this file.",
    )
    ap.add_argument("--sizes", default="100000,1000000", help="articles in the state, comma-separated")
    ap.add_argument(
        "--txn-size",
        type=int,
        default=1000,
        help="articles per transaction when writing the changelogs (0: plain writes, no commit markers); default 1000",
    )
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for ready / a decision")
    ap.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="restarts measured per size, each on an empty data dir (the table shows the median); default 1",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the topics, logs and state dirs (for inspection)")
    ap.add_argument(
        "--snapshot",
        action="store_true",
        help="measure the snapshot path instead (stage side: snapshot topic -> RocksDB stores + index -> decision)",
    )
    ap.add_argument(
        "--worker-snapshot",
        action="store_true",
        help="through the real worker, empty state dir: the changelog replay (which then writes a snapshot) vs "
        "the snapshot restore, beside plain reads of the changelogs and of the snapshot topic",
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    c.on_signals_exit()
    c.require_broker(Settings.from_env())
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    print(f"recovery benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, sizes {sizes}, logs in {work}")
    t = time.perf_counter()
    corpus = Corpus(args.seed)
    print(f"synthetic corpus: {len(corpus.sentences):,} sentences ({time.perf_counter() - t:.1f} s)")
    results = []
    try:
        if args.snapshot:
            for n in sizes:
                snapshot_size(n, args, corpus, work)
            return 0
        if args.worker_snapshot:
            for n in sizes:
                worker_snapshot_size(n, args, corpus, work)
            return 0
        for n in sizes:
            results.append(one_size(n, args, corpus, work))
            report(results[-1])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping workers, deleting topics", file=sys.stderr)
        return 130
    finally:
        c.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) > 1:
        print("\n-- summary (baseline: plain aiokafka read of the same changelogs, same run)")
        rows = []
        for r in results:
            x, b = headline(r), r["baseline_s"]
            rows.append(
                (
                    f"{r['n']:,}",
                    f"{b:.2f}",
                    f"{x['ready_s']:.1f}",
                    f"{x['ready_s'] / b:.1f}",
                    f"{x['recovery_s']:.1f}",
                    f"{x['recovery_s'] / b:.1f}",
                    f"{r['n'] / x['recovery_s']:,.0f}",
                    f"{x['tail_s']:.1f}",
                    f"{x['rebuild_s']:.1f}",
                    f"{x['decided_s']:.1f}",
                    f"{x['hwm_end_kb'] / 1024:.0f}",
                    f"{sum(y['state_ok'] for y in r['restarts'])}/{len(r['restarts'])}",
                )
            )
        heads = ("articles", "baseline s", "(a) ready s", "ratio", "recovery s", "ratio", "articles/s", "idle s")
        print(c.table((*heads, "(b) rebuild s", "(c) decided s", "(d) peak RSS MB", "recovered"), rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
