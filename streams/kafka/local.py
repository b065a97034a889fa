"""Fetch, format, start, probe and stop a single-node KRaft Apache Kafka broker for local runs, tests and CI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings

# The one place the broker version is pinned. 4.0.0 is the release faust-streaming's live-broker suite is
# reported to pass against with aiokafka 0.14.0; the compose file uses apache/kafka of the same version.
KAFKA_VERSION = "4.0.0"
POM = Path(__file__).resolve().parent / "pom.xml"
LOG4J = Path(__file__).resolve().parent / "log4j2.properties"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class BrokerError(RuntimeError):
    """Something stops the embedded broker; the message says what to do."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_bootstrap(bootstrap: str) -> list[Address]:
    out = []
    for part in bootstrap.split(","):
        part = part.strip().removeprefix("kafka://").removeprefix("PLAINTEXT://")
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host:
            host, port = port, "9092"
        out.append(Address(host, int(port)))
    if not out:
        raise BrokerError(f"STREAMS_KAFKA_BOOTSTRAP={bootstrap!r} names no broker")
    return out


def is_embedded_target(settings: Settings) -> bool:
    """True when the bootstrap setting is one local address: the embedded broker may serve it."""
    addrs = parse_bootstrap(settings.kafka_bootstrap)
    return len(addrs) == 1 and addrs[0].host in LOCAL_HOSTS


def probe(addr: Address, timeout: float = 2.0) -> bool:
    """True when a Kafka broker answers an ApiVersions request at addr (not merely an open port)."""
    client_id = b"article-streams-probe"
    # ApiVersions (api key 18) version 0: header = key, version, correlation id, client id.
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(sock, 8)
            size, correlation = struct.unpack(">ii", head)
            return correlation == 7 and size >= 6
    except OSError:
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def port_open(addr: Address, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """The local broker for one bootstrap address. State lives under settings.kafka_home, outside the repo."""

    def __init__(self, settings: Settings, version: str = KAFKA_VERSION, out=sys.stderr) -> None:
        self.settings = settings
        self.version = version
        self.out = out
        addrs = parse_bootstrap(settings.kafka_bootstrap)
        self.addr = addrs[0]
        self.home = Path(settings.kafka_home).expanduser()
        self.libs = self.home / f"kafka-{version}" / "libs"
        self.dir = self.home / f"broker-{self.addr.port}"
        self.state_file = self.dir / "broker.json"
        self.log_file = self.dir / "broker.log"

    # -- fetching ---------------------------------------------------------------------------------
    def fetched(self) -> bool:
        return (self.libs / ".complete").exists()

    def fetch(self) -> Path:
        """Download the broker jars once with Maven; later calls reuse the cache."""
        if self.fetched():
            return self.libs
        java, mvn = shutil.which("java"), shutil.which("mvn")
        if not java:
            raise BrokerError(
                "Java not found: install OpenJDK 17 or newer (Debian: apt-get install openjdk-17-jre-headless)."
            )
        if not mvn:
            raise BrokerError("Maven not found: install it (Debian: apt-get install maven) to fetch the Kafka jars.")
        tmp = self.libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._say(f"fetching Apache Kafka {self.version} from Maven Central into {self.libs} (once) ...")
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            f"-Dkafka.version={self.version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise BrokerError(
                "Maven could not fetch the Kafka jars (is Maven Central reachable? a proxy set in "
                "~/.m2/settings.xml?):\n  " + "\n  ".join(tail)
            )
        (tmp / ".complete").write_text(self.version)
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)
        return self.libs

    # -- state --------------------------------------------------------------------------------------
    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid of the broker this project started, if it is still alive."""
        st = self.state()
        if not st:
            return None
        pid = int(st["pid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    # -- start / stop -------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless one answers already; returns what happened (started/running/external)."""
        if not is_embedded_target(self.settings):
            self._say(
                f"STREAMS_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap} is an existing cluster: nothing started."
            )
            return "external"
        if self.running_pid():
            if probe(self.addr):
                self._say(f"Kafka {self.version} already running on {self.addr} (pid {self.running_pid()}).")
                return "running"
        elif probe(self.addr):
            self._say(
                f"A Kafka broker not started by article-streams answers on {self.addr}: using it, nothing started."
            )
            return "external"
        if port_open(self.addr):
            raise BrokerError(
                f"Port {self.addr.port} is taken by a process that is not a Kafka broker: stop it, or set "
                "STREAMS_KAFKA_BOOTSTRAP=localhost:<free port>."
            )
        ctrl = Address("localhost", self.settings.kafka_controller_port)
        if port_open(ctrl):
            raise BrokerError(
                f"Controller port {ctrl.port} is taken: stop what listens there or set STREAMS_KAFKA_CONTROLLER_PORT."
            )
        libs = self.fetch()
        java = shutil.which("java")
        assert java  # fetch() checked
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self._write_properties(ctrl)
        data = self.dir / "data"
        if not (data / "meta.properties").exists():
            fmt = subprocess.run(
                [
                    java,
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    "-cp",
                    f"{libs}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    _cluster_id(),
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting the Kafka log dir failed:\n{fmt.stdout}{fmt.stderr}")
        log = open(self.log_file, "ab")
        cmd = [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(props),
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.dir,
        )
        self.state_file.write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "version": self.version,
                    "address": str(self.addr),
                    "log": str(self.log_file),
                    "started_at": time.time(),
                }
            )
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise BrokerError(f"the broker exited with code {proc.returncode}; last log lines:\n{self._log_tail()}")
            if probe(self.addr):
                self._say(f"Kafka {self.version} started on {self.addr} (pid {proc.pid}, log {self.log_file}).")
                return "started"
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the broker did not answer on {self.addr} within {timeout:.0f}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker this project started; a broker started by anything else is left alone."""
        pid = self.running_pid()
        if pid is None:
            self.state_file.unlink(missing_ok=True)
            self._say("No broker started by article-streams is running: nothing stopped.")
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        self._say(f"Kafka broker (pid {pid}) stopped.")
        return True

    def status(self) -> tuple[bool, str]:
        pid = self.running_pid()
        answers = (
            probe(self.addr)
            if is_embedded_target(self.settings)
            else any(probe(a) for a in parse_bootstrap(self.settings.kafka_bootstrap))
        )
        who = f"embedded, pid {pid}" if pid else ("not started by article-streams" if answers else "not running")
        if pid:
            version = self.version
        elif answers:
            version = f"{KAFKA_VERSION} pinned; the broker answering was not started here and may differ"
        else:
            version = f"{KAFKA_VERSION} (pinned)"
        lines = [
            f"version:  {version}",
            f"address:  {self.settings.kafka_bootstrap}",
            f"pid:      {pid if pid else '-'} ({who})",
            f"answers:  {'yes' if answers else 'no'}",
            f"log:      {self.log_file if pid else '-'}",
            f"jars:     {self.libs if self.fetched() else 'not fetched yet'}",
        ]
        return answers, "\n".join(lines)

    # -- helpers ------------------------------------------------------------------------------------
    def _write_properties(self, ctrl: Address) -> Path:
        props = self.dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "# Written by streams kafka start: a single-node KRaft broker for local runs and tests.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@localhost:{ctrl.port}",
                    f"listeners=PLAINTEXT://{self.addr.host}:{self.addr.port},CONTROLLER://localhost:{ctrl.port}",
                    f"advertised.listeners=PLAINTEXT://{self.addr.host}:{self.addr.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.dir / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=10",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "message.max.bytes=10485760",
                    "log.retention.check.interval.ms=60000",
                    "",
                ]
            )
        )
        return props

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes, URL-safe base64 without padding (22 characters).
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
