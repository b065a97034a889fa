"""Kafka security against a second embedded broker of our own with SASL (SCRAM-SHA-256/512, PLAIN) and TLS
listeners: the admin tool, produce and tail, an exactly-once Faust app, refusals that say why, and no secret in
any log. The broker runs on free ports in its own STREAMS_KAFKA_HOME under /tmp, beside the default one."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import tools
from streams.kafka.admin import create_topics, wait_until_served
from streams.kafka.client import aiokafka_kwargs
from streams.kafka.local import BrokerError, EmbeddedBroker, SecureListeners
from streams.settings import Settings
from tests.factories.pki import Pki, make_pki
from tests.integration.conftest import WorkerProcess, read_committed, send_all, settings_env

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("sasl_app.py")
CLI_TIMEOUT = 90.0  # s: a refused login must end a command well before this; a hang fails the test


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SecureCluster:
    broker: EmbeddedBroker
    pki: Pki
    users: dict[str, str]
    work: Path
    made: list[str] = field(default_factory=list)

    def client(self, listener: str = "SASL_PLAINTEXT", **overrides: Any) -> Settings:
        """Settings of a client of one listener, logged in as alice (SCRAM-SHA-512), with a topic prefix of its own."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.broker.address(listener),
            "kafka_security_protocol": listener,
            "topic_prefix": f"s{uuid.uuid4().hex[:8]}.",
            "topic_partitions": 2,
            "data_dir": str(self.work / f"state-{uuid.uuid4().hex[:6]}"),
            "log_format": "text",
            "session_timeout_seconds": 10.0,
        }
        if listener.startswith("SASL_"):
            values |= {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "alice"}
            values["kafka_sasl_password"] = self.users["alice"]
        if listener in ("SSL", "SASL_SSL"):
            values["kafka_ssl_cafile"] = str(self.pki.ca)
        if listener == "SSL":  # the SSL listener requires a client certificate
            values |= {"kafka_ssl_certfile": str(self.pki.client_cert), "kafka_ssl_keyfile": str(self.pki.client_key)}
        return Settings(**{**values, **overrides})

    def plaintext(self, **overrides: Any) -> Settings:
        """The broker's own PLAINTEXT listener (inter-broker), with no security settings."""
        return Settings(kafka_bootstrap=str(self.broker.addr), topic_prefix=f"p{uuid.uuid4().hex[:8]}.", **overrides)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    """A second embedded broker: PLAINTEXT (its own), SASL_PLAINTEXT, SSL (client certificates) and SASL_SSL."""
    work = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(work / "pki")
    jars = EmbeddedBroker(Settings.from_env())  # the jar cache of this machine, fetched once
    try:
        libs = jars.fetch()
    except BrokerError as exc:
        pytest.fail(f"could not fetch the Kafka jars: {exc}")
    home = work / "home"  # STREAMS_KAFKA_HOME of the secure broker: its data dir, not the default broker's
    home.mkdir()
    (home / libs.parent.name).symlink_to(libs.parent)
    plain, controller, sasl_port, ssl_port, sasl_ssl_port = _free_ports(5)
    users = {"alice": "alice-" + secrets.token_hex(8), "bob": "bob-" + secrets.token_hex(8)}
    broker = EmbeddedBroker(
        Settings(
            kafka_bootstrap=f"localhost:{plain}",
            kafka_controller_port=controller,
            kafka_home=str(home),
            kafka_heap="384m",
        ),
        secure=SecureListeners(
            users=users,
            sasl_port=sasl_port,
            ssl_port=ssl_port,
            sasl_ssl_port=sasl_ssl_port,
            keystore=str(pki.broker),
            truststore=str(pki.ca),
        ),
    )
    try:
        broker.start(timeout=120)
    except BrokerError as exc:
        pytest.fail(f"could not start the secure embedded broker: {exc}")
    try:
        yield SecureCluster(broker, pki, users, work)
    finally:
        broker.stop()


def streams(settings: Settings, *args: str, stdin: bytes | None = None, **env: Any) -> subprocess.CompletedProcess:
    """Runs the `streams` command with exactly these settings, bounded by CLI_TIMEOUT."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=settings_env(settings, **env),
        input=stdin,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
    )


async def _make_topics(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topic(n), 2, 1) for n in names])
        await wait_until_served(admin, {settings.topic(n): 2 for n in names})
    finally:
        await admin.close()


class SecApp:
    """tests/integration/sasl_app.py as a subprocess: an exactly-once Faust worker copying sec.in to sec.out."""

    def __init__(self, settings: Settings, log: Path, **env: Any) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), "worker"],
            env=settings_env(settings, PYTHONPATH=str(ROOT), **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")


# -- SASL ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_admin_tool_creates_and_lists_topics_over_sasl(cluster, mechanism):
    s = cluster.client("SASL_PLAINTEXT", kafka_sasl_mechanism=mechanism)
    created = streams(s, "topics", "create")
    assert created.returncode == 0, created.stderr.decode()
    assert f"created  {s.topic('articles.raw')}" in created.stdout.decode()
    listed = streams(s, "topics", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert s.topic("articles.rejected") in listed.stdout.decode()


def test_produce_and_tail_round_trip_over_sasl_scram(cluster, tmp_path):
    s = cluster.client("SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256")
    assert streams(s, "topics", "create").returncode == 0
    events = [{"url": f"https://news.example/{i}", "title": f"Story {i}", "text": "Body."} for i in range(5)]
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    sent = streams(s, "produce", str(src))
    assert sent.returncode == 0 and "sent 5 event(s)" in sent.stderr.decode(), sent.stderr.decode()
    tailed = streams(s, "tail", "articles.raw", "--from-beginning", "--max", "5", "--timeout", "30")
    assert tailed.returncode == 0, tailed.stderr.decode()
    got = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(got, key=lambda e: e["url"]) == events
    replay = streams(s, "replay-rejected", "--dry-run")
    assert replay.returncode == 0 and "would replay 0" in replay.stdout.decode(), replay.stderr.decode()


def test_scram_user_added_to_a_running_broker_can_log_in(cluster):
    password = "carol-" + secrets.token_hex(8)
    s = cluster.client("SASL_PLAINTEXT", kafka_sasl_username="carol", kafka_sasl_password=password)
    before = streams(s, "topics", "list")
    assert before.returncode == 1 and "refused the login" in before.stderr.decode()
    cluster.broker.add_scram_user("carol", password)
    deadline = time.monotonic() + 30  # the credential reaches the broker through the metadata log
    while True:
        after = streams(s, "topics", "list")
        if after.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert after.returncode == 0, after.stderr.decode()


# -- refusals -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [["topics", "list"], ["tail", "articles.raw", "--timeout", "5"], ["produce", "-"]],
    ids=["admin", "tail", "produce"],
)
def test_wrong_password_is_refused_with_a_clear_message(cluster, command):
    wrong = "wrong-" + secrets.token_hex(8)
    s = cluster.client("SASL_PLAINTEXT", kafka_sasl_password=wrong)
    started = time.monotonic()
    out = streams(s, *command, stdin=b'{"url": "https://news.example/x"}\n')
    took = time.monotonic() - started
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert "the broker refused the login (SASL_PLAINTEXT SCRAM-SHA-512 as 'alice')" in err
    assert "STREAMS_KAFKA_SASL_PASSWORD" in err and "Traceback" not in err
    assert wrong.encode() not in out.stdout + out.stderr
    assert took < 30, f"a refused login should end the command at once, took {took:.0f} s"


def test_plaintext_client_on_a_sasl_listener_is_told_to_set_the_protocol(cluster):
    s = cluster.client("SASL_PLAINTEXT", kafka_security_protocol="PLAINTEXT")
    out = streams(s, "topics", "list")
    assert out.returncode == 1 and "set STREAMS_KAFKA_SECURITY_PROTOCOL" in out.stderr.decode()


def test_faust_worker_with_a_wrong_password_exits_saying_why(cluster, tmp_path):
    wrong = "wrong-" + secrets.token_hex(8)
    s = cluster.client("SASL_PLAINTEXT", kafka_sasl_password=wrong)
    asyncio.run(_make_topics(cluster.client("SASL_PLAINTEXT", topic_prefix=s.topic_prefix), ["sec.in", "sec.out"]))
    app = SecApp(s, tmp_path / "bad.log")
    try:
        code = app.wait(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        app.stop()
        pytest.fail(f"the worker hangs on a refused login:\n{app.text()[-3000:]}")
    text = app.text()
    assert code != 0
    assert "SaslAuthenticationFailed" in text and "invalid credentials" in text
    assert wrong not in text


# -- TLS ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("listener", "extra"),
    [("SSL", {}), ("SSL", {"encrypted_key": True}), ("SASL_SSL", {})],
    ids=["mutual-tls", "mutual-tls-encrypted-key", "sasl-ssl"],
)
def test_tls_round_trip_with_produce_and_tail(cluster, listener, extra):
    overrides: dict[str, Any] = {}
    if extra.get("encrypted_key"):
        overrides = {"kafka_ssl_keyfile": str(cluster.pki.client_key_encrypted)}
        overrides["kafka_ssl_key_password"] = cluster.pki.key_password
    s = cluster.client(listener, **overrides)
    asyncio.run(create_topics(s))
    lines = [orjson.dumps({"url": f"https://tls.example/{i}", "title": "T"}) for i in range(3)]
    report = asyncio.run(tools.produce(s, io.BytesIO(b"\n".join(lines))))
    assert report.sent == 3
    out = io.BytesIO()
    n = asyncio.run(tools.tail(s, "articles.raw", out, from_beginning=True, max_records=3, timeout=30))
    assert n == 3 and sorted(out.getvalue().splitlines()) == sorted(lines)


def test_a_broker_certificate_from_an_unknown_ca_is_refused(cluster):
    s = cluster.client("SASL_SSL", kafka_ssl_cafile=str(cluster.pki.other_ca))
    out = streams(s, "topics", "list")
    err = out.stderr.decode()
    assert out.returncode == 1 and "TLS certificate was not accepted" in err and "STREAMS_KAFKA_SSL_CAFILE" in err


def test_host_name_check_refuses_an_address_the_certificate_does_not_name(cluster):
    # The broker's certificate names DNS:localhost only; 127.0.0.1 is the same broker under another name.
    port = cluster.broker.address("SASL_SSL").rpartition(":")[2]
    checked = cluster.client("SASL_SSL", kafka_bootstrap=f"127.0.0.1:{port}")
    out = streams(checked, "topics", "list")
    assert out.returncode == 1 and "IP address mismatch" in out.stderr.decode(), out.stderr.decode()
    unchecked = cluster.client("SASL_SSL", kafka_bootstrap=f"127.0.0.1:{port}", kafka_ssl_check_hostname=False)
    assert streams(unchecked, "topics", "list").returncode == 0


def test_ssl_listener_refuses_a_client_without_a_certificate(cluster):
    s = cluster.client("SSL", kafka_ssl_certfile="", kafka_ssl_keyfile="")
    out = streams(s, "topics", "list")
    assert out.returncode == 1 and "client certificate" in out.stderr.decode(), out.stderr.decode()


# -- Faust, exactly once --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("listener", "mechanism"),
    [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-512"), ("SSL", None)],
    ids=["sasl-scram-256", "sasl-ssl-scram-512", "mutual-tls"],
)
def test_faust_app_copies_exactly_once_over_a_secure_listener(cluster, tmp_path, listener, mechanism):
    s = cluster.client(listener, **({"kafka_sasl_mechanism": mechanism} if mechanism else {}))
    asyncio.run(_make_topics(s, ["sec.in", "sec.out"]))
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(300)]
    asyncio.run(send_all(s, "sec.in", sent))
    app = SecApp(s, tmp_path / "app.log")
    try:
        got = asyncio.run(read_committed(s, "sec.out", expect=300, timeout=120, settle=3))
    finally:
        app.stop()
    values = [m.value for m in got]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} duplicates"
    assert sorted(values) == sorted(v for _, v in sent), app.text()[-3000:]


# -- secrets never in logs ------------------------------------------------------------------------------------
def test_no_password_nor_takedown_token_in_worker_logs_or_config_output(cluster, tmp_path):
    token = "takedown-" + secrets.token_hex(12)
    s = cluster.client("SASL_PLAINTEXT", log_level="debug", log_format="json", takedown_token=token)
    secret_values = [s.kafka_sasl_password, token]

    # A Faust worker logging everything at debug (its own, Faust's and aiokafka's loggers) over SASL/SCRAM.
    asyncio.run(_make_topics(s, ["sec.in", "sec.out"]))
    asyncio.run(send_all(s, "sec.in", [(b"k", b"v%d" % i) for i in range(20)]))
    app = SecApp(s, tmp_path / "debug.log", SEC_APP_LOG_ALL=1)
    try:
        assert len(asyncio.run(read_committed(s, "sec.out", expect=20, timeout=120, settle=1))) == 20
    finally:
        app.stop()
    log = app.text()
    assert "sec_app_started" in log and "aiokafka" in log, "the log must hold what it is checked for"

    # `streams worker` itself, logged in over SASL/SCRAM, with both secrets in its environment.
    ws = cluster.client(
        "SASL_PLAINTEXT",
        log_level="debug",
        log_format="json",
        data_dir=str(tmp_path / "worker-state"),
        web_port=_free_ports(1)[0],
        store="memory",
        session_timeout_seconds=10.0,
        topic_partitions=1,
        takedown_token=token,
    )
    asyncio.run(create_topics(ws))
    worker = WorkerProcess(ws, tmp_path / "worker.log")
    try:
        worker.wait_ready(timeout=120)
    finally:
        worker.stop()
    worker_log = worker.log_path.read_text(errors="replace")
    assert "worker_started" in worker_log

    config = streams(s, "config")
    assert config.returncode == 0 and "STREAMS_KAFKA_SASL_PASSWORD=***" in config.stdout.decode()
    for name, text in [("faust app", log), ("streams worker", worker_log), ("streams config", config.stdout.decode())]:
        for value in secret_values:
            assert value not in text, f"a secret appears in the output of {name}"
