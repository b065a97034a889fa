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
from collections.abc import Mapping
from dataclasses import dataclass, field
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
        part = part.strip()
        part = part.split("://", 1)[1] if "://" in part else part  # kafka://, PLAINTEXT://, SASL_SSL:// ...
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


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SecureListeners:
    """Client listeners with SASL and/or TLS that the embedded broker adds, for tests of the security settings.

    The broker keeps its PLAINTEXT listener (STREAMS_KAFKA_BOOTSTRAP) for itself (inter-broker) and its
    PLAINTEXT controller; clients of the secure ports log in as one of `users`. Example:

        SecureListeners(sasl_port=19092, users={"alice": "alice-secret"})

    lets a client log in as alice on localhost:19092 (SASL_PLAINTEXT) with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.
    The SCRAM credentials are written into the metadata log when the log dir is formatted (`kafka-storage format
    --add-scram`), so they exist before the broker first starts; `EmbeddedBroker.add_scram_user` adds more to a
    running broker. TLS listeners need `keystore` (PEM: the broker's private key, unencrypted PKCS#8, then its
    certificate chain) and, for client certificates, `truststore` (PEM: the CA that signs them).
    """

    users: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> password (SCRAM and PLAIN)
    sasl_port: int | None = None  # SASL_PLAINTEXT
    ssl_port: int | None = None  # SSL; clients must present a certificate signed by the truststore's CA
    sasl_ssl_port: int | None = None  # SASL_SSL: TLS (server certificate only) and a SASL login
    keystore: str | None = None
    truststore: str | None = None
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")

    def ports(self) -> dict[str, int]:
        """Listener name -> port, for the listeners asked for."""
        named = {"SASL_PLAINTEXT": self.sasl_port, "SSL": self.ssl_port, "SASL_SSL": self.sasl_ssl_port}
        return {name: port for name, port in named.items() if port is not None}


class EmbeddedBroker:
    """The local broker for one bootstrap address. State lives under settings.kafka_home, outside the repo."""

    def __init__(
        self,
        settings: Settings,
        version: str = KAFKA_VERSION,
        out=sys.stderr,
        secure: SecureListeners | None = None,
    ) -> None:
        self.settings = settings
        self.version = version
        self.out = out
        self.secure = secure
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
        for name, port in (self.secure.ports() if self.secure else {}).items():
            if port_open(Address(self.addr.host, port)):
                raise BrokerError(f"Port {port} for the {name} listener is taken: choose another.")
        self._check_secure()
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
                    *self._scram_format_args(),
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
            if probe(self.addr) and self._secure_ports_answer():
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

    # -- secure listeners -----------------------------------------------------------------------------
    def address(self, listener: str) -> str:
        """host:port of one of the secure listeners (SASL_PLAINTEXT, SSL, SASL_SSL), for STREAMS_KAFKA_BOOTSTRAP."""
        ports = self.secure.ports() if self.secure else {}
        if listener not in ports:
            raise BrokerError(f"this broker has no {listener} listener")
        return f"{self.addr.host}:{ports[listener]}"

    def add_scram_user(self, name: str, password: str, mechanisms: tuple[str, ...] = SCRAM_MECHANISMS) -> None:
        """Create or change SCRAM credentials on the running broker (AlterUserScramCredentials).

        aiokafka 0.14's admin client has no AlterUserScramCredentials request, so this runs Kafka's own
        `kafka-configs` (kafka.admin.ConfigCommand, in the broker jars) against the PLAINTEXT listener. The
        password is on that JVM's command line for the second it runs: use it on test machines only.
        """
        _check_credential(name, password)
        java = shutil.which("java")
        if not java or not self.fetched():
            raise BrokerError("the broker jars and Java are needed: run `streams kafka fetch`")
        # One run per mechanism: the broker refuses two upsertions for one user in a request
        # ("A user credential cannot be altered twice in the same request"), which is what one run would send.
        for mechanism in mechanisms:
            proc = subprocess.run(
                [
                    java,
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    "-cp",
                    f"{self.libs}/*",
                    "kafka.admin.ConfigCommand",
                    "--bootstrap-server",
                    str(self.addr),
                    "--alter",
                    "--entity-type",
                    "users",
                    "--entity-name",
                    name,
                    "--add-config",
                    f"{mechanism}=[password={password}]",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                out = (proc.stdout + proc.stderr).replace(password, "***")
                raise BrokerError(f"adding {mechanism} credentials for {name!r} failed:\n{out}")

    def _check_secure(self) -> None:
        if not self.secure:
            return
        for name, password in self.secure.users.items():
            _check_credential(name, password)
        ports = self.secure.ports()
        if ("SSL" in ports or "SASL_SSL" in ports) and not self.secure.keystore:
            raise BrokerError("a TLS listener needs SecureListeners.keystore (PEM key and certificate chain)")
        if "SSL" in ports and not self.secure.truststore:
            raise BrokerError("the SSL listener requires client certificates: SecureListeners.truststore is needed")

    def _scram_format_args(self) -> list[str]:
        """`--add-scram` arguments: the users' SCRAM credentials, written into the metadata log at format time."""
        if not self.secure:
            return []
        args = []
        for mechanism in (m for m in self.secure.mechanisms if m in SCRAM_MECHANISMS):
            for name, password in self.secure.users.items():
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args

    def _secure_ports_answer(self) -> bool:
        if not self.secure:
            return True
        for name, port in self.secure.ports().items():
            addr = Address(self.addr.host, port)
            # ApiVersions is answered before a SASL login; a TLS port can only be seen to be open.
            if not (probe(addr) if name == "SASL_PLAINTEXT" else port_open(addr)):
                return False
        return True

    def _security_properties(self) -> list[str]:
        """server.properties lines of the secure listeners (none without SecureListeners)."""
        if not self.secure:
            return []
        ports = self.secure.ports()
        mechanisms = list(self.secure.mechanisms)
        lines = [f"sasl.enabled.mechanisms={','.join(mechanisms)}"] if any(n.startswith("SASL") for n in ports) else []
        for name in (n for n in ports if n.startswith("SASL_")):
            prefix = f"listener.name.{name.lower()}"
            for m in mechanisms:
                if m in SCRAM_MECHANISMS:
                    module = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                else:  # PLAIN: the broker checks passwords against the user_<name> entries of its JAAS config
                    users = " ".join(f'user_{u}="{p}"' for u, p in self.secure.users.items())
                    module = f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
                lines.append(f"{prefix}.{m.lower()}.sasl.jaas.config={module}")
        if self.secure.keystore:
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.secure.keystore}"]
        if self.secure.truststore:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.secure.truststore}"]
        if "SSL" in ports:
            lines.append("listener.name.ssl.ssl.client.auth=required")
        return lines

    # -- helpers ------------------------------------------------------------------------------------
    def _write_properties(self, ctrl: Address) -> Path:
        props = self.dir / "server.properties"
        extra = self.secure.ports() if self.secure else {}
        host = self.addr.host
        listeners = ",".join([f"PLAINTEXT://{host}:{self.addr.port}", *(f"{n}://{host}:{p}" for n, p in extra.items())])
        protocols = ",".join(["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", *(f"{n}:{n}" for n in extra)])
        self.dir.mkdir(parents=True, exist_ok=True)
        props.touch(mode=0o600)  # the PLAIN users' passwords may be in it
        props.chmod(0o600)
        props.write_text(
            "\n".join(
                [
                    "# Written by streams kafka start: a single-node KRaft broker for local runs and tests.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@localhost:{ctrl.port}",
                    f"listeners={listeners},CONTROLLER://localhost:{ctrl.port}",
                    f"advertised.listeners={listeners}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"listener.security.protocol.map={protocols}",
                    *self._security_properties(),
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


def _check_credential(name: str, password: str) -> None:
    # The storage tool's and kafka-configs' [name=...,password=...] syntax and the JAAS string have no escapes.
    bad = set(',[]="\\ ;=')
    if not name or not password or bad & set(name + password):
        raise BrokerError(f'test user {name!r}: names and passwords must be non-empty, without , [ ] = " \\ ; or space')


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
