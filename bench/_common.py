"""What the end-to-end benchmarks share: worker subprocesses, per-run topics and their clean-up, /metrics parsing."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streams.kafka.client import aiokafka_kwargs  # noqa: E402
from streams.kafka.local import parse_bootstrap, probe  # noqa: E402
from streams.settings import Settings  # noqa: E402

BBC = ROOT.parent / "shared" / "data" / "bbc_news_fulltext.jsonl"
_LIVE: list[Proc] = []  # subprocesses still running, stopped by stop_all() on any exit


# -- process life ------------------------------------------------------------------------------------------
def on_signals_exit() -> None:
    """SIGTERM/SIGHUP raise KeyboardInterrupt like Ctrl-C, so every `finally` (stop workers, delete topics) runs."""

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)


def require_broker(settings: Settings) -> None:
    if not any(probe(a) for a in parse_bootstrap(settings.kafka_bootstrap)):
        sys.exit(
            f"no Kafka broker answers at {settings.kafka_bootstrap}: start one with `.venv/bin/streams kafka start`"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment of a worker for `settings` (every STREAMS_* variable set, none inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env.update(settings.as_env())  # secrets included: as_env_doc() masks them
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    """A subprocess in its own session (so Ctrl-C reaches us, not it), its output kept in a log file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, web_port: int | None = None) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # closed in stop()
        self.web_port = web_port
        self.started = time.time()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.proc.pid
        _LIVE.append(self)

    @classmethod
    def worker(cls, settings: Settings, log: Path, stages: str = "all", **env: Any) -> Proc:
        cmd = [sys.executable, "-m", "streams.cli", "worker", "--stages", stages]
        return cls(cmd, settings_env(settings, **env), log, settings.web_port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status_kb(self, field: str) -> int | None:
        """A field of /proc/<pid>/status in kB (VmHWM: peak RSS, VmRSS: current RSS)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, timeout: float, poll: float = 0.1) -> float:
        """Polls /ready until 200; returns the wall-clock time it answered 200 (time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                status, _ = self.get("/ready", timeout=1.0)
                if status == 200:
                    return time.time()
            except OSError:
                pass
            time.sleep(poll)
        raise RuntimeError(f"worker not ready after {timeout:.0f} s:\n{self.tail()}")

    def metrics(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        status, body = self.get("/metrics", timeout=5.0)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the process group (a clean Faust shutdown), SIGKILL if it does not end in `timeout`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        if self in _LIVE:
            _LIVE.remove(self)

    def tail(self, n: int = 40) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def events(self, name: str) -> list[dict[str, Any]]:
        """The worker's JSON log events called `name` (STREAMS_LOG_FORMAT=json), oldest first."""
        with contextlib.suppress(ValueError):
            self._log.flush()
        out = []
        for line in self.log_path.read_bytes().splitlines():
            if not line.startswith(b"{"):
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if doc.get("event") == name:
                out.append(doc)
        return out


def stop_all() -> None:
    for p in list(_LIVE):
        p.stop(timeout=20.0)


# -- topics --------------------------------------------------------------------------------------------------
async def delete_prefix(settings: Settings, prefixes: Sequence[str], groups: Iterable[str] = ()) -> int:
    """Deletes every topic whose name starts with one of `prefixes`, and the consumer groups; returns the count."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), client_id="article-streams-bench")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names, timeout_ms=60000)
        for group in groups:  # aiokafka's admin has no delete_consumer_groups: send DeleteGroups ourselves
            await _delete_group(admin, group)
        return len(names)
    finally:
        await admin.close()


async def _delete_group(admin: AIOKafkaAdminClient, group: str, attempts: int = 10) -> None:
    """Deletes a consumer group, waiting out NON_EMPTY_GROUP (68) while a stopped worker's leave settles."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    for _ in range(attempts):
        try:
            node = await admin.find_coordinator(group)
            resp = await admin._send_request_to_node(node, DeleteGroupsRequest([group]))
        except Exception:  # best effort: a group left behind expires with its offsets
            return
        codes = [code for _, code in resp.results]
        if not any(code == 68 for code in codes):
            return
        await asyncio.sleep(1.0)


def committed_consumer(settings: Settings, **kw: Any) -> AIOKafkaConsumer:
    """A group-less read_committed consumer with the worker's fetch sizes (Pipeline: 11 MiB per partition)."""
    options: dict[str, Any] = {
        "group_id": None,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "max_partition_fetch_bytes": 11 * 1024 * 1024,
    }
    return AIOKafkaConsumer(**aiokafka_kwargs(settings), **{**options, **kw})


async def assign_all(consumer: AIOKafkaConsumer, names: Sequence[str], *, from_end: bool) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
    if not tps:
        raise RuntimeError(f"no partitions found for {', '.join(names)}")
    consumer.assign(tps)
    if from_end:
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the position now, before anything is sent
            await consumer.position(tp)
    else:
        await consumer.seek_to_beginning(*tps)
    return tps


# -- metrics ----------------------------------------------------------------------------------------------
def parse_metrics(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Prometheus text -> {family: [(sample name, labels, value)]}."""
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, dict(s.labels), float(s.value)) for s in fam.samples]
    return out


def counter(m: dict[str, Any], family: str, **labels: str) -> float:
    """Sum of a counter's `_total` samples matching `labels` (family given without `_total`)."""
    total = 0.0
    for name, lab, value in m.get(family, []):
        if name.endswith("_total") and all(lab.get(k) == v for k, v in labels.items()):
            total += value
    return total


def histogram(m: dict[str, Any], family: str, **labels: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets [(le, count)], sum, count) of one labelled series of a histogram."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for name, lab, value in m.get(family, []):
        if not all(lab.get(k) == v for k, v in labels.items()):
            continue
        if name.endswith("_bucket"):
            buckets.append((float(lab["le"]), value))
        elif name.endswith("_sum"):
            total = value
        elif name.endswith("_count"):
            count = value
    return sorted(buckets), total, count


def hist_delta(
    after: tuple[list[tuple[float, float]], float, float], before: tuple[list[tuple[float, float]], float, float]
) -> tuple[list[tuple[float, float]], float, float]:
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


# -- output -----------------------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
