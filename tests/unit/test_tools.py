"""The reference producer without a broker: a line it cannot send is named with why, and the rest still go.

A fake stands in for aiokafka's producer (start, send returning a future, stop). What only a broker test
adds: that the size estimate matches what a real broker refuses at articles.raw's max.message.bytes (10 MiB),
and that a line over the limit sent anyway fails on its own, not the records batched with it.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from click.testing import CliRunner

from streams import tools, topics
from streams.cli import main
from streams.settings import Settings

LIMIT = topics.RAW.max_message_bytes


class FakeProducer:
    """Records what was sent; `refuse` maps a value's first bytes to the error its future fails with."""

    def __init__(self, refuse: dict[bytes, Exception] | None = None, raise_on_send: Exception | None = None):
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.refuse = refuse or {}
        self.raise_on_send = raise_on_send
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        if self.raise_on_send is not None and value.startswith(b'{"n":2'):
            raise self.raise_on_send
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        error = next((e for prefix, e in self.refuse.items() if value.startswith(prefix)), None)
        if error is not None:
            future.set_exception(error)
        else:
            self.sent.append((topic, value, key))
            future.set_result(None)
        return future


def line(n: int, size: int = 0) -> bytes:
    doc = orjson.dumps({"n": n, "url": f"https://a.example/{n}", "body": "x"})
    return doc if size <= len(doc) else doc[:-1] + b', "pad": "' + b"p" * (size - len(doc) - 11) + b'"}'


def run_produce(monkeypatch: pytest.MonkeyPatch, lines: list[bytes], fake: FakeProducer, **kwargs: Any) -> Any:
    monkeypatch.setattr(tools, "producer", lambda settings: fake)
    err = io.StringIO()
    report = asyncio.run(tools.produce(Settings(), io.BytesIO(b"\n".join(lines) + b"\n"), err=err, **kwargs))
    return report, err.getvalue()


@pytest.mark.parametrize("size", [LIMIT + 1, topics.MAX_REQUEST_BYTES + 1])
def test_a_line_over_the_topic_limit_is_named_and_the_rest_are_sent(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    fake = FakeProducer()
    report, err = run_produce(monkeypatch, [line(1), line(2, size), line(3)], fake, raw=True)
    assert (report.sent, report.too_large, report.failed) == (2, 1, 0)
    assert [orjson.loads(v)["n"] for _, v, _ in fake.sent] == [1, 3]
    assert err.startswith("line 2: not sent: ")
    assert f"over articles.raw's max.message.bytes of {LIMIT:,}" in err
    assert fake.stopped


def test_a_line_just_under_the_limit_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer()
    report, err = run_produce(monkeypatch, [line(1, LIMIT - 200)], fake, raw=True)
    assert (report.sent, report.too_large, err) == (1, 0, "")


def test_a_line_the_broker_refuses_is_named_and_the_rest_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer(refuse={b'{"n":2': MessageSizeTooLargeError("topic limit lowered on the broker")})
    report, err = run_produce(monkeypatch, [line(1), line(2), line(3)], fake)
    assert (report.sent, report.failed) == (2, 1)
    assert "line 2: not sent: the broker refused it (MessageSizeTooLargeError" in err


def test_a_send_that_raises_is_named_and_the_rest_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer(raise_on_send=KafkaTimeoutError())
    report, err = run_produce(monkeypatch, [line(1), line(2), line(3)], fake)
    assert (report.sent, report.failed) == (2, 1)
    assert err.startswith("line 2: not sent: KafkaTimeoutError")


def test_keys_come_from_the_key_field_unless_raw(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer()
    run_produce(monkeypatch, [line(1)], fake)
    run_produce(monkeypatch, [line(2)], fake, raw=True)
    assert [k for _, _, k in fake.sent] == [b"https://a.example/1", None]


def test_produce_command_says_what_was_not_sent_and_exits_nonzero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    fake = FakeProducer()
    monkeypatch.setattr(tools, "producer", lambda settings: fake)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([line(1), line(2, LIMIT + 10), b"not json", line(4)]) + b"\n")
    result = CliRunner().invoke(main, ["produce", str(source)])
    assert result.exit_code == 1
    assert "line 2: not sent:" in result.output
    assert "line 3: not JSON" in result.output
    assert "sent 2 event(s) to articles.raw, skipped 1 non-JSON line(s), 1 line(s) over the topic's size limit" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_the_request_limit_leaves_room_above_the_largest_topic_limit() -> None:
    assert tools.MAX_REQUEST == topics.MAX_REQUEST_BYTES == 11 * 1024 * 1024
    assert all(t.max_message_bytes < topics.MAX_REQUEST_BYTES for t in topics.ALL)
