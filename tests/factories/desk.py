"""Factories for desk tests: a view folded from records and audit entries, a follower that holds it, a
submit that keeps what it was given, and a signed-in aiohttp test client."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from streams.codec import rfc3339
from streams.desk import Desk
from streams.settings import Settings
from streams.takedowns import TakedownView

TOKEN = "desk-" + "k" * 27
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def audit(takedown_id: str, action: str, at: datetime, n: int = 0, **fields: Any) -> dict[str, Any]:
    """An audit_entry.v1 as the takedown stage writes it (only the fields a test needs)."""
    return {
        "schema": "audit_entry.v1",
        "audit_id": f"{takedown_id}:{action}:{n}",
        "takedown_id": takedown_id,
        "action": action,
        "at": rfc3339(at),
        "by": fields.pop("by", "takedown-stage"),
        **fields,
    }


def view_of(records: list[dict[str, Any]] | None = None, entries: list[dict[str, Any]] | None = None) -> TakedownView:
    view = TakedownView()
    for r in records or []:
        view.add_takedown_record(r["takedown_id"].encode(), orjson.dumps(r))
    for e in entries or []:
        view.add_audit(orjson.dumps(e))
    return view


class FakeFollower:
    """What ViewFollower offers the desk: a view and an event set once the topics were read to their end."""

    def __init__(self, view: TakedownView) -> None:
        self.view = view
        self.caught_up = asyncio.Event()
        self.caught_up.set()
        self.started = False

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False


@dataclass
class Sent:
    """A stand-in for streams.takedowns.submit that keeps the records (or fails, when told to)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    fail: Exception | None = None

    async def __call__(self, settings: Settings, record: dict[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        self.records.append(record)


def settings(**overrides: Any) -> Settings:
    return Settings(**{"desk_token": TOKEN, **overrides})


async def client_for(desk: Desk) -> TestClient:
    client = TestClient(TestServer(desk.app()))
    await client.start_server()
    return client


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def sign_in(client: TestClient, token: str = TOKEN) -> Any:
    page = await client.get("/signin")
    csrf = csrf_of(await page.text())
    return await client.post("/signin", data={"token": token, "csrf": csrf}, allow_redirects=False)
