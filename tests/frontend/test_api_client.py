"""The dashboard's API client against the live API, and its errors against failing servers."""

from __future__ import annotations

import pytest

from api_client import ApiClient, ApiError
from tests.conftest import PublishedModel


@pytest.fixture(scope="module")
def client(api_url: str) -> ApiClient:
    return ApiClient(api_url, timeout=10)


def test_health_reports_the_published_model(client: ApiClient, published_model: PublishedModel) -> None:
    health = client.health()
    assert health["model_version"] == published_model.version
    assert health["n_items"] > 0 and health["n_users"] > 0


def test_every_route_answers_with_its_documented_shape(client: ApiClient) -> None:
    user_id = client.users(limit=1)["users"][0]["user_id"]
    item_id = client.items(limit=1)["items"][0]["item_id"]
    category = client.categories()["categories"][0]["name"]

    assert client.user_history(user_id, limit=3)["user_id"] == user_id
    assert client.item(item_id)["item_id"] == item_id
    assert client.similar(item_id, k=4)["item_id"] == item_id
    assert {item["category"] for item in client.items(category=category, limit=20)["items"]} == {category}
    assert len(client.item_map(sample=100)["points"]) == 100
    assert client.recommend(user_id=user_id, k=3)["strategy"] == "personalized"


def test_ids_are_escaped_into_one_path_segment(client: ApiClient) -> None:
    with pytest.raises(ApiError) as caught:
        client.item("no/such item")
    assert caught.value.status == 404


def test_a_4xx_carries_the_apis_own_message(client: ApiClient) -> None:
    with pytest.raises(ApiError) as caught:
        client.recommend(k=0)
    assert caught.value.status == 422
    assert caught.value.code
    assert str(caught.value) and "Traceback" not in str(caught.value)


def test_connection_refused_is_explained(dead_api_url: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(dead_api_url, timeout=2).health()
    assert caught.value.status is None
    assert f"Cannot reach the API at {dead_api_url}" in str(caught.value)


def test_a_silent_api_times_out_with_a_message(silent_api_url: str) -> None:
    with pytest.raises(ApiError, match=r"did not answer within 0.3 s"):
        ApiClient(silent_api_url, timeout=0.3).health()


def test_a_5xx_says_the_api_failed(broken_api_url: str) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(broken_api_url, timeout=2).health()
    assert caught.value.status in (500, 503)
    assert "the model store is unreachable" in str(caught.value)
    expected = "The API is not ready" if caught.value.status == 503 else "The API failed (HTTP 500)"
    assert str(caught.value).startswith(expected)


def test_a_malformed_url_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="Cannot call the API"):
        ApiClient("not a url", timeout=1).health()


def test_diversity_reaches_the_api(client: ApiClient) -> None:
    user_id = client.users(limit=1)["users"][0]["user_id"]
    plain = [i["item_id"] for i in client.recommend(user_id=user_id, k=10)["items"]]
    diverse = [i["item_id"] for i in client.recommend(user_id=user_id, k=10, diversity=1.0)["items"]]
    assert len(diverse) == 10 and diverse != plain and diverse[0] == plain[0]


def test_the_experiment_is_null_until_one_is_started(client: ApiClient) -> None:
    assert client.experiment() == {"experiment": None}
