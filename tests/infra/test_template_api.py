"""The template's HTTP API: a route for each path the app serves and for each API Gateway event in events/,
CORS, throttling and the stage."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.conftest import ROOT

EVENTS = ROOT / "events"


def _route_pattern(path: str) -> re.Pattern[str]:
    """``/items/{item_id}/similar`` -> a regex matching ``/items/i000001/similar``."""
    parts = re.split(r"(\{[^}/]+\})", path)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def test_every_event_file_has_a_route_on_the_recommend_function(template: dict[str, Any]) -> None:
    events = template["Resources"]["RecommendFunction"]["Properties"]["Events"]
    routes = [
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values() if e["Type"] == "HttpApi"
    ]
    api_events = [p for p in sorted(EVENTS.glob("*.json")) if "requestContext" in json.loads(p.read_text())]
    assert len(api_events) >= 5, "expected the API Gateway events in events/"
    for path in api_events:
        event = json.loads(path.read_text())
        assert event["version"] == "2.0", path.name
        method = event["requestContext"]["http"]["method"]
        raw_path = event["rawPath"]
        stage = event["requestContext"]["stage"]
        if stage != "$default":  # a named stage prefixes the path Lambda sees
            assert raw_path.startswith(f"/{stage}/"), path.name
            raw_path = raw_path[len(stage) + 1 :]
        matches = [r for r in routes if r[0] == method and _route_pattern(r[1]).match(raw_path)]
        assert matches, f"{path.name}: no HttpApi event on RecommendFunction for {method} {raw_path}"
        assert event["routeKey"] in {f"{m} {p}" for m, p in matches}, f"{path.name}: routeKey {event['routeKey']!r}"


def test_every_route_of_the_api_is_mapped(template: dict[str, Any]) -> None:
    events = template["Resources"]["RecommendFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    expected = {
        ("GET", "/"),
        ("GET", "/health"),
        ("POST", "/recommend"),
        ("GET", "/items"),
        ("GET", "/items/map"),
        ("GET", "/items/{item_id}"),
        ("GET", "/items/{item_id}/similar"),
        ("GET", "/categories"),
        ("GET", "/experiment"),
        ("GET", "/users"),
        ("GET", "/users/{user_id}"),
        ("GET", "/docs"),
        ("GET", "/docs/{proxy+}"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("POST", "/events"),
    }
    assert routes == expected
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events)


def test_api_is_cors_restricted_throttled_and_stage_aware(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["CorsConfiguration"]["AllowOrigins"] == [{"Ref": "AllowedOrigin"}]
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert api["StageName"] == {"Ref": "StageName"}
    env = template["Resources"]["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    # The app reads the stage prefix from each event (see events/health_named_stage.json), not from env.
    assert "REC_ROOT_PATH" not in env
    assert env["REC_MODEL_URI"]["Fn::Sub"][0] == "s3://${Bucket}/${ModelPrefix}"
    assert set(template["Outputs"]) >= {"ApiUrl", "ArtifactsBucket", "RecommendFunctionName", "PipelineFunctionName"}
