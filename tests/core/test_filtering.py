"""Filtered search inside the index: only allowed items, k of them, on flat, IVF and HNSW indexes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reccore.encoding import encode
from reccore.filtering import Allowed
from reccore.model import Model, build_model
from reccore.recommend import recommend
from reccore.scoring import Filters, allowed, allowed_items, seen_items
from tests.core.conftest import catalogue_contents, catalogue_manifest

CATEGORY_FILTERS = [
    (None, frozenset()),
    (frozenset({"c0"}), frozenset()),
    (frozenset({"c1", "c2", "c3"}), frozenset()),
    (None, frozenset({"c0", "c1", "c2"})),  # the heavy filter: half the categories excluded
    (frozenset({"c0", "c1"}), frozenset({"c1"})),
    (frozenset({"nope"}), frozenset()),  # an unknown category: nothing allowed
]


@pytest.mark.parametrize(("include", "exclude"), CATEGORY_FILTERS)
@pytest.mark.parametrize("exclude_items", [frozenset(), frozenset(range(0, 3000, 7))])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_filtered_search_returns_only_allowed_items_and_k_of_them(
    catalogue: Model,
    include: frozenset[str] | None,
    exclude: frozenset[str],
    exclude_items: frozenset[int],
    k: int,
) -> None:
    filters = Filters(exclude_items=exclude_items, include_categories=include, exclude_categories=exclude)
    for user in range(0, catalogue.n_users, 25):
        mask = allowed_items(catalogue, filters, seen_items(catalogue, user))  # the n-sized oracle
        ranking = recommend(catalogue, k, user=user, filters=filters)
        assert mask[ranking.items].all()
        assert len(ranking.items) == min(k, int(mask.sum()))
        assert len(set(ranking.items.tolist())) == len(ranking.items)


def test_allowed_counts_and_membership_match_the_mask(catalogue: Model) -> None:
    seen = seen_items(catalogue, 3)
    for (include, exclude), blocked in itertools.product(CATEGORY_FILTERS, [frozenset(), frozenset({1, 2, 5, 2999})]):
        filters = Filters(exclude_items=blocked, include_categories=include, exclude_categories=exclude)
        mask = allowed_items(catalogue, filters, seen)
        permitted = allowed(catalogue, filters, seen)
        assert permitted.count == int(mask.sum())
        probe = np.arange(catalogue.n_items)
        np.testing.assert_array_equal(permitted.contains(probe), mask)
        if permitted.count:
            np.testing.assert_array_equal(permitted.members(), np.flatnonzero(mask))


@pytest.fixture(scope="module")
def flat_catalogue() -> Model:
    return build_model(catalogue_manifest("flat"), encode(catalogue_contents("flat")))


def test_exact_filtered_search_equals_scoring_every_allowed_item(flat_catalogue: Model) -> None:
    """Exactness is a property of the flat index; the approximate ones are held to the recall gate instead."""
    catalogue = flat_catalogue
    filters = Filters(exclude_categories=frozenset({"c0", "c1", "c2"}), exclude_items=frozenset(range(50)))
    for user in range(0, catalogue.n_users, 10):
        mask = allowed_items(catalogue, filters, seen_items(catalogue, user))
        scores = catalogue.item_factors @ catalogue.user_factors[user]
        expected = np.flatnonzero(mask)[np.argsort(-scores[mask], kind="stable")[:10]]
        assert recommend(catalogue, 10, user=user, filters=filters).items.tolist() == expected.tolist()


def test_selector_uses_cached_category_bitmaps(catalogue: Model) -> None:
    first = allowed(catalogue, Filters(exclude_categories=frozenset({"c4"})))
    second = allowed(catalogue, Filters(exclude_categories=frozenset({"c4"})))
    assert first.selector() is not None and second.selector() is not None
    assert first.category_ok is not None and second.category_ok is not None
    assert catalogue.category_sets.bitmap(first.category_ok) is catalogue.category_sets.bitmap(second.category_ok)


def test_unfiltered_allowed_has_no_selector(catalogue: Model) -> None:
    permitted = Allowed.build(catalogue.category_sets, catalogue.category_names, None, frozenset(), ())
    assert permitted.unfiltered and permitted.selector() is None and permitted.count == catalogue.n_items
