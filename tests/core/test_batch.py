"""Batched recommendations answer exactly as the single path, on every index kind, with filters and threads."""

from __future__ import annotations

import pytest

from reccore.batch import CHUNK, recommend_users
from reccore.model import Model
from reccore.recommend import recommend
from reccore.scoring import Filters

FILTERS = [Filters(), Filters(exclude_categories=frozenset({"c0", "c1", "c2"}), exclude_items=frozenset(range(40)))]


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_equals_the_single_path_for_every_user(catalogue: Model, filters: Filters, threads: int) -> None:
    users: list[int | None] = [*range(catalogue.n_users), None]  # None: an unknown user gets the popular answer
    assert len(users) < 2 * CHUNK  # two chunks with 2 threads; the second is short
    batched = list(recommend_users(catalogue, users, 10, filters=filters, threads=threads))
    assert len(batched) == len(users)
    for user, got in zip(users, batched, strict=True):
        want = recommend(catalogue, 10, user=user, filters=filters)
        assert got.items.tolist() == want.items.tolist(), user
        assert got.sources == want.sources and got.strategy == want.strategy
