"""Online experiments in the service: recommendation ids, impressions, sticky variants, the challenger model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import app
from app.registry import registry
from app.state import get_impression_log
from reccore.eventlog import EVENTS_DIR, parse_lines
from reccore.experiment import EXPERIMENT_KEY, Experiment, write_experiment
from reccore.impressions import IMPRESSIONS_DIR, ImpressionLog
from reccore.storage import ArtifactStore, open_store
from tests.service.conftest import recommend_ok

USERS = [f"u{n:06d}" for n in range(1, 401)]


@pytest.fixture()
def two_versions(
    configure_service: Callable[..., None], published_model: Any, publish_version: Callable[..., str], fresh_prefix: str
) -> Iterator[tuple[TestClient, ArtifactStore, str, str]]:
    store = open_store(fresh_prefix)
    challenger = publish_version(store, published_model)
    champion = publish_version(store, published_model)  # LATEST
    configure_service(fresh_prefix, refresh_seconds=0)  # every request checks LATEST and the experiment
    with TestClient(app) as client:
        yield client, store, champion, challenger


def _picked_up(client: TestClient) -> None:
    """Requests until the registry holds the experiment (the check that finds it loads the challenger)."""
    for _ in range(50):
        recommend_ok(client, {"k": 1})
        if registry.trial() is not None:
            return
    raise AssertionError("the experiment was not picked up")


def _records(store: ArtifactStore, directory: str) -> list[dict[str, Any]]:
    get_impression_log().flush()
    return [r for key in store.list_keys(directory + "/") for r in parse_lines(store.get(key))]


def test_each_answer_has_an_id_and_leaves_one_impression(two_versions: Any) -> None:
    client, store, champion, _ = two_versions
    answers = [recommend_ok(client, {"user_id": "u000001", "k": 4}), recommend_ok(client, {"k": 3, "session_id": "s1"})]
    assert all(a["variant"] == "champion" and a["model_version"] == champion for a in answers)
    assert len({a["recommendation_id"] for a in answers}) == 2
    impressions = {r["recommendation_id"]: r for r in _records(store, IMPRESSIONS_DIR)}
    for answer, (user, session) in zip(answers, [("u000001", None), (None, "s1")], strict=True):
        record = impressions[answer["recommendation_id"]]
        assert record["items"] == [[item["item_id"], item["rank"]] for item in answer["items"]]
        assert (record["user_id"], record["session_id"], record["strategy"]) == (user, session, answer["strategy"])
        assert (record["model_version"], record["variant"], record["experiment"]) == (champion, "champion", None)


def test_a_running_experiment_splits_users_sticky_at_its_share(two_versions: Any) -> None:
    client, store, champion, challenger = two_versions
    experiment = Experiment(challenger=challenger, champion=champion, share=0.3)
    write_experiment(store, experiment)
    _picked_up(client)
    first = {u: recommend_ok(client, {"user_id": u, "k": 2}) for u in USERS}
    again = {u: recommend_ok(client, {"user_id": u, "k": 2}) for u in USERS[:50]}
    assert all(again[u]["variant"] == first[u]["variant"] for u in again)  # sticky
    on_challenger = [u for u, a in first.items() if a["variant"] == "challenger"]
    # 400 users at 30%: 120 expected, sd 9.2; ±4 sd.
    assert 83 <= len(on_challenger) <= 157
    assert all(first[u]["model_version"] == challenger for u in on_challenger)
    assert all(a["model_version"] == champion for u, a in first.items() if u not in on_challenger)
    assert {u for u in USERS if experiment.variant(u) == "challenger"} == set(on_challenger)
    records = [r for r in _records(store, IMPRESSIONS_DIR) if r["experiment"] == experiment.id and r["user_id"]]
    assert len(records) == len(USERS) + 50 and {r["variant"] for r in records} == {"champion", "challenger"}


@pytest.mark.parametrize(
    "change", ["rollback", "share 0", "unreadable", "challenger missing"], ids=lambda change: change.replace(" ", "-")
)
def test_anything_but_a_running_experiment_serves_the_champion(two_versions: Any, change: str) -> None:
    client, store, champion, challenger = two_versions
    experiment = Experiment(challenger=challenger, champion=champion, share=1.0)
    write_experiment(store, experiment)
    _picked_up(client)
    assert recommend_ok(client, {"user_id": "u000001"})["variant"] == "challenger"
    if change == "rollback":
        write_experiment(store, experiment.model_copy(update={"status": "rollback", "share": 0.0}))
    elif change == "share 0":
        write_experiment(store, experiment.model_copy(update={"share": 0.0}))
    elif change == "unreadable":
        store.put(EXPERIMENT_KEY, b"{not json")
    else:
        write_experiment(store, experiment.model_copy(update={"challenger": "20990101T000000.000000Z-000000"}))
    answer = recommend_ok(client, {"user_id": "u000001"})
    assert (answer["variant"], answer["model_version"]) == ("champion", champion)
    assert registry.trial() is None


def test_events_carry_the_recommendation_id_into_the_log(two_versions: Any) -> None:
    client, store, _, _ = two_versions
    answer = recommend_ok(client, {"user_id": "u000001", "k": 2})
    item, rid = answer["items"][0]["item_id"], answer["recommendation_id"]
    body = {"events": [{"user_id": "u000001", "item_id": item, "event": "click", "recommendation_id": rid}]}
    assert client.post("/events", json=body).status_code == 200
    logged = [r for r in _records(store, EVENTS_DIR) if r["item_id"] == item]
    assert [r["recommendation_id"] for r in logged] == [rid]
    for bad in ("", "x" * 32, rid.upper(), rid + "0"):
        body["events"][0]["recommendation_id"] = bad
        response = client.post("/events", json=body)
        assert response.status_code == 422 and "recommendation_id" in json.dumps(response.json())


def test_a_failing_impression_log_never_fails_a_request(two_versions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, _, _ = two_versions

    def broken(records: list[dict[str, Any]]) -> None:
        raise OSError("the stream is down")

    log = ImpressionLog(broken)
    monkeypatch.setattr("app.routes.recommend.get_impression_log", lambda: log)
    for _ in range(3):
        recommend_ok(client, {"k": 2})
    assert log.flush() and log.dropped == 3 and log.written == 0


def test_a_full_impression_queue_drops_and_counts() -> None:
    log = ImpressionLog(lambda records: None, max_queued=2)
    log._thread = object()  # type: ignore[assignment]  # no writer: the queue only fills
    for n in range(5):
        log.log({"n": n})
    assert log.dropped == 3


def test_the_experiment_route_shows_the_object_without_its_salt(two_versions: Any) -> None:
    from pipeline.experiment import control

    client, store, champion, challenger = two_versions
    assert client.get("/experiment").json() == {"experiment": None}
    started = control.start(store, challenger, 0.5)
    control.evaluate(store)  # one look, no data yet: continue
    body = client.get("/experiment").json()["experiment"]
    assert (body["id"], body["challenger"], body["champion"], body["status"]) == (
        started.id, challenger, champion, "running"
    )  # fmt: skip
    assert "salt" not in body and len(body["looks"]) == 1 and body["looks"][0]["decision"] == "continue"
    store.put(EXPERIMENT_KEY, b"{broken")
    response = client.get("/experiment")
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
