"""The rights desk's web app (aiohttp, Jinja2, no JavaScript): list, file, show, lift and look up takedowns,
and export the audit, for people who answer "contact us for removal" mail.

    GET  /                          -> /takedowns once signed in, else /signin
    GET  /signin, POST /signin      the only page before sign-in (and its stylesheet)
    POST /signout
    GET  /takedowns                 list: status, scope, requester, text filters; newest first; paged
    GET  /takedowns/new             the filing form; POST /takedowns files it
    GET  /takedowns/{id}            the takedown, its statement of reasons and its timeline from the audit
    POST /takedowns/{id}/lift       lift it, with a reason
    GET  /lookup?q=URL|article_id   is it withheld, and by what?
    GET  /export?from=&to=          a period's transparency counts; /export/audit.csv and /export/counts.csv

It reads `takedowns` and `takedowns.audit` (read_committed) through `streams.takedowns.ViewFollower` and
writes only through `streams.takedowns.submit`, with records from `streams.stages.takedown.requests`: the
same code as `streams takedown add/lift` and the worker's HTTP API. Security: `streams.desk.security`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from streams import takedowns
from streams.desk import export, forms, security
from streams.settings import Settings
from streams.stages.takedown.requests import SCOPES, FieldError, lift_request, parse_time, request_from_body

log = logging.getLogger("streams.desk")
PAGE_SIZE = 25  # takedowns per page of the list
STATUSES = ("active", "pending", "lifted", "expired", "refused")
Submit = Callable[[Settings, dict[str, Any]], Awaitable[None]]
DESK_KEY: web.AppKey[Desk] = web.AppKey("desk")
SESSION: web.RequestKey[security.Session | None] = web.RequestKey("session")  # None: not signed in
SECURE: web.RequestKey[bool] = web.RequestKey("secure")  # reached over TLS
FORM: web.RequestKey[Any] = web.RequestKey("form")  # a POST's fields, read once by the CSRF check


def _href(url: Any) -> str | None:
    """A link target only for http(s) URLs: a `javascript:` URL in an article would run when clicked."""
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def _when(text: Any) -> str:
    """An RFC 3339 time as people read it, to the second: 2025-08-13 10:00:01 UTC (the exact value stays in the
    CSV export and in the <time> element's datetime)."""
    at = parse_time(text)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else str(text or "")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("streams.desk", "templates"),
        autoescape=True,  # every {{ }} is HTML-escaped, in text and in attributes; nothing is marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["href"] = _href
    env.filters["when"] = _when
    env.globals["scopes"] = SCOPES
    env.globals["statuses"] = STATUSES
    return env


class Desk:
    """The app's state: settings, the followed view, the sessions, and how records are sent."""

    def __init__(
        self,
        settings: Settings,
        *,
        follower: Any = None,
        submit: Submit = takedowns.submit,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        signin_delay: float = security.SIGNIN_DELAY_SECONDS,
    ) -> None:
        self.settings = settings
        self.follower = follower if follower is not None else takedowns.ViewFollower(settings)
        self.submit = submit
        self.clock = clock
        self.signin_delay = signin_delay
        self.sessions = security.Sessions(settings.desk_session_hours * 3600.0)
        self._refusals = asyncio.Lock()
        self.templates = _environment()

    @property
    def view(self) -> takedowns.TakedownView:
        view: takedowns.TakedownView = self.follower.view
        return view

    # -- rendering ----------------------------------------------------------------------------------------------
    def render(
        self, request: web.Request, name: str, status: int = 200, session: security.Session | None = None, **ctx: Any
    ) -> web.Response:
        session = session if session is not None else request.get(SESSION)
        context = {
            "session": session,
            "csrf": session.csrf if session is not None else "",
            "flashes": session.pop_flashes() if session is not None else [],
            "caught_up": self.follower.caught_up.is_set(),
            "path": request.path,  # which navigation link is the current page (a handler may say otherwise)
            **ctx,
        }
        text = self.templates.get_template(name).render(**context)
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    # -- app ----------------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._headers, self._gate], client_max_size=self.settings.takedown_max_request_bytes
        )
        app[DESK_KEY] = self
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/signin", self.signin_page)
        r.add_post("/signin", self.signin)
        r.add_post("/signout", self.signout)
        r.add_static("/static/", path=str(_static_dir()), show_index=False, follow_symlinks=False)
        r.add_get("/takedowns", self.list_page)
        r.add_get("/takedowns/new", self.new_page)
        r.add_post("/takedowns", self.file)
        r.add_get("/takedowns/{takedown_id}", self.show_page)
        r.add_post("/takedowns/{takedown_id}/lift", self.lift)
        r.add_get("/lookup", self.lookup_page)
        r.add_get("/export", self.export_page)
        r.add_get("/export/audit.csv", self.export_audit)
        r.add_get("/export/counts.csv", self.export_counts)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.follower.start()

    async def _stop(self, app: web.Application) -> None:
        await self.follower.stop()

    # -- middlewares --------------------------------------------------------------------------------------------
    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:  # redirects and aiohttp's own errors get the headers too
            self._secure_headers(request, exc)
            raise
        self._secure_headers(request, response)
        return response

    @staticmethod
    def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in security.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"  # signed-in pages stay out of shared caches

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Nothing but the sign-in page (and its stylesheet) without a session; every POST checks its CSRF."""
        public = request.path in ("/signin",) or request.path.startswith("/static/")
        if not security.sign_in_token(self.settings) and not request.path.startswith("/static/"):
            return self.render(request, "off.html", status=503)
        secure = security.is_secure(request, self.settings)
        session = self.sessions.get(request.cookies.get(security.session_cookie_name(secure)))
        request[SESSION] = session
        request[SECURE] = secure
        if public:
            return await handler(request)
        if session is None:
            raise web.HTTPSeeOther("/signin")
        if request.method == "POST":
            form = await request.post()
            if not security.same_secret(str(form.get(security.CSRF_FIELD) or ""), session.csrf):
                return self.render(request, "error.html", status=403, title="Form expired", message=_CSRF_MESSAGE)
            request[FORM] = form
        return await handler(request)

    # -- sign-in ------------------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/takedowns")

    async def signin_page(self, request: web.Request) -> web.StreamResponse:
        if request[SESSION] is not None:
            raise web.HTTPSeeOther("/takedowns")
        return self._signin_form(request)

    def _signin_form(self, request: web.Request, status: int = 200, error: str = "") -> web.Response:
        secure = request[SECURE]
        # One token per browser while it signs in: the browser's own favicon request also lands here, and a new
        # token then would replace the cookie under the form already shown.
        token = request.cookies.get(security.signin_cookie_name(secure)) or ""
        if len(token) < 40:
            token = security.new_secret()
        response = self.render(request, "signin.html", status=status, signin_csrf=token, error=error)
        security.set_cookie(response, security.signin_cookie_name(secure), token, secure=secure, max_age=3600)
        return response

    async def signin(self, request: web.Request) -> web.StreamResponse:
        secure = request[SECURE]
        form = await request.post()
        given_csrf = str(form.get(security.CSRF_FIELD) or "")
        cookie_csrf = request.cookies.get(security.signin_cookie_name(secure), "")
        if not cookie_csrf or not security.same_secret(given_csrf, cookie_csrf):
            return self._signin_form(request, 403, "The sign-in form expired or came from another site: try again.")
        if not security.same_secret(str(form.get("token") or ""), security.sign_in_token(self.settings)):
            log.warning("desk_signin_refused", extra={"event": "desk_signin_refused", "remote": request.remote})
            async with self._refusals:  # one refusal at a time: parallel guesses wait in line, not side by side
                await asyncio.sleep(self.signin_delay)
            return self._signin_form(request, 401, "That is not the desk token. Check it and try again.")
        self.sessions.drop(request.cookies.get(security.session_cookie_name(secure)))
        cookie, _session = self.sessions.create()  # a new id at sign-in: an id planted before it is worthless
        log.info("desk_signed_in", extra={"event": "desk_signed_in", "remote": request.remote})
        response = web.HTTPSeeOther("/takedowns")
        security.set_cookie(response, security.session_cookie_name(secure), cookie, secure=secure, max_age=None)
        security.clear_cookie(response, security.signin_cookie_name(secure), secure=secure)
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        secure = request[SECURE]
        self.sessions.drop(request.cookies.get(security.session_cookie_name(secure)))
        response = web.HTTPSeeOther("/signin")
        security.clear_cookie(response, security.session_cookie_name(secure), secure=secure)
        return response

    # -- the list -----------------------------------------------------------------------------------------------
    async def list_page(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        status = q.get("status", "")
        status = status if status in STATUSES else ""
        scope = q.get("scope", "")
        scope = scope if scope in SCOPES else ""
        requester, text = q.get("requester", "").strip(), q.get("q", "").strip()
        rows = self.view.select(
            status=status or None, scope=scope or None, requester=requester or None, text=text or None, now=self.clock()
        )
        pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
        try:
            page = min(max(1, int(q.get("page", "1"))), pages)
        except ValueError:
            page = 1
        filters = {k: v for k, v in (("status", status), ("scope", scope), ("requester", requester), ("q", text)) if v}

        def page_link(n: int) -> str:
            return "/takedowns?" + urlencode({**filters, "page": n})

        return self.render(
            request,
            "list.html",
            rows=rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
            total=len(rows),
            page=page,
            pages=pages,
            prev_link=page_link(page - 1) if page > 1 else None,
            next_link=page_link(page + 1) if page < pages else None,
            status_filter=status,
            scope=scope,
            requester=requester,
            q=text,
        )

    # -- filing -------------------------------------------------------------------------------------------------
    async def new_page(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "new.html", form={"republish_on_lift": "on"}, errors={})

    async def file(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in request[FORM].items() if k != security.CSRF_FIELD}
        record = request_from_body(forms.request_body(form), now=self.clock())
        if isinstance(record, list):
            errors = forms.errors_by_field(record)
            return self.render(request, "new.html", status=400, path="/takedowns/new", form=form, errors=errors)
        taken = self.view.records.get(str(record["takedown_id"]))
        if taken is not None and (taken.get("scope"), taken.get("value")) != (record["scope"], record["value"]):
            # The registry would refuse it (a takedown's scope and value never change): say so here, beside the id.
            message = (
                f"{record['takedown_id']} is already the id of a takedown of {taken.get('scope')} {taken.get('value')}."
            )
            errors = {"takedown_id": [message]}
            return self.render(request, "new.html", status=400, path="/takedowns/new", form=form, errors=errors)
        try:
            await self.submit(self.settings, record)
        except Exception as exc:  # the broker is away: say so, file nothing, keep what was typed
            log.warning("desk_submit_failed", extra={"event": "desk_submit_failed", "error": str(exc)})
            errors = {"": [f"The takedown could not be sent to Kafka ({type(exc).__name__}); nothing was filed."]}
            return self.render(request, "new.html", status=503, path="/takedowns/new", form=form, errors=errors)
        self.view.remember_submitted(record)
        tid = str(record["takedown_id"])
        log.info("desk_takedown_filed", extra={"event": "desk_takedown_filed", "takedown_id": tid})
        _signed_in(request).flashes.append(f"Takedown {tid} filed. Its timeline fills in as the worker acts on it.")
        raise web.HTTPSeeOther(f"/takedowns/{tid}")

    # -- one takedown -------------------------------------------------------------------------------------------
    def _unknown(self, request: web.Request, tid: str) -> web.Response:
        return self.render(request, "error.html", status=404, title="Unknown takedown", message=f"No takedown {tid}.")

    def _known(self, tid: str) -> bool:
        return tid in self.view.records or bool(self.view.timeline(tid))

    async def show_page(self, request: web.Request, lift_errors: dict[str, list[str]] | None = None) -> web.Response:
        tid = request.match_info["takedown_id"]
        if not self._known(tid):
            return self._unknown(request, tid)
        summary = self.view.summary(tid, self.clock())
        record = summary.record or {}
        return self.render(
            request,
            "takedown.html",
            status=400 if lift_errors else 200,
            s=summary,
            statement=record.get("statement") if isinstance(record.get("statement"), dict) else {},
            record=record,
            timeline=self.view.timeline(tid),
            lift_errors=lift_errors or {},
            lift_form=request.get(FORM) or {},
        )

    async def lift(self, request: web.Request) -> web.StreamResponse:
        tid = request.match_info["takedown_id"]
        current = self.view.records.get(tid)
        if current is None:
            return self._unknown(request, tid)
        form = request[FORM]
        by = str(form.get("lifted_by") or "").strip()
        record = lift_request(current, str(form.get("lift_reason") or ""), by, now=self.clock())
        if isinstance(record, list):
            return await self.show_page(request, lift_errors=forms.errors_by_field(record, forms.LIFT_POINTERS))
        try:
            await self.submit(self.settings, record)
        except Exception as exc:
            log.warning("desk_submit_failed", extra={"event": "desk_submit_failed", "error": str(exc)})
            errors = [FieldError("", f"The lift could not be sent to Kafka ({type(exc).__name__}); nothing changed.")]
            return await self.show_page(request, lift_errors=forms.errors_by_field(errors, forms.LIFT_POINTERS))
        self.view.remember_submitted(record)
        session = _signed_in(request)
        session.name = by
        log.info("desk_takedown_lifted", extra={"event": "desk_takedown_lifted", "takedown_id": tid})
        session.flashes.append(f"Takedown {tid} lifted. What it withheld is re-published unless another covers it.")
        raise web.HTTPSeeOther(f"/takedowns/{tid}")

    # -- look-up ------------------------------------------------------------------------------------------------
    async def lookup_page(self, request: web.Request) -> web.StreamResponse:
        q = request.query.get("q", "").strip()[:4096]
        result = self.view.lookup(q, self.clock()) if q else None
        return self.render(request, "lookup.html", q=q, result=result)

    # -- export -------------------------------------------------------------------------------------------------
    def _period(self, request: web.Request) -> tuple[Any, Any, list[dict[str, Any]]]:
        first, last = export.period(request.query.get("from"), request.query.get("to"), self.clock().date())
        start, end = export.bounds(first, last)
        return first, last, self.view.audit_between(start, end)

    async def export_page(self, request: web.Request) -> web.StreamResponse:
        first, last, entries = self._period(request)
        query = urlencode({"from": first.isoformat(), "to": last.isoformat()})
        return self.render(
            request,
            "export.html",
            first=first,
            last=last,
            entries=len(entries),
            counts=takedowns.transparency_counts(entries),
            query=query,
        )

    def _csv(self, text: str, name: str) -> web.Response:
        response = web.Response(text=text, content_type="text/csv", charset="utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    async def export_audit(self, request: web.Request) -> web.StreamResponse:
        first, last, entries = self._period(request)
        return self._csv(export.audit_csv(self.view, entries), f"takedowns-audit-{first}-{last}.csv")

    async def export_counts(self, request: web.Request) -> web.StreamResponse:
        first, last, entries = self._period(request)
        counts = takedowns.transparency_counts(entries)
        return self._csv(export.counts_csv(counts, first, last), f"takedowns-counts-{first}-{last}.csv")


def _signed_in(request: web.Request) -> security.Session:
    session = request[SESSION]
    assert session is not None, "the gate lets no request without a session reach this handler"
    return session


_CSRF_MESSAGE = "The form expired or came from another site. Go back, reload the page and send it again."


def _static_dir() -> Path:
    return Path(__file__).resolve().parent / "static"


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS with the desk's own certificate when STREAMS_DESK_TLS_CERTFILE is set."""
    if not settings.desk_tls_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.desk_tls_certfile, settings.desk_tls_keyfile or None)
    return context


def run(settings: Settings) -> None:
    """`streams desk`: serve until Ctrl-C or SIGTERM. No access log: nothing a request carries is written."""
    desk = Desk(settings)
    context = ssl_context(settings)
    scheme = "https" if context else "http"
    if not security.sign_in_token(settings):
        log.warning(
            "desk_without_token",
            extra={"event": "desk_without_token", "hint": "set STREAMS_DESK_TOKEN (or STREAMS_TAKEDOWN_TOKEN)"},
        )
    log.info(
        "desk_started",
        extra={"event": "desk_started", "url": f"{scheme}://{settings.desk_host}:{settings.desk_port}/"},
    )
    web.run_app(
        desk.app(),
        host=settings.desk_host,
        port=settings.desk_port,
        ssl_context=context,
        access_log=None,
        print=None,
        shutdown_timeout=5.0,
    )
