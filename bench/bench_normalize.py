"""Benchmark of the normalize stage on real BBC articles, as plain text and wrapped in a realistic HTML page.

    .venv/bin/python bench/bench_normalize.py [--n 500] [--rounds 3]

Prints µs per article for `normalize` beside the baseline `orjson.loads` of the same payloads in the same run
(each article's best of --rounds passes, so that a busy shared machine measures the code, not its neighbours),
and checks that the HTML path recovers the same text as the plain path (no navigation, ads, cookie banner,
footer or script leaking in). Needs ../shared/data/bbc_news_fulltext.jsonl (read, never copied here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.bench.corpus import html_page  # noqa: E402  (one page for every benchmark, streams bench too)
from streams.outcomes import Normalized  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.stages.normalize import NormalizeConfig, normalize  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "bbc_news_fulltext.jsonl"
NOW = datetime(2025, 8, 12, 7, 31, 2, tzinfo=UTC)
# Strings of the page furniture: none may reach an article's text.
LEAKS = ("Skip to content", "Advertisement", "cookies", "All rights reserved", "trackPageView", "Newsletter")


def load_rows(n: int) -> list[dict[str, Any]]:
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs ../shared/data beside the checkout (real BBC text).")
    rows = []
    with DATA.open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            if not row.get("exact_duplicate_of"):
                rows.append(row)
            if len(rows) >= n:
                break
    return rows


def events(rows: list[dict[str, Any]], fmt: str) -> list[bytes]:
    out = []
    for i, row in enumerate(rows):
        event = {
            "event_id": f"bench-{fmt}-{i}",
            "url": f"https://www.bbc.co.uk/news/{row['category']}/{i}?utm_source=bench&utm_medium=rss",
            "title": row["title"],
            "body": row["body"] if fmt == "text" else html_page(row),
            "body_format": fmt,
            "source": {"name": "BBC News", "id": "bbc"},
            "published_at": "Tue, 12 Aug 2025 09:30:00 +0200",
            "language": "en",
        }
        out.append(orjson.dumps(event))
    return out


def per_item_us(fn: Callable[[bytes], Any], payloads: list[bytes], rounds: int) -> tuple[list[float], list[Any]]:
    """Each payload's best time over `rounds` passes (µs), and the results of the last pass.

    The best of a few passes is what the code costs; a shared machine adds preemptions to single passes.
    """
    best = [float("inf")] * len(payloads)
    results: list[Any] = []
    for _ in range(rounds):
        results = []
        for i, p in enumerate(payloads):
            t0 = time.perf_counter_ns()
            results.append(fn(p))
            best[i] = min(best[i], (time.perf_counter_ns() - t0) / 1000)
    return best, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="articles per format (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="passes; each article counts its best (default 3)")
    args = ap.parse_args()
    rows = load_rows(args.n)
    config = NormalizeConfig.from_settings(Settings())
    origin = {"topic": "articles.raw", "partition": 0, "offset": 0, "timestamp_ms": 1754983862000}

    def run(payload: bytes) -> Any:
        return normalize(payload, origin=origin, now=NOW, config=config)

    texts: dict[str, list[str | None]] = {}
    print(
        f"normalize benchmark: {len(rows)} BBC articles per format, best of {args.rounds} passes each, "
        f"Python {sys.version.split()[0]}"
    )
    widths = [("format", "<6"), ("bytes", ">7"), ("orjson µs", ">10"), ("normalize µs", ">13"), ("p50", ">8")]
    widths += [("p99", ">8"), ("ratio", ">7"), ("ok", ">3")]
    print(" ".join(f"{name:{fmt}}" for name, fmt in widths))
    for fmt in ("text", "html"):
        payloads = events(rows, fmt)
        for p in payloads[:20]:  # warm-up: imports, caches, tldextract snapshot
            run(p)
        base, _ = per_item_us(orjson.loads, payloads, args.rounds)
        times, results = per_item_us(run, payloads, args.rounds)
        ok = sum(isinstance(r, Normalized) for r in results)
        texts[fmt] = [r.article["text"] if isinstance(r, Normalized) else None for r in results]
        mean_base, mean = statistics.fmean(base), statistics.fmean(times)
        q = statistics.quantiles(times, n=100)
        size = statistics.fmean(len(p) for p in payloads)
        print(
            f"{fmt:<6} {size:>7.0f} {mean_base:>10.1f} {mean:>13.1f} {q[49]:>8.0f} {q[98]:>8.0f} "
            f"{mean / mean_base:>6.0f}x  {ok}/{len(payloads)}"
        )
    same = sum(a == b and a is not None for a, b in zip(texts["text"], texts["html"], strict=True))
    # furniture words the article itself uses (a BBC story about cookies) are not leaks
    leaked = sum(
        any(s in (h or "") and s not in (t or "") for s in LEAKS)
        for t, h in zip(texts["text"], texts["html"], strict=True)
    )
    print(f"html text identical to plain text: {same}/{len(rows)}; page furniture leaked into text: {leaked}")


if __name__ == "__main__":
    main()
