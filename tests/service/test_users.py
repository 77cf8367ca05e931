"""/users and /users/{id}."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.registry import registry
from app.schemas.catalogue import UserHistory, UserPage
from reccore.model import Model


def _model(client: Any) -> Model:
    assert client.get("/health").status_code == 200
    assert registry.model is not None
    return registry.model


def test_users_page(client: Any) -> None:
    model = _model(client)
    page = UserPage.model_validate(client.get("/users", params={"limit": 3, "offset": 1}).json())
    assert page.total == model.n_users
    assert [u.user_id for u in page.users] == model.user_ids[1:4]
    counts = np.diff(model.history_indptr)
    assert [u.n_interactions for u in page.users] == counts[1:4].tolist()
    assert client.get("/users", params={"offset": 10**6}).json()["users"] == []


def test_users_search(client: Any) -> None:
    model = _model(client)
    needle = model.user_ids[12][-3:]
    body = client.get("/users", params={"q": needle.upper(), "limit": 100}).json()
    assert body["total"] == sum(needle in u for u in model.user_ids)
    assert model.user_ids[12] in {u["user_id"] for u in body["users"]}
    assert client.get("/users", params={"q": "zzz-nobody"}).json()["total"] == 0


def test_user_history_is_newest_first_with_event_names(client: Any) -> None:
    model = _model(client)
    user = model.user_ids[int(np.argmax(np.diff(model.history_indptr)))]
    body = UserHistory.model_validate(client.get(f"/users/{user}", params={"limit": 30}).json())
    assert len(body.history) == 30
    assert body.n_interactions == int(np.diff(model.history_indptr).max())
    times = [entry.timestamp for entry in body.history]
    assert times == sorted(times, reverse=True)
    assert {entry.event for entry in body.history} <= set(model.manifest.event_types)
    assert len(client.get(f"/users/{user}").json()["history"]) == 50


def test_unknown_user_is_404(client: Any) -> None:
    response = client.get("/users/nobody-here")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_user"
    assert "nobody-here" in response.json()["message"]


def test_user_history_limit_is_bounded(client: Any) -> None:
    model = _model(client)
    for bad in (0, 101, "all"):
        assert client.get(f"/users/{model.user_ids[0]}", params={"limit": bad}).status_code == 422
