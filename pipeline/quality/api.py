"""The recommend service as a client calls it, in process: JSON bodies through its request model and route.

The offline cold-start study asks the real app (``app.main.create_app``: body limit, ``RecommendRequest``
validation and parsing, the ``/recommend`` route) through FastAPI's TestClient, with the app's model
dependency pointed at a served model (the same artifacts ``build_model`` turns into what the service loads).
The service's package, ``app``, ships in its own image and is not installed: run this with
``functions/recommend`` on the path, as ``make eval`` and the tests do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.testclient import TestClient

from app.deps import get_model
from app.logging import logger
from app.main import create_app
from app.schemas import MAX_HISTORY
from app.state import get_user_store
from pipeline.data import InteractionLog
from reccore.events import EVENT_TYPES, event_strength
from reccore.model import Model
from reccore.userstate import EmbeddedStore


class Service:
    """``POST /recommend`` on one model; answers are item positions, best first."""

    def __init__(self, client: TestClient, model: Model) -> None:
        self._client = client
        self.model = model

    def recommend(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response JSON of ``POST /recommend`` with ``body``; raises if the service does not answer 200."""
        response = self._client.post("/recommend", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"/recommend answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def ranked(self, body: dict[str, Any]) -> list[int]:
        """Item positions of ``POST /recommend``'s answer, best first."""
        return [self.model.item_index[item["item_id"]] for item in self.recommend(body)["items"]]


@contextmanager
def serving(model: Model) -> Iterator[Service]:
    """The service's app answering with ``model`` and an empty user-state store; its request logs are silenced."""
    app = create_app()

    async def fixed_model(request: Request) -> Model:
        request.state.model_version = model.version
        request.state.cold_start = False
        return model

    app.dependency_overrides[get_model] = fixed_model
    app.dependency_overrides[get_user_store] = EmbeddedStore  # nothing beyond the model: no table, no events
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with TestClient(app) as client:
            yield Service(client, model)
    finally:
        logger.setLevel(level)


def history_body(log: InteractionLog, rows: np.ndarray, k: int) -> dict[str, Any]:
    """The body a client sends for the interactions ``rows`` of ``log`` (oldest first): one object each.

    Each carries its event, its timestamp and, when its strength is not the event's default (a rating,
    an explicit weight), its value; a history longer than the API accepts is cut to its newest entries.
    """
    entries = []
    for row in rows[-MAX_HISTORY:].tolist():
        name = log.event_types[int(log.events[row])]
        event = name if name in EVENT_TYPES else None
        entry: dict[str, Any] = {"item_id": str(log.item_ids[log.items[row]]), "timestamp": int(log.timestamps[row])}
        if event is not None:
            entry["event"] = event
        weight = float(log.weights[row])
        if weight != event_strength(event):
            entry["value"] = weight
        entries.append(entry)
    return {"recent_items": entries, "k": k}
