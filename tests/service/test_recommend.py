"""POST /recommend: strategies, exclusions, filters, backfill and validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reccore.model import Model
from reccore.recommend import MAX_HISTORY
from reccore.scoring import seen_items
from reccore.settings import get_service_settings
from tests.service.conftest import recommend_ok, served_model


def _heavy_user(model: Model) -> str:
    counts = np.diff(model.history_indptr)
    return model.user_ids[int(np.argmax(counts))]


def test_known_user_gets_personalized_ranked_items(client: Any) -> None:
    model = served_model(client)
    user = model.user_ids[3]
    body = recommend_ok(client, {"user_id": user, "k": 7})
    assert body["strategy"] == "personalized"
    assert body["user_id"] == user
    assert body["model_version"] == model.version
    assert [item["rank"] for item in body["items"]] == list(range(1, 8))
    assert len({item["item_id"] for item in body["items"]}) == 7
    scores = [item["score"] for item in body["items"] if item["source"] != "popular"]
    assert scores == sorted(scores, reverse=True)
    for item in body["items"]:
        i = model.item_index[item["item_id"]]
        assert item["title"] == model.titles[i] and item["category"] == model.categories[i]
        assert item["source"] == ("content" if model.content_based[i] else "model")


def test_personalized_scores_are_the_users_inner_products(client: Any) -> None:
    model = served_model(client)
    user = model.user_ids[10]
    body = recommend_ok(client, {"user_id": user, "k": 5, "exclude_seen": False})
    vector = model.user_factors[model.user_index[user]]
    expected = model.item_factors @ vector
    top = np.argsort(-expected)[:5]
    assert [item["item_id"] for item in body["items"]] == [model.item_ids[i] for i in top]
    np.testing.assert_allclose([item["score"] for item in body["items"]], expected[top], rtol=1e-4, atol=1e-5)


def test_exclude_seen_removes_the_users_history(client: Any) -> None:
    model = served_model(client)
    user = _heavy_user(model)
    seen = {model.item_ids[i] for i in seen_items(model, model.user_index[user]).tolist()}
    with_seen = recommend_ok(client, {"user_id": user, "k": 100, "exclude_seen": False})
    without = recommend_ok(client, {"user_id": user, "k": 100})
    assert seen & {item["item_id"] for item in with_seen["items"]}, "premise: the model ranks seen items high"
    assert not seen & {item["item_id"] for item in without["items"]}
    assert len(without["items"]) == 100


def test_unknown_user_without_history_gets_popular_items_not_404(client: Any) -> None:
    model = served_model(client)
    body = recommend_ok(client, {"user_id": "nobody-Ω-🙂", "k": 12})
    assert body["strategy"] == "popular"
    assert [item["item_id"] for item in body["items"]] == [model.item_ids[i] for i in model.popular_order[:12]]
    assert {item["source"] for item in body["items"]} == {"popular"}


def test_no_body_fields_gives_ten_popular_items(client: Any) -> None:
    body = recommend_ok(client, {})
    assert body["strategy"] == "popular" and len(body["items"]) == 10 and body["user_id"] is None


def test_cold_session_folds_in_and_lists_unknown_recent_items(client: Any) -> None:
    model = served_model(client)
    recent = [model.item_ids[i] for i in model.popular_order[[3, 40, 200]]]
    body = recommend_ok(client, {"recent_items": [*recent, "no-such-item", recent[0], "also-missing"], "k": 10})
    assert body["strategy"] == "fold_in"
    assert body["unknown_items"] == ["no-such-item", "also-missing"]
    returned = {item["item_id"] for item in body["items"]}
    assert not returned & set(recent), "exclude_seen also excludes the session's items"
    assert len(returned) == 10
    kept = recommend_ok(client, {"recent_items": recent, "k": 100, "exclude_seen": False})
    assert set(recent) & {item["item_id"] for item in kept["items"]}


def test_unknown_user_with_recent_items_is_fold_in(client: Any) -> None:
    model = served_model(client)
    body = recommend_ok(client, {"user_id": "new-user", "recent_items": [model.item_ids[5]], "k": 3})
    assert body["strategy"] == "fold_in" and body["user_id"] == "new-user"


def test_only_unknown_recent_items_fall_back_to_popular(client: Any) -> None:
    body = recommend_ok(client, {"recent_items": ["x1", "x2"], "k": 4})
    assert body["strategy"] == "popular"
    assert body["unknown_items"] == ["x1", "x2"]
    assert len(body["items"]) == 4


def test_category_filters_are_respected(client: Any) -> None:
    model = served_model(client)
    user = model.user_ids[0]
    chosen = model.category_names[:2]
    body = recommend_ok(client, {"user_id": user, "k": 50, "include_categories": chosen})
    assert body["items"] and {item["category"] for item in body["items"]} <= set(chosen)
    excluded = model.category_names[2:]
    body = recommend_ok(client, {"user_id": user, "k": 50, "exclude_categories": excluded})
    assert {item["category"] for item in body["items"]} <= set(chosen)
    body = recommend_ok(client, {"k": 50, "exclude_categories": chosen})
    assert not {item["category"] for item in body["items"]} & set(chosen)


def test_exclude_items_are_never_returned_and_unknown_ones_ignored(client: Any) -> None:
    model = served_model(client)
    user = model.user_ids[1]
    first = recommend_ok(client, {"user_id": user, "k": 5})
    banned = [item["item_id"] for item in first["items"][:3]]
    second = recommend_ok(client, {"user_id": user, "k": 5, "exclude_items": [*banned, "not-an-item"]})
    assert not set(banned) & {item["item_id"] for item in second["items"]}
    assert len(second["items"]) == 5


def test_returns_k_items_whenever_the_catalogue_allows(client: Any) -> None:
    model = served_model(client)
    sizes = np.bincount(model.category_codes)
    small = model.category_names[int(np.argmin(sizes))]
    n_small = int(sizes.min())
    user = _heavy_user(model)
    for body in (
        {"user_id": user, "k": 100},
        {"k": 100, "include_categories": [small]},
        {"user_id": user, "k": 100, "include_categories": [small], "exclude_seen": False},
    ):
        items = recommend_ok(client, body)["items"]
        expected = min(100, n_small) if "include_categories" in body else 100
        assert len(items) == expected
    assert recommend_ok(client, {"k": 10, "include_categories": ["no-such-category"]})["items"] == []


def test_empty_include_list_means_no_restriction(client: Any) -> None:
    assert len(recommend_ok(client, {"k": 10, "include_categories": []})["items"]) == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 101}, "k"),
        ({"k": -5}, "k"),
        ({"k": "abc"}, "k"),
        ({"k": 2.5}, "k"),
        ({"k": None}, "k"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 12}, "user_id"),
        ({"user_id": "u" * 257}, "user_id"),
        ({"recent_items": "i0001"}, "recent_items"),
        ({"recent_items": [f"i{n}" for n in range(MAX_HISTORY + 1)]}, "recent_items"),
        ({"exclude_seen": "maybe"}, "exclude_seen"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_are_422_with_a_readable_message(client: Any, body: dict[str, Any], field: str) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "validation_error"
    assert field in error["message"]
    assert any(field in detail["loc"] for detail in error["details"])


def test_invalid_json_is_422(client: Any) -> None:
    response = client.post("/recommend", content=b'{"k": 3,', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_huge_body_is_413(client: Any) -> None:
    too_many_bytes = get_service_settings().max_body_bytes // 1000 + 1
    response = client.post("/recommend", json={"recent_items": ["i" * 1000] * too_many_bytes})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_huge_streamed_body_without_length_is_413(client: Any) -> None:
    def chunks() -> Any:
        yield b'{"recent_items": ['
        for _ in range(get_service_settings().max_body_bytes // 1000 + 1):
            yield b'"' + b"i" * 1000 + b'",'
        yield b'"x"]}'

    response = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_diversity_zero_is_todays_ranking_and_out_of_range_is_a_422(client: Any) -> None:
    user = served_model(client).user_ids[5]
    plain = recommend_ok(client, {"user_id": user, "k": 10})
    assert recommend_ok(client, {"user_id": user, "k": 10, "diversity": 0})["items"] == plain["items"]
    diverse = recommend_ok(client, {"user_id": user, "k": 10, "diversity": 1})
    assert len(diverse["items"]) == 10 and diverse["items"] != plain["items"]
    assert diverse["items"][0]["item_id"] == plain["items"][0]["item_id"]
    for bad in (-0.1, 1.5, "much"):
        assert client.post("/recommend", json={"user_id": user, "diversity": bad}).status_code == 422


def test_unknown_categories_are_listed_not_silently_matched(client: Any) -> None:
    answer = recommend_ok(client, {"k": 3, "include_categories": ["bookz", "books"], "exclude_categories": ["nope"]})
    assert answer["unknown_categories"] == ["bookz", "nope"]
    assert recommend_ok(client, {"k": 3, "include_categories": ["books"]})["unknown_categories"] == []
