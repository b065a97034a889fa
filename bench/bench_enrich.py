"""Benchmark of the enrich stage on real BBC articles, and language-ID accuracy on the Slavic news set.

    .venv/bin/python bench/bench_enrich.py [--n 400] [--batch 32] [--rounds 2] [--pool 2] [--slavic all]

Prints, in one run:
- spaCy's own `nlp.pipe` rate on the BBC texts (the stage's pipeline: ner only; and tok2vec+ner, the issue's
  figure) beside the stage's articles/s with NER (`enrich_batch`), and their ratio (goal >= 0.85);
- the stage with NER in a pool of `--pool` processes (`aenrich_batch`), beside the in-process stage;
- µs per article without NER (no model configured: every other enricher), by enricher (goal <= 1 ms);
- language-ID accuracy on ../shared/data's Slavic news, on title + text as the stage reads them and on titles
  alone (goal >= 0.98), with the cost per article and which detector decided.
Needs ../shared/data (read, never copied here). Alternating rounds, best of each, so drift hits both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.outcomes import Enriched  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.stages.enrich import EnrichConfig, Enricher  # noqa: E402
from streams.stages.enrich.language import LanguageDetector  # noqa: E402
from streams.stages.enrich.ner import load_pipeline  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BBC = DATA / "bbc_news_fulltext.jsonl"
SLAVIC = DATA / "bsnlp_slavic_news_multilingual.jsonl"


def load(path: Path, n: int | None) -> list[dict[str, Any]]:
    if not path.exists():
        sys.exit(f"{path} is missing: this benchmark needs ../shared/data beside the checkout (real news text).")
    rows = []
    with path.open("rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            if not row.get("exact_duplicate_of"):
                rows.append(row)
            if n is not None and len(rows) >= n:
                break
    return rows


def articles(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields enrich reads, as an article.v1 carries them (text paragraphs separated by a blank line)."""
    return [
        {"article_id": f"{i:032x}", "title": r["title"], "text": r["body"].strip(), "pipeline": {"normalize": "1"}}
        for i, r in enumerate(rows)
    ]


def batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f}/s"


def bench_ner(args: argparse.Namespace, settings: Settings) -> None:
    rows = articles(load(BBC, args.n))
    texts = [a["text"] for a in rows]
    package = dict(EnrichConfig.from_settings(settings).models)["en"]
    ner_only_nlp = load_pipeline(package)
    import spacy

    issue_nlp = spacy.load(package, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
    enricher = Enricher(EnrichConfig.from_settings(settings))
    pooled = Enricher(EnrichConfig.from_settings(Settings(**{**settings.__dict__, "enrich_ner_processes": args.pool})))

    def spacy_pipe(nlp: Any) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for _ in nlp.pipe(texts, batch_size=args.batch):
            pass
        return time.perf_counter() - t, time.process_time() - c

    def stage() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for b in batches(rows, args.batch):
            out = enricher.enrich_batch(b)
            assert all(isinstance(o, Enriched) for o in out)
        return time.perf_counter() - t, time.process_time() - c

    def pool_stage() -> tuple[float, float]:
        async def go() -> float:
            await pooled.aenrich_batch(rows[:4])  # starts the pool (model loads) outside the timing
            t = time.perf_counter()
            for b in batches(rows, args.batch):
                await pooled.aenrich_batch(b)
            return time.perf_counter() - t

        return asyncio.run(go()), float("nan")  # CPU time is spread over the processes: wall time only

    stage()  # warm up (lingua's first models, caches)
    ner_only, ours_key, issue = (
        "spacy nlp.pipe, ner only (the stage's pipeline)",
        "enrich_batch, in-process",
        ("spacy nlp.pipe, tok2vec+ner (the issue's setup)"),
    )
    pool_key = f"aenrich_batch, pool of {args.pool} processes"
    times: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for _ in range(args.rounds):  # alternating, so drift and other load hit every side alike
        times[ner_only].append(spacy_pipe(ner_only_nlp))
        times[ours_key].append(stage())
        times[issue].append(spacy_pipe(issue_nlp))
        if args.pool:
            times[pool_key].append(pool_stage())
    n = len(rows)
    mean_chars = statistics.mean(len(t) for t in texts)
    print(f"\nNER throughput, {n} BBC articles ({mean_chars:.0f} chars), batch {args.batch}, best of {args.rounds}")
    wall = {k: min(w for w, _ in v) for k, v in times.items()}
    cpu = {k: min(c for _, c in v) for k, v in times.items()}
    for k in times:
        cpu_part = "" if cpu[k] != cpu[k] else f"   CPU {rate(n, cpu[k])} ({cpu[k] / n * 1e3:5.1f} ms/article)"
        print(f"  {k:<50} wall {rate(n, wall[k])} ({wall[k] / n * 1e3:5.1f} ms/article){cpu_part}")
    print(f"  stage / spaCy, same pipeline and texts: CPU {cpu[ner_only] / cpu[ours_key]:.3f}, "
          f"wall {wall[ner_only] / wall[ours_key]:.3f}   (goal >= 0.85)")  # fmt: skip
    print(f"  ner-only pipeline / tok2vec+ner pipeline: CPU {cpu[issue] / cpu[ner_only]:.2f}x faster")
    if args.pool:
        print(f"  pool of {args.pool} / in-process stage (wall): {wall[ours_key] / wall[pool_key]:.2f}x")
    enricher.stats()
    stage()
    stats = enricher.stats()
    print("  per enricher, µs/article (one in-process pass): "
          + ", ".join(f"{k} {v / n * 1e6:.0f}" for k, v in stats.seconds.items()))  # fmt: skip
    print(f"  entities per article: { {k: round(v / n, 1) for k, v in stats.entities.items()} }, "
          f"figures per article: {sum(stats.figures.values()) / n:.2f}")  # fmt: skip
    enricher.close()
    pooled.close()


def bench_without_ner(args: argparse.Namespace, settings: Settings) -> None:
    rows = articles(load(BBC, args.n))
    enricher = Enricher(EnrichConfig.from_settings(Settings(**{**settings.__dict__, "enrich_models": ""})))
    baseline_rows = [orjson.dumps(a) for a in rows]
    enricher.enrich_batch(rows[:50])
    best_stage = best_base = best_cpu = float("inf")
    stats = None
    for _ in range(args.rounds):
        t = time.perf_counter()
        for raw in baseline_rows:
            orjson.loads(raw)
        best_base = min(best_base, time.perf_counter() - t)
        enricher.stats()
        t, c = time.perf_counter(), time.process_time()
        for b in batches(rows, args.batch):
            enricher.enrich_batch(b)
        best_stage = min(best_stage, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
        stats = enricher.stats()
    n = len(rows)
    assert stats is not None
    print(f"\nWithout NER (no model configured), {n} BBC articles, best of {args.rounds} rounds")
    print(f"  enrich_batch: wall {best_stage / n * 1e6:5.0f} µs/article, CPU {best_cpu / n * 1e6:5.0f} µs/article"
          "   (goal <= 1000)")  # fmt: skip
    print(f"  baseline orjson.loads of the same articles: {best_base / n * 1e6:5.1f} µs/article")
    parts = [f"{k} {v / n * 1e6:.0f}" for k, v in stats.seconds.items() if k not in ("ner", "entities")]
    print("  by enricher (µs/article, last round): " + ", ".join(parts))


def bench_language(args: argparse.Namespace, settings: Settings) -> None:
    rows = load(SLAVIC, None if args.slavic == "all" else int(args.slavic))
    detector = LanguageDetector(
        sample_chars=settings.enrich_language_sample_chars, threshold=settings.enrich_language_confidence
    )
    print(f"\nLanguage ID, {len(rows)} Slavic news articles (exact duplicates left out)")
    for label, pick in (
        ("title + text (as the stage reads them)", lambda r: (r["title"], r["body"])),
        ("title alone", lambda r: ("", r["title"])),
    ):
        ok = lettered = lettered_ok = 0
        methods: collections.Counter[str] = collections.Counter()
        wrong: collections.Counter[tuple[str, str]] = collections.Counter()
        t = time.perf_counter()
        found = [detector.detect(*pick(r)) for r in rows]
        seconds = time.perf_counter() - t
        for r, lang in zip(rows, found, strict=True):
            methods[lang.method] += 1
            hit = lang.code == r["language"]
            ok += hit
            if lang.code is not None:
                lettered += 1
                lettered_ok += hit
            if not hit:
                wrong[(r["language"], lang.code or "none")] += 1
        print(f"  {label:<40} accuracy {ok / len(rows):.4f}   ({seconds / len(rows) * 1e6:6.0f} µs/article)")
        if lettered != len(rows):
            print(
                f"  {'':<40} {len(rows) - lettered} without letters (dates): {lettered_ok / lettered:.4f} on the rest"
            )
        print(f"  {'':<40} decided by {dict(methods.most_common())}; most confused {wrong.most_common(5)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="BBC articles")
    parser.add_argument("--batch", type=int, default=Settings().enrich_batch_size)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=2, help="processes of the NER pool (0: skip)")
    parser.add_argument("--slavic", default="all", help="Slavic articles for language ID (all or a number)")
    parser.add_argument("--only", choices=("ner", "no-ner", "language"), default=None)
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.only in (None, "ner"):
        bench_ner(args, settings)
    if args.only in (None, "no-ner"):
        bench_without_ner(args, settings)
    if args.only in (None, "language"):
        bench_language(args, settings)


if __name__ == "__main__":
    main()
