"""The one place that maps exceptions to HTTP statuses and the one error JSON shape.

Every error body is ``{"error": code, "message": ..., "details"?: [...]}`` (``schemas.ErrorResponse``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logging import logger
from reccore.errors import (
    ArtifactIntegrityError,
    ConfigError,
    EventLogError,
    ModelLoadError,
    ModelNotFoundError,
    NotFoundError,
    RecError,
    UnknownItemError,
    UnknownUserError,
    UserStateError,
)

# Most specific first: the first matching entry wins.
REC_ERRORS: list[tuple[type[RecError], int, str]] = [
    (ModelNotFoundError, 503, "model_unavailable"),
    (ArtifactIntegrityError, 503, "model_unavailable"),
    (ModelLoadError, 503, "model_unavailable"),
    (ConfigError, 503, "misconfigured"),
    (UserStateError, 503, "state_unavailable"),
    (EventLogError, 503, "event_log_unavailable"),
    (UnknownItemError, 404, "unknown_item"),
    (UnknownUserError, 404, "unknown_user"),
    (NotFoundError, 404, "not_found"),
    (RecError, 500, "internal_error"),
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
    body: dict[str, Any] = {"error": code, "message": message[:MAX_MESSAGE_CHARS]}
    if details is not None:
        body["details"] = details
    return body


def rec_error_status(exc: RecError) -> tuple[int, str]:
    """Status and error code of a core exception."""
    for kind, status, code in REC_ERRORS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"  # unreachable: RecError is the last entry


async def handle_rec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecError)
    status, code = rec_error_status(exc)
    if status >= 500:
        logger.error("request failed", extra={"error": code, "reason": str(exc)})
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(error_body(code, str(exc)), status_code=status, headers=headers)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path[:200]}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = [
        # "input" and "ctx" can be huge or not JSON-serialisable: keep what a client can act on.
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors[:MAX_DETAILS]
    ]
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return JSONResponse(error_body("validation_error", message, details), status_code=422)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: a JSON 500 (Starlette re-raises afterwards, so the traceback is still logged)."""
    logger.exception("unhandled error", extra={"path": request.url.path[:200]})
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RecError, handle_rec_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(Exception, handle_unexpected)
