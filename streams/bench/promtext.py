"""Prometheus text from a worker's /metrics: parsing, counters, histograms, their differences and quantiles."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]  # (sample name, labels, value)
Metrics = dict[str, list[Sample]]  # family -> samples
Histogram = tuple[list[tuple[float, float]], float, float]  # (cumulative buckets [(le, count)], sum, count)


def parse_metrics(text: str) -> Metrics:
    """Prometheus text -> {family: [(sample name, labels, value)]}."""
    out: Metrics = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, dict(s.labels), float(s.value)) for s in fam.samples]
    return out


def counter(m: Metrics, family: str, **labels: str) -> float:
    """Sum of a counter's `_total` samples matching `labels` (family given without `_total`)."""
    total = 0.0
    for name, lab, value in m.get(family, []):
        if name.endswith("_total") and all(lab.get(k) == v for k, v in labels.items()):
            total += value
    return total


def by_label(m: Metrics, family: str, label: str) -> dict[str, float]:
    """A counter's `_total` samples summed by one label, e.g. events in by stage."""
    out: dict[str, float] = {}
    for name, lab, value in m.get(family, []):
        if name.endswith("_total") and label in lab:
            out[lab[label]] = out.get(lab[label], 0.0) + value
    return out


def histogram(m: Metrics, family: str, **labels: str) -> Histogram:
    """(cumulative buckets [(le, count)], sum, count) of the series of a histogram matching `labels` (summed)."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for name, lab, value in m.get(family, []):
        if not all(lab.get(k) == v for k, v in labels.items()):
            continue
        if name.endswith("_bucket"):
            le = float(lab["le"])
            buckets[le] = buckets.get(le, 0.0) + value
        elif name.endswith("_sum"):
            total += value
        elif name.endswith("_count"):
            count += value
    return sorted(buckets.items()), total, count


def hist_add(a: Histogram, b: Histogram) -> Histogram:
    """The histogram of two workers' series together (same buckets)."""
    bb = dict(b[0])
    les = sorted(set(dict(a[0])) | set(bb))
    aa = dict(a[0])
    return [(le, aa.get(le, 0.0) + bb.get(le, 0.0)) for le in les], a[1] + b[1], a[2] + b[2]


def hist_delta(after: Histogram, before: Histogram) -> Histogram:
    b = dict(before[0])
    return [(le, c - b.get(le, 0.0)) for le, c in after[0]], after[1] - before[1], after[2] - before[2]


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile as Prometheus computes it: linear inside the bucket; the last finite bound beyond it."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def mean(h: Histogram) -> float:
    """The histogram's mean (sum / count); NaN when empty."""
    return h[1] / h[2] if h[2] > 0 else math.nan


def hist_lines(buckets: list[tuple[float, float]], unit: float = 1.0, suffix: str = "s") -> list[str]:
    """Non-empty buckets of a cumulative histogram as '(lo, hi] count share' lines."""
    total = buckets[-1][1] if buckets else 0.0
    lines, prev_le, prev_c = [], 0.0, 0.0
    for le, c in buckets:
        n = c - prev_c
        if n > 0:
            hi = "+Inf" if math.isinf(le) else f"{le * unit:g}{suffix}"
            lines.append(f"({prev_le * unit:g}{suffix}, {hi}]  {n:>7.0f}  {100 * n / total:5.1f}%")
        prev_le, prev_c = le, c
    return lines
