"""What the end-to-end benchmarks share: worker subprocesses, per-run topics and their clean-up, /metrics parsing.

The implementations live once, in the installed package (`streams.bench`: `procs`, `kafkaio`, `promtext`), where
`streams bench` and tests/integration use them too; this module re-exports them for the scripts in bench/.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streams.bench.corpus import DEFAULT_PATH as BBC  # noqa: E402
from streams.bench.kafkaio import _delete_group, assign_all, committed_consumer, delete_prefix  # noqa: E402
from streams.bench.procs import WorkerProcess, free_port, on_signals_exit, settings_env, stop_all  # noqa: E402
from streams.bench.promtext import (  # noqa: E402
    counter,
    hist_delta,
    hist_lines,
    histogram,
    parse_metrics,
    quantile,
)
from streams.bench.report import table as _table  # noqa: E402
from streams.kafka.local import parse_bootstrap, probe  # noqa: E402
from streams.settings import Settings  # noqa: E402

__all__ = [
    "BBC", "ROOT", "Proc", "_delete_group", "assign_all", "committed_consumer", "counter", "delete_prefix",
    "free_port", "hist_delta", "hist_lines", "histogram", "on_signals_exit", "parse_metrics", "quantile",
    "require_broker", "run", "settings_env", "stop_all", "table",
]  # fmt: skip


class Proc(WorkerProcess):
    """`Proc(cmd, env, log, web_port)` for any child; `Proc.worker(settings, log, stages, **env)` for a worker."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, web_port: int | None = None) -> None:
        self._spawn(cmd, env, log, None, web_port)

    @classmethod
    def worker(cls, settings: Settings, log: Path, stages: str = "all", **env: Any) -> Proc:
        cmd = [sys.executable, "-m", "streams.cli", "worker", "--stages", stages]
        p = cls(cmd, settings_env(settings, **env), log, settings.web_port)
        p.settings = settings
        return p


def require_broker(settings: Settings) -> None:
    if not any(probe(a) for a in parse_bootstrap(settings.kafka_bootstrap)):
        sys.exit(
            f"no Kafka broker answers at {settings.kafka_bootstrap}: start one with `.venv/bin/streams kafka start`"
        )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return _table(headers, rows)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
