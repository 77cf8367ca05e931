"""A model published without per-user arrays (the users live in the user-state table) loads and serves."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.main import app
from reccore.layout import Files
from reccore.loading import load_model
from reccore.storage import open_store
from reccore.versions import new_version, publish
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


def test_a_training_users_history_in_the_store_reproduces_their_trained_answer(
    published_model: PublishedModel, fresh_prefix: str, configure_service: Callable[..., None]
) -> None:
    """Item-side-only model + the user's training history in DynamoDB == the full model's personalized answer."""
    import uuid

    import boto3

    from reccore.userstate import Event, UserState
    from reccore.userstate.dynamodb import DynamoStore
    from reccore.userstate.table import create_table

    full = load_model(open_store(published_model.uri))
    manifest = published_model.manifest.model_copy(
        update={"version": new_version(), "data": {**published_model.manifest.data, "user_arrays": False}}
    )
    publish(
        open_store(fresh_prefix), manifest, {n: d for n, d in published_model.files.items() if n not in Files.USER_SIDE}
    )
    table = f"fold-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb"), table)
    names = full.manifest.event_types
    users = [full.user_ids[u] for u in range(40, 60)]
    states = []
    for user_id in users:
        span = full.user_history(full.user_index[user_id])
        rows = zip(
            full.history_items[span].tolist(),
            full.history_events[span].tolist(),
            full.history_times[span].tolist(),
            strict=True,
        )
        # Synthetic strengths are the event weights, so the event names carry them. Oldest first, as the store keeps.
        events = [Event(full.item_ids[i], names[e], t) for i, e, t in rows][::-1]
        seen = [e.item_id for e in events]
        states.append(UserState(user_id, base=events, base_through=full.trained_through, seen=seen))
    DynamoStore(table).put_base(states, manifest.version)

    configure_service(published_model.uri)
    with TestClient(app) as client:
        trained = {u: client.post("/recommend", json={"user_id": u, "k": 10}).json() for u in users}
    configure_service(fresh_prefix, REC_USER_TABLE=table)
    with TestClient(app) as client:
        for user_id in users:
            answer = client.post("/recommend", json={"user_id": user_id, "k": 10}).json()
            assert answer["strategy"] == "fold_in" and answer["realtime_events"] == 0
            assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in trained[user_id]["items"]]
