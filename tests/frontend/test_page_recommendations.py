"""The recommendations page (pages/1_Recommendations.py) driven headless with AppTest against the live local API:
a user picked or typed, the filters and the diversity slider, and acting as the user."""

from __future__ import annotations

import httpx
from streamlit.testing.v1 import AppTest

from tests.frontend.conftest import (
    active_user,
    assert_legend_clear_of_the_toolbar,
    charts,
    open_page,
    page_path,
    pick_user,
    ranked_table,
    texts,
)


def test_a_known_user_gets_personalized_recommendations(api_url: str, api: httpx.Client) -> None:
    user_id = active_user(api)
    at = pick_user(open_page("pages/1_Recommendations.py", api_url), user_id)

    assert not at.exception and not at.error
    assert "Strategy: `personalized`" in texts(at.info)
    expected = api.post("/recommend", json={"user_id": user_id, "k": 10}).json()["items"]
    rows = ranked_table(at)
    assert [row["item_id"] for row in rows] == [item["item_id"] for item in expected]
    assert [row["rank"] for row in rows] == list(range(1, 11))
    history = api.get(f"/users/{user_id}", params={"limit": 20}).json()["history"]
    history_tables = [frame.value for frame in at.dataframe if "event" in frame.value.columns]
    assert history_tables[0]["title"].tolist() == [entry["title"] for entry in history]
    assert at.get("plotly_chart"), "the score chart is missing"
    for figure, config in charts(at):
        assert_legend_clear_of_the_toolbar(figure, config)


def test_seen_items_are_excluded_unless_asked(api_url: str, api: httpx.Client) -> None:
    user_id = active_user(api)
    seen = {entry["item_id"] for entry in api.get(f"/users/{user_id}", params={"limit": 100}).json()["history"]}
    at = pick_user(open_page("pages/1_Recommendations.py", api_url), user_id)
    at.slider(key="recs_k").set_value(50).run()
    assert not seen & {row["item_id"] for row in ranked_table(at)}

    at.checkbox(key="recs_seen").uncheck().run()
    assert seen & {row["item_id"] for row in ranked_table(at)}, "with seen items allowed, some should come back"


def test_the_diversity_slider_reranks_as_the_api_does(api_url: str, api: httpx.Client) -> None:
    user_id = active_user(api)
    at = pick_user(open_page("pages/1_Recommendations.py", api_url), user_id)
    at.slider(key="recs_diversity").set_value(0.7).run()
    expected = api.post("/recommend", json={"user_id": user_id, "k": 10, "diversity": 0.7}).json()["items"]
    plain = api.post("/recommend", json={"user_id": user_id, "k": 10}).json()["items"]
    assert not at.exception and expected != plain
    assert [row["item_id"] for row in ranked_table(at)] == [item["item_id"] for item in expected]


def test_k_and_category_filters_take_effect(api_url: str, api: httpx.Client) -> None:
    categories = [category["name"] for category in api.get("/categories").json()["categories"]]
    at = pick_user(open_page("pages/1_Recommendations.py", api_url), active_user(api))

    at.slider(key="recs_k").set_value(7).run()
    assert len(ranked_table(at)) == 7

    at.multiselect(key="recs_include").set_value(categories[:2]).run()
    rows = ranked_table(at)
    assert rows and {row["category"] for row in rows} <= set(categories[:2])

    at.multiselect(key="recs_include").set_value([]).run()
    unfiltered = {row["category"] for row in ranked_table(at)}
    at.multiselect(key="recs_exclude").set_value(sorted(unfiltered)).run()
    rows = ranked_table(at)
    assert not at.exception
    assert rows and not unfiltered & {row["category"] for row in rows}


def test_a_user_unknown_everywhere_is_a_new_user_not_an_error(api_url: str) -> None:
    at = AppTest.from_file(page_path("pages/1_Recommendations.py"), default_timeout=60)
    at.secrets["api_url"] = api_url
    at.session_state["user_id"] = "no-such-user"  # e.g. chosen before the model was replaced
    at.run()
    assert not at.exception and not at.error
    assert "Strategy: `popular`" in texts(at.warning)
    assert "No history yet" in texts(at.caption)


def test_a_search_that_finds_one_user_says_1_match(api_url: str, api: httpx.Client) -> None:
    user_id = active_user(api)
    assert api.get("/users", params={"q": user_id}).json()["total"] == 1, "the test needs an id no other contains"
    at = open_page("pages/1_Recommendations.py", api_url)
    at.text_input(key="user_query").set_value(user_id).run()
    assert not at.exception and not at.error
    assert at.selectbox[0].label == "User (1 match)"


def test_acting_as_a_user_changes_their_recommendations_at_once(api_url: str, api: httpx.Client) -> None:
    users = api.get("/users", params={"limit": 100}).json()["users"]
    user_id = sorted(users, key=lambda user: -user["n_interactions"])[1]["user_id"]  # not the other tests' user
    at = pick_user(open_page("pages/1_Recommendations.py", api_url), user_id)
    before = [row["item_id"] for row in ranked_table(at)]
    assert "Real-time" not in texts(at.success)
    at.selectbox(key="act_item").set_value(before[0]).run()
    at.button(key="act_buy").click().run()
    assert not at.exception and not at.error
    assert "Real-time" in texts(at.success)
    after = [row["item_id"] for row in ranked_table(at)]
    assert before[0] not in after and after != before  # bought, so no longer recommended
    history = next(frame.value for frame in at.dataframe if "event" in frame.value.columns)
    assert history["event"].tolist()[0] == "purchase"


def test_a_user_the_model_does_not_list_can_be_typed_and_acted_as(api_url: str) -> None:
    at = open_page("pages/1_Recommendations.py", api_url)
    at.text_input(key="user_query").set_value("brand-new-visitor").run()
    assert not at.exception and not at.error
    assert "Strategy: `popular`" in texts(at.warning)
    label = at.selectbox[0].label
    assert "0 match" not in label and "new to the model" in label
    rows = ranked_table(at)
    assert all(row["source"] == "most popular (view or buy one to personalise)" for row in rows)
    first = rows[0]
    at.selectbox(key="act_item").set_value(first["item_id"]).run()
    at.button(key="act_view").click().run()
    assert "Strategy: `fold_in`" in texts(at.info) and "Real-time" in texts(at.success)
    assert "folded in 1 event posted" in texts(at.success)
    assert "Recent history (1 interaction in total)" in texts(at.subheader)
    # The one item viewed is the whole reason for every model item, shown at once.
    reasons = [row["because"] for row in ranked_table(at) if row["because"] != "popular"]
    assert reasons and all(r.startswith(first["title"][:20]) and r.endswith("(100%)") for r in reasons), reasons
