"""Reads the monitoring-as-code in deploy/: the dashboard's queries, the rules, and the metric names they use.

Used by tests/unit/test_deploy.py (static checks) and by the integration test that runs every panel query
against a real Prometheus scraping a real worker:

    for title, expr in panel_queries(DASHBOARD):
        ...  # GET /api/v1/query?query=expr must return data

Grafana's own variables ($__rate_interval ...) are replaced by plain durations so that the queries run
as they are against Prometheus' HTTP API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "article-streams.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"

# What Grafana would put in for its built-in variables; 1m covers 4 scrapes at the compose interval of 15 s.
GRAFANA_VARIABLES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

_METRIC = re.compile(r"(?<![\w:])(streams_[a-z0-9_]+|streams:[a-z0-9_:]+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows, in dashboard order."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def load_dashboard(path: Path | str = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """`expr` with Grafana variables ($name or ${name}) replaced; an unknown variable raises KeyError."""
    values = dict(GRAFANA_VARIABLES if variables is None else variables)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def panel_queries(path: Path | str = DASHBOARD, variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, ready to send to Prometheus.

    A panel with several queries appears once per query. Hidden queries are left out.
    """
    out: list[tuple[str, str]] = []
    for panel in panels(load_dashboard(path)):
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            out.append((str(panel.get("title", "")), substitute(str(target.get("expr", "")), variables)))
    return out


def load_rules(path: Path | str = RULES) -> list[dict[str, Any]]:
    """Every rule of a Prometheus rule file, flattened over its groups."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading Prometheus rule files needs PyYAML: pip install -e '.[dev]'") from exc
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return [rule for group in doc.get("groups", []) for rule in group.get("rules", [])]


def alert_rules(path: Path | str = RULES) -> list[tuple[str, str]]:
    """(alert name, PromQL) for every alerting rule."""
    return [(r["alert"], str(r["expr"]).strip()) for r in load_rules(path) if "alert" in r]


def recording_rules(path: Path | str = RULES) -> list[tuple[str, str]]:
    """(recorded series name, PromQL) for every recording rule."""
    return [(r["record"], str(r["expr"]).strip()) for r in load_rules(path) if "record" in r]


def referenced_metrics(expr: str) -> set[str]:
    """Names of pipeline series (streams_* metrics, streams:* recording rules) a PromQL expression reads.

    Label values in quotes are ignored, so `{stage="streams_x"}` is not a reference.
    """
    return set(_METRIC.findall(_STRING.sub('""', expr)))


def exposed_metrics() -> set[str]:
    """Every series name the worker can expose, from streams/metrics.py (counters with _total,
    histograms with _bucket/_sum/_count, info metrics with _info)."""
    from prometheus_client import CollectorRegistry

    from streams.metrics import Metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
