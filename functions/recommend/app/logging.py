"""Structured JSON logs: one logger for the service, and one line per request.

Each request line carries route, method, status, latency_ms, model_version and
first_load (true for the first request answered with this environment's first model: its
process start, what Lambda calls a cold start; "cold start" elsewhere means new users and items).
The line format (``reccore.logs``) is shared with the pipeline's Lambda.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reccore.logs import json_logger

SERVICE = "recommend"
logger = json_logger(SERVICE)


class RequestLogMiddleware:
    """Pure ASGI (not ``BaseHTTPMiddleware``): it adds microseconds, not a task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500  # if the app dies before answering, the server error handler answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            context = scope.get("aws.context")
            logger.info(
                "request",
                extra={
                    "route": getattr(route, "path", None) or scope.get("path", ""),
                    "method": scope.get("method", ""),
                    "status": status,
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3),
                    "model_version": state.get("model_version"),
                    "first_load": state.get("first_load", False),
                    "request_id": getattr(context, "aws_request_id", None),
                },
            )
