"""Loading a model by mapping its files gives the same answers as decoding them in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reccore.artifacts import encode, publish
from reccore.model import category_codes, load_model
from reccore.recommend import recommend
from reccore.scoring import Filters, similar_items
from reccore.storage import LocalStore
from tests.core.conftest import catalogue_contents, catalogue_manifest


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_mapped_load_answers_exactly_as_the_in_memory_load(kind: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "models")
    publish(store, catalogue_manifest(kind), encode(catalogue_contents(kind)))
    mapped = load_model(store, cache_dir=str(tmp_path / "cache"), mmap=True)
    in_memory = load_model(store, cache_dir=str(tmp_path / "cache"), mmap=False)
    assert isinstance(mapped.item_factors.base, np.memmap)  # a plain ndarray over the mapped file
    assert not isinstance(in_memory.item_factors.base, np.memmap)
    assert list((tmp_path / "cache").iterdir()) == []  # the mapped copy's files are gone; the mappings stay valid
    filters = [Filters(), Filters(exclude_categories=frozenset({"c0", "c1", "c2"}), exclude_items=frozenset({3, 4}))]
    for user in range(0, mapped.n_users, 7):
        for request in filters:
            a = recommend(mapped, 10, user=user, filters=request)
            b = recommend(in_memory, 10, user=user, filters=request)
            assert a.items.tolist() == b.items.tolist() and a.sources == b.sources
            np.testing.assert_array_equal(a.scores, b.scores)
    for item in range(0, mapped.n_items, 301):
        assert similar_items(mapped, item, 5).items.tolist() == similar_items(in_memory, item, 5).items.tolist()


@pytest.mark.parametrize("categories", [[], ["b"], ["b", "a", "b", "c", "a"], ["x", "X", "", "é", "x"]])
def test_category_codes_are_np_uniques(categories: list[str]) -> None:
    names, codes = category_codes(categories)
    expected_names, expected_codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
    assert names == [str(n) for n in expected_names] and codes.dtype == np.int32
    np.testing.assert_array_equal(codes, expected_codes.astype(np.int32))
