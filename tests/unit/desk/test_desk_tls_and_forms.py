"""The desk over TLS (its own certificate: cookies become Secure and __Host- prefixed), and the filing form's
mapping to request bodies and of JSON pointers back to form fields."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from streams.desk import Desk
from streams.desk.app import ssl_context
from streams.desk.forms import LIFT_POINTERS, errors_by_field, request_body, utc_from_local_input
from streams.stages.takedown.requests import FieldError
from tests.factories.desk import FakeFollower, Sent, csrf_of, settings, view_of
from tests.factories.pki import make_pki


async def test_served_over_tls_the_desk_marks_its_cookies_secure(tmp_path: Path):
    pki = make_pki(tmp_path / "pki")  # its server certificate names DNS:localhost
    s = settings(desk_tls_certfile=str(pki.broker), desk_host="localhost", desk_port=0)
    context = ssl_context(s)
    assert context is not None
    desk = Desk(s, follower=FakeFollower(view_of()), submit=Sent(), signin_delay=0.0)
    runner = web.AppRunner(desk.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    trust = ssl.create_default_context(cafile=str(pki.ca))
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await http.get(f"https://localhost:{port}/signin", ssl=trust)
            (cookie,) = page.headers.getall("Set-Cookie")
            assert cookie.startswith("__Host-desk_signin=") and "Secure" in cookie and "HttpOnly" in cookie
            data = {"token": s.desk_token, "csrf": csrf_of(await page.text())}
            signed = await http.post(f"https://localhost:{port}/signin", data=data, ssl=trust, allow_redirects=False)
            assert signed.status == 303
            (session,) = [c for c in signed.headers.getall("Set-Cookie") if c.startswith("__Host-desk_session=")]
            assert "Secure" in session and "SameSite=Strict" in session and "HttpOnly" in session
            assert (await http.get(f"https://localhost:{port}/takedowns", ssl=trust)).status == 200
    finally:
        await runner.cleanup()


def test_behind_a_tls_proxy_the_cookie_is_secure_by_setting():
    assert ssl_context(settings()) is None
    assert settings(desk_cookie_secure=True).desk_cookie_secure is True


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("2026-01-31T12:30", "2026-01-31T12:30:00Z"),
        ("2026-01-31T12:30:15", "2026-01-31T12:30:15Z"),
        ("2026-01-31T12:30:00+02:00", "2026-01-31T12:30:00+02:00"),
        ("", ""),
    ],
)
def test_a_browser_s_local_time_is_read_as_utc(typed, sent):
    assert utc_from_local_input(typed) == sent


def test_empty_fields_are_left_out_and_boxes_become_booleans():
    body = request_body({"scope": "url", "value": " https://a.example/x ", "reason": "r", "requested_by": "me",
                         "expires_in": "", "ground": "terms", "terms_clause": "4.2", "automated": "on"})  # fmt: skip
    assert body == {
        "scope": "url",
        "value": "https://a.example/x",
        "reason": "r",
        "requested_by": "me",
        "republish_on_lift": False,
        "statement": {"ground": "terms", "terms_clause": "4.2", "automated": True},
    }


def test_an_error_finds_its_field_by_pointer_and_the_rest_go_above_the_form():
    errors = [
        FieldError("/statement/territorial_scope/1", "bad code"),
        FieldError("/value", "bad value"),
        FieldError("", "not an object"),
        FieldError("/lift_reason", "say why"),
    ]
    assert errors_by_field(errors) == {
        "territorial_scope": ["bad code"],
        "value": ["bad value"],
        "": ["not an object", "say why"],
    }
    assert errors_by_field(errors, LIFT_POINTERS)["lift_reason"] == ["say why"]


def test_every_template_and_stylesheet_ships_as_package_data():
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["streams"]
    desk = root / "streams" / "desk"
    files = [p.relative_to(root / "streams").as_posix() for p in desk.rglob("*") if p.is_file() and p.suffix != ".py"]
    files = [f for f in files if "__pycache__" not in f]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files
