"""POST /recommend's recent_items: objects with event, value and timestamp, bare ids, long histories."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from reccore.events import EVENT_WEIGHTS
from reccore.model import Model
from reccore.recommend import MAX_FOLD_IN, MAX_HISTORY
from reccore.scoring import fold_in
from reccore.settings import get_service_settings
from tests.service.conftest import recommend_ok, served_model

T0 = 1_700_000_000


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def _expected_top(
    model: Model, items: list[int], strengths: list[float], k: int, excluded: list[int] | None = None
) -> list[str]:
    """Top-``k`` by the core's fold-in of ``items``, everything in ``items`` (or ``excluded``) left out."""
    scores = model.item_factors @ fold_in(model, np.array(items), np.array(strengths))
    scores[items if excluded is None else excluded] = -np.inf
    return [model.item_ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def _session(model: Model) -> list[str]:
    return [model.item_ids[i] for i in model.popular_order[[2, 30, 300]]]


def test_objects_with_default_strengths_answer_exactly_as_bare_ids(client: Any) -> None:
    model = served_model(client)
    ids = _session(model)
    bare = recommend_ok(client, {"recent_items": ids, "k": 20})
    objects = recommend_ok(
        client, {"recent_items": [{"item_id": ids[0]}, {"item_id": ids[1], "event": "view"}, ids[2]], "k": 20}
    )
    assert bare["strategy"] == objects["strategy"] == "fold_in"
    assert bare["items"] == objects["items"]
    assert bare["truncated_items"] == objects["truncated_items"] == 0


def test_a_purchase_outweighs_a_view_as_training_weighs_it(client: Any) -> None:
    model = served_model(client)
    first, second, third = _session(model)
    positions = [model.item_index[i] for i in (first, second, third)]
    purchase_first = recommend_ok(
        client,
        {"recent_items": [{"item_id": first, "event": "purchase"}, second, {"item_id": third, "event": "click"}]},
    )
    purchase_second = recommend_ok(
        client,
        {"recent_items": [first, {"item_id": second, "event": "purchase"}, {"item_id": third, "event": "click"}]},
    )
    weights = EVENT_WEIGHTS
    assert _ids(purchase_first) == _expected_top(model, positions, [weights["purchase"], 1.0, weights["click"]], 10)
    assert _ids(purchase_second) == _expected_top(model, positions, [1.0, weights["purchase"], weights["click"]], 10)
    assert _ids(purchase_first) != _ids(purchase_second), "which item was bought must change the answer"
    # The purchased item's neighbours gain: its own direction scores higher in its fold-in than in the other.
    vector_first = fold_in(model, np.array(positions), np.array([5.0, 1.0, 2.0]))
    vector_second = fold_in(model, np.array(positions), np.array([1.0, 5.0, 2.0]))
    q_first = model.item_factors[positions[0]]
    assert q_first @ vector_first > q_first @ vector_second


def test_a_value_wins_over_the_event_default(client: Any) -> None:
    model = served_model(client)
    first, second, _third = _session(model)
    as_purchase = recommend_ok(client, {"recent_items": [{"item_id": first, "event": "purchase"}, second]})
    as_rating = recommend_ok(client, {"recent_items": [{"item_id": first, "event": "rating", "value": 5}, second]})
    as_weighted_view = recommend_ok(
        client, {"recent_items": [{"item_id": first, "event": "view", "value": 5.0}, second]}
    )
    assert as_purchase["items"] == as_rating["items"] == as_weighted_view["items"]


def _long_history(model: Model, n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """``n`` distinct items and a shuffled set of distinct timestamps for them."""
    rng = np.random.default_rng(seed)
    items = rng.choice(model.n_items, size=n, replace=False).tolist()
    stamps = (T0 + rng.permutation(n) * 60).tolist()
    return items, stamps


def test_an_over_cap_history_folds_in_the_newest_by_timestamp_and_excludes_every_item(client: Any) -> None:
    model = served_model(client)
    extra = 40
    assert model.n_items > MAX_FOLD_IN + extra + 100, "premise: the catalogue can hold the history and an answer"
    items, stamps = _long_history(model, MAX_FOLD_IN + extra)
    objects = [{"item_id": model.item_ids[i], "timestamp": t} for i, t in zip(items, stamps, strict=True)]
    body = recommend_ok(client, {"recent_items": objects, "k": 100})
    assert body["strategy"] == "fold_in"
    assert body["truncated_items"] == extra
    assert not set(_ids(body)) & {model.item_ids[i] for i in items}, "the older items are excluded all the same"
    newest = [i for _, i in sorted(zip(stamps, items, strict=True))][extra:]
    scores = model.item_factors @ fold_in(model, np.array(newest))
    np.testing.assert_allclose(
        [item["score"] for item in body["items"]], scores[[model.item_index[i] for i in _ids(body)]], rtol=1e-4
    )
    # The same history in a different list order: timestamps decide what is newest, not positions.
    shuffled = recommend_ok(client, {"recent_items": objects[::-1], "k": 100})
    assert shuffled["items"] == body["items"]


def test_without_timestamps_the_last_entries_are_the_newest(client: Any) -> None:
    model = served_model(client)
    items, _stamps = _long_history(model, MAX_FOLD_IN + 10, seed=1)
    body = recommend_ok(client, {"recent_items": [model.item_ids[i] for i in items], "k": 30})
    assert body["truncated_items"] == 10
    assert _ids(body) == _expected_top(model, items[10:], [1.0] * MAX_FOLD_IN, 30, excluded=items)


def test_a_known_user_gets_the_newest_folded_onto_their_vector_and_the_whole_history_excluded(client: Any) -> None:
    model = served_model(client)
    items, _stamps = _long_history(model, MAX_FOLD_IN + 10, seed=2)
    user = model.user_ids[0]
    body = recommend_ok(client, {"user_id": user, "recent_items": [model.item_ids[i] for i in items], "k": 50})
    assert body["strategy"] == "personalized" and body["truncated_items"] == 10
    assert not set(_ids(body)) & {model.item_ids[i] for i in items}
    vector = model.user_factors[model.user_index[user]] + fold_in(model, np.array(items[10:]))
    scores = model.item_factors @ vector
    np.testing.assert_allclose(
        [item["score"] for item in body["items"]], scores[[model.item_index[i] for i in _ids(body)]], rtol=1e-4
    )


def test_the_longest_history_of_objects_fits_the_default_body_limit(client: Any) -> None:
    model = served_model(client)
    longest = {"item_id": "x" * 24, "event": "purchase", "value": 4.5, "timestamp": 1_700_000_000.123}
    body = json.dumps({"recent_items": [longest] * MAX_HISTORY, "user_id": "u" * 64, "k": 100})
    assert len(body) < get_service_settings().max_body_bytes
    response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["unknown_items"] == ["x" * 24]
    assert len(response.json()["items"]) == 100 and model.n_items >= 100


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"item_id": "i1", "value": -1}, "value"),
        ({"item_id": "i1", "value": 0}, "value"),
        ({"item_id": "i1", "value": "5"}, "value"),
        ({"item_id": "i1", "value": True}, "value"),
        ({"item_id": "i1", "event": "like"}, "event"),
        ({"item_id": "i1", "timestamp": 1_700_000_000_000}, "timestamp"),  # milliseconds
        ({"item_id": "i1", "timestamp": -1}, "timestamp"),
        ({"item_id": "i1", "timestamp": "2024-01-01"}, "timestamp"),
        ({"item_id": "i1", "rating": 4}, "rating"),
        ({"event": "view"}, "item_id"),
        ({"item_id": 12}, "item_id"),
    ],
)
def test_a_bad_object_is_422_naming_its_field(client: Any, entry: dict[str, Any], field: str) -> None:
    response = client.post("/recommend", json={"recent_items": ["i0", entry]})
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "validation_error"
    locs = [detail["loc"] for detail in error["details"]]
    assert any(loc[:3] == ["body", "recent_items", "1"] and field in loc for loc in locs), locs
    assert field in error["message"]


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"1e999"])
def test_a_non_finite_value_is_422(client: Any, raw: bytes) -> None:
    content = b'{"recent_items": [{"item_id": "i1", "value": ' + raw + b"}]}"
    response = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "value" in response.json()["message"]


def test_timestamps_on_some_entries_only_is_422(client: Any) -> None:
    response = client.post("/recommend", json={"recent_items": [{"item_id": "a", "timestamp": T0}, "b"]})
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["body", "recent_items"]
    assert "timestamp" in response.json()["message"]


def test_stored_events_and_recent_items_are_one_history_ordered_by_timestamp(client: Any) -> None:
    model = served_model(client)
    items, _stamps = _long_history(model, MAX_FOLD_IN + 3, seed=3)
    stored, sent = items[:3], items[3:]
    user = "anonymous-with-events"
    assert user not in model.user_index
    now = int(time.time())
    events = [{"user_id": user, "item_id": model.item_ids[i], "event": "purchase", "timestamp": now} for i in stored]
    assert client.post("/events", json={"events": events}).status_code == 200

    def ask(start: int) -> dict[str, Any]:
        recent = [{"item_id": model.item_ids[i], "timestamp": start + n} for n, i in enumerate(sent)]
        return recommend_ok(client, {"user_id": user, "recent_items": recent, "k": 30})

    older = ask(now - 100_000)  # the stored purchases are the newest: the 3 oldest sent items drop out
    newer = ask(now + 10)  # the sent items are the newest: the stored purchases drop out
    for body in (older, newer):
        assert body["strategy"] == "fold_in" and body["truncated_items"] == 3
        assert not set(_ids(body)) & {model.item_ids[i] for i in items}
    folded = fold_in(model, np.array([*stored, *sent[3:]]), np.array([EVENT_WEIGHTS["purchase"]] * 3 + [1.0] * 997))
    assert _ids(older) == _expected_top(
        model, [*stored, *sent[3:]], [EVENT_WEIGHTS["purchase"]] * 3 + [1.0] * 997, 30, excluded=items
    )
    np.testing.assert_allclose(
        [item["score"] for item in older["items"]],
        (model.item_factors @ folded)[[model.item_index[i] for i in _ids(older)]],
        rtol=1e-4,
    )
    assert _ids(newer) == _expected_top(model, sent, [1.0] * MAX_FOLD_IN, 30, excluded=items)
