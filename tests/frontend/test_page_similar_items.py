"""The similar-items page (pages/3_Similar_Items.py): cosine neighbours, and a cold item labelled content-based."""

from __future__ import annotations

from typing import Any

import httpx

from tests.frontend.conftest import open_page, ranked_table, texts


def test_similar_items_show_cosine_scores(api_url: str, api: httpx.Client) -> None:
    at = open_page("pages/3_Similar_Items.py", api_url)
    item_id = at.selectbox(key="similar_item").value
    expected = api.get(f"/items/{item_id}/similar", params={"k": 10}).json()

    rows = ranked_table(at)
    assert [row["item_id"] for row in rows] == [item["item_id"] for item in expected["items"]]
    cosines = [row["cosine"] for row in rows]
    assert cosines == sorted(cosines, reverse=True)
    assert all(-1.0001 <= value <= 1.0001 for value in cosines)
    assert item_id not in {row["item_id"] for row in rows}


def test_a_cold_item_is_labelled_content_based(api_url: str, api: httpx.Client) -> None:
    cold = _first_cold_item(api)
    at = open_page("pages/3_Similar_Items.py", api_url)
    at.selectbox(key="similar_category").set_value(cold["category"]).run()
    at.text_input(key="similar_query").set_value(cold["title"]).run()
    at.selectbox(key="similar_item").set_value(cold["item_id"]).run()

    assert not at.exception and not at.error
    assert "Cold item" in texts(at.warning)
    assert ranked_table(at)


def _first_cold_item(api: httpx.Client) -> dict[str, Any]:
    for offset in range(0, 10_000, 100):
        page = api.get("/items", params={"limit": 100, "offset": offset}).json()
        cold = [item for item in page["items"] if item["content_based"]]
        if cold:
            return dict(cold[0])
        if offset + 100 >= page["total"]:
            break
    raise AssertionError("the synthetic catalogue should contain cold (content-based) items")
