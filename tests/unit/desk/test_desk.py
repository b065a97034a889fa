"""The desk's pages without a broker: sign-in and sessions, CSRF, escaping, filing and lifting through the
request builders, the list's filters and pages, the look-up and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from datetime import timedelta
from typing import Any

import orjson
import pytest

from streams.desk import Desk
from streams.desk.security import CONTENT_SECURITY_POLICY, Sessions, same_secret
from streams.stages.takedown.requests import request_from_body
from tests.factories.desk import (
    TOKEN,
    FakeFollower,
    Sent,
    audit,
    client_for,
    csrf_of,
    settings,
    sign_in,
    view_of,
)
from tests.factories.takedowns import NOW, enriched, lift, request

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">Ceasefire & "talks"'


def desk(view: Any = None, sent: Sent | None = None, **overrides: Any) -> Desk:
    return Desk(
        settings(**overrides),
        follower=FakeFollower(view if view is not None else view_of()),
        submit=sent if sent is not None else Sent(),
        clock=lambda: NOW,
        signin_delay=0.0,
    )


async def signed_in(d: Desk) -> Any:
    client = await client_for(d)
    response = await sign_in(client)
    assert response.status == 303
    return client


def story_view() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A domain takedown that retracted one article with a hostile title and later blocked another."""
    art = enriched(1, source="rights-news")
    art["title"] = HOSTILE
    record = request("domain", "rights-news.com", now=NOW - timedelta(hours=2), tid="TD-1")
    entries = [
        audit("TD-1", "requested", NOW - timedelta(hours=2), scope="domain", value="rights-news.com",
              requested_by=record["requested_by"], requested_at=record["requested_at"], statement=record["statement"],
              reason=record["reason"], by=record["requested_by"]),
        audit("TD-1", "retracted", NOW - timedelta(hours=2) + timedelta(seconds=3), article_id=art["article_id"],
              canonical_url=art["canonical_url"], title=art["title"], scope="domain"),
        audit("TD-1", "blocked", NOW - timedelta(hours=1), 2, article_id="f" * 32,
              canonical_url="javascript:alert(1)", title="A link that must not be one", scope="domain"),
    ]  # fmt: skip
    return view_of([record], entries), record, art


# -- before sign-in ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/takedowns"),
        ("GET", "/takedowns/new"),
        ("GET", "/takedowns/TD-1"),
        ("GET", "/lookup?q=https://rights-news.com/a"),
        ("GET", "/export"),
        ("GET", "/export/audit.csv"),
        ("GET", "/no-such-page"),
        ("POST", "/takedowns"),
        ("POST", "/takedowns/TD-1/lift"),
    ],
)
async def test_nothing_but_the_sign_in_page_answers_before_sign_in(method, path):
    view, _, _ = story_view()
    client = await client_for(desk(view))
    try:
        response = await client.request(method, path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/signin"
        assert "rights-news" not in await response.text()
    finally:
        await client.close()


async def test_a_wrong_token_is_refused_with_a_clear_message_after_a_delay():
    d = desk()
    d.signin_delay = 0.3
    client = await client_for(d)
    try:
        started = time.monotonic()
        response = await sign_in(client, token="not-the-token")
        assert time.monotonic() - started >= 0.3
        assert response.status == 401
        assert "That is not the desk token" in await response.text()
        assert not any(c.key.endswith("desk_session") for c in client.session.cookie_jar)
        assert (await client.get("/takedowns", allow_redirects=False)).status == 303
    finally:
        await client.close()


async def test_wrong_tokens_sent_in_parallel_wait_in_line_while_the_right_one_does_not():
    d = desk()
    d.signin_delay = 0.25
    client = await client_for(d)
    try:
        started = time.monotonic()
        refused = await asyncio.gather(*(sign_in(client, token=f"guess-{i}") for i in range(4)))
        assert [r.status for r in refused] == [401] * 4
        assert time.monotonic() - started >= 4 * 0.25
        started = time.monotonic()
        assert (await sign_in(client)).status == 303 and time.monotonic() - started < 0.25
    finally:
        await client.close()


async def test_signing_in_sets_an_httponly_strict_cookie_and_leads_to_the_takedowns():
    client = await client_for(desk())
    try:
        response = await sign_in(client)
        assert response.headers["Location"] == "/takedowns"
        (cookie,) = [c for c in response.headers.getall("Set-Cookie") if c.startswith("desk_session=")]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP on localhost; see the TLS test
        assert TOKEN not in cookie
        home = await client.get("/", allow_redirects=False)
        assert home.status == 303 and home.headers["Location"] == "/takedowns"
        assert (await client.get("/takedowns")).status == 200
    finally:
        await client.close()


async def test_sign_in_without_the_form_s_csrf_token_is_refused():
    client = await client_for(desk())
    try:
        await client.get("/signin")
        response = await client.post("/signin", data={"token": TOKEN, "csrf": "forged"}, allow_redirects=False)
        assert response.status == 403
        assert (await client.get("/takedowns", allow_redirects=False)).status == 303
    finally:
        await client.close()


async def test_a_second_request_before_sign_in_keeps_the_form_s_csrf_token():
    # Browsers ask for /favicon.ico beside the page; it is redirected to /signin, which must not replace the
    # cookie under the form already shown.
    client = await client_for(desk())
    try:
        csrf = csrf_of(await (await client.get("/signin")).text())
        await client.get("/favicon.ico")
        response = await client.post("/signin", data={"token": TOKEN, "csrf": csrf}, allow_redirects=False)
        assert response.status == 303
    finally:
        await client.close()


async def test_sign_out_ends_the_session():
    client = await signed_in(desk())
    try:
        csrf = csrf_of(await (await client.get("/takedowns")).text())
        out = await client.post("/signout", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303 and out.headers["Location"] == "/signin"
        assert (await client.get("/takedowns", allow_redirects=False)).status == 303
    finally:
        await client.close()


async def test_without_a_configured_token_the_desk_says_it_is_off():
    client = await client_for(desk(desk_token="", takedown_token=""))
    try:
        response = await client.get("/signin")
        assert response.status == 503 and "STREAMS_DESK_TOKEN" in await response.text()
    finally:
        await client.close()


async def test_the_takedown_token_signs_in_when_no_desk_token_is_set():
    client = await client_for(desk(desk_token="", takedown_token=TOKEN))
    try:
        assert (await sign_in(client)).status == 303
    finally:
        await client.close()


async def test_every_answer_carries_a_policy_that_allows_no_script():
    client = await client_for(desk())
    try:
        for path in ("/signin", "/static/desk.css"):
            response = await client.get(path)
            assert response.status == 200
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["X-Frame-Options"] == "DENY"
        assert "script-src" not in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
    finally:
        await client.close()


# -- CSRF on every form -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/takedowns", "/takedowns/TD-1/lift", "/signout"])
async def test_a_post_without_the_session_s_csrf_token_changes_nothing(path):
    view, _, _ = story_view()
    sent = Sent()
    client = await signed_in(desk(view, sent))
    try:
        body = {"scope": "domain", "value": "x-news.com", "reason": "r", "requested_by": "me", "lift_reason": "r",
                "lifted_by": "me", "csrf": "forged"}  # fmt: skip
        response = await client.post(path, data=body, allow_redirects=False)
        assert response.status == 403 and "expired or came from another site" in await response.text()
        assert sent.records == []
        assert (await client.get("/takedowns", allow_redirects=False)).status == 200  # still signed in
    finally:
        await client.close()


@pytest.mark.parametrize("path", ["/takedowns", "/takedowns/new", "/takedowns/TD-1", "/lookup?q=x", "/export"])
async def test_every_post_form_carries_the_csrf_token(path):
    view, _, _ = story_view()
    client = await signed_in(desk(view))
    try:
        html = await (await client.get(path)).text()
        forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
        posts = [f for f in forms if 'method="post"' in f]
        assert posts, "every page has at least the sign-out form"
        for form in posts:
            assert re.search(r'<input type="hidden" name="csrf" value="[^"]{40,}">', form), form[:200]
        for form in forms:
            assert 'method="post"' in form or 'method="get"' in form
    finally:
        await client.close()


# -- escaping ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/takedowns/TD-1", "/lookup?q=__ART__"])
async def test_a_hostile_title_is_shown_as_text(path):
    view, _, art = story_view()
    client = await signed_in(desk(view))
    try:
        html = await (await client.get(path.replace("__ART__", art["canonical_url"]))).text()
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
        assert "<script" not in html and "<img" not in html
        assert "Ceasefire &amp; &#34;talks&#34;" in html
    finally:
        await client.close()


async def test_a_url_that_is_not_http_is_never_a_link():
    view, _, _ = story_view()
    client = await signed_in(desk(view))
    try:
        html = await (await client.get("/takedowns/TD-1")).text()
        assert "javascript:alert(1)" in html and 'href="javascript:' not in html
    finally:
        await client.close()


# -- filing -----------------------------------------------------------------------------------------------------
FORM = {
    "scope": "url",
    "value": "HTTPS://www.Rights-News.com/a?utm_source=x",
    "reason": "Copyright claim",
    "requested_by": "legal@rights.example",
    "expires_in": "90d",
    "republish_on_lift": "on",
    "restriction": "removal",
    "ground": "legal",
    "legal_basis": "Copyright",
    "territorial_scope": "de, fr",
}


async def test_filing_sends_the_record_the_request_builder_makes_and_shows_it():
    sent = Sent()
    d = desk(sent=sent)
    client = await signed_in(d)
    try:
        csrf = csrf_of(await (await client.get("/takedowns/new")).text())
        response = await client.post("/takedowns", data={**FORM, "csrf": csrf}, allow_redirects=False)
        assert response.status == 303
        (record,) = sent.records
        assert response.headers["Location"] == f"/takedowns/{record['takedown_id']}"
        body = {k: v for k, v in FORM.items() if k not in ("republish_on_lift", "restriction", "ground", "legal_basis",
                                                             "territorial_scope")}  # fmt: skip
        body["republish_on_lift"] = True
        body["statement"] = {"restriction": "removal", "ground": "legal", "legal_basis": "Copyright",
                             "territorial_scope": "de, fr", "automated": False}  # fmt: skip
        expected = request_from_body(body, now=NOW, make_id=lambda: record["takedown_id"])
        assert record == expected
        assert record["value"] == "https://www.rights-news.com/a" and record["statement"]["territorial_scope"] == [
            "DE",
            "FR",
        ]
        page = await (await client.get(response.headers["Location"])).text()
        assert "filed" in page and "pending" in page and "https://www.rights-news.com/a" in page
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"scope": ""}, "scope", "scope must be one of"),
        ({"value": "not a url"}, "value", "The URL is not usable"),
        ({"scope": "domain", "value": "co.uk"}, "value", "public suffix"),
        ({"reason": " "}, "reason", "Say why"),
        ({"requested_by": ""}, "requested_by", ""),
        ({"legal_basis": ""}, "legal_basis", "legal_basis is required"),
        ({"expires_in": "soon"}, "expires_in", "not a duration"),
        ({"expires_in": "", "expires_at": "2000-01-01T00:00"}, "expires_at", "in the past"),
        ({"territorial_scope": "Mars"}, "territorial_scope", ""),
        ({"takedown_id": "no spaces please"}, "takedown_id", ""),
    ],
)
async def test_a_bad_field_is_refused_with_its_error_beside_it(changes, field, message):
    sent = Sent()
    client = await signed_in(desk(sent=sent))
    try:
        csrf = csrf_of(await (await client.get("/takedowns/new")).text())
        response = await client.post("/takedowns", data={**FORM, **changes, "csrf": csrf})
        html = await response.text()
        assert response.status == 400 and sent.records == []
        match = re.search(rf'<div class="field[^"]*has-error">\s*<label for="{field}">.*?</div>', html, re.S)
        assert match, f"no error beside {field}"
        assert f'id="{field}-error"' in match.group(0) and message in match.group(0)
        assert "Nothing was filed" in html
        kept = {k: v for k, v in changes.items() if v and k not in ("scope",)}
        for value in kept.values():  # what was typed is kept
            assert value.replace('"', "&#34;") in html
    finally:
        await client.close()


async def test_an_id_already_used_by_another_takedown_is_refused_beside_the_id():
    view, _, _ = story_view()
    sent = Sent()
    client = await signed_in(desk(view, sent))
    try:
        csrf = csrf_of(await (await client.get("/takedowns/new")).text())
        response = await client.post("/takedowns", data={**FORM, "takedown_id": "TD-1", "csrf": csrf})
        html = await response.text()
        assert response.status == 400 and sent.records == []
        assert 'id="takedown_id-error"' in html and "already the id of a takedown of domain rights-news.com" in html
    finally:
        await client.close()


async def test_a_broker_that_cannot_be_reached_files_nothing_and_says_so():
    sent = Sent(fail=ConnectionError("no broker"))
    client = await signed_in(desk(sent=sent))
    try:
        csrf = csrf_of(await (await client.get("/takedowns/new")).text())
        response = await client.post("/takedowns", data={**FORM, "csrf": csrf})
        assert response.status == 503 and "nothing was filed" in await response.text()
    finally:
        await client.close()


# -- lifting ----------------------------------------------------------------------------------------------------
async def test_lift_sends_the_lift_record_with_the_reason_and_who():
    view, record, _ = story_view()
    sent = Sent()
    client = await signed_in(desk(view, sent))
    try:
        page = await (await client.get("/takedowns/TD-1")).text()
        assert "Lift the takedown" in page
        data = {"csrf": csrf_of(page), "lift_reason": "Licence agreed", "lifted_by": "desk@aggregator.example"}
        response = await client.post("/takedowns/TD-1/lift", data=data, allow_redirects=False)
        assert response.status == 303
        (sent_record,) = sent.records
        assert sent_record == lift(record, now=NOW, reason="Licence agreed")
        after = await (await client.get("/takedowns/TD-1")).text()
        assert "lifted" in after and "Lift the takedown" not in after
    finally:
        await client.close()


async def test_lift_without_a_reason_asks_for_one_beside_the_field():
    view, _, _ = story_view()
    sent = Sent()
    client = await signed_in(desk(view, sent))
    try:
        csrf = csrf_of(await (await client.get("/takedowns/TD-1")).text())
        data = {"csrf": csrf, "lift_reason": "", "lifted_by": "desk"}
        response = await client.post("/takedowns/TD-1/lift", data=data)
        html = await response.text()
        assert response.status == 400 and sent.records == []
        assert 'id="lift_reason-error"' in html and "Say why the takedown is lifted" in html
    finally:
        await client.close()


async def test_an_unknown_takedown_is_a_404_page():
    client = await signed_in(desk())
    try:
        response = await client.get("/takedowns/TD-404")
        assert response.status == 404 and "No takedown TD-404" in await response.text()
    finally:
        await client.close()


# -- list, look-up, export --------------------------------------------------------------------------------------
async def test_the_list_filters_pages_and_shows_newest_first():
    records = [request("domain", f"site{i}.com", now=NOW - timedelta(minutes=i), tid=f"TD-{i:02d}",
                       by="alice@a.example" if i % 2 else "bob@b.example") for i in range(30)]  # fmt: skip
    records.append(request("url", "https://other.example/x", now=NOW, tid="TD-URL"))
    entries = [audit(r["takedown_id"], "requested", NOW, scope=r["scope"]) for r in records]
    client = await signed_in(desk(view_of(records, entries)))
    try:
        first = await (await client.get("/takedowns")).text()
        ids = re.findall(r'<a href="/takedowns/(TD-[^"]+)">', first)
        assert len(ids) == 25 and ids[:3] == ["TD-URL", "TD-00", "TD-01"]  # same time: the id decides
        second = await (await client.get("/takedowns?page=2")).text()
        assert len(re.findall(r'<a href="/takedowns/(TD-[^"]+)">', second)) == 6
        only_url = await (await client.get("/takedowns?scope=url")).text()
        assert re.findall(r'<a href="/takedowns/(TD-[^"]+)">', only_url) == ["TD-URL"]
        alice = await (await client.get("/takedowns?requester=ALICE&q=site1")).text()
        assert set(re.findall(r'<a href="/takedowns/(TD-[^"]+)">', alice)) == {"TD-01", "TD-11", "TD-13", "TD-15",
                                                                               "TD-17", "TD-19"}  # fmt: skip
        assert "page=2" in first and "scope=url" not in first
    finally:
        await client.close()


async def test_lookup_says_whether_an_article_is_withheld_and_by_what():
    view, _, art = story_view()
    client = await signed_in(desk(view))
    try:
        spelling = art["canonical_url"].replace("www.rights-news.com", "WWW.Rights-News.com") + "?utm_source=mail"
        withheld = await (await client.get("/lookup", params={"q": spelling})).text()
        assert "Withheld." in withheld and "TD-1" in withheld and art["article_id"] in withheld
        free = await (await client.get("/lookup", params={"q": "https://free.example/story"})).text()
        assert "Not withheld" in free
    finally:
        await client.close()


async def test_export_gives_the_period_s_audit_and_counts_as_csv():
    view, _, art = story_view()
    old = audit("TD-1", "requested", NOW - timedelta(days=90), 9, scope="url", title="=HYPERLINK(1)")
    view.add_audit(orjson.dumps(old))
    client = await signed_in(desk(view))
    try:
        page = await (await client.get("/export", params={"from": (NOW - timedelta(days=1)).date().isoformat()})).text()
        assert "3 audit entries" in page and "3.0 s" in page  # requested -> retracted 3 s later
        q = {"from": (NOW - timedelta(days=1)).date().isoformat(), "to": NOW.date().isoformat()}
        response = await client.get("/export/audit.csv", params=q)
        assert response.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert [r["action"] for r in rows] == ["requested", "retracted", "blocked"]
        assert rows[1]["title"] == HOSTILE and rows[1]["ground"] == "legal" and rows[1]["legal_basis"] == "Copyright"
        counts = list(csv.reader(io.StringIO(await (await client.get("/export/counts.csv", params=q)).text())))
        assert ["requests_by_scope", "domain", "1"] in counts and ["median_seconds_to_action", "", "3.0"] in counts
        before = {"from": "2000-01-01", "to": (NOW - timedelta(days=80)).date().isoformat()}
        old_rows = list(
            csv.DictReader(io.StringIO(await (await client.get("/export/audit.csv", params=before)).text()))
        )
        assert old_rows[0]["title"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    finally:
        await client.close()


# -- sessions ---------------------------------------------------------------------------------------------------
def test_a_session_ends_after_its_idle_lifetime_and_its_cookie_is_not_what_the_server_keeps():
    now = [0.0]
    sessions = Sessions(60.0, clock=lambda: now[0])
    cookie, session = sessions.create()
    assert sessions.get(cookie) is session
    now[0] = 59.0
    assert sessions.get(cookie) is session  # renewed
    now[0] = 59.0 + 61.0
    assert sessions.get(cookie) is None and len(sessions) == 0
    cookie, _ = sessions.create()
    assert cookie not in repr(sessions._by_digest)


@pytest.mark.parametrize(
    ("given", "expected", "same"),
    [
        (TOKEN, TOKEN, True),
        (TOKEN[:-1], TOKEN, False),
        (TOKEN + "x", TOKEN, False),
        ("", TOKEN, False),
        ("", "", False),
    ],
)
def test_secrets_compare_by_digest_and_an_empty_expected_secret_matches_nothing(given, expected, same):
    assert same_secret(given, expected) is same
