"""MMR diversity: 0 is the plain ranking; 1 leaves no near-duplicates; intra-list diversity."""

from __future__ import annotations

from datetime import UTC, datetime

import faiss
import numpy as np
import pytest

from reccore.diversity import intra_list_diversity
from reccore.encoding import ItemTable, ModelContents, encode
from reccore.layout import IndexInfo, Manifest
from reccore.model import Model, build_model
from reccore.recommend import recommend
from reccore.scoring import Filters
from tests.core.conftest import tiny_contents


@pytest.fixture(scope="module")
def duplicates() -> Model:
    """20 distinct directions, each present as 5 near-identical items (cosine > 0.999 within a group)."""
    rng = np.random.default_rng(1)
    bases = rng.standard_normal((20, 8))
    items = (np.repeat(bases, 5, axis=0) + 0.001 * rng.standard_normal((100, 8))).astype(np.float32)
    contents = tiny_contents()
    index_ip, index_cos = faiss.IndexFlatIP(8), faiss.IndexFlatIP(8)
    index_ip.add(items)
    index_cos.add(items / np.linalg.norm(items, axis=1, keepdims=True))
    arrays = {
        **contents.arrays,
        "user_factors.npy": rng.standard_normal((4, 8)).astype(np.float32),
        "item_factors.npy": items,
        "singular_values.npy": np.ones(8, dtype=np.float32),
        "item_weights.npy": np.ones(100, dtype=np.float32),
        "popularity.npy": np.arange(100, 0, -1).astype(np.float32),
        "content_based.npy": np.zeros(100, dtype=bool),
        "item_map.npy": items[:, :2].copy(),
    }
    table = ItemTable(
        [f"i{i}" for i in range(100)], [f"t{i}" for i in range(100)], ["x"] * 100, np.ones(100, np.float32)
    )
    model_contents = ModelContents(arrays, contents.user_ids, table, index_ip, index_cos)
    manifest = Manifest(
        version="dups", created_at=datetime.now(UTC), index=IndexInfo(type="flat", dims=8), event_types=["view"]
    )
    return build_model(manifest, encode(model_contents))


def _max_pair_cosine(model: Model, items: np.ndarray) -> float:
    unit = model.item_factors[items] / np.linalg.norm(model.item_factors[items], axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -1.0)
    return float(cosine.max())


def test_zero_diversity_is_the_plain_ranking(duplicates: Model) -> None:
    for user in range(duplicates.n_users):
        plain = recommend(duplicates, 10, user=user, exclude_seen=False)
        zero = recommend(duplicates, 10, user=user, exclude_seen=False, diversity=0.0)
        assert zero.items.tolist() == plain.items.tolist()
        np.testing.assert_array_equal(zero.scores, plain.scores)


def test_full_diversity_leaves_no_near_duplicates(duplicates: Model) -> None:
    for user in range(duplicates.n_users):
        plain = recommend(duplicates, 10, user=user, exclude_seen=False)
        diverse = recommend(duplicates, 10, user=user, exclude_seen=False, diversity=1.0)
        assert _max_pair_cosine(duplicates, plain.items) > 0.99  # the plain top-10 does hold duplicates
        assert _max_pair_cosine(duplicates, diverse.items) < 0.99
        assert diverse.items[0] == plain.items[0]  # the best item still leads
        assert len(diverse.items) == 10 and intra_list_diversity(duplicates, diverse.items) > intra_list_diversity(
            duplicates, plain.items
        )


def test_diversity_keeps_filters_and_k(duplicates: Model) -> None:
    filters = Filters(exclude_items=frozenset(range(0, 100, 2)))
    ranking = recommend(duplicates, 12, user=0, filters=filters, diversity=0.7, exclude_seen=False)
    assert len(ranking.items) == 12 and all(i % 2 == 1 for i in ranking.items.tolist())


def test_intra_list_diversity_is_mean_pairwise_cosine_distance(duplicates: Model) -> None:
    assert intra_list_diversity(duplicates, np.array([0])) == 0.0
    assert intra_list_diversity(duplicates, np.array([0, 1])) == pytest.approx(0.0, abs=1e-4)  # same group
    a, b = duplicates.item_factors[0], duplicates.item_factors[5]
    expected = 1 - float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert intra_list_diversity(duplicates, np.array([0, 5])) == pytest.approx(expected, rel=1e-5)
