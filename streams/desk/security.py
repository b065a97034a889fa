"""The desk's sign-in, sessions and CSRF tokens: secrets compared in constant time, never in a URL or a log.

Sign-in posts the desk token (STREAMS_DESK_TOKEN, else STREAMS_TAKEDOWN_TOKEN) from a password field. The
token is compared as SHA-256 digests with `hmac.compare_digest`, so neither its content nor its length shows
in the time an answer takes; a wrong one is answered after a delay, one refusal at a time, so guesses sent in
parallel still cost a second each. A good one opens a server-side session:
the browser holds only a random id in a cookie that is HttpOnly (no script reads it), SameSite=Strict (no
other site's page sends it) and Secure when the desk is served over TLS (its own certificate, or
STREAMS_DESK_COOKIE_SECURE behind a TLS proxy). The server keeps the SHA-256 of that id, so a lookup's time
says nothing about ids that exist. Every POST form carries the session's CSRF token; the sign-in form,
before there is a session, carries one that must equal a cookie set with the form (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from streams.settings import Settings

SIGNIN_DELAY_SECONDS = 1.0  # a wrong token waits this long: guessing over HTTP costs a second a try
MAX_SESSIONS = 1000  # signed-in sessions kept at most; the least recently used goes first
CSRF_FIELD = "csrf"


def sign_in_token(settings: Settings) -> str:
    """The token the desk wants: STREAMS_DESK_TOKEN, else STREAMS_TAKEDOWN_TOKEN; '' when neither is set."""
    return settings.desk_token or settings.takedown_token


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length (digests first: compare_digest leaks length)."""
    if not expected:
        return False
    return hmac.compare_digest(_digest(given), _digest(expected))


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass
class Session:
    """One signed-in browser."""

    csrf: str
    expires: float  # monotonic seconds
    name: str = ""  # who the user said they are when they last lifted a takedown (prefills the form)
    flashes: list[str] = field(default_factory=list)

    def pop_flashes(self) -> list[str]:
        out, self.flashes = self.flashes, []
        return out


class Sessions:
    """Signed-in sessions in memory, by the SHA-256 of their cookie; a restart signs everyone out."""

    def __init__(self, lifetime_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime_seconds
        self.clock = clock
        self._by_digest: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_digest)

    def create(self) -> tuple[str, Session]:
        """A new session: (the cookie value for the browser, the session)."""
        self._purge()
        while len(self._by_digest) >= MAX_SESSIONS:
            self._by_digest.popitem(last=False)
        cookie = new_secret()
        session = Session(csrf=new_secret(), expires=self.clock() + self.lifetime)
        self._by_digest[_digest(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session of a cookie (its lifetime renewed), or None."""
        if not cookie:
            return None
        key = _digest(cookie)
        session = self._by_digest.get(key)
        if session is None:
            return None
        now = self.clock()
        if session.expires <= now:
            del self._by_digest[key]
            return None
        session.expires = now + self.lifetime
        self._by_digest.move_to_end(key)
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._by_digest.pop(_digest(cookie), None)

    def _purge(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._by_digest.items() if s.expires <= now]:
            del self._by_digest[key]


# --- cookies ---------------------------------------------------------------------------------------------


def is_secure(request: web.Request, settings: Settings) -> bool:
    """Whether the browser reached the desk over TLS: the desk's own certificate, or a TLS proxy in front."""
    return request.secure or settings.desk_cookie_secure


def session_cookie_name(secure: bool) -> str:
    # `__Host-` makes the browser refuse the cookie unless it is Secure, for this host only, on path /.
    return "__Host-desk_session" if secure else "desk_session"


def signin_cookie_name(secure: bool) -> str:
    return "__Host-desk_signin" if secure else "desk_signin"


def set_cookie(response: web.StreamResponse, name: str, value: str, *, secure: bool, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure)


def clear_cookie(response: web.StreamResponse, name: str, *, secure: bool) -> None:
    response.set_cookie(name, "", max_age=0, path="/", httponly=True, samesite="Strict", secure=secure)


# --- response headers ------------------------------------------------------------------------------------

# No script at all, styles only from the desk itself, forms only to the desk, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
