"""The takedown HTTP API on the worker's web server, for the rights desk's scripts: file, lift, look up.

    POST /takedowns             {"scope", "value", "reason", "requested_by", ...}  -> 201 the stored record
    POST /takedowns/{id}/lift   {"reason", "by"}                                   -> 200 the lift record
    GET  /takedowns/{id}                                                           -> 200 status, record, timeline

Every route wants `Authorization: Bearer <STREAMS_TAKEDOWN_TOKEN>`, compared in constant time; the token is
never logged (the web server keeps no access log) nor exported. No token configured: 503, saying so. Errors
are JSON with a machine-readable `error`, a sentence and, for a bad body, the JSON pointer of each field at
fault: 400 (invalid JSON or request), 401 (no token), 403 (wrong token), 404 (unknown takedown), 409 (already
lifted), 413 (body over STREAMS_TAKEDOWN_MAX_REQUEST_BYTES). Requests go through the same code as
`streams takedown add/lift` (`streams.stages.takedown.requests`, `streams.takedowns.submit`).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from mode import Service

from streams import takedowns
from streams.stages.takedown.requests import FieldError, lift_request, request_from_body

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger("streams.takedown_api")


def _error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


def _field_errors(errors: list[FieldError]) -> web.Response:
    items = [{"pointer": e.pointer, "message": e.message, "keyword": e.keyword} for e in errors]
    return _error(400, "invalid_request", errors[0].message, pointer=errors[0].pointer, errors=items)


class TakedownApi(Service):
    """The three routes, a view of the takedown topics kept current, and the producer they share."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = pipeline
        self.settings = pipeline.settings
        self.follower = takedowns.ViewFollower(pipeline.settings)

    def register(self) -> None:
        self.p.add_route("POST", "/takedowns", self.create)
        self.p.add_route("POST", "/takedowns/{takedown_id}/lift", self.lift)
        self.p.add_route("GET", "/takedowns/{takedown_id}", self.show)
        self.p.add_service(self)

    async def on_start(self) -> None:
        if self.settings.takedown_token:
            self.follower.start()

    async def on_stop(self) -> None:
        await self.follower.stop()

    # -- the checks every route makes ---------------------------------------------------------------------------
    def _refuse(self, request: web.Request) -> web.Response | None:
        token = self.settings.takedown_token
        if not token:
            return _error(
                503,
                "takedown_api_disabled",
                "The takedown API is off on this worker: set STREAMS_TAKEDOWN_TOKEN to turn it on.",
            )
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            response = _error(401, "unauthorized", "Send the takedown token: Authorization: Bearer <token>.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="takedowns"'
            return response
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _error(403, "forbidden", "The token is not the takedown token.")
        return None

    async def _body(self, request: web.Request) -> Any:
        limit = self.settings.takedown_max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _Stop(_error(413, "too_large", f"The body is over {limit} bytes.", limit=limit))
        try:
            raw = await request.content.read(limit + 1)
        except Exception as exc:
            raise _Stop(_error(400, "unreadable_body", f"The body could not be read: {exc}")) from exc
        if len(raw) > limit:
            raise _Stop(_error(413, "too_large", f"The body is over {limit} bytes.", limit=limit))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Stop(_error(400, "invalid_json", f"The body is not JSON: {exc.msg}.", pointer="")) from exc

    # -- the routes ---------------------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            body = await self._body(request)
        except _Stop as stop:
            return stop.response
        record = request_from_body(body, now=datetime.now(UTC))
        if isinstance(record, list):
            return _field_errors(record)
        await takedowns.submit(self.settings, record)
        self.follower.view.remember_submitted(record)
        return web.json_response(record, status=201)

    async def lift(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            body = await self._body(request)
        except _Stop as stop:
            return stop.response
        if not isinstance(body, dict):
            return _field_errors([FieldError("", "The body must be a JSON object with reason and by.", "type")])
        tid = request.match_info["takedown_id"]
        current = self.follower.view.records.get(tid)
        if current is None:
            return _error(404, "unknown_takedown", f"No takedown {tid} is known.", takedown_id=tid)
        if current.get("action") == "lift":
            return _error(409, "already_lifted", f"Takedown {tid} was lifted at {current.get('lifted_at')}.")
        record = lift_request(current, str(body.get("reason") or ""), str(body.get("by") or ""), now=datetime.now(UTC))
        if isinstance(record, list):
            return _field_errors(record)
        await takedowns.submit(self.settings, record)
        self.follower.view.remember_submitted(record)
        return web.json_response(record, status=200)

    async def show(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        tid = request.match_info["takedown_id"]
        view = self.follower.view
        if tid not in view.records and not view.timeline(tid):
            return _error(404, "unknown_takedown", f"No takedown {tid} is known.", takedown_id=tid)
        summary = asdict(view.summary(tid))
        return web.json_response({**summary, "timeline": view.timeline(tid)})


class _Stop(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response
