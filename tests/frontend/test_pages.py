"""Each dashboard page driven headless with AppTest against the live local API."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pipeline.client import free_port
from pipeline.experiment import control
from reccore.eventlog import EVENTS_DIR, ndjson
from reccore.experiment import EXPERIMENT_KEY, Experiment, read_experiment
from reccore.impressions import IMPRESSIONS_DIR, impression
from reccore.layout import LATEST_KEY
from reccore.storage import ArtifactStore, open_store
from tests.conftest import PublishedModel

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
PAGES = [
    "Home.py",
    "pages/1_Recommendations.py",
    "pages/2_Cold_Start.py",
    "pages/3_Similar_Items.py",
    "pages/4_Latent_Map.py",
    "pages/5_Experiments.py",
]


def page_path(name: str) -> str:
    """The file of a dashboard page: ``Home.py`` or ``pages/N_Title.py``."""
    return str(FRONTEND / name)


def open_page(name: str, url: str) -> AppTest:
    at = AppTest.from_file(page_path(name), default_timeout=60)
    at.secrets["api_url"] = url
    return at.run()


def texts(elements: Any) -> str:
    return "\n".join(str(element.value) for element in elements)


def ranked_table(at: AppTest) -> list[dict[str, Any]]:
    """The rows of the page's ranked-items table (the one with a ``rank`` column)."""
    tables = [frame.value for frame in at.dataframe if "rank" in frame.value.columns]
    assert len(tables) == 1, f"expected one ranked table, found {len(tables)}"
    return list(tables[0].to_dict("records"))


def charts(at: AppTest) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each plotly chart on the page as (figure, config)."""
    return [(json.loads(chart.proto.spec), json.loads(chart.proto.config)) for chart in at.get("plotly_chart")]


def assert_legend_clear_of_the_toolbar(figure: dict[str, Any], config: dict[str, Any]) -> None:
    """The legend lies flat at the foot of the figure, where plotly's toolbar (top right) cannot cover it."""
    legend = figure["layout"]["legend"]
    assert (legend["orientation"], legend["yref"], legend["y"], legend["yanchor"]) == ("h", "container", 0, "bottom")
    assert config["displayModeBar"] in (False, "hover") and config["displaylogo"] is False


def pick_user(at: AppTest, user_id: str) -> AppTest:
    at.text_input(key="user_query").set_value(user_id).run()
    at.selectbox[0].set_value(user_id).run()
    return at


def active_user(api: httpx.Client) -> str:
    """A user with plenty of history, so that personalisation is certain."""
    users = api.get("/users", params={"limit": 100}).json()["users"]
    return str(max(users, key=lambda user: user["n_interactions"])["user_id"])


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_without_errors(name: str, api_url: str) -> None:
    at = open_page(name, api_url)
    assert not at.exception
    assert not at.error
    assert "API healthy" in texts(at.sidebar.success)


def test_home_shows_the_model_in_service(api_url: str, published_model: PublishedModel, api: httpx.Client) -> None:
    at = open_page("Home.py", api_url)
    health = api.get("/health").json()
    metrics = {metric.label: metric.value for metric in at.main.metric}
    assert metrics["Items"] == f"{health['n_items']:,}"
    assert metrics["Users"] == f"{health['n_users']:,}"
    assert published_model.version in texts(at.caption)
    assert published_model.version in texts(at.sidebar.markdown)
    assert "Last API call" in texts(at.sidebar.caption)


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


def test_home_shows_the_index_with_its_recall(api_url: str, api: httpx.Client) -> None:
    health = api.get("/health").json()
    metrics = {metric.label: metric.value for metric in open_page("Home.py", api_url).main.metric}
    recall = health["index_recall_at_10"]
    assert metrics["Index"] == (
        f"{health['index_type']} (exact)" if recall is None else f"{health['index_type']} (recall@10 {recall:.3f})"
    )


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


@pytest.mark.parametrize("name", PAGES)
def test_an_api_that_is_down_gets_a_friendly_message(name: str, dead_api_url: str) -> None:
    at = open_page(name, dead_api_url)
    assert not at.exception
    assert f"Cannot reach the API at {dead_api_url}" in texts(at.error)
    assert "Traceback" not in texts(at.error)
    port = dead_api_url.rsplit(":", 1)[1]
    hint = texts(at.info)
    assert f"`{dead_api_url}`" in hint and f"make serve API_PORT={port}" in hint


def test_the_down_hint_follows_a_url_edited_in_the_sidebar(dead_api_url: str) -> None:
    at = open_page("Home.py", dead_api_url)
    edited = f"http://127.0.0.1:{free_port()}"
    at.sidebar.text_input[0].set_value(edited).run()
    assert not at.exception
    hint = texts(at.info)
    assert f"`{edited}`" in hint and f"make serve API_PORT={edited.rsplit(':', 1)[1]}" in hint
    assert dead_api_url not in hint


def test_a_failing_api_gets_a_friendly_message(broken_api_url: str) -> None:
    at = open_page("pages/1_Recommendations.py", broken_api_url)
    assert not at.exception
    assert "the model store is unreachable" in texts(at.error)


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


def _first_cold_item(api: httpx.Client) -> dict[str, Any]:
    for offset in range(0, 10_000, 100):
        page = api.get("/items", params={"limit": 100, "offset": offset}).json()
        cold = [item for item in page["items"] if item["content_based"]]
        if cold:
            return dict(cold[0])
        if offset + 100 >= page["total"]:
            break
    raise AssertionError("the synthetic catalogue should contain cold (content-based) items")


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


# (impressions, clicked, converted) per variant in each of two batches, one look after each; every arm stays
# below the test's 200 impressions, so both looks "continue" and LATEST is never moved by a promotion.
BATCHES = [{"champion": (40, 10, 3), "challenger": (30, 4, 1)}, {"champion": (20, 8, 2), "challenger": (30, 3, 0)}]


def _log_batch(
    store: ArtifactStore, experiment: Experiment, batch: dict[str, tuple[int, int, int]], tag: str
) -> list[str]:
    """Impressions of ``experiment`` and the events that name them, as the service and the event log write them."""
    impressions, events = [], []
    for variant, (shown, clicked, converted) in batch.items():
        version = experiment.champion if variant == "champion" else experiment.challenger
        for n in range(shown):
            rid = f"{tag}-{variant}-{n}"
            impressions.append(impression(rid, f"u{n}", None, ["i1"], "personalized", version, variant, experiment.id))
            if n < clicked:
                event = "purchase" if n < converted else "view"
                events.append({"user_id": f"u{n}", "item_id": "i1", "event": event, "recommendation_id": rid})
    keys = [f"{IMPRESSIONS_DIR}/2000/01/01/00/{tag}.ndjson", f"{EVENTS_DIR}/2000/01/01/00/{tag}.ndjson"]
    store.put(keys[0], ndjson(impressions))
    store.put(keys[1], ndjson(events))
    return keys


@contextmanager
def served_experiment(
    published_model: PublishedModel, publish_version: Callable[..., str], batches: list[dict[str, Any]]
) -> Iterator[Experiment]:
    """An experiment on the served model store, one look per batch by the decision job; removed afterwards."""
    store = open_store(published_model.uri)
    challenger = publish_version(store, published_model)
    # publish moved LATEST to the copy: put it back at once, so the API keeps serving the model the others expect.
    store.put(LATEST_KEY, published_model.version.encode())
    written: list[str] = []
    try:
        experiment = control.start(store, challenger, 0.5)
        for index, batch in enumerate(batches):
            written += _log_batch(store, experiment, batch, f"dashboard-test-{os.urandom(3).hex()}-{index}")
            assert control.evaluate(store)["decision"] == "continue"
        st.cache_data.clear()  # the dashboard caches API answers for 30 s; an earlier page saw no experiment
        found = read_experiment(store)
        assert found is not None
        yield found
    finally:
        store.delete([EXPERIMENT_KEY, *written])
        store.put(LATEST_KEY, published_model.version.encode())
        st.cache_data.clear()


@pytest.fixture
def experiment_with_looks(
    api_url: str, published_model: PublishedModel, publish_version: Callable[..., str]
) -> Iterator[Experiment]:
    with served_experiment(published_model, publish_version, BATCHES) as experiment:
        yield experiment


def test_without_an_experiment_the_page_explains_how_to_start_one(api_url: str) -> None:
    st.cache_data.clear()
    at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error
    info = texts(at.info)
    assert "No experiment has been started" in info
    assert "-m pipeline experiment start --model URI --challenger VERSION --share 0.5" in info
    assert "-m pipeline simulate --api URL --users N" in info
    assert "-m pipeline experiment evaluate --model URI" in info
    assert not at.get("plotly_chart")


def test_a_running_experiment_shows_its_split_metrics_and_ctr_per_look(
    api_url: str, experiment_with_looks: Experiment
) -> None:
    experiment = experiment_with_looks
    at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error

    assert experiment.id in texts(at.subheader)
    markdown = texts(at.markdown)
    assert "Running" in markdown
    assert experiment.champion in markdown and experiment.challenger in markdown
    assert {metric.label: metric.value for metric in at.main.metric}["Challenger share"] == "50%"

    table = next(frame.value for frame in at.dataframe if "variant" in frame.value.columns)
    rows = {row["variant"]: row for row in table.to_dict("records")}
    for variant in ("champion", "challenger"):
        shown, clicked, converted = (sum(batch[variant][i] for batch in BATCHES) for i in range(3))
        row = rows[variant]
        assert (row["impressions"], row["clicked"], row["converted"]) == (shown, clicked, converted)
        assert row["CTR"] == round(clicked / shown, 4)
    assert "Decision: `continue`" in texts(at.info)

    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace for trace in figure["data"] if trace.get("showlegend", True)}
    looks = experiment.looks
    assert len(looks) == 2
    for variant, version in (("champion", experiment.champion), ("challenger", experiment.challenger)):
        line = traces[f"{variant} ({version})"]
        assert line["y"] == [look["variants"][variant]["ctr"] for look in looks]
        band = traces[f"{variant} interval"]
        assert band["y"] == [look["variants"][variant]["ctr_ci"][0] for look in looks]
    assert_legend_clear_of_the_toolbar(figure, json.loads(at.get("plotly_chart")[0].proto.config))


def test_an_experiment_the_decision_job_has_not_looked_at_says_so(
    api_url: str, published_model: PublishedModel, publish_version: Callable[..., str]
) -> None:
    with served_experiment(published_model, publish_version, batches=[]) as experiment:
        at = open_page("pages/5_Experiments.py", api_url)
    assert not at.exception and not at.error
    assert experiment.id in texts(at.subheader)
    assert "The decision job has not run yet" in texts(at.info)
    assert not at.get("plotly_chart") and not at.dataframe
