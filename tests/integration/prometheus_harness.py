"""A real Prometheus server for integration tests: generated config, own TSDB, HTTP API helpers, bounded polls."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PROMETHEUS_BIN_ENV = "PROMETHEUS_BIN"  # overrides the binary's path (default: prometheus on PATH)
JOB = "article-streams"  # the rules select up{job="article-streams"}


def find_prometheus() -> str | None:
    """Path of the prometheus binary: $PROMETHEUS_BIN, else `prometheus` on PATH, else /usr/bin."""
    explicit = os.environ.get(PROMETHEUS_BIN_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_config(target: str, rule_file: Path, interval: str = "1s") -> str:
    """Prometheus configuration (JSON is valid YAML): scrape one worker's /metrics every `interval`."""
    doc = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]},
        ],
    }
    return json.dumps(doc, indent=2)


class PrometheusError(AssertionError):
    pass


class PrometheusServer:
    """`prometheus` as a subprocess on a loopback port of its own, with its log kept for failure messages."""

    def __init__(self, binary: str, workdir: Path, config: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config, encoding="utf-8")
        self.log_path = workdir / "prometheus.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start and wait for /-/ready; a port taken between choosing it and binding it is retried."""
        for attempt in range(attempts):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config_path}",
                        f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=info",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_ready(timeout)
                return
            except PrometheusError:
                self.stop()
                if attempt == attempts - 1 or "address already in use" not in self.tail():
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no prometheus log)"

    # -- HTTP API -----------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: Any) -> Any:
        """`data` of a /api/v1 answer; an error answer (bad_data, execution ...) raises PrometheusError."""
        query = urllib.parse.urlencode(params)
        url = self.url(f"/api/v1/{path}") + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422/503 carry the error as JSON
            raw = exc.read()
            try:
                body = json.loads(raw)
            except ValueError:
                raise PrometheusError(f"GET {url}: HTTP {exc.code}: {raw[:500]!r}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result as a list (a scalar or string result becomes one element)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def value(self, expr: str) -> float | None:
        """The single value of a one-element vector, or None when the result is empty."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])


def poll(
    check: Callable[[], T | None], *, timeout: float, interval: float = 0.5, what: str, detail: Callable[[], str]
) -> T:
    """`check()` until it returns something other than None/False; after `timeout` seconds fail with `detail()`."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None and got is not False:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail()}")
        time.sleep(interval)
