"""Structured request logs, and odd inputs: no route answers 500, every error has the one JSON shape."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import app


def test_one_json_log_line_per_request(client: Any, log_lines: io.StringIO) -> None:
    client.get("/health")
    client.post("/recommend", json={"k": 2})
    client.get("/items/nope")
    requests = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    requests = [r for r in requests if r["message"] == "request"]
    assert [(r["route"], r["method"], r["status"]) for r in requests] == [
        ("/health", "GET", 200),
        ("/recommend", "POST", 200),
        ("/items/{item_id}", "GET", 404),
    ]
    assert requests[0]["first_load"] is True and requests[1]["first_load"] is False
    assert all(r["model_version"] and r["latency_ms"] >= 0 and r["service"] == "recommend" for r in requests)


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None,
        True,
        rng.randint(-(2**70), 2**70),
        rng.choice([0, 1, -1, 100, 101, 10**20]),
        rng.uniform(-1e300, 1e300),
        rng.choice(["", "u0001", "i0001", "🙂" * 50, "\x00", "a" * 300, "\ud7ff", "NaN", "-1"]),
    ]
    if depth < 3:
        choices.append([_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))])
        choices.append({rng.choice(FIELDS): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))})
    return rng.choice(choices)


FIELDS = [
    "user_id",
    "k",
    "exclude_seen",
    "recent_items",
    "include_categories",
    "exclude_categories",
    "exclude_items",
    "extra",
]


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) <= {"error", "message", "details"} and body["error"] and body["message"]


def test_recommend_survives_random_bodies(client: Any) -> None:
    rng = random.Random(1234)
    unsafe = TestClient(app, raise_server_exceptions=False)
    for _ in range(300):
        body = {rng.choice(FIELDS): _random_json(rng) for _ in range(rng.randint(0, 5))}
        if rng.random() < 0.2:
            body = _random_json(rng)
        _check(unsafe.post("/recommend", json=body))


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'"k"', "application/json"),
        (b"{", "application/json"),
        (b'{"k": NaN}', "application/json"),
        (b'{"k": 1e999}', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'{"k": 3}', "text/plain"),
        (b"k=3", "application/x-www-form-urlencoded"),
        (b'{"k": 3}', "application/json; charset=latin-1"),
        (b'{"recent_items": [' + b'"i0001",' * 199 + b'"i0002"]}', "application/json"),
    ],
)
def test_recommend_survives_odd_payloads(client: Any, content: bytes, content_type: str) -> None:
    unsafe = TestClient(app, raise_server_exceptions=False)
    _check(unsafe.post("/recommend", content=content, headers={"content-type": content_type}))


@pytest.mark.parametrize(
    "path",
    [
        "/items?limit=1e3",
        "/items?offset=99999999999999999999999",
        "/items?q=%00%01",
        "/items?q=(((",
        "/items?category=%F0%9F%99%82",
        "/items/map?sample=-1",
        "/items/map?sample=1.5",
        "/items/%F0%9F%99%82/similar?k=3",
        "/items/x/similar?k=null",
        "/users?q=.*",
        "/users?limit=&offset=",
        "/users/%20",
        "/users/u0001?limit=1e2",
        "/categories?x=1",
        "/health?verbose=%ZZ",
    ],
)
def test_get_routes_survive_odd_parameters(client: Any, path: str) -> None:
    unsafe = TestClient(app, raise_server_exceptions=False)
    _check(unsafe.get(path))
