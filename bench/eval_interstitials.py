"""Evaluation of normalize's not_an_article refusals: recall on walls, false refusals on real news.

    .venv/bin/python bench/eval_interstitials.py [--show]

Recall: the SemEval-2022 texts labelled in bench/interstitials_semeval.json as cookie walls, bot checks,
paywalls and ad-blocker walls, each sent through normalize as a raw event (body = the text, no title).
False refusals: every other SemEval text, all 2,225 BBC articles (as text events with their title, and as the
HTML pages of bench_normalize.py) and the 5,341 BSNLP Slavic texts; expected 0. Needs ../shared/data (read,
never copied here). --show prints the texts behind every miss and every false refusal (first 160 characters).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_normalize import html_page  # noqa: E402

from streams.outcomes import Rejected  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.stages.normalize import NormalizeConfig, normalize  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LABELS = ROOT / "bench" / "interstitials_semeval.json"
NOW = datetime(2025, 8, 12, 7, 31, 2, tzinfo=UTC)
ORIGIN = {"topic": "articles.raw", "partition": 0, "offset": 0, "timestamp_ms": 1754983862000}
CONFIG = NormalizeConfig.from_settings(Settings())


def rows(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    if not path.exists():
        sys.exit(f"{path} is missing: this evaluation needs ../shared/data beside the checkout (real news text).")
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def refused_as(event: dict[str, Any]) -> str | None:
    """The kind of not_an_article refusal of an event, or None when normalize lets it through (or refuses it
    for another reason)."""
    outcome = normalize(orjson.dumps(event), origin=ORIGIN, now=NOW, config=CONFIG)
    if isinstance(outcome, Rejected) and outcome.reason == "not_an_article":
        return str(outcome.details["kind"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", action="store_true", help="print the texts behind misses and false refusals")
    args = ap.parse_args()

    labels = {(t["pair_id"], t["side"]): t["kind"] for t in json.loads(LABELS.read_text())["texts"]}
    semeval: dict[str, tuple[str, str | None]] = {}  # text -> (language, labelled kind)
    for row in rows("semeval2022_task8_pairs_realtext.jsonl"):
        for side, lang in (("text1", "lang1"), ("text2", "lang2")):
            kind = labels.get((row["pair_id"], side))
            if row[side] not in semeval or kind:
                semeval[row[side]] = (row[lang], kind)

    per_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    misses, false_refusals = [], []
    for i, (body, (lang, kind)) in enumerate(semeval.items()):
        got = refused_as({"url": f"https://news.example.com/semeval/{i}", "body": body, "language": lang})
        if kind:
            per_kind[kind]["labelled"] += 1
            per_kind[kind]["caught" if got == kind else "other kind" if got else "missed"] += 1
            if got != kind:
                misses.append((kind, got, body))
        elif got:
            false_refusals.append(("semeval", got, body))

    walls = sum(1 for _, k in semeval.values() if k)
    print(f"not_an_article on SemEval-2022: {len(semeval)} distinct texts, {walls} labelled walls ({LABELS.name})")
    print(f"{'kind':<13} {'labelled':>8} {'caught':>7} {'other kind':>10} {'missed':>7} {'recall':>7}")
    total = collections.Counter[str]()
    for kind in sorted(per_kind):
        c = per_kind[kind]
        total.update(c)
        print(f"{kind:<13} {c['labelled']:>8} {c['caught']:>7} {c['other kind']:>10} {c['missed']:>7} "
              f"{c['caught'] / c['labelled']:>7.2f}")  # fmt: skip
    print(f"{'all':<13} {total['labelled']:>8} {total['caught']:>7} {total['other kind']:>10} {total['missed']:>7} "
          f"{total['caught'] / total['labelled']:>7.2f}")  # fmt: skip
    unlabelled = sum(1 for _, k in semeval.values() if not k)
    print(f"false refusals among the {unlabelled} other SemEval texts: {len(false_refusals)}")

    bbc = rows("bbc_news_fulltext.jsonl")
    for fmt in ("text", "html"):
        refused = 0
        for i, row in enumerate(bbc):
            body = row["body"] if fmt == "text" else html_page(row)
            event = {"url": f"https://www.bbc.co.uk/news/{i}", "title": row["title"], "body": body, "body_format": fmt}
            if got := refused_as(event):
                refused += 1
                false_refusals.append((f"bbc-{fmt}", got, row["body"]))
        print(f"false refusals among the {len(bbc)} BBC articles as {fmt}: {refused}")
    slavic = rows("bsnlp_slavic_news_multilingual.jsonl")
    refused = 0
    for i, row in enumerate(slavic):
        event = {"url": f"https://news.example.com/bsnlp/{i}", "title": row.get("title"), "body": row["body"]}
        if got := refused_as(event):
            refused += 1
            false_refusals.append(("bsnlp", got, row["body"]))
    print(f"false refusals among the {len(slavic)} BSNLP Slavic texts: {refused}")

    if args.show:
        for kind, got, body in misses:
            print(f"MISS {kind} (got {got}): {' '.join(body.split())[:160]!r}")
        for where, got, body in false_refusals:
            print(f"FALSE {where} as {got}: {' '.join(body.split())[:160]!r}")


if __name__ == "__main__":
    main()
