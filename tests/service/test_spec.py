"""The published spec states the request bounds and rules the runtime enforces (issue 20)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from app.schemas.common import MAX_K, MAX_TIMESTAMP
from app.schemas.events import EventsRequest
from app.schemas.recommend import TIMESTAMPS_ALL_OR_NONE, RecommendRequest

# Every numeric field of a request body, with the bounds its spec must publish.
REQUEST_NUMBERS = [
    ("EventIn", "timestamp", {"minimum": 0, "maximum": MAX_TIMESTAMP}),
    ("EventIn", "value", {"exclusiveMinimum": 0, "maximum": 1e6}),
    ("RecentItem", "timestamp", {"minimum": 0, "maximum": MAX_TIMESTAMP}),
    ("RecentItem", "value", {"exclusiveMinimum": 0, "maximum": 1e6}),
    ("RecommendRequest", "k", {"minimum": 1, "maximum": MAX_K}),
    ("RecommendRequest", "diversity", {"minimum": 0, "maximum": 1}),
]
NUMBER_IDS = [f"{schema}.{field}" for schema, field, _ in REQUEST_NUMBERS]
# pydantic's names for constraints: in a spec they are unknown keywords, so validators and generators ignore them.
PYDANTIC_NAMES = {"ge", "le", "gt", "lt", "multiple_of", "min_length", "max_length", "allow_inf_nan", "strict"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    from app.main import app

    return app.openapi()


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """The spec as ``GET /openapi.json`` serves it."""
    from app.main import create_app

    response = TestClient(create_app()).get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a nullable field's value (``anyOf: [X, {"type": "null"}]`` -> X)."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    assert len(branches) == 1, schema
    return branches[0]


def _request_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every component schema a request body reaches, by name."""
    components = spec["components"]["schemas"]
    todo = [
        media["schema"]
        for ops in spec["paths"].values()
        for op in ops.values()
        for media in op.get("requestBody", {}).get("content", {}).values()
    ]
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    todo.append(components[name])
                    yield name, components[name]
            todo.extend(node.values())


def _numeric_fields(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, schema in _request_schemas(spec):
        for field, prop in schema.get("properties", {}).items():
            branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") in ("integer", "number")]
            for branch in branches:
                yield name, field, branch


def _constraint_keys(node: Any, path: str = "") -> Iterator[str]:
    """Paths of pydantic constraint names used as schema keywords (a ``properties`` map's keys are field names)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PYDANTIC_NAMES:
                yield f"{path}/{key}"
            if key == "properties" and isinstance(value, dict):
                for field, sub in value.items():
                    yield from _constraint_keys(sub, f"{path}/properties/{field}")
            else:
                yield from _constraint_keys(value, f"{path}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _constraint_keys(value, f"{path}/{n}")


@pytest.mark.parametrize(("schema", "field", "bounds"), REQUEST_NUMBERS, ids=NUMBER_IDS)
def test_numeric_request_fields_publish_their_bounds(
    spec: dict[str, Any], schema: str, field: str, bounds: dict[str, float]
) -> None:
    published = _non_null(spec["components"]["schemas"][schema]["properties"][field])
    assert {key: published.get(key) for key in bounds} == bounds, published
    assert not PYDANTIC_NAMES & set(published), published


def test_every_numeric_request_field_is_listed_and_bounded(spec: dict[str, Any]) -> None:
    found = {(name, field) for name, field, _ in _numeric_fields(spec)}
    assert found == {(name, field) for name, field, _ in REQUEST_NUMBERS}
    for name, field, branch in _numeric_fields(spec):
        assert {"minimum", "exclusiveMinimum"} & set(branch), (name, field, branch)
        assert {"maximum", "exclusiveMaximum"} & set(branch), (name, field, branch)


def test_every_numeric_query_parameter_is_bounded(spec: dict[str, Any]) -> None:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for parameter in op.get("parameters", []):
                schema = parameter["schema"]
                if schema.get("type") in ("integer", "number"):
                    assert {"minimum", "maximum"} <= set(schema), (method, path, parameter["name"])


def test_no_pydantic_constraint_name_is_published_as_a_keyword(spec: dict[str, Any]) -> None:
    assert list(_constraint_keys(spec)) == []


def _validates(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


def _wrap(schema: str, field: str, value: float) -> tuple[type[BaseModel], dict[str, Any]]:
    if schema == "EventIn":
        return EventsRequest, {"events": [{"user_id": "u", "item_id": "i", "event": "rating", field: value}]}
    if schema == "RecentItem":
        return RecommendRequest, {"recent_items": [{"item_id": "i", field: value}]}
    return RecommendRequest, {field: value}


@pytest.mark.parametrize(("schema", "field", "bounds"), REQUEST_NUMBERS, ids=NUMBER_IDS)
def test_the_runtime_enforces_exactly_the_published_bounds(
    spec: dict[str, Any], schema: str, field: str, bounds: dict[str, float]
) -> None:
    published = _non_null(spec["components"]["schemas"][schema]["properties"][field])
    integer = published["type"] == "integer"

    def step(value: float, direction: float) -> float:
        return value + direction if integer else math.nextafter(value, direction * math.inf)

    cases: list[tuple[float, bool]] = []
    if "minimum" in published:
        cases += [(published["minimum"], True), (step(published["minimum"], -1), False)]
    if "exclusiveMinimum" in published:
        cases += [(published["exclusiveMinimum"], False), (step(published["exclusiveMinimum"], 1), True)]
    cases += [(published["maximum"], True), (step(published["maximum"], 1), False)]
    for value, valid in cases:
        typed = int(value) if integer else float(value)
        assert _validates(*_wrap(schema, field, typed)) is valid, (schema, field, typed)


def test_the_timestamp_rule_is_in_the_recent_items_description(published: dict[str, Any]) -> None:
    recent_items = published["components"]["schemas"]["RecommendRequest"]["properties"]["recent_items"]
    description = recent_items["description"]
    assert "Timestamps on all entries or on none" in description
    assert "a list that mixes them is a 422" in description
    assert _non_null(recent_items)["x-timestamps"] == "all-or-none"


TIMESTAMP_CASES: list[tuple[list[Any], bool]] = [
    ([], True),
    (["a", "b"], True),
    ([{"item_id": "a"}, "b"], True),
    ([{"item_id": "a", "timestamp": None}, {"item_id": "b", "event": "click"}], True),
    ([{"item_id": "a", "timestamp": 1}, {"item_id": "b", "timestamp": 2.5}], True),
    ([{"item_id": "a", "timestamp": 1}, "b"], False),
    (["b", {"item_id": "a", "timestamp": 1}], False),
    ([{"item_id": "a", "timestamp": 1}, {"item_id": "b"}], False),
    ([{"item_id": "a", "timestamp": 1}, {"item_id": "b", "timestamp": None}], False),
]


@pytest.mark.parametrize(("recent_items", "valid"), TIMESTAMP_CASES)
def test_the_timestamp_rule_is_machine_readable(
    published: dict[str, Any], recent_items: list[Any], valid: bool
) -> None:
    """The published schema alone accepts and refuses the same lists as the runtime."""
    jsonschema = pytest.importorskip("jsonschema")
    root = {"$ref": "#/components/schemas/RecommendRequest", "components": published["components"]}
    validator = jsonschema.Draft202012Validator(root)
    body = {"recent_items": recent_items}
    assert validator.is_valid(body) is valid
    assert _validates(RecommendRequest, body) is valid
    if not valid:
        with pytest.raises(ValidationError, match=re.escape(TIMESTAMPS_ALL_OR_NONE)):
            RecommendRequest.model_validate(body)
