"""The one place that maps exceptions to HTTP statuses and the one error JSON shape.

Every error body is ``{"error": code, "message": ..., "details"?: [...]}`` (``schemas.ErrorResponse``).
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logging import logger
from app.schemas.common import MAX_TIMESTAMP
from reccore.errors import (
    ArtifactIntegrityError,
    ConfigError,
    DeadlineError,
    EventLogError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelPartError,
    ModelStoreStalledError,
    NotFoundError,
    RecError,
    UnknownItemError,
    UnknownUserError,
    UserStateBusyError,
    UserStateError,
)

# Most specific first: the first matching entry wins. A 5xx answers with its fixed public message and logs
# the exception's own text: that names the bucket, prefix and endpoint, which a caller cannot act on.
REC_ERRORS: list[tuple[type[RecError], int, str, str | None]] = [
    (ModelNotFoundError, 503, "model_unavailable", "no model has been published yet; retry later"),
    (ModelStoreStalledError, 503, "model_unavailable", "the model store is not answering; retry later"),
    (ModelNotReadyError, 503, "model_unavailable", "the model is still loading; retry in a few seconds"),
    (ModelPartError, 503, "model_unavailable", "part of the model could not be fetched from the store; retry later"),
    (ArtifactIntegrityError, 503, "model_unavailable", "the published model failed its integrity checks; retry later"),
    (ModelLoadError, 503, "model_unavailable", "the model could not be loaded; retry later"),
    (ConfigError, 503, "misconfigured", "the service is misconfigured"),
    (UserStateBusyError, 503, "state_busy", "too many concurrent updates for this user; retry in a moment"),
    (UserStateError, 503, "state_unavailable", "the user state store is unavailable; retry later"),
    (DeadlineError, 503, "deadline_exceeded", "a backend did not answer within the request's deadline; retry"),
    (EventLogError, 503, "event_log_unavailable", "the event log is unavailable; retry later"),
    (UnknownItemError, 404, "unknown_item", None),
    (UnknownUserError, 404, "unknown_user", None),
    (NotFoundError, 404, "not_found", None),
    (RecError, 500, "internal_error", "internal server error"),
]

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

MAX_DETAILS = 20  # a request with 200 bad ids must not produce a 200-entry error body
MAX_MESSAGE_CHARS = 1000


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": printable(message[:MAX_MESSAGE_CHARS])}
    if details is not None:
        body["details"] = details
    return body


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced: a body must always encode."""
    return text.encode("utf-8", "replace").decode("utf-8")


def body_parse_error(cause: BaseException | None) -> str:
    """What was wrong with a request body that FastAPI could not turn into JSON (its 400 names no reason).

    FastAPI answers a ``json.JSONDecodeError`` (a syntax error) with a 422 itself; anything else raised while
    parsing becomes ``HTTPException(400, "There was an error parsing the body")`` with the reason as its cause.
    """
    if isinstance(cause, UnicodeDecodeError):
        encoding = "UTF-8" if cause.encoding.replace("-", "").lower() == "utf8" else cause.encoding
        bad = cause.object[cause.start : cause.start + 1].hex()
        return f"the request body is not valid {encoding} text: byte 0x{bad} at offset {cause.start} ({cause.reason})"
    if isinstance(cause, RecursionError):
        return "the request body's JSON is nested too deeply (a little under 1,000 levels of arrays and objects)"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return f"the request body has a JSON number with more than {sys.get_int_max_str_digits()} digits"
    return "the request body could not be parsed as JSON"


def rec_error_status(exc: RecError) -> tuple[int, str, str]:
    """Status, error code and public message of a core exception."""
    for kind, status, code, public in REC_ERRORS:
        if isinstance(exc, kind):
            return status, code, public if public is not None else str(exc)
    return 500, "internal_error", "internal server error"  # unreachable: RecError is the last entry


async def handle_rec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecError)
    status, code, message = rec_error_status(exc)
    if status >= 500:
        logger.error("request failed", extra={"error": code, "reason": str(exc), "kind": type(exc).__name__})
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's "There was an error parsing the body"
        message = body_parse_error(exc.__cause__)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path[:200]}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = [
        # "input" and "ctx" can be huge or not JSON-serialisable: keep what a client can act on.
        {
            "loc": [printable(str(part)) for part in err.get("loc", ())],
            "msg": printable(friendly(err)),
            "type": str(err.get("type", "")),
        }
        for err in errors[:MAX_DETAILS]
    ]
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return JSONResponse(error_body("validation_error", message, details), status_code=422)


def friendly(err: Any) -> str:
    """Pydantic's message, said so that a client knows what to change where it is terse."""
    kind, loc, msg = str(err.get("type", "")), tuple(err.get("loc", ())), str(err.get("msg", ""))
    if kind == "json_invalid":
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        reason = (err.get("ctx") or {}).get("error")
        return f"the body is not valid JSON{at}" + (f" ({reason})" if reason else "")
    if loc == ("body",) and kind in ("model_attributes_type", "dict_type"):
        return "send a JSON object with the header content-type: application/json"
    value = err.get("input")
    timestamp = loc and loc[-1] == "timestamp" and kind == "less_than_equal" and isinstance(value, int | float)
    if timestamp and value / 1000 <= MAX_TIMESTAMP:
        return f"{msg}: use unix seconds ({value} looks like milliseconds)"
    return msg


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: a JSON 500 (Starlette re-raises afterwards, so the traceback is still logged)."""
    logger.exception("unhandled error", extra={"path": request.url.path[:200]})
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RecError, handle_rec_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(Exception, handle_unexpected)
