"""Worker and child processes for benchmarks and integration tests: start, poll /ready and /metrics, read
/proc stats (peak RSS, CPU time), stop cleanly. One implementation for bench/ and tests/."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from streams.bench.promtext import Metrics, parse_metrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout (editable install): children run from here
_LIVE: list[WorkerProcess] = []  # started and not yet stopped: stop_all() ends them on any exit


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment of a child for `settings`: every STREAMS_* variable set from them, none inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env.update(settings.as_env())  # secrets included: as_env_doc() masks them
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def on_signals_exit() -> None:
    """SIGTERM/SIGHUP raise KeyboardInterrupt like Ctrl-C, so every `finally` (stop children, delete topics) runs."""

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)


class WorkerProcess:
    """A child process in its own session (Ctrl-C reaches us, not it), its output kept in a log file.

    `WorkerProcess(settings, log, stages, **env)` runs `streams worker` (`module`: another module with the same
    CLI, e.g. a test's planted defect); `WorkerProcess.command(cmd, env, log)` any other child (a raw chain, a
    Quix app)."""

    def __init__(
        self, settings: Settings, log: Path, stages: str = "all", module: str = "streams.cli", **env: Any
    ) -> None:
        cmd = [sys.executable, "-m", module, "worker", "--stages", stages]
        self._spawn(cmd, settings_env(settings, **env), log, settings, settings.web_port)

    @classmethod
    def command(cls, cmd: list[str], env: dict[str, str], log: Path, web_port: int | None = None) -> WorkerProcess:
        """Any other child (a raw chain, a Quix app, a bare Faust app): `env` is its whole environment."""
        w = cls.__new__(cls)
        w._spawn(cmd, env, log, None, web_port)
        return w

    def _spawn(
        self, cmd: list[str], env: dict[str, str], log: Path, settings: Settings | None, web_port: int | None
    ) -> None:
        self.settings = settings
        self.web_port = web_port
        self.log_path = Path(log)
        self.log = open(self.log_path, "ab")  # closed in kill()
        self.started = time.time()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.proc.pid
        _LIVE.append(self)

    # -- HTTP ------------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        host = self.settings.web_host if self.settings is not None else "127.0.0.1"
        return f"http://{host}:{self.web_port}{path}"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 90.0, poll: float = 0.3) -> float:
        """Polls /ready until 200; returns when it answered (time.time()). AssertionError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                status, _ = self.get("/ready", timeout=1.0)
                if status == 200:
                    return time.time()
            except OSError:
                pass
            time.sleep(poll)
        raise AssertionError(f"worker not ready after {timeout:.0f} s:\n{self.tail()}")

    def ready_facts(self) -> dict[str, Any]:
        """/ready's body ({"ready", "assigned_partitions", ...}); {} when it does not answer."""
        try:
            _, body = self.get("/ready", timeout=1.0)
            doc = orjson.loads(body)
            return doc if isinstance(doc, dict) else {}
        except (OSError, orjson.JSONDecodeError):
            return {}

    def metrics(self) -> Metrics:
        status, body = self.get("/metrics", timeout=5.0)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    # -- /proc -------------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def status_kb(self, field: str) -> int | None:
        """A field of /proc/<pid>/status in kB (VmHWM: peak RSS, VmRSS: current RSS)."""
        return proc_status_kb(self.pid, field)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
        return proc_cpu_seconds(self.pid)

    # -- the end -------------------------------------------------------------------------------------------------
    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60.0) -> None:
        """`sig` to the process group; SIGKILL if it has not ended after `timeout` seconds."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        if self in _LIVE:
            _LIVE.remove(self)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a clean Faust shutdown), SIGKILL if it does not end in `timeout` seconds."""
        self.kill(signal.SIGTERM, timeout)

    def tail(self, n: int = 60) -> str:
        with contextlib.suppress(ValueError):
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def lines(self) -> list[bytes]:
        with contextlib.suppress(ValueError):
            self.log.flush()
        return self.log_path.read_bytes().splitlines()

    def events(self, name: str) -> list[dict[str, Any]]:
        """The worker's JSON log events called `name` (STREAMS_LOG_FORMAT=json), oldest first."""
        out = []
        for line in self.lines():
            if not line.startswith(b"{"):
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if doc.get("event") == name:
                out.append(doc)
        return out


def stop_all(timeout: float = 20.0) -> None:
    """Stops every child still running (benchmarks call it in `finally`)."""
    for p in list(_LIVE):
        p.stop(timeout=timeout)


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
