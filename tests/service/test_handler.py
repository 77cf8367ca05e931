"""The Lambda entry point: Mangum fed API Gateway HTTP API (payload v2) events, with and without a stage prefix."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.registry import registry
from app.schemas.catalogue import Health, SimilarResponse
from app.schemas.events import EventsResponse
from app.schemas.recommend import RecommendResponse
from reccore.settings import get_service_settings

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
# Every API Gateway event in events/ (written for `sam local invoke -e`), by file name; the pipeline's are not.
EVENT_FILES = {
    path.name: event
    for path in sorted(EVENTS_DIR.glob("*.json"))
    if isinstance(event := json.loads(path.read_text()), dict) and "requestContext" in event
}


def _expect(name: str, event: dict[str, Any], status: int, body: Any) -> None:
    """Per-file expectations, computed from the model the event hits (its ids may or may not be in it)."""
    model = registry.model
    assert model is not None
    request = json.loads(event["body"]) if event.get("body") else {}
    if name.startswith("health"):
        assert status == 200 and Health.model_validate(body).model_version == model.version
    elif name.startswith("recommend_") and name != "recommend_bad.json":
        assert status == 200, body
        response = RecommendResponse.model_validate(body)
        known_user = request.get("user_id") in model.user_index
        known_recent = [i for i in request.get("recent_items") or [] if i in model.item_index]
        expected = "personalized" if known_user else "fold_in" if known_recent else "popular"
        assert response.strategy == expected
        assert response.unknown_items == [i for i in request.get("recent_items") or [] if i not in model.item_index]
        assert len(response.items) == request.get("k", 10)
    elif name == "similar_items.json":
        item_id = event["rawPath"].rstrip("/").split("/")[-2]
        if item_id in model.item_index:
            assert status == 200 and SimilarResponse.model_validate(body).item_id == item_id
        else:
            assert status == 404 and body["error"] == "unknown_item"
    elif name == "events_post.json":
        assert status == 200 and EventsResponse.model_validate(body).accepted == len(request["events"])
    elif name.startswith("bad_request"):
        assert status in (400, 404, 405, 413, 422) and body["error"] and body["message"]
    else:  # an event this test does not know yet: it must still get a deliberate answer
        assert status < 500
        if status >= 400:
            assert body["error"] and body["message"]


@pytest.mark.skipif(not EVENT_FILES, reason="events/*.json not written yet")
@pytest.mark.parametrize("name", sorted(EVENT_FILES) or ["none"])
def test_every_event_file(name: str, invoke: Callable[..., Any], staged: Callable[..., Any]) -> None:
    event = EVENT_FILES[name]
    status, body, _ = invoke(event)
    _expect(name, event, status, body)
    # The same request as a deployed named stage sends it (/prod/...), unless the file already is one.
    if event["requestContext"].get("stage", "$default") in ("$default", None) or not event["rawPath"].startswith(
        "/" + event["requestContext"]["stage"]
    ):
        status, body, _ = invoke(staged(event, "prod"))
        _expect(name, event, status, body)


@pytest.mark.parametrize(
    ("stage", "stage_in_path"),
    [("$default", False), ("prod", False), ("prod", True), ("v1-beta", True)],
    ids=["default-stage", "sam-local-named-stage", "deployed-named-stage", "other-stage"],
)
def test_routes_resolve_in_every_event_shape(
    invoke: Callable[..., Any], event: Callable[..., Any], stage: str, stage_in_path: bool
) -> None:
    status, body, _ = invoke(event("GET", "/health", stage=stage, stage_in_path=stage_in_path))
    assert status == 200 and body["status"] == "ok"
    status, body, _ = invoke(event("POST", "/recommend", body={"k": 3}, stage=stage, stage_in_path=stage_in_path))
    assert status == 200 and len(body["items"]) == 3
    status, body, _ = invoke(event("GET", "/items", query="limit=2&q=a", stage=stage, stage_in_path=stage_in_path))
    assert status == 200 and body["limit"] == 2


def test_stage_root_is_the_root_route(invoke: Callable[..., Any], event: Callable[..., Any]) -> None:
    status, body, _ = invoke(event("GET", "", stage="prod", stage_in_path=True))  # rawPath "/prod"
    assert status == 200 and body["status"] == "ok"


def test_openapi_and_docs_behind_a_stage_prefix(invoke: Callable[..., Any], event: Callable[..., Any]) -> None:
    status, spec, _ = invoke(event("GET", "/openapi.json", stage="prod", stage_in_path=True))
    assert status == 200
    assert "/recommend" in spec["paths"]
    assert spec.get("servers") == [{"url": "/prod"}]  # Swagger's "try it out" then calls /prod/...
    status, html, response = invoke(event("GET", "/docs", stage="prod", stage_in_path=True))
    assert status == 200 and "text/html" in response["headers"]["content-type"]
    assert "'/prod/openapi.json'" in html or '"/prod/openapi.json"' in html


def test_openapi_and_docs_without_a_stage_prefix(invoke: Callable[..., Any], event: Callable[..., Any]) -> None:
    for stage in ("$default", "prod"):  # sam local sends stage "prod" with an unprefixed path (aws-sam-cli#5860)
        status, spec, _ = invoke(event("GET", "/openapi.json", stage=stage))
        assert status == 200 and "servers" not in spec
        status, html, _ = invoke(event("GET", "/docs", stage=stage))
        assert status == 200 and "/prod/openapi.json" not in html and "/openapi.json" in html


def test_errors_through_the_handler_are_json(invoke: Callable[..., Any], event: Callable[..., Any]) -> None:
    status, body, _ = invoke(event("POST", "/recommend", body={"k": 0}, stage="prod", stage_in_path=True))
    assert status == 422 and body["error"] == "validation_error"
    status, body, _ = invoke(event("GET", "/prod-nothing", stage="prod", stage_in_path=True))
    assert status == 404 and body["error"] == "not_found"
    status, body, _ = invoke(event("POST", "/recommend", raw_body="{not json", stage="prod", stage_in_path=True))
    assert status == 422
    status, body, _ = invoke(event("POST", "/recommend", raw_body="x" * (get_service_settings().max_body_bytes + 1)))
    assert status == 413 and body["error"] == "payload_too_large"


def test_configured_root_path_does_not_break_either_shape(
    configure_service: Callable[..., None], published_model: Any, invoke: Callable[..., Any], event: Callable[..., Any]
) -> None:
    configure_service(published_model.uri, REC_ROOT_PATH="/prod")
    for stage_in_path in (False, True):
        status, _, _ = invoke(event("GET", "/health", stage="prod", stage_in_path=stage_in_path))
        assert status == 200
