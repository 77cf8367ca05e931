"""The cold-start page (pages/2_Cold_Start.py): the popular fallback, then a session of picked items folded in."""

from __future__ import annotations

import httpx

from tests.frontend.conftest import open_page, ranked_table, texts


def test_an_empty_session_gets_the_labelled_popular_fallback(api_url: str) -> None:
    at = open_page("pages/2_Cold_Start.py", api_url)
    assert not at.exception
    assert "Strategy: `popular`" in texts(at.warning)
    assert "Popular fallback" in texts(at.warning)
    # With no session the list is the popularity ranking itself, not a backfill of a shorter one.
    assert all(row["source"] == "most popular (pick items to personalise)" for row in ranked_table(at))


def test_a_cold_session_is_folded_in_and_survives_new_searches(api_url: str, api: httpx.Client) -> None:
    at = open_page("pages/2_Cold_Start.py", api_url)
    category = api.get("/categories").json()["categories"][0]["name"]
    at.selectbox(key="cold_category").set_value(category).run()
    options = at.multiselect(key="cold_items").options
    assert options
    found = api.get("/items", params={"category": category, "limit": 3}).json()["items"]
    session = [item["item_id"] for item in found]
    at.multiselect(key="cold_items").set_value(session).run()

    assert not at.exception and not at.error
    assert "Strategy: `fold_in`" in texts(at.info)
    expected = api.post("/recommend", json={"recent_items": session, "k": 10}).json()["items"]
    assert [row["item_id"] for row in ranked_table(at)] == [item["item_id"] for item in expected]

    # A search that no longer lists the chosen items must not drop them from the session.
    at.text_input(key="cold_query").set_value("zzz-matches-nothing").run()
    assert at.multiselect(key="cold_items").value == session
    assert "Strategy: `fold_in`" in texts(at.info)
