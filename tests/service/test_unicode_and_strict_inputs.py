"""Ids that are not valid Unicode get a 422 everywhere, every response encodes, and JSON types are strict.

A body that is not JSON text at all (not UTF-8, nested too deeply) is a 400 that says which.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

# The exact body of issue 9's curl: JSON's escape of a lone UTF-16 surrogate.
ISSUE_BODY = '{"recent_items":["\\udfff"]}'
SURROGATE_BODIES = [
    ISSUE_BODY,
    '{"user_id":"\\udfff"}',
    '{"recent_items":[{"item_id":"\\udfff","event":"view"}]}',
    '{"user_id":"u\\ud800x"}',
    '{"exclude_items":["i000001","\\udfff"]}',
    '{"include_categories":["\\udc00"]}',
    '{"exclude_categories":["\\ud83d"]}',
    '{"\\udfff":1}',  # an unknown key is echoed in the error's loc
]
# Percent-encoded bytes that are not UTF-8 (a CESU-8 surrogate, a lone continuation byte, Latin-1).
BAD_PATHS = [
    "/items/%ED%BF%BF",
    "/items/%ED%BF%BF/similar",
    "/users/%80",
    "/items?q=%ED%BF%BF",
    "/items?category=%E9t%E9",
    "/users?q=%ED%A0%80",
    "/items/map?ids=%FF",
]


def _assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code and body["message"]
    assert set(body) <= {"error", "message", "details"}


@pytest.mark.parametrize("raw", SURROGATE_BODIES)
def test_lone_surrogates_in_the_body_are_422(client: Any, raw: str) -> None:
    response = client.post("/recommend", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    _assert_error_shape(response.json(), "validation_error")
    response.content.decode("utf-8")  # the body itself is valid UTF-8


@pytest.mark.parametrize("field", ["user_id", "item_id", "event_id"])
def test_lone_surrogates_in_events_are_422(client: Any, field: str) -> None:
    event = {"user_id": "u0000001", "item_id": "i000001", "event": "view", "event_id": "e-1"}
    raw = json.dumps({"events": [{**event, field: "PLACEHOLDER"}]}).replace("PLACEHOLDER", "\\udfff")
    response = client.post("/events", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["loc"] == ["body", "events", "0", field]


def test_the_connection_still_serves_after_a_rejected_id(client: Any) -> None:
    client.post("/recommend", content=ISSUE_BODY.encode(), headers={"content-type": "application/json"})
    assert client.post("/recommend", json={"recent_items": ["i000001"], "k": 2}).status_code == 200


def test_valid_non_ascii_ids_are_still_accepted(client: Any) -> None:
    response = client.post("/recommend", json={"recent_items": ["ünïcødé-😀", "i000001"], "k": 3})
    assert response.status_code == 200
    assert response.json()["unknown_items"] == ["ünïcødé-😀"]
    assert client.get("/items/ünïcødé-😀").status_code == 404  # an unknown id, not a bad one


@pytest.mark.parametrize("path", BAD_PATHS)
def test_paths_and_queries_that_are_not_utf8_are_422(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    _assert_error_shape(response.json(), "validation_error")


def test_the_mangum_handler_rejects_the_issue_body(
    invoke: Callable[[dict[str, Any]], tuple[int, Any, dict[str, Any]]], event: Callable[..., dict[str, Any]]
) -> None:
    status, body, _ = invoke(event("POST", "/recommend", raw_body=ISSUE_BODY))
    assert status == 422
    _assert_error_shape(body, "validation_error")
    assert body["details"][0]["loc"] == ["body", "recent_items", "0", "id"]  # a bare id (not an object) entry


def test_the_mangum_handler_rejects_a_surrogate_in_the_path(
    invoke: Callable[[dict[str, Any]], tuple[int, Any, dict[str, Any]]], event: Callable[..., dict[str, Any]]
) -> None:
    status, body, _ = invoke(event("GET", "/items/\udfff"))
    assert status == 422
    _assert_error_shape(body, "validation_error")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": "5"}, "k"),
        ({"k": 5.5}, "k"),
        ({"k": True}, "k"),
        ({"exclude_seen": 0}, "exclude_seen"),
        ({"exclude_seen": "true"}, "exclude_seen"),
        ({"user_id": 7}, "user_id"),
        ({"recent_items": "i000001"}, "recent_items"),
    ],
)
def test_json_types_are_strict(client: Any, body: dict[str, Any], field: str) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["loc"] == ["body", field]


def test_an_integral_number_is_a_json_integer(client: Any) -> None:
    response = client.post("/recommend", json={"k": 4.0})
    assert response.status_code == 200 and len(response.json()["items"]) == 4


def test_a_response_with_unencodable_text_still_encodes() -> None:
    from app.errors import error_body
    from app.responses import json_response

    response = json_response({"unknown_items": ["\udfff"]})
    assert response.body == b'{"unknown_items":["?"]}'
    assert error_body("x", "no route GET /\udfff")["message"] == "no route GET /?"


# Bodies FastAPI cannot parse into JSON at all (issue 20): a 400 in the error shape that says what was wrong.
# Each is valid JSON syntax around the one fault, so nothing else could be blamed.
EVENT = b'{"user_id":"u0000001","item_id":"i000001","event":"view"}'
UNPARSEABLE_BODIES = {
    "/recommend": {
        "invalid_utf8": (b'{"recent_items":["i\xff\xfe"]}', "not valid UTF-8 text: byte 0xff at offset 19"),
        "latin1": (b'{"user_id":"caf\xe9"}', "not valid UTF-8 text: byte 0xe9 at offset 15"),
        "deep_nesting": (b'{"recent_items":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
        "huge_integer": (b'{"k":' + b"9" * 5_000 + b"}", "JSON number with more than 4300 digits"),
    },
    "/events": {
        "invalid_utf8": (b'{"events":[' + EVENT.replace(b"i000001", b"i\xc3(") + b"]}", "byte 0xc3 at offset"),
        "deep_nesting": (b'{"events":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
        "huge_integer": (b'{"events":[' + EVENT[:-1] + b',"timestamp":' + b"1" * 5_000 + b"}]}", "4300 digits"),
    },
}
UNPARSEABLE = [(path, name, *case) for path, cases in UNPARSEABLE_BODIES.items() for name, case in cases.items()]


@pytest.mark.parametrize(("path", "name", "raw", "reason"), UNPARSEABLE, ids=[f"{p}-{n}" for p, n, *_ in UNPARSEABLE])
def test_a_body_that_is_not_json_text_is_a_400_that_says_why(
    client: Any, log_lines: Any, path: str, name: str, raw: bytes, reason: str
) -> None:
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    _assert_error_shape(body, "bad_request")
    assert reason in body["message"], body
    assert body["message"].startswith("the request body")
    assert "unhandled error" not in log_lines.getvalue()  # answered, not a 500 in disguise
    assert client.post("/recommend", json={"k": 2}).status_code == 200  # and the app still serves


def test_nesting_within_the_limit_is_parsed_and_validated(client: Any) -> None:
    """The depth limit is the parser's (a little under 1,000): 500 levels parse, then fail validation as a 422."""
    raw = b'{"recent_items":[' + b"[" * 500 + b"]" * 500 + b"]}"
    response = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["loc"][:3] == ["body", "recent_items", "0"]


def test_a_json_syntax_error_is_still_a_422(client: Any) -> None:
    response = client.post("/events", content=b'{"events":[', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["details"][0]["type"] == "json_invalid"


def test_the_mangum_handler_answers_an_invalid_utf8_body_with_a_400(
    invoke: Callable[[dict[str, Any]], tuple[int, Any, dict[str, Any]]], event: Callable[..., dict[str, Any]]
) -> None:
    """API Gateway delivers bytes that are not UTF-8 base64-encoded; they reach the app's parser unchanged."""
    request = event("POST", "/recommend", raw_body="")
    request["body"] = base64.b64encode(b'{"user_id":"\xff"}').decode()
    request["isBase64Encoded"] = True
    status, body, _ = invoke(request)
    assert status == 400
    _assert_error_shape(body, "bad_request")
    assert "not valid UTF-8" in body["message"]


def test_common_mistakes_get_messages_that_say_what_to_change(client: Any) -> None:
    # No content-type: FastAPI sees no JSON object at all.
    response = client.post("/recommend", content=b'{"k": 3}', headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert "content-type: application/json" in response.json()["message"]
    # Malformed JSON: the location is a character offset, said as one.
    response = client.post("/recommend", content=b'{"k": 3,}', headers={"content-type": "application/json"})
    assert response.status_code == 422 and "not valid JSON at character" in response.json()["message"]
    # Milliseconds where seconds are expected.
    event = {"user_id": "u1", "item_id": "i000001", "event": "view", "timestamp": 1764100000000}
    response = client.post("/events", json={"events": [event]})
    assert response.status_code == 422 and "use unix seconds" in response.json()["message"]
