"""Exactly-once against the real broker: a Faust agent copies one topic to another, crash included."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka.admin import wait_until_served
from tests.integration.conftest import read_committed, send_all, settings_env

APP = Path(__file__).with_name("eos_app.py")


async def _make_topics(settings, names):
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topic(n), 4, 1) for n in names])
        await wait_until_served(admin, {settings.topic(n): 4 for n in names})
    finally:
        await admin.close()


def _start(settings, tmp_path: Path, n: int, delay: float) -> subprocess.Popen:
    log = open(tmp_path / f"eos-{n}.log", "ab")
    return subprocess.Popen(
        [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
        env=settings_env(settings, EOS_DELAY=delay, PYTHONPATH=str(APP.parents[2])),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
    )


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)


def test_agent_copies_each_message_exactly_once(settings, tmp_path):
    asyncio.run(_make_topics(settings, ["eos.in", "eos.out"]))
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
    asyncio.run(send_all(settings, "eos.in", sent))
    proc = _start(settings, tmp_path, 0, 0.0)
    try:
        got = asyncio.run(read_committed(settings, "eos.out", expect=500, timeout=120, settle=3))
    finally:
        _stop(proc)
    assert sorted(m.value for m in got) == sorted(v for _, v in sent)


def test_crash_mid_stream_neither_loses_nor_duplicates(settings, tmp_path):
    """kill -9 while transactions are open: after a restart, read_committed sees every message once."""
    asyncio.run(_make_topics(settings, ["eos.in", "eos.out"]))
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(1200)]
    asyncio.run(send_all(settings, "eos.in", sent))
    first = _start(settings, tmp_path, 0, 0.004)
    try:
        partial = asyncio.run(read_committed(settings, "eos.out", expect=300, timeout=120, settle=0))
        assert 0 < len(partial) < 1200, "the crash should land mid-stream"
    finally:
        _stop(first, signal.SIGKILL)
    time.sleep(1)
    second = _start(settings, tmp_path, 1, 0.0)
    try:
        got = asyncio.run(read_committed(settings, "eos.out", expect=1200, timeout=180, settle=5))
    finally:
        _stop(second)
    values = [m.value for m in got]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} duplicates after the crash"
    assert sorted(values) == sorted(v for _, v in sent)
