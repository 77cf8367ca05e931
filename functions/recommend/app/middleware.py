"""Pure ASGI middleware: the stage prefix, the body size limit, UTF-8 paths and queries, JSON CORS errors, and the
request's deadline."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from reccore.deadline import request_deadline
from reccore.settings import get_service_settings


def stage_prefix(event: dict[str, Any], path: str) -> str:
    """``/<stage>`` if this API Gateway event's path carries its stage name, else ``""``.

    A deployed named stage sends ``rawPath=/prod/health`` with ``stage=prod``; ``sam local``
    and the ``$default`` stage send ``/health`` (the stage may still say ``prod``:
    aws-sam-cli#5860), so the path itself decides, not the stage field alone.
    """
    context = event.get("requestContext") or {}
    stage = context.get("stage") if isinstance(context, dict) else None
    if not isinstance(stage, str) or not stage or stage == "$default":
        return ""
    prefix = "/" + stage
    return prefix if path == prefix or path.startswith(prefix + "/") else ""


class RootPathMiddleware:
    """Sets ASGI ``root_path`` per request so routing, ``/docs`` and ``/openapi.json`` work behind a stage.

    Under Lambda the event decides (see :func:`stage_prefix`); Starlette then matches routes on the
    path minus ``root_path`` and the docs page fetches ``<root_path>/openapi.json``. Elsewhere
    (uvicorn behind a proxy) ``REC_ROOT_PATH`` applies unless the server already set one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            event = scope.get("aws.event")
            if isinstance(event, dict):
                prefix = stage_prefix(event, scope["path"])
                scope["root_path"] = prefix
                if prefix and scope["path"] == prefix:
                    scope["path"] = prefix + "/"  # /prod alone means the stage's root route
            elif not scope.get("root_path"):
                scope["root_path"] = get_service_settings().root_path.rstrip("/")
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies above ``REC_MAX_BODY_BYTES``: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = get_service_settings().max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # let the server's own parsing decide; streaming still counts
                if declared > limit:
                    await _too_large(limit)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read, so the normal HTTPException handler answers.
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(error_body("payload_too_large", f"request body exceeds {limit} bytes"), status_code=413)


class Utf8RequestMiddleware:
    """422 for a path or query string that is not UTF-8 once percent-decoded.

    Servers decode such bytes with replacement characters (uvicorn) or pass lone surrogates on
    (a Lambda event's JSON), so an id like ``%ED%BF%BF`` would otherwise reach the routes as
    something the caller never sent, or as text no response can encode.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_utf8_request(scope):
            body = error_body("validation_error", "the path and query string must be UTF-8 text")
            await JSONResponse(body, status_code=422)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_utf8_request(scope: Scope) -> bool:
    raw_path = scope.get("raw_path")
    try:
        unquote_to_bytes(scope.get("query_string") or b"").decode("utf-8")
        if isinstance(raw_path, bytes):
            unquote_to_bytes(raw_path).decode("utf-8")
        else:  # Mangum passes the decoded path only
            scope["path"].encode("utf-8")
    except UnicodeError:
        return False
    return True


class DeadlineMiddleware:
    """Starts the request's deadline (``REC_REQUEST_DEADLINE_SECONDS``), shared by all its backend calls."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with request_deadline(get_service_settings().request_deadline_seconds):
            await self.app(scope, receive, send)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but a rejected preflight answers in the shared error shape instead of plain text."""

    def preflight_response(self, request_headers: Any) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode("utf-8", "replace") or "CORS preflight rejected"
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse(error_body("bad_request", reason), status_code=response.status_code, headers=headers)
