"""Simulated users for online experiments: they ask the API for recommendations and click and buy by the
synthetic generator's own ground-truth tastes (``python -m pipeline simulate --api URL --users N --seed S``).

Each simulated visit picks one of the log's users, asks ``POST /recommend`` for 10 items, and examines them
top-down with a position bias: rank ``r`` is looked at with probability ``EXAMINE / r**DECAY``, and a looked-at
item is clicked with the user's taste for its category times the item's appeal (its popularity inside the
category, relative to the category's most popular item, to the power ``APPEAL``). A click becomes a purchase
with probability ``BUY`` times that taste. Clicks and purchases are posted to ``POST /events`` with the answer's
``recommendation_id``, so the experiment's decision job can attribute them. A better model puts items of the
user's tastes higher, so it earns more clicks: that is the difference the experiment has to find.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from pipeline.client import Api
from pipeline.sources.synthetic import GroundTruth, ground_truth

K = 10
EXAMINE, DECAY, APPEAL, BUY = 0.7, 0.7, 0.25, 0.3


def click_probabilities(truth: GroundTruth, user: int, items: list[int]) -> np.ndarray:
    """The chance that the user clicks each item of a ranked list (position bias times taste times appeal)."""
    ranks = np.arange(1, len(items) + 1)
    taste = truth.tastes[user, truth.item_category[items]]
    return EXAMINE / ranks**DECAY * taste * truth.appeal[items] ** APPEAL


def simulate(api: str, users: int, seed: int = 0, interactions: int = 100_000, log_seed: int = 42) -> dict[str, Any]:
    """Run ``users`` visits against ``api``; returns what happened, per variant."""
    truth = ground_truth(interactions, log_seed)
    item_row = {item: row for row, item in enumerate(truth.item_ids.tolist())}
    rng = np.random.default_rng(seed)
    client = Api(api)
    shown: Counter[str] = Counter()
    clicked: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    errors: Counter[int] = Counter()
    start = time.perf_counter()
    for user in rng.integers(0, len(truth.user_ids), size=users).tolist():
        user_id = str(truth.user_ids[user])
        status, answer = client.post("/recommend", {"user_id": user_id, "k": K})
        if status != 200:
            errors[status] += 1
            continue
        variant = answer["variant"]
        shown[variant] += 1
        items = [item["item_id"] for item in answer["items"] if item["item_id"] in item_row]
        rows = [item_row[item] for item in items]
        chosen = rng.random(len(rows)) < click_probabilities(truth, user, rows)
        events = []
        for item, row in zip(np.array(items)[chosen].tolist(), np.array(rows, dtype=int)[chosen].tolist(), strict=True):
            events.append({"user_id": user_id, "item_id": item, "event": "click",
                           "recommendation_id": answer["recommendation_id"]})  # fmt: skip
            if rng.random() < BUY * truth.tastes[user, truth.item_category[row]]:
                events.append({**events[-1], "event": "purchase"})
                bought[variant] += 1
        if events:
            clicked[variant] += 1
            status, _ = client.post("/events", {"events": events})
            if status != 200:
                errors[status] += 1
    return {
        "users": users,
        "seconds": round(time.perf_counter() - start, 1),
        "variants": {
            v: {
                "impressions": shown[v],
                "clicked": clicked[v],
                "ctr": clicked[v] / shown[v] if shown[v] else 0.0,
                "purchases": bought[v],
            }
            for v in sorted(shown)
        },
        "errors": {str(code): n for code, n in errors.items()},
    }
