"""Benchmarks the dedup stage: µs per article at 100k and 1M indexed articles, index memory, rebuild time.

Run: .venv/bin/python bench/bench_dedup.py [--sizes 100000,1000000] [--queries 2000] [--threshold 0.6]
     [--num-perm 64]

Each size runs in a fresh subprocess so memory figures do not leak into each other. The index is prefilled
through the restart path: N synthetic entries (random signatures, the same JSON as real entries) are written
to the `articles` / `content` mappings and `DedupState.rebuild()` indexes them; that is the rebuild figure.
The mappings stand in for Faust tables: a dict of JSON text, decoded on every read as a table's JSON
serializer would (no RocksDB, no changelog: bench_recovery.py measures recovery).

Then real BBC articles (../shared/data; synthetic text when missing) go through `dedup()` + `expire()`:
first as new articles (LSH query finds nothing), then as lightly edited copies of them (candidates are
verified against stored signatures). Baselines measured in the same run: the signature of the same text
alone, one mapping read, and iterating + decoding the mapping. Medians and p99 in wall-clock time, and the
same calls' CPU time (the machine is shared: preemption shows in wall-clock p99). Memory: RSS delta across
rebuild() (kernels compiled before), per article, beside the stored entry size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.codec import rfc3339, short_hash  # noqa: E402
from streams.outcomes import Duplicate  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.stages.dedup.stage import DedupConfig, DedupState, dedup, expire  # noqa: E402
from tests.factories import dedup_state as factories  # noqa: E402
from tests.factories.dedup_state import JsonTable, rss_bytes  # noqa: E402

BBC = ROOT.parent / "shared" / "data" / "bbc_news_fulltext.jsonl"
T0 = datetime(2025, 8, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


def prefill(n: int, articles: JsonTable, content: JsonTable, num_perm: int, seed: int = 1) -> None:
    factories.prefill(n, articles, content, num_perm, base_ms=int(T0.timestamp() * 1000), seed=seed)


def query_articles(q: int) -> list[tuple[str, str]]:
    if BBC.exists():
        with BBC.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        rows = [r for r in rows if not r.get("exact_duplicate_of")][:q]
        return [(r["title"], "\n\n".join(" ".join(p.split()) for p in r["body"].split("\n\n"))) for r in rows]
    print("  (../shared/data missing: synthetic text)", file=sys.stderr)
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    return [(" ".join(rng.choices(vocab, k=6)), " ".join(rng.choices(vocab, k=400))) for _ in range(q)]


def make(url: str, title: str, text: str, when: datetime) -> dict[str, Any]:
    return {
        "schema": "article.v1",
        "article_id": short_hash(url),
        "url": url,
        "canonical_url": url,
        "domain": "example",
        "title": title,
        "text": text,
        "revision": short_hash(text),
        "published_at": rfc3339(when),
        "ingested_at": rfc3339(when),
        "source": {"name": "bench", "id": "bench"},
        "flags": {},
        "attribution": {},
        "alternates": [],
        "pipeline": {},
    }


CPU_US: list[float] = []  # thread CPU time of the last timed() calls, µs: what preemption by other processes hides


def timed(fn: Any, items: list[Any]) -> list[float]:
    """Wall-clock µs of fn(x) for each item; the same calls' CPU time is left in CPU_US."""
    out = []
    CPU_US.clear()
    for x in items:
        c = time.thread_time()
        t = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t) * 1e6)
        CPU_US.append((time.thread_time() - c) * 1e6)
    return out


def one(n: int, q: int, threshold: float, num_perm: int) -> dict[str, Any]:
    settings = Settings.from_env({}, dedup_threshold=threshold, dedup_num_perm=num_perm, dedup_max_entries=n + 10 * q)
    cfg = DedupConfig.from_settings(settings)
    articles, content = JsonTable(), JsonTable()
    t = time.perf_counter()
    prefill(n, articles, content, num_perm)
    prefill_s = time.perf_counter() - t
    gc.collect()

    t = time.perf_counter()
    for _ in articles.items():  # the floor under rebuild(): read and decode every entry
        pass
    iterate_s = time.perf_counter() - t

    warm_articles, warm_content = JsonTable(), JsonTable()  # compile (or load) every kernel before measuring
    prefill(50, warm_articles, warm_content, num_perm)
    warm = DedupState(cfg, warm_articles, warm_content)
    warm.rebuild()
    for i, (ti, tx) in enumerate(query_articles(3)):
        dedup(make(f"https://warm.example/{i}", ti, tx, T0), state=warm, now=NOW)
        expire(warm)
    del warm, warm_articles, warm_content
    state = DedupState(cfg, articles, content)
    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    count = state.rebuild()
    rebuild_s = time.perf_counter() - t
    gc.collect()
    index_bytes = rss_bytes() - before
    assert count == n

    texts = query_articles(q)
    when = T0 + timedelta(days=7)
    fresh = [make(f"https://bench.example/a/{i}", ti, tx, when) for i, (ti, tx) in enumerate(texts)]
    copies = [
        make(f"https://copy.example/a/{i}", ti, f"LONDON (Wire) - {tx}\n\nAdditional reporting by Wire.", when)
        for i, (ti, tx) in enumerate(texts)
    ]
    hasher = state.hasher
    minhash_us = timed(lambda a: hasher.signature(a["title"], a["text"]), fresh)
    some_ids = [aid for aid, _ in zip(articles, range(q), strict=False)]
    lookup_us = timed(lambda k: articles.get(k), some_ids)

    outcomes: list[Any] = []

    def step(a: dict[str, Any]) -> None:
        outcomes.append(dedup(a, state=state, now=NOW))
        expire(state)

    unique_us = timed(step, fresh)
    unique_cpu = sorted(CPU_US)
    copy_us = timed(step, copies)
    copy_cpu = sorted(CPU_US)
    caught = sum(isinstance(o, Duplicate) for o in outcomes[len(fresh) :])
    return {
        "n": n,
        "bands": state.num_bands,
        "rows": cfg.lsh_rows,
        "threshold": threshold,
        "num_perm": num_perm,
        "prefill_s": prefill_s,
        "rebuild_s": rebuild_s,
        "iterate_s": iterate_s,
        "index_bytes_per_article": index_bytes / n,
        "estimate_bytes_per_article": state.index_bytes_estimate() / state.size(),
        "entry_bytes": articles.raw_bytes() / len(articles),
        "minhash_us": statistics.median(minhash_us),
        "lookup_us": statistics.median(lookup_us),
        "unique_us": statistics.median(unique_us),
        "unique_p99_us": sorted(unique_us)[int(0.99 * len(unique_us))],
        "unique_cpu_p50_us": unique_cpu[len(unique_cpu) // 2],
        "unique_cpu_p99_us": unique_cpu[int(0.99 * len(unique_cpu))],
        "unique_mean_us": statistics.fmean(unique_us),
        "copy_us": statistics.median(copy_us),
        "copy_p99_us": sorted(copy_us)[int(0.99 * len(copy_us))],
        "copy_cpu_p99_us": copy_cpu[int(0.99 * len(copy_cpu))],
        "copies_caught": caught,
        "copies": len(copies),
        "max_rss_gb": _max_rss_gb(),
    }


def _max_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def report(r: dict[str, Any]) -> None:
    n = r["n"]
    lsh = f"{r['num_perm']} permutations, {r['bands']} bands x {r['rows']} rows"
    print(f"\n== index of {n:,} articles (threshold {r['threshold']}, {lsh})")
    print(f"  prefill of the mappings (synthetic entries): {r['prefill_s']:.1f} s")
    print(
        f"  rebuild(): {r['rebuild_s']:.1f} s = {r['rebuild_s'] / n * 1e6:.1f} µs/article; baseline iterating "
        f"and decoding the mapping {r['iterate_s']:.1f} s (x{r['rebuild_s'] / r['iterate_s']:.1f})"
    )
    per = r["index_bytes_per_article"]
    print(
        f"  index memory (RSS delta across rebuild): {per:.0f} B/article, {per * n / 2**30:.2f} GiB; "
        f"estimate {r['estimate_bytes_per_article']:.0f} B/article; baseline stored entry "
        f"{r['entry_bytes']:.0f} B (x{per / r['entry_bytes']:.2f})"
    )
    print(
        f"  dedup()+expire(), new article: median {r['unique_us']:.0f} µs (mean {r['unique_mean_us']:.0f}, "
        f"p99 {r['unique_p99_us']:.0f}); baseline MinHash alone {r['minhash_us']:.0f} µs "
        f"(x{r['unique_us'] / r['minhash_us']:.2f}), one mapping read {r['lookup_us']:.1f} µs"
    )
    print(
        f"    CPU time of the same calls (preemption by other processes left out): median "
        f"{r['unique_cpu_p50_us']:.0f} µs, p99 {r['unique_cpu_p99_us']:.0f}; near copy p99 {r['copy_cpu_p99_us']:.0f}"
    )
    print(
        f"  dedup()+expire(), near copy: median {r['copy_us']:.0f} µs (p99 {r['copy_p99_us']:.0f}); "
        f"x{r['copy_us'] / r['minhash_us']:.2f} the MinHash; caught {r['copies_caught']}/{r['copies']}"
    )
    rate = 1e6 / r["unique_mean_us"]
    print(f"  peak RSS of the run: {r['max_rss_gb']:.2f} GiB; one worker ~{rate:,.0f} new articles/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="index sizes, comma-separated")
    ap.add_argument("--queries", type=int, default=2000, help="articles (and copies) timed per size")
    ap.add_argument("--threshold", type=float, default=Settings().dedup_threshold)
    ap.add_argument("--num-perm", type=int, default=Settings().dedup_num_perm)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process: one size
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.queries, args.threshold, args.num_perm)))
        return 0
    print(f"dedup benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, one thread")
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--queries", str(args.queries)]
        cmd += ["--threshold", str(args.threshold), "--num-perm", str(args.num_perm)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"size {n}: failed\n{proc.stderr}", file=sys.stderr)
            return proc.returncode
        report(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  (size {n:,}: {time.perf_counter() - t:.0f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
