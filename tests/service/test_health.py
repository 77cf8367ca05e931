"""GET / and /health, and the shape of routing errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from reccore.storage import open_store


def test_health_reports_the_model(client: Any, published_model: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["model_version"] == published_model.version
    assert body["n_items"] == published_model.manifest.data["n_items"]
    assert body["n_users"] == published_model.manifest.data["n_users"]
    assert body["index_type"] == published_model.manifest.index.type
    assert body["dims"] == published_model.manifest.index.dims
    assert body["faiss_simd"]
    assert body["first_load"] is True  # this request loaded the environment's first model
    params = published_model.manifest.params
    assert body["model_params"]["factors"] == params["factors"] == body["dims"]
    assert body["model_params"]["scaling"] == params["scaling"]
    assert body["model_params"]["weighting"] == params["weighting"]["scheme"]  # each hyperparameter once
    assert set(body["model_params"]) == {
        "factors",
        "weighting",
        "scaling",
        "shrinkage",
        "pop_alpha",
        "min_rating",
        "centre",
    }
    assert body["tuned"] is params["tuned"]
    assert body["split"] == params.get("split")  # the objective the model was judged on (None: an older model)


def test_first_load_only_on_the_loading_request(client: Any) -> None:
    first, second = client.get("/"), client.get("/health")
    assert first.status_code == second.status_code == 200
    assert first.json()["first_load"] is True
    assert second.json()["first_load"] is False
    assert first.json()["loaded_at"] == second.json()["loaded_at"]


def test_unknown_route_is_a_json_404(client: Any) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "/nope" in response.json()["message"]


def test_wrong_method_is_a_json_405(client: Any) -> None:
    response = client.post("/health", json={})
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_openapi_lists_every_route(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/", "/health", "/recommend", "/items", "/items/map", "/items/{item_id}", "/items/{item_id}/similar"):
        assert path in paths
    for path in ("/categories", "/users", "/users/{user_id}"):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_cors_preflight_allows_the_configured_origin(client: Any) -> None:
    response = client.options(
        "/recommend",
        headers={"Origin": "http://localhost:8501", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://localhost:8501")


def test_health_shows_the_parameters_a_tuned_model_chose(
    configure_service: Callable[..., None], published_model: Any, publish_version: Callable[..., str], fresh_prefix: str
) -> None:
    from fastapi.testclient import TestClient

    from app.main import app

    params = {**published_model.manifest.params, "tuned": True, "shrinkage": 0.3, "pop_alpha": 0.25, "split": "random"}
    tuned = dataclasses.replace(
        published_model, manifest=published_model.manifest.model_copy(update={"params": params})
    )
    publish_version(open_store(fresh_prefix), tuned)
    configure_service(fresh_prefix)
    with TestClient(app) as client:
        body = client.get("/health").json()
    assert body["tuned"] is True and body["split"] == "random"
    assert body["model_params"]["shrinkage"] == 0.3 and body["model_params"]["pop_alpha"] == 0.25
    assert "seed" not in body["model_params"]  # hyperparameters only


def test_health_reports_an_approximate_index_with_its_tuning_and_recall(
    configure_service: Any, fresh_prefix: str
) -> None:
    from fastapi.testclient import TestClient

    from app.main import app
    from reccore.encoding import encode
    from reccore.layout import IndexInfo
    from reccore.storage import open_store
    from reccore.versions import publish
    from tests.core.conftest import catalogue_contents, catalogue_manifest

    info = IndexInfo(type="ivf", dims=16, params={"nlist": 64, "nprobe": 8}, recall_at_10=0.97,
                     filtered_recall_at_10=0.955)  # fmt: skip
    manifest = catalogue_manifest("ivf").model_copy(update={"index": info})
    publish(open_store(fresh_prefix), manifest, encode(catalogue_contents("ivf")))
    configure_service(fresh_prefix)
    with TestClient(app) as client:
        body = client.get("/health").json()
        assert body["index_type"] == "ivf" and body["index_params"] == {"nlist": 64, "nprobe": 8}
        assert body["index_recall_at_10"] == 0.97 and body["index_filtered_recall_at_10"] == 0.955
        assert len(client.post("/recommend", json={"user_id": "u1", "k": 5}).json()["items"]) == 5
