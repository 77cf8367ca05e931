"""POST /events and the real-time loop: events in, the next recommendation changes, no retrain.

DynamoDB and Firehose are moto's server over HTTP (the session's ``s3_server`` process); the embedded
store is the default without a table.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from app.registry import registry
from app.schemas.events import EventsResponse
from app.schemas.recommend import RecommendResponse
from reccore.eventlog import EVENTS_DIR, create_stream, parse_lines
from reccore.model import Model
from reccore.scoring import seen_items
from reccore.storage import S3Store
from reccore.userstate.table import create_table
from tests.conftest import BUCKET, PublishedModel


def _model(client: Any) -> Model:
    assert client.get("/health").status_code == 200
    assert registry.model is not None
    return registry.model


def _recommend(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    return RecommendResponse.model_validate(response.json()).model_dump()


def _post_events(client: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/events", json={"events": events})
    assert response.status_code == 200, response.text
    return EventsResponse.model_validate(response.json()).model_dump()


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


@pytest.fixture
def aws_client(
    configure_service: Callable[..., None], published_model: PublishedModel
) -> Iterator[tuple[Any, str, str]]:
    """The service with the deployed path: a DynamoDB table and a Firehose stream into the bucket's events/."""
    from fastapi.testclient import TestClient

    from app.main import app

    name = f"rt-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb"), name)
    prefix = published_model.uri.removeprefix(f"s3://{BUCKET}/")
    create_stream(boto3.client("firehose"), name, BUCKET, prefix)
    configure_service(published_model.uri, REC_USER_TABLE=name, REC_EVENTS_STREAM=name)
    with TestClient(app) as test_client:
        yield test_client, name, prefix


@pytest.fixture(params=["embedded", "dynamodb"])
def any_client(request: pytest.FixtureRequest) -> Any:
    if request.param == "embedded":
        return request.getfixturevalue("client")
    return request.getfixturevalue("aws_client")[0]


def test_a_new_users_events_turn_popular_into_fold_in(any_client: Any) -> None:
    model = _model(any_client)
    user = f"new-{uuid.uuid4().hex[:6]}"
    assert _recommend(any_client, {"user_id": user, "k": 5})["strategy"] == "popular"
    items = [model.item_ids[i] for i in (3, 4, 5)]
    result = _post_events(any_client, [{"user_id": user, "item_id": i, "event": "click"} for i in items])
    assert result["accepted"] == 3 and result["unknown_items"] == []
    body = _recommend(any_client, {"user_id": user, "k": 5})
    assert body["strategy"] == "fold_in" and body["realtime_events"] == 3
    assert not set(_ids(body)) & set(items)  # what they just clicked is not recommended back
    history = any_client.get(f"/users/{user}").json()
    assert [h["item_id"] for h in history["history"]] == items[::-1]  # newest first


def test_a_known_users_purchases_change_their_next_list_and_are_excluded(any_client: Any) -> None:
    model = _model(any_client)
    user = model.user_ids[11]
    before = _recommend(any_client, {"user_id": user, "k": 10})
    assert before["strategy"] == "personalized" and before["realtime_events"] == 0
    # Buy three items of the category the user's list has least of: their taste must move towards it.
    seen = set(seen_items(model, model.user_index[user]).tolist())
    listed = {item["category"] for item in before["items"]}
    category = next(c for c in model.category_names if c not in listed)
    # Its three most popular items: well-placed vectors, so three purchases must move the user's taste.
    bought = [i for i in model.popular_order.tolist() if model.categories[i] == category and i not in seen][:3]
    now = int(time.time())
    events = [{"user_id": user, "item_id": model.item_ids[i], "event": "purchase", "timestamp": now} for i in bought]
    assert _post_events(any_client, events)["accepted"] == 3
    after = _recommend(any_client, {"user_id": user, "k": 10})
    assert after["strategy"] == "personalized" and after["realtime_events"] == 3
    assert _ids(after) != _ids(before)
    assert sum(item["category"] == category for item in after["items"]) > 0
    assert not {model.item_ids[i] for i in bought} & set(_ids(after))
    kept = _recommend(any_client, {"user_id": user, "k": 100, "exclude_seen": False})
    assert kept["realtime_events"] == 3


def test_accepted_events_land_in_the_table_and_the_training_log(aws_client: tuple[Any, str, str]) -> None:
    client, table, prefix = aws_client
    model = _model(client)
    user = f"log-{uuid.uuid4().hex[:6]}"
    events: list[dict[str, Any]] = [
        {"user_id": user, "item_id": model.item_ids[1], "event": "view", "event_id": f"{user}-1"},
        {"user_id": user, "item_id": "not-in-the-model", "event": "rating", "value": 4.5, "event_id": f"{user}-2"},
    ]
    first = _post_events(client, events)
    assert (first["accepted"], first["duplicates"], first["unknown_items"]) == (2, 0, ["not-in-the-model"])
    replay = _post_events(client, events)  # a client retry: the state store must not count them twice
    assert (replay["accepted"], replay["duplicates"]) == (0, 2)
    stored = boto3.client("dynamodb").query(
        TableName=table, KeyConditionExpression="user_id = :u", ExpressionAttributeValues={":u": {"S": user}}
    )["Items"]
    assert [item["kind"]["S"] for item in stored] == ["live"]
    store = S3Store(BUCKET, prefix)
    logged = [
        r for key in store.list_keys(f"{EVENTS_DIR}/") for r in parse_lines(store.get(key)) if r["user_id"] == user
    ]
    # Logged on each attempt (the log is written first); the pipeline keeps one per event_id.
    assert {r["event_id"] for r in logged} == {f"{user}-1", f"{user}-2"}
    assert {r["value"] for r in logged} == {None, 4.5}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event": "like"}, "event"),
        ({"item_id": "x" * 300}, "item_id"),
        ({"user_id": ""}, "user_id"),
        ({"value": -1}, "value"),
        ({"timestamp": 4_000_000_000}, "timestamp"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_event_rejects_the_whole_batch_naming_the_field(
    any_client: Any, event: dict[str, Any], field: str
) -> None:
    user = f"bad-{uuid.uuid4().hex[:6]}"
    good = {"user_id": user, "item_id": "i000001", "event": "view"}
    response = any_client.post("/events", json={"events": [good, {**good, **event}]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error" and field in body["message"]
    assert body["details"][0]["loc"][:3] == ["body", "events", "1"]
    assert any_client.get(f"/users/{user}").status_code == 404  # nothing of the batch was stored


def test_oversize_and_empty_batches_are_422(any_client: Any) -> None:
    event = {"user_id": "u", "item_id": "i", "event": "view"}
    assert any_client.post("/events", json={"events": [event] * 501}).status_code == 422
    assert any_client.post("/events", json={"events": []}).status_code == 422


@pytest.fixture
def stoppable_table(
    configure_service: Callable[..., None], published_model: PublishedModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, ThreadedMotoServer, str]]:
    """The service with its table on a DynamoDB server of its own, which the test can stop and restart."""
    from fastapi.testclient import TestClient

    from app.main import app

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    create_table(boto3.client("dynamodb"), "state")
    configure_service(published_model.uri, REC_USER_TABLE="state")
    with TestClient(app) as test_client:
        yield test_client, server, endpoint
    server.stop()


def test_an_unreachable_table_degrades_to_the_artifact_and_recovers(
    stoppable_table: tuple[Any, ThreadedMotoServer, str],
) -> None:
    client, server, endpoint = stoppable_table
    model = _model(client)
    user = model.user_ids[5]
    healthy = _recommend(client, {"user_id": user, "k": 5})
    assert healthy["degraded"] is False
    server.stop()
    degraded = _recommend(client, {"user_id": user, "k": 5})
    assert degraded["degraded"] is True and degraded["strategy"] == "personalized"
    assert _ids(degraded) == _ids(healthy)  # the artifact alone answers as before
    refused = client.post(
        "/events", json={"events": [{"user_id": user, "item_id": model.item_ids[0], "event": "view"}]}
    )
    assert refused.status_code == 503 and refused.json()["error"] == "state_unavailable"
    assert endpoint not in refused.text
    host, port = endpoint.removeprefix("http://").split(":")
    restarted = ThreadedMotoServer(ip_address=host, port=int(port))
    restarted.start()
    try:
        create_table(boto3.client("dynamodb"), "state")
        assert _recommend(client, {"user_id": user, "k": 5})["degraded"] is False  # no restart of the service
    finally:
        restarted.stop()
