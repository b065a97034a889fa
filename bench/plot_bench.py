"""PNG plots of `streams bench --json` outputs, for BENCHMARKS.md (matplotlib, from the `bench` extra).

    .venv/bin/streams bench --json > text.json; .venv/bin/streams bench --html --json > html.json
    .venv/bin/python bench/plot_bench.py text.json html.json [--out docs/bench]

Draws, from one or more runs (each labelled by its body format, NER and N):
- throughput.png: articles/s of (a)-(e) per run, log scale, with c/a and d/b written over the bars;
- latency.png: the end-to-end latency distribution (CDF) of each variant at half of (d)'s rate;
- stages.png: µs per article by stage, (d) in the worker beside (b) the stage functions in the raw chain;
- scaling.png: one worker against two for (c) and (d), when a run has --workers 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "passthrough": "(a) raw chain,\nidentity",
    "raw_stages": "(b) raw chain,\nstages",
    "plumbing": "(c) worker,\nidentity",
    "pipeline": "(d) worker,\npipeline",
    "quix": "(e) Quix,\nidentity",
}
STAGES = ("normalize", "dedup", "enrich", "takedown")


def label(doc: dict[str, Any]) -> str:
    what = f"{'HTML' if doc.get('html') else 'text'}, NER {'on' if doc.get('ner') else 'off'}, N={doc['articles']:,}"
    return f"{doc['_run']}: {what}" if doc.get("_run") else what  # the file's name tells two alike runs apart


def plot_throughput(plt: Any, docs: list[dict[str, Any]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    keys = [k for k in VARIANTS if any(d.get(f"{k}_per_s") for d in docs)]
    width = 0.8 / len(docs)
    for j, doc in enumerate(docs):
        xs = [i + (j - (len(docs) - 1) / 2) * width for i in range(len(keys))]
        ys = [doc.get(f"{k}_per_s") or 0 for k in keys]
        bars = ax.bar(xs, ys, width, label=label(doc))
        ax.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 2)  # room for the labels over the tallest bars
    ax.set_xticks(range(len(keys)), [VARIANTS[k] for k in keys], fontsize=8)
    ax.set_ylabel("articles/s (log)")
    shown = (("c/a", "plumbing_ratio"), ("d/b", "pipeline_ratio"))
    ratios = "; ".join(
        f"{label(d)}: " + ", ".join(f"{name} {d[k]:.3f}" for name, k in shown if d.get(k) is not None)
        for d in docs
        if any(d.get(k) is not None for _, k in shown)
    )
    ax.set_title("Throughput, one worker, exactly-once\n" + ratios, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_latency(plt: Any, docs: list[dict[str, Any]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = ["-", "--", ":", "-."]
    for j, doc in enumerate(docs):
        for k, lat in (doc.get("latency") or {}).items():
            qs = lat.get("quantiles_ms") or []
            if not qs:
                continue
            ax.plot(qs, [q / 100 for q in range(len(qs))], styles[j % len(styles)],
                    label=f"{VARIANTS[k].replace(chr(10), ' ')} ({label(doc)})")  # fmt: skip
        rate = doc.get("latency_rate_per_s")
        if rate:
            ax.plot([], [], " ", label=f"offered {rate:,.1f}/s ({label(doc)})")
    ax.axvline(100, color="grey", lw=0.8)
    ax.text(100, 0.02, " 100 ms goal (p99)", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("raw record timestamp -> committed on articles.published (ms, log)")
    ax.set_ylabel("share of articles")
    ax.set_title("End-to-end latency at half of (d)'s throughput", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_stages(plt: Any, docs: list[dict[str, Any]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series = []
    for doc in docs:
        series.append((f"(d) worker, {label(doc)}", doc.get("stage_us") or {}))
        series.append((f"(b) stage functions, {label(doc)}", doc.get("raw_stage_us") or {}))
        if doc.get("plumbing_stage_us"):
            series.append((f"(c) identity, {label(doc)}", doc["plumbing_stage_us"]))
    width = 0.8 / max(1, len(series))
    for j, (name, us) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(STAGES))]
        ys = [us.get(st) or 0 for st in STAGES]
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=[f"{y:,.0f}" if y else "" for y in ys], fontsize=6, padding=1, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 4)  # room for the rotated labels over the tallest bars
    ax.set_xticks(range(len(STAGES)), STAGES)
    ax.set_ylabel("µs per article (log)")
    ax.set_title("Cost per article by stage: streams_processing_seconds (worker) and the stage functions (raw chain)",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / "stages.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_scaling(plt: Any, docs: list[dict[str, Any]], out: Path) -> Path | None:
    docs = [d for d in docs if d.get("pipeline_2_workers_per_s") or d.get("plumbing_2_workers_per_s")]
    if not docs:
        return None
    pairs = [
        (f"{VARIANTS[k]}\n{label(doc)}", doc.get(f"{k}_per_s") or 0, doc[f"{k}_2_workers_per_s"])
        for doc in docs
        for k in ("plumbing", "pipeline")
        if doc.get(f"{k}_2_workers_per_s")
    ]
    # one panel per variant: (c) and (d) differ by 30x, and each panel's question is its own gain
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 4.5), squeeze=False)
    for ax, (name, one, two) in zip(axes[0], pairs, strict=True):
        bars = ax.bar(["1 worker", "2 workers"], [one, two], 0.6, color=["tab:blue", "tab:orange"])
        ax.bar_label(bars, labels=[f"{one:,.1f}", f"{two:,.1f} (x{two / one:.2f})" if one else f"{two:,.1f}"],
                     fontsize=8)  # fmt: skip
        ax.set_ylim(top=max(one, two) * 1.15)
        ax.set_title(name, fontsize=8)
        ax.set_ylabel("articles/s")
    fig.suptitle("One worker against two in one group (2 cores, shared with the broker)", fontsize=9)
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="outputs of `streams bench --json`")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench", help="folder for the PNGs")
    args = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is missing: pip install -e '.[bench]'")
    docs = [{**orjson.loads(p.read_bytes()), "_run": p.stem} for p in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    made = [plot_throughput(plt, docs, args.out), plot_latency(plt, docs, args.out), plot_stages(plt, docs, args.out)]
    scaling = plot_scaling(plt, docs, args.out)
    if scaling is not None:
        made.append(scaling)
    for p in made:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
