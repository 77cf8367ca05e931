"""Small hand-made interaction logs with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import InteractionLog


def block_log(
    n_users: int = 40, n_items: int = 20, per_user: int = 6, cold_items: int = 0, seed: int = 0
) -> InteractionLog:
    """Two taste groups: the first half of the users only touches the first half of the items.

    Items are in category ``a`` (first half) or ``b``; ``cold_items`` extra items per
    category have metadata but no interactions.
    """
    rng = np.random.default_rng(seed)
    half_users, half_items = n_users // 2, n_items // 2
    users, items = [], []
    for user in range(n_users):
        offset = 0 if user < half_users else half_items
        chosen = rng.choice(half_items, size=per_user, replace=False) + offset
        users += [user] * per_user
        items += chosen.tolist()
    n = len(users)
    total_items = n_items + 2 * cold_items
    categories = ["a"] * half_items + ["b"] * half_items + ["a"] * cold_items + ["b"] * cold_items
    prices = np.where(np.array(categories) == "a", 10.0, 100.0).astype(np.float32)
    return InteractionLog(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(total_items)]),
        users=np.array(users, dtype=np.int32),
        items=np.array(items, dtype=np.int32),
        weights=np.ones(n, dtype=np.float32),
        timestamps=np.arange(n, dtype=np.int64) + 1_700_000_000,
        events=np.zeros(n, dtype=np.int8),
        event_types=["view"],
        titles=[f"title {i}" for i in range(total_items)],
        categories=categories,
        prices=prices,
        source="block",
    )


@pytest.fixture
def block() -> InteractionLog:
    return block_log()
