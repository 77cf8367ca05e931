"""The latent map (pages/4_Latent_Map.py): the user's history and recommendations highlighted among the items."""

from __future__ import annotations

import json

import httpx

from tests.frontend.conftest import active_user, assert_legend_clear_of_the_toolbar, charts, open_page, pick_user


def test_the_latent_map_highlights_the_users_history_and_recommendations(api_url: str, api: httpx.Client) -> None:
    user_id = active_user(api)
    at = pick_user(open_page("pages/4_Latent_Map.py", api_url), user_id)
    at.slider(key="map_sample").set_value(500).run()  # a small sample: the user's items are added by id

    assert not at.exception and not at.error
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace for trace in figure["data"]}
    categories = {category["name"] for category in api.get("/categories").json()["categories"]}
    assert categories <= set(traces)
    assert len(traces[f"{user_id}: recommended"]["x"]) == 10
    assert traces[f"{user_id}: recommended"]["marker"]["symbol"] == "star"
    history = api.get(f"/users/{user_id}", params={"limit": 50}).json()["history"]
    assert len(traces[f"{user_id}: history"]["x"]) == len(history)
    assert traces[f"{user_id}: history"]["marker"]["symbol"] == "circle-open"
    (figure, config), *_ = charts(at)
    assert_legend_clear_of_the_toolbar(figure, config)
    assert figure["layout"]["legend"]["itemsizing"] == "constant"  # the page's own legend settings are kept
    assert config["displayModeBar"] == "hover"  # zooming into thousands of points needs the toolbar
