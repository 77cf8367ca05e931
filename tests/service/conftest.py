"""Fixtures of the service tests: API Gateway (payload v2) events and the Lambda handler."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reccore.model import Model

Event = dict[str, Any]


def served_model(client: Any) -> Model:
    """The model the app serves, once ``/health`` says one is loaded."""
    from app.registry import registry

    assert client.get("/health").status_code == 200
    model = registry.model
    assert model is not None
    return model


def recommend_ok(client: Any, body: Any) -> dict[str, Any]:
    """``POST /recommend`` that must succeed, its body held to the response schema."""
    from app.schemas.recommend import RecommendResponse

    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    RecommendResponse.model_validate(response.json())  # the hot route builds its JSON by hand: hold it to the schema
    return response.json()


class FakeLambdaContext:
    function_name = "RecommendFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RecommendFunction"
    aws_request_id = "test-request"


def make_event(
    method: str,
    path: str,
    *,
    query: str = "",
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    stage: str = "$default",
    stage_in_path: bool = False,
) -> Event:
    """An HTTP API payload v2 event; ``stage_in_path`` gives the deployed named-stage shape (``/prod/...``)."""
    raw_path = f"/{stage}{path}" if stage_in_path else path
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event: Event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "req",
            "routeKey": "$default",
            "stage": stage,
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1704067200000,
        },
        "isBase64Encoded": False,
    }
    if text is not None:
        event["body"] = text
        event["headers"].setdefault("content-type", "application/json")
    return event


def with_stage_prefix(event: Event, stage: str = "prod") -> Event:
    """The same request as a deployed named stage sends it: the stage leads the path."""
    copy = json.loads(json.dumps(event))
    path = copy.get("rawPath") or copy["requestContext"]["http"]["path"]
    copy["rawPath"] = f"/{stage}{path}"
    copy["requestContext"]["http"]["path"] = f"/{stage}{path}"
    copy["requestContext"]["stage"] = stage
    return copy


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


@pytest.fixture()
def invoke(client: Any) -> Callable[[Event], tuple[int, Any, dict[str, Any]]]:
    """Feed an event to ``app.handler.handler`` (the service already points at the published model)."""
    from app.handler import handler

    def call(event: Event) -> tuple[int, Any, dict[str, Any]]:
        response = handler(event, FakeLambdaContext())  # type: ignore[arg-type]
        content_type = response.get("headers", {}).get("content-type", "")
        body = response_json(response) if "json" in content_type else response.get("body")
        return response["statusCode"], body, response

    return call


@pytest.fixture()
def event() -> Callable[..., Event]:
    """``make_event`` as a fixture: ``event("GET", "/health", stage="prod", stage_in_path=True)``."""
    return make_event


@pytest.fixture()
def staged() -> Callable[..., Event]:
    """``with_stage_prefix`` as a fixture."""
    return with_stage_prefix


@pytest.fixture()
def log_lines() -> Iterator[io.StringIO]:
    """The service's JSON log lines written during the test."""
    from app.logging import logger

    handler = next(h for h in logger.handlers if getattr(h, "_rec_json", False))
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
