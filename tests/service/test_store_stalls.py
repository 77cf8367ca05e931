"""The events path against a stalled DynamoDB (SIGSTOP: connections accepted, never answered) and events dated
before the model's training cutoff. Every answer within the request's deadline plus a margin; never a 500."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from reliability_stack import Moto

from app.registry import registry
from reccore.userstate.table import create_table
from tests.conftest import PublishedModel

DEADLINE = 1.0  # REC_REQUEST_DEADLINE_SECONDS for these tests (default 2)


@pytest.fixture
def pausable_table(
    configure_service: Callable[..., None], published_model: PublishedModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Moto]]:
    """The service with its table on a moto server of its own (a process the test can SIGSTOP)."""
    from fastapi.testclient import TestClient

    from app.main import app

    server = Moto("stall-bucket")
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint)
    create_table(boto3.client("dynamodb"), "state")
    configure_service(published_model.uri, REC_USER_TABLE="state", REC_REQUEST_DEADLINE_SECONDS=str(DEADLINE))
    try:
        with TestClient(app) as client:
            yield client, server
    finally:
        server.resume()
        server.stop()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return call(), time.monotonic() - start


def test_a_stalled_table_costs_a_request_one_deadline_reads_degrade_writes_503(
    pausable_table: tuple[Any, Moto],
) -> None:
    client, server = pausable_table
    assert client.get("/health").status_code == 200
    model = registry.model
    assert model is not None
    user = model.user_ids[3]
    healthy = client.post("/recommend", json={"user_id": user, "k": 5}).json()
    server.pause()
    for _ in range(2):  # the second request meets the first one's abandoned call still stuck in its thread
        answer, seconds = timed(lambda: client.post("/recommend", json={"user_id": user, "k": 5}))
        assert answer.status_code == 200 and seconds < DEADLINE + 1.0, (answer.text, seconds)
        body = answer.json()
        assert body["degraded"] is True and [i["item_id"] for i in body["items"]] == [
            i["item_id"] for i in healthy["items"]
        ]
        event = {"user_id": user, "item_id": model.item_ids[0], "event": "view"}
        refused, seconds = timed(lambda: client.post("/events", json={"events": [event]}))  # noqa: B023
        assert refused.status_code == 503 and seconds < DEADLINE + 1.0, (refused.text, seconds)
        assert refused.json()["error"] in {"deadline_exceeded", "state_unavailable"}
        history, seconds = timed(lambda: client.get(f"/users/{user}"))
        assert history.status_code == 200 and seconds < DEADLINE + 1.0
    server.resume()
    deadline = time.monotonic() + 30
    while client.post("/recommend", json={"user_id": user, "k": 5}).json()["degraded"]:
        assert time.monotonic() < deadline, "the table did not come back"
        time.sleep(0.2)


@pytest.fixture(params=["embedded", "dynamodb"])
def any_client(request: pytest.FixtureRequest) -> Any:
    if request.param == "embedded":
        return request.getfixturevalue("client")
    return request.getfixturevalue("pausable_table")[0]


def test_a_new_users_past_events_count_whatever_their_timestamps(any_client: Any) -> None:
    assert any_client.get("/health").status_code == 200
    model = registry.model
    assert model is not None and model.trained_through is not None
    user = f"importer-{uuid.uuid4().hex[:6]}"
    items = [model.item_ids[i] for i in (7, 8, 9)]
    past = model.trained_through - 86_400  # a day before the newest training event: imported history
    events = [{"user_id": user, "item_id": i, "event": "purchase", "timestamp": past + n} for n, i in enumerate(items)]
    assert any_client.post("/events", json={"events": events}).status_code == 200
    body = any_client.post("/recommend", json={"user_id": user, "k": 5}).json()
    assert body["strategy"] == "fold_in" and body["realtime_events"] == 3, body
    assert not {i["item_id"] for i in body["items"]} & set(items)
    history = any_client.get(f"/users/{user}").json()
    assert [h["item_id"] for h in history["history"]] == items[::-1]


def test_a_known_users_past_dated_events_are_stored_and_the_answer_says_they_wait_for_training(
    any_client: Any,
) -> None:
    assert any_client.get("/health").status_code == 200
    model = registry.model
    assert model is not None and model.trained_through is not None
    user = model.user_ids[11]
    before = any_client.post("/recommend", json={"user_id": user, "k": 5}).json()
    old, new = model.trained_through - 10, model.trained_through + 10
    items = [item["item_id"] for item in before["items"][:2]]
    stamped = zip(items, (old, new), strict=True)
    events = [{"user_id": user, "item_id": i, "event": "purchase", "timestamp": t} for i, t in stamped]
    answer = any_client.post("/events", json={"events": events}).json()
    assert answer["accepted"] == 2 and answer["before_training_cutoff"] == 1, answer
    after = any_client.post("/recommend", json={"user_id": user, "k": 5}).json()
    assert after["realtime_events"] == 1  # only the event newer than the model is folded in


@pytest.mark.parametrize("field", ["user_id", "item_id", "event_id"])
def test_ids_the_training_log_would_read_differently_are_refused(client: Any, field: str) -> None:
    event = {"user_id": "u1", "item_id": "i000001", "event": "view", "event_id": "e1", field: " padded "}
    response = client.post("/events", json={"events": [event]})
    assert response.status_code == 422 and "whitespace" in response.text, response.text
    blank = client.post("/events", json={"events": [{**event, field: "   "}]})
    assert blank.status_code == 422
