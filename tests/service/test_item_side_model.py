"""A model published without per-user arrays (the users live in the user-state table) loads and serves."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.main import app
from reccore.artifacts import Files, new_version, publish
from reccore.model import load_model
from reccore.storage import open_store
from tests.conftest import PublishedModel


def test_an_item_side_only_version_loads_with_zero_users_and_serves(
    published_model: PublishedModel, fresh_prefix: str, configure_service: Callable[..., None]
) -> None:
    manifest = published_model.manifest.model_copy(
        update={"version": new_version(), "data": {**published_model.manifest.data, "user_arrays": False}}
    )
    files = {name: data for name, data in published_model.files.items() if name not in Files.USER_SIDE}
    store = open_store(fresh_prefix)
    publish(store, manifest, files)
    assert not [k for k in store.list_keys("models/") if k.rsplit("/", 1)[-1] in Files.USER_SIDE]

    model = load_model(store)
    assert len(model.user_ids) == 0 and model.user_factors.shape == (0, published_model.manifest.index.dims)
    assert model.n_items == published_model.manifest.data["n_items"]

    configure_service(fresh_prefix)
    with TestClient(app) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["n_users"] == 0 and health.json()["model_version"] == manifest.version
        assert health.json()["n_items"] == model.n_items
        items = model.item_ids[:3]
        folded = client.post("/recommend", json={"recent_items": items, "k": 5})
        assert folded.status_code == 200 and folded.json()["strategy"] == "fold_in"
        assert not set(items) & {i["item_id"] for i in folded.json()["items"]}  # the session's items are excluded
        similar = client.get(f"/items/{items[0]}/similar", params={"k": 3})
        assert similar.status_code == 200 and len(similar.json()["items"]) == 3
