"""The CLI as a user runs it, against the real broker: status, topics, produce then tail."""

from __future__ import annotations

import subprocess
import sys

import orjson

from streams import topics as registry
from tests.integration.conftest import settings_env


def streams(settings, *args, input_bytes: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=settings_env(settings),
        input=input_bytes,
        capture_output=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"streams {' '.join(args)} -> {proc.returncode}\n{proc.stdout!r}\n{proc.stderr!r}")
    return proc


def test_status_exits_zero_and_tells_the_address_when_the_broker_answers(settings):
    out = streams(settings, "kafka", "status").stdout.decode()
    assert "answers:  yes" in out and settings.kafka_bootstrap in out


def test_start_when_a_broker_runs_is_a_no_op(settings):
    proc = streams(settings, "kafka", "start")
    assert b"started on" not in proc.stderr


def test_topics_create_is_idempotent_and_applies_the_prefix(settings):
    first = streams(settings, "topics", "create").stdout.decode()
    second = streams(settings, "topics", "create").stdout.decode()
    n = len(registry.ALL)
    assert first.count("created") == n and f"{settings.topic_prefix}articles.raw" in first
    assert second.count("exists") == n
    listing = streams(settings, "topics", "list").stdout.decode()
    assert f"{settings.topic_prefix}takedowns " in listing and "compact" in listing


def test_produce_then_tail_round_trips_events(settings):
    streams(settings, "topics", "create")
    events = [{"url": f"https://news.example.com/a/{i}", "body": f"Body {i}."} for i in range(5)]
    lines = b"".join(orjson.dumps(e) + b"\n" for e in events)
    streams(settings, "produce", "-", input_bytes=lines)
    out = streams(settings, "tail", "articles.raw", "--from-beginning", "--timeout", "3").stdout
    got = sorted((orjson.loads(line) for line in out.splitlines()), key=lambda e: e["url"])
    assert got == sorted(events, key=lambda e: e["url"])


def test_produce_raw_sends_bytes_unchanged_and_tail_wraps_non_json(settings):
    streams(settings, "topics", "create")
    streams(settings, "produce", "--raw", "-", input_bytes=b"{broken json\n\xff\xfe not utf8\n")
    out = streams(settings, "tail", "articles.raw", "--from-beginning", "--max", "2", "--timeout", "5").stdout
    docs = [orjson.loads(line) for line in out.splitlines()]
    assert len(docs) == 2 and all("_not_json_b64" in d for d in docs)


def test_produce_refuses_non_json_lines_without_raw(settings):
    streams(settings, "topics", "create")
    proc = streams(settings, "produce", "-", input_bytes=b"not json\n", check=False)
    assert proc.returncode == 1 and b"--raw" in proc.stderr
