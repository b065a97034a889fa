"""Benchmarks the takedown stage: µs per article with 10k active takedowns, and what applying one domain
takedown to a partition holding 100k published articles costs (time, index memory).

Run: .venv/bin/python bench/bench_takedown.py [--articles 20000] [--takedowns 10000] [--published 100000]
     [--repeat 3]

Synthetic data, no broker and no ../shared needed (the stage never reads article text).

1. µs/article. A partition state with `--takedowns` active takedowns, a fifth of each scope (url, domain,
   source, fingerprint, cluster), then `--articles` articles through `on_article`, about 5 % of them
   covered. Two table kinds: plain dicts (the stage's own cost) and a dict of JSON text that encodes on
   every write and decodes on every read, as a Faust table's values do (no RocksDB, no changelog). Baselines
   in the same run: one dict look-up per article (`dict.get(article["canonical_url"])`), and the same
   stage with no takedown at all.
2. Applying one domain takedown. A partition state prefilled with `--published` published articles (one
   domain with 10,000 of them under several subdomains, one with 1,000, one with 100, the rest spread over
   2,000 domains), rebuilt from its table (timed; tracemalloc measures the in-memory indexes it builds);
   then `apply()` of a domain takedown covering 0, 100, 1,000 and 10,000 of them, each on a fresh copy.
   Baseline: a linear scan of the 100k entries with `covers()`, what a state without indexes would do.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.codec import rfc3339, short_hash  # noqa: E402
from streams.outcomes import Published  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.stages.takedown import PartitionState, TakedownConfig, covers, new_request  # noqa: E402
from streams.stages.takedown.matching import facts_of_entry  # noqa: E402

T0 = datetime(2025, 8, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
SCOPES = ("url", "domain", "source", "fingerprint", "cluster")
TEXT = "\n\n".join(["Delegations met on Tuesday and the talks are expected to last three days."] * 30)


class JsonTable(MutableMapping[str, Any]):
    """A dict of JSON text: every read decodes, every write encodes, like a Faust table's JSON values."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self._data: dict[str, str] = data if data is not None else {}

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self._data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = orjson.dumps(value).decode()

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def article(i: int, host: str, source: str, cluster: str | None = None, revision: str | None = None) -> dict[str, Any]:
    url = f"https://{host}/news/{i}"
    aid = short_hash(url)
    return {
        "schema": "article.v1",
        "article_id": aid,
        "url": url,
        "canonical_url": url,
        "host": host,
        "domain": ".".join(host.split(".")[-2:]),
        "title": f"Talks open in Geneva, day {i}",
        "text": TEXT,
        "revision": revision or short_hash(f"text {i}"),
        "published_at": rfc3339(T0),
        "ingested_at": rfc3339(T0),
        "source": {"name": source.replace("-", " ").title(), "id": source},
        "attribution": {},
        "alternates": [],
        "flags": {},
        "origin": {"topic": "articles.raw", "partition": 0, "offset": i, "timestamp_ms": 1754000000000},
        "dedup": {"cluster_id": cluster or aid, "revision_number": 1, "previous_revision": None, "is_update": False},
        "enrichment": {},
        "pipeline": {"normalize": "1", "dedup": "1", "enrich": "1"},
    }


def stream(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """n articles over 5,000 domains (www./news. hosts) and 1,000 sources."""
    out = []
    for i in range(n):
        d = rng.randrange(5000)
        host = f"{rng.choice(['www', 'news'])}.site{d}.com"
        out.append(article(i, host, f"source-{rng.randrange(1000)}"))
    return out


def takedowns(n: int, arts: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """n requests, a fifth per scope; about one in ten names something the stream contains."""
    per = n // len(SCOPES)
    out: list[dict[str, Any]] = []
    for scope in SCOPES:
        for j in range(per):
            hit = j % 10 == 0
            a = rng.choice(arts)
            if scope == "url":
                value = a["canonical_url"] if hit else f"https://elsewhere{j}.org/page/{j}"
            elif scope == "domain":
                value = a["domain"] if j % 100 == 0 else f"other{j}.net"
            elif scope == "source":
                value = a["source"]["id"] if j % 100 == 0 else f"agency-{j}"
            elif scope == "fingerprint":
                value = a["revision"] if hit else short_hash(f"other text {j}")
            else:
                value = a["dedup"]["cluster_id"] if hit else short_hash(f"other cluster {j}")
            rec = new_request(scope, value, "bench", "bench", now=T0, takedown_id=f"TD-{scope}-{j}")
            assert isinstance(rec, dict), rec
            out.append(rec)
    return out


def cfg() -> TakedownConfig:
    return TakedownConfig.from_settings(Settings())


def state_with(tds: list[dict[str, Any]], json_tables: bool) -> PartitionState:
    table_td: MutableMapping[str, Any] = JsonTable() if json_tables else {}
    for td in tds:
        table_td[f"0/{td['takedown_id']}"] = td
    return PartitionState(0, cfg(), table_td, JsonTable() if json_tables else {})


def time_calls(fn: Any, items: list[Any]) -> list[float]:
    """Per-call wall time in µs."""
    out = []
    clock = time.perf_counter_ns
    for item in items:
        t = clock()
        fn(item)
        out.append((clock() - t) / 1000)
    return out


def summary(us: list[float]) -> str:
    q = statistics.quantiles(us, n=100)
    return f"{statistics.fmean(us):7.2f} µs  p50 {q[49]:6.2f}  p99 {q[98]:7.2f}"


def bench_articles(n_articles: int, n_takedowns: int, repeat: int) -> None:
    rng = random.Random(7)
    arts = stream(n_articles, rng)
    tds = takedowns(n_takedowns, arts, rng)
    print(f"1. µs per article: {n_articles:,} articles, {len(tds):,} active takedowns ({len(tds) // 5:,} per scope)")
    print(f"   (each row: the median of {repeat} runs by mean, rows interleaved so drift hits them alike)\n")
    lookup: dict[str, int] = {a["canonical_url"]: i for i, a in enumerate(arts[::2])}
    labels = ["baseline: dict.get(canonical_url)"]
    cases: list[tuple[bool, list[dict[str, Any]]]] = []
    for json_tables in (False, True):
        kind = "JSON tables" if json_tables else "dict tables"
        for label, active in (("no takedown", []), (f"{len(tds):,} takedowns", tds)):
            labels.append(f"on_article, {kind}, {label}")
            cases.append((json_tables, active))
    runs: dict[str, list[tuple[list[float], int | None]]] = {label: [] for label in labels}
    for _ in range(repeat):
        gc.collect()
        runs[labels[0]].append((time_calls(lambda a: lookup.get(a["canonical_url"]), arts), None))
        for label, (json_tables, active) in zip(labels[1:], cases, strict=True):
            runs[label].append(run_stage(arts, state_with(active, json_tables)))
    base_mean = statistics.median(statistics.fmean(us) for us, _ in runs[labels[0]])
    for label in labels:
        us, blocked = sorted(runs[label], key=lambda r: statistics.fmean(r[0]))[len(runs[label]) // 2]
        extra = f"  blocked {blocked:>5}" if blocked is not None else ""
        print(f"  {label:<44} {summary(us)}  ×{statistics.fmean(us) / base_mean:5.1f}{extra}")
    print()


def run_stage(arts: list[dict[str, Any]], state: PartitionState) -> tuple[list[float], int]:
    """Per-article µs of on_article over `arts`, and how many were not published."""
    offsets = iter(range(10**9))
    counts = {"blocked": 0}

    def step(a: dict[str, Any]) -> None:
        # Outcomes are counted and dropped, as the agent hands them to the producer and forgets them.
        for o in state.on_article(a, offset=next(offsets), now=NOW):
            if not isinstance(o, Published):
                counts["blocked"] += 1

    gc.collect()
    us = time_calls(step, arts)
    return us, counts["blocked"]


def prefilled(n: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, int]]:
    """n published entries: big.com (10,000 under 10 subdomains), mid.com (1,000), small.com (100), the
    rest over 2,000 domains. Returns the table and how many articles each test domain holds."""
    table: dict[str, Any] = {}
    sizes = {"big.com": 10_000, "mid.com": 1_000, "small.com": 100}
    i = 0
    state = PartitionState(0, cfg(), {}, table)
    now_ms = int(NOW.timestamp() * 1000)
    for domain, count in sizes.items():
        for _ in range(count):
            host = f"s{i % 10}.{domain}" if domain == "big.com" else f"www.{domain}"
            state.on_article(article(i, host, f"source-{i % 1000}"), offset=i, now=NOW)
            i += 1
    while i < n:
        state.on_article(article(i, f"www.site{rng.randrange(2000)}.com", f"source-{i % 1000}"), offset=i, now=NOW)
        i += 1
    assert all(e["status"] == "published" and e["since_ms"] == now_ms for e in table.values())
    return table, {"nobody.com": 0, **{d: c for d, c in reversed(sizes.items())}}


def bench_apply(n: int) -> None:
    rng = random.Random(11)
    table, domains = prefilled(n, rng)
    entry_bytes = statistics.fmean(len(orjson.dumps(e)) for e in list(table.values())[:5000])
    print(f"2. One domain takedown applied to a partition holding {n:,} published articles\n")
    gc.collect()
    t = time.perf_counter()
    state = PartitionState(0, cfg(), {}, table)
    rebuild_s = time.perf_counter() - t
    del state
    gc.collect()
    tracemalloc.start()  # a second rebuild under tracemalloc (which slows it down) for the memory alone
    before = tracemalloc.get_traced_memory()[0]
    state = PartitionState(0, cfg(), {}, table)
    index_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"  rebuild from the table: {rebuild_s:.2f} s; in-memory indexes {index_bytes / n:,.0f} B/article")
    print(f"  ({index_bytes / 2**20:,.1f} MiB); a table entry is {entry_bytes:,.0f} B of JSON (no article text)\n")
    del state
    rows: list[tuple[str, ...]] = []
    for domain, covered in domains.items():
        gc.collect()
        td = new_request("domain", domain, "bench", "bench", now=NOW, takedown_id=f"TD-{domain}")
        assert isinstance(td, dict)
        fresh = PartitionState(0, cfg(), {}, dict(table))
        t = time.perf_counter()
        found = fresh.known.candidates("domain", td["value"])
        find_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        out = fresh.apply(td, now=NOW + timedelta(minutes=1))
        apply_ms = (time.perf_counter() - t) * 1000
        retracted = sum(1 for o in out if type(o).__name__ == "Retracted")
        assert retracted == covered == len(found), (domain, retracted, covered)
        t = time.perf_counter()
        scanned = sum(1 for aid, e in table.items() if covers("domain", domain, facts_of_entry(aid, e)))
        scan_ms = (time.perf_counter() - t) * 1000
        assert scanned == covered
        rows.append(
            (
                f"{domain} ({covered:,})",
                f"{find_ms:.3f} ms",
                f"{scan_ms:.1f} ms",
                f"{scan_ms / max(find_ms, 1e-6):,.0f}",
                f"{apply_ms:.2f} ms",
                f"{apply_ms * 1000 / covered:.1f} µs" if covered else "-",
            )
        )
        del fresh
    headers = ("domain (articles covered)", "find (index)", "find (linear scan)", "×", "apply", "per retraction")
    print("  " + table_text(headers, rows).replace("\n", "\n  "))
    print()


def table_text(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=20_000)
    ap.add_argument("--takedowns", type=int, default=10_000)
    ap.add_argument("--published", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"Python {sys.version.split()[0]}, {Settings().takedown_published_retention_days:g}-day published record\n")
    bench_articles(args.articles, args.takedowns, args.repeat)
    bench_apply(args.published)


if __name__ == "__main__":
    main()
