"""The home page, and what every page shares (frontend/ui.py): the sidebar's health and API address, and a
friendly message when the API is down or failing. Driven headless with AppTest against the live local API."""

from __future__ import annotations

import httpx
import pytest

from pipeline.client import free_port
from tests.conftest import PublishedModel
from tests.frontend.conftest import open_page, texts

PAGES = [
    "Home.py",
    "pages/1_Recommendations.py",
    "pages/2_Cold_Start.py",
    "pages/3_Similar_Items.py",
    "pages/4_Latent_Map.py",
    "pages/5_Experiments.py",
]


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


def test_home_shows_the_index_with_its_recall(api_url: str, api: httpx.Client) -> None:
    health = api.get("/health").json()
    metrics = {metric.label: metric.value for metric in open_page("Home.py", api_url).main.metric}
    recall = health["index_recall_at_10"]
    assert metrics["Index"] == (
        f"{health['index_type']} (exact)" if recall is None else f"{health['index_type']} (recall@10 {recall:.3f})"
    )


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
