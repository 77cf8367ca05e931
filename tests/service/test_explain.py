"""``explain: true`` over the API: reasons per model item, "popular" for the backfill, a new purchase at once."""

from __future__ import annotations

from typing import Any

from tests.service.conftest import recommend_ok, served_model


def test_without_explain_no_item_says_why(client: Any) -> None:
    assert all(item.get("because") is None for item in recommend_ok(client, {"user_id": "u000001"})["items"])


def test_model_items_name_history_items_and_the_backfill_says_popular(client: Any) -> None:
    model = served_model(client)
    history = ["i000001", "i000002", "i000003"]
    answer = recommend_ok(client, {"recent_items": history, "k": 10, "explain": True})
    assert answer["strategy"] == "fold_in"
    for item in answer["items"]:
        if item["source"] == "popular":
            assert item["because"] == "popular"
            continue
        reasons = item["because"]
        assert 1 <= len(reasons) <= 3 and {r["item_id"] for r in reasons} <= set(history)
        assert [r["share"] for r in reasons] == sorted((r["share"] for r in reasons), reverse=True)
        assert all(r["title"] == model.titles[model.item_index[r["item_id"]]] for r in reasons)
    nobody = recommend_ok(client, {"k": 3, "explain": True})
    assert nobody["strategy"] == "popular" and all(i["because"] == "popular" for i in nobody["items"])


def test_a_new_purchase_is_the_reason_at_once(client: Any) -> None:
    user = "explain-new-user"
    event = {"user_id": user, "item_id": "i000007", "event": "purchase"}
    assert client.post("/events", json={"events": [event]}).status_code == 200
    answer = recommend_ok(client, {"user_id": user, "k": 5, "explain": True})
    assert answer["strategy"] == "fold_in"
    model_items = [i for i in answer["items"] if i["source"] != "popular"]
    assert model_items and all(
        i["because"] and i["because"][0]["item_id"] == "i000007" and i["because"][0]["share"] > 0.999
        for i in model_items
    )
