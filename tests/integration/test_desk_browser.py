"""The rights desk in a real browser: Debian's Chromium driven by Playwright, against the real broker, a real
`streams worker --stages takedown` (articles written to articles.enriched as enrich would) and a real
`streams desk` process.

Sign in, file a takedown for a published article, see its retraction on the timeline, lift it, see the
reinstatement; a wrong token is refused; a hostile title shows as text and runs nothing. Screenshots of the
main pages go to tests/artifacts/desk/ (git-ignored); docs/ holds two of them for the README.

Playwright's own browser download cannot work here: the tests use /usr/bin/chromium (Debian's `chromium`,
which .ci/run installs) and fail, never skip, without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from streams import takedowns
from streams.settings import Settings
from tests.factories.takedowns import enriched, request
from tests.integration.conftest import read_committed, send_all, settings_env, values

pytestmark = pytest.mark.browser
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "desk"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "desk-browser-" + "d" * 24
HOSTILE = (
    '<script>window.__pwned = 1; alert("pwned")</script><img src=x onerror="window.__pwned = 2">'
    'Harbour <b>reopens</b> & "ferries" return'
)


class DeskProcess:
    """A `streams desk` subprocess at debug level; its log is kept to show failures and to search for secrets."""

    def __init__(self, settings: Settings, log: Path, **env: Any) -> None:
        self.settings = settings
        self.log_path = log
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "desk"],
            env=settings_env(settings, STREAMS_LOG_LEVEL="debug", **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://{settings.desk_host}:{settings.desk_port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"desk exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + "/signin", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"desk not answering after {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-n:])


@pytest.fixture
def desk_factory(tmp_path: Path) -> Iterator[Callable[..., DeskProcess]]:
    started: list[DeskProcess] = []

    def start(settings: Settings, **env: Any) -> DeskProcess:
        d = DeskProcess(settings, tmp_path / f"desk-{len(started)}.log", **env)
        started.append(d)
        d.wait_ready()
        return d

    yield start
    for d in started:
        d.stop()


@dataclass
class Tab:
    """The page, and what it saw: every URL it requested, every dialog a script opened (none, ever)."""

    page: Any
    urls: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh Chromium profile; fails (never skips) when Chromium or Playwright is missing."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is a dev dependency: pip install -e '.[dev]' (never `playwright install`)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
            accept_downloads=True,
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        tab = Tab(page)
        page.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: tab.urls.append(request.url))
        try:
            yield tab
        finally:
            context.close()


def desk_settings(s: Settings) -> Settings:
    return Settings(**{**s.__dict__, "desk_port": s.web_port + 1})


def kafka(coro: Coroutine[Any, Any, T]) -> T:
    """Run a Kafka helper to its end in a thread of its own: Playwright's sync API keeps an event loop running
    in the test's thread, where asyncio.run() refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def put_articles(s: Settings, articles: list[dict[str, Any]]) -> None:
    kafka(send_all(s, "articles.enriched", [(a["article_id"].encode(), orjson.dumps(a)) for a in articles]))


def now() -> datetime:
    return datetime.now(UTC)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def reload_until(page: Any, check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """The desk is server-rendered: reload until the worker's audit has reached the page."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not shown after {timeout}s; the page says:\n{page.inner_text('main')}")
        time.sleep(0.7)
        page.reload()


def sign_in(page: Any, base: str, token: str = TOKEN) -> None:
    page.goto(base + "/")
    assert page.url == base + "/signin"
    page.fill("#token", token)
    page.click("form[action='/signin'] button[type=submit]")


def file_takedown(page: Any, base: str, **fields: str) -> str:
    page.goto(base + "/takedowns/new")
    for name, value in fields.items():
        if name in ("scope", "ground"):
            page.select_option(f"#{name}", value)
        else:
            page.fill(f"#{name}", value)
    page.click("form.takedown-form button[type=submit]")
    page.wait_for_url(base + "/takedowns/*")
    return str(page.url.rsplit("/", 1)[1])


def timeline_has(page: Any, action: str) -> bool:
    return page.locator(f"#timeline li.event-{action}").count() > 0


def test_the_desk_files_a_takedown_shows_the_retraction_lifts_it_and_shows_the_reinstatement(
    topics, worker_factory, desk_factory, browser_page
):
    s = desk_settings(topics)
    art = enriched(1, source="harbour-news")
    art["title"] = "Harbour ferry service resumes after the winter storms"
    other = enriched(2, source="harbour-news")
    worker = worker_factory(s, "takedown")
    put_articles(s, [art, other])
    worker.wait_ready()
    assert len(kafka(read_committed(s, "articles.published", expect=2, timeout=120, settle=0))) == 2
    desk = desk_factory(s, STREAMS_DESK_TOKEN=TOKEN)
    tab, base = browser_page, desk.base
    page = tab.page

    # nothing but the sign-in page before sign-in
    for path in ("/", "/takedowns", "/takedowns/new", "/export/audit.csv", "/lookup?q=x"):
        page.goto(base + path)
        assert page.url == base + "/signin", path
    assert page.get_attribute("#token", "type") == "password"
    shot(page, "signin.png")
    sign_in(page, base)
    page.wait_for_url(base + "/takedowns")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["desk_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert TOKEN not in session["value"]

    # a field error shows beside its field, and nothing is filed
    page.goto(base + "/takedowns/new")
    page.select_option("#scope", "url")
    page.fill("#value", "not a url")
    page.fill("#reason", "Copyright claim")
    page.fill("#requested_by", "legal@harbour-news.example")
    page.select_option("#ground", "legal")
    page.click("form.takedown-form button[type=submit]")
    assert page.locator("#value-error").inner_text().startswith("The URL is not usable")
    assert "legal_basis is required" in page.locator("#legal_basis-error").inner_text()
    assert page.locator(".field.has-error #value").count() == 1
    shot(page, "file-errors.png")

    tid = file_takedown(
        page,
        base,
        scope="url",
        value=art["canonical_url"] + "?utm_source=newsletter",
        reason="Copyright claim: reproduced without a licence",
        requested_by="legal@harbour-news.example",
        ground="legal",
        legal_basis="Copyright: Directive 2001/29/EC art. 3",
        expires_in="90d",
    )
    assert tid.startswith("td-")
    assert f"Takedown {tid} filed" in page.inner_text("main")
    reload_until(page, lambda: timeline_has(page, "retracted"), "the retraction")
    retracted = page.locator("#timeline li.event-retracted")
    assert retracted.locator(".article-title").inner_text() == art["title"]
    assert retracted.locator("a.article-url").get_attribute("href") == art["canonical_url"]
    assert timeline_has(page, "requested") and page.inner_text("#status") == "active"
    shot(page, "takedown-retracted.png")
    retractions = values(kafka(read_committed(s, "articles.retractions", expect=1, timeout=30, settle=0)))
    assert [(r["article_id"], r["takedown_id"]) for r in retractions] == [(art["article_id"], tid)]

    # the look-up box: withheld, and by what
    page.fill("#top-q", art["canonical_url"])
    page.click("form.lookup-box button")
    assert "Withheld." in page.inner_text("#result") and tid in page.inner_text("#result")
    shot(page, "lookup.png")

    # lift, asking for a reason
    page.goto(f"{base}/takedowns/{tid}")
    page.click("form.lift-form button[type=submit]")
    assert "Say why the takedown is lifted" in page.inner_text("#lift_reason-error")
    page.fill("#lift_reason", "Licence agreed with the rights-holder")
    page.fill("#lifted_by", "desk@aggregator.example")
    page.click("form.lift-form button[type=submit]")
    page.wait_for_url(f"{base}/takedowns/{tid}")
    reload_until(page, lambda: timeline_has(page, "reinstated"), "the reinstatement")
    reinstated = page.locator("#timeline li.event-reinstated")
    assert reinstated.locator(".article-title").inner_text() == art["title"]
    assert timeline_has(page, "lifted") and page.inner_text("#status") == "lifted"
    assert page.locator("form.lift-form").count() == 0
    shot(page, "takedown-lifted.png")
    published = values(kafka(read_committed(s, "articles.published", expect=3, timeout=60, settle=0)))
    assert published[-1]["article_id"] == art["article_id"] and published[-1]["takedown"]["reinstated"] is True

    # the list: filters, newest first (three more takedowns, filed as `streams takedown add` files them)
    page.goto(base + "/takedowns?status=lifted")
    assert page.locator(f"table.takedowns a[href='/takedowns/{tid}']").count() == 1
    page.goto(base + "/takedowns?status=active")
    assert page.locator("table.takedowns").count() == 0
    more = [
        request("domain", "pirate-mirror.example", now=now(), by="rights@wirepress.example", tid="TD-2026-0107",
                reason="Mirrors our wire copy without a licence"),
        request("source", "Coastal Courier", now=now(), by="legal@coastal-courier.example",
                ground="terms", terms_clause="Partner terms 7.1", reason="Partner feed withdrawn"),
        request("url", "https://www.harbour-news.com/news/2", now=now(), by="privacy@harbour-news.example",
                expires_in=timedelta(seconds=2), reason="Personal data, pending review"),
    ]  # fmt: skip
    for record in more:
        kafka(takedowns.submit(s, record))
    page.goto(base + "/takedowns")
    reload_until(page, lambda: page.locator("table.takedowns .status-expired").count() == 1, "the expiry")
    rows = page.locator("table.takedowns tbody tr td.id").all_inner_texts()
    assert rows[-1] == tid and len(rows) == 4, rows  # newest first
    page.goto(base + "/takedowns?scope=domain&requester=WIREPRESS")
    assert page.locator("table.takedowns tbody td.id").all_inner_texts() == ["TD-2026-0107"]
    page.goto(base + "/takedowns")
    shot(page, "list.png")

    # the export: the audit of the period as CSV, and the transparency counts
    page.goto(base + "/export")
    assert page.locator("#median").inner_text().endswith(" s")
    shot(page, "export.png")
    with page.expect_download() as download:
        page.click("text=Audit (CSV)")
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    for action in ("requested", "retracted", "lifted", "reinstated"):
        assert f",{action},{tid}," in csv_text, action

    # sign out: the session is gone
    page.click("form.signout button")
    page.wait_for_url(base + "/signin")
    page.goto(base + "/takedowns")
    assert page.url == base + "/signin"

    # the token never appeared in a URL nor in the desk's (debug) log
    assert not [u for u in tab.urls if TOKEN in u]
    assert TOKEN not in desk.text()
    assert tab.dialogs == []


def test_a_wrong_token_is_refused_with_a_clear_message(topics, desk_factory, browser_page):
    s = desk_settings(topics)
    desk = desk_factory(s, STREAMS_DESK_TOKEN=TOKEN)
    tab, base = browser_page, desk.base
    page = tab.page
    started = time.monotonic()
    sign_in(page, base, token="not-" + TOKEN)
    page.wait_for_selector("#signin-error")
    assert "That is not the desk token" in page.inner_text("#signin-error")
    assert time.monotonic() - started >= 1.0, "a wrong token is answered after a delay"
    assert page.url == base + "/signin"
    assert "desk_session" not in {c["name"] for c in page.context.cookies()}
    shot(page, "signin-refused.png")
    page.goto(base + "/takedowns")
    assert page.url == base + "/signin"


def test_a_hostile_article_title_renders_as_text_and_runs_no_script(topics, worker_factory, desk_factory, browser_page):
    s = desk_settings(topics)
    art = enriched(3, source="hostile-news")
    art["title"] = HOSTILE
    worker = worker_factory(s, "takedown")
    put_articles(s, [art])
    worker.wait_ready()
    kafka(read_committed(s, "articles.published", expect=1, timeout=120, settle=0))
    desk = desk_factory(s, STREAMS_TAKEDOWN_TOKEN=TOKEN)  # no desk token: the takedown token signs in
    tab, base = browser_page, desk.base
    page = tab.page
    sign_in(page, base)
    page.wait_for_url(base + "/takedowns")
    tid = file_takedown(
        page,
        base,
        scope="domain",
        value="hostile-news.com",
        reason="Terms: scraped page",
        requested_by="desk@aggregator.example",
        ground="terms",
        terms_clause="Terms of use 4.2",
    )
    reload_until(page, lambda: timeline_has(page, "retracted"), "the retraction")
    shot(page, "hostile-title.png")
    for where in (f"/takedowns/{tid}", "/lookup?q=" + art["article_id"]):
        page.goto(base + where)
        title = page.locator(".article-title").first
        assert title.inner_text() == HOSTILE, where  # the markup is the text, character for character
        assert title.evaluate("e => e.children.length") == 0, where  # and made no element
        assert page.locator("main script, main img, main b").count() == 0, where
        assert page.evaluate("window.__pwned") is None, where
    assert tab.dialogs == []
