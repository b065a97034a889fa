"""Settings from the environment, and the embedded broker's decisions that need no broker."""

from __future__ import annotations

import socket

import pytest

from streams.kafka.local import Address, EmbeddedBroker, is_embedded_target, parse_bootstrap, probe
from streams.settings import Settings


def test_defaults_work_on_a_laptop():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "localhost:9092" and s.topic_prefix == "" and s.web_port == 6066


def test_environment_overrides_and_coerces_types():
    s = Settings.from_env({"STREAMS_WEB_PORT": "7000", "STREAMS_DEDUP_THRESHOLD": "0.7", "STREAMS_TOPIC_PREFIX": "x."})
    assert (s.web_port, s.dedup_threshold, s.topic_prefix) == (7000, 0.7, "x.")


def test_bad_number_names_the_variable():
    with pytest.raises(ValueError, match="STREAMS_WEB_PORT"):
        Settings.from_env({"STREAMS_WEB_PORT": "lots"})


@pytest.mark.parametrize(
    ("bootstrap", "embedded"),
    [
        ("localhost:9092", True),
        ("127.0.0.1:19092", True),
        ("kafka-1.prod:9092", False),
        ("localhost:9092,localhost:9093", False),
    ],
)
def test_only_a_single_local_address_may_get_the_embedded_broker(bootstrap, embedded):
    assert is_embedded_target(Settings.from_env({}, kafka_bootstrap=bootstrap)) is embedded


def test_bootstrap_parsing_accepts_urls_and_defaults_the_port():
    assert parse_bootstrap("kafka://a:1, b") == [Address("a", 1), Address("b", 9092)]


def test_start_against_an_existing_cluster_starts_nothing(tmp_path):
    s = Settings.from_env({}, kafka_bootstrap="kafka.example.invalid:9092", kafka_home=str(tmp_path))
    assert EmbeddedBroker(s).start() == "external"
    assert not any(tmp_path.iterdir())


def test_probe_tells_a_non_kafka_listener_from_a_broker():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert probe(Address("127.0.0.1", port), timeout=0.5) is False


def test_start_refuses_a_port_taken_by_something_else(tmp_path):
    from streams.kafka.local import BrokerError

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        s = Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{port}", kafka_home=str(tmp_path))
        with pytest.raises(BrokerError, match="taken"):
            EmbeddedBroker(s).start()


def test_stop_leaves_a_broker_it_did_not_start_alone(tmp_path):
    s = Settings.from_env({}, kafka_home=str(tmp_path))
    assert EmbeddedBroker(s).stop() is False


def test_status_tells_the_truth_when_nothing_answers(tmp_path):
    with socket.socket() as probe_sock:  # a port that was free a moment ago
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    s = Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{port}", kafka_home=str(tmp_path))
    answers, text = EmbeddedBroker(s).status()
    assert answers is False
    assert "answers:  no" in text and "not running" in text and f"127.0.0.1:{port}" in text


def test_status_command_exits_nonzero_when_the_broker_does_not_answer(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from streams.cli import main

    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    monkeypatch.setenv("STREAMS_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("STREAMS_KAFKA_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["kafka", "status"])
    assert result.exit_code == 1 and "answers:  no" in result.output


@pytest.mark.parametrize("args", [["topics", "list"], ["topics", "create"], ["tail", "articles.raw", "--max", "1"]])
def test_commands_that_need_a_broker_say_how_to_get_one_instead_of_a_traceback(args, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from streams.cli import main

    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    monkeypatch.setenv("STREAMS_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert f"no Kafka broker answers at 127.0.0.1:{port}" in result.output and "streams kafka start" in result.output
    assert "Traceback" not in result.output


def test_a_worker_waits_for_a_cluster_that_does_not_answer_then_gives_the_reason() -> None:
    import asyncio
    import socket
    import time

    from streams.kafka.admin import wait_for_cluster

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    said: list[str] = []
    s = Settings(kafka_bootstrap=f"localhost:{port}", kafka_wait_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(Exception, match="bootstrap|Connect|connect"):
        asyncio.run(wait_for_cluster(s, say=said.append))
    assert time.monotonic() - started >= 1.0  # it waited rather than failing at once
    assert said and all(line.startswith(f"waiting for Kafka at localhost:{port}") for line in said)
