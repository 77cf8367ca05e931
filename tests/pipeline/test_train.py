from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipeline.package import package
from pipeline.train import (
    ContentRegression,
    ModelConfig,
    interaction_matrix,
    train,
    train_config,
    weighted_matrix,
)
from reccore.model import build_model
from reccore.scoring import Filters, allowed_items, fold_in, rank, seen_items
from reccore.weighting import SCHEMES
from tests.pipeline.conftest import block_log


def test_matrix_is_sparse_and_sums_repeats(block) -> None:
    block.users = np.concatenate([block.users, block.users[:1]])
    block.items = np.concatenate([block.items, block.items[:1]])
    block.weights = np.concatenate([block.weights, np.array([4.0], dtype=np.float32)])
    matrix = interaction_matrix(block)
    assert sp.issparse(matrix)
    assert matrix[block.users[0], block.items[0]] == pytest.approx(5.0)


def test_block_structure_is_recovered(block) -> None:
    # Two factors: one per block. More would add within-block factors that can push unseen
    # in-block items below the (exactly zero) out-of-block scores.
    manifest, files = package(block, train(block, factors=2, scheme="log"))
    model = build_model(manifest, files)
    for user in range(block.n_users):
        ranking = rank(model, model.user_factors[user], 3, allowed_items(model, Filters(), seen_items(model, user)))
        first_half = user < block.n_users // 2
        expected = np.arange(10) if first_half else np.arange(10, 20)
        assert set(ranking.items.tolist()) <= set(expected.tolist()), (user, ranking.items)
        assert not set(ranking.items.tolist()) & set(seen_items(model, user).tolist())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fold_in_of_a_training_row_reproduces_the_trained_vector(scheme: str) -> None:
    log = block_log(n_users=60, n_items=30, per_user=8, seed=3)
    log.weights = np.random.default_rng(1).integers(1, 6, size=log.n_interactions).astype(np.float32)
    model = build_model(*package(log, train(log, factors=5, scheme=scheme)))  # type: ignore[arg-type]
    for user in (0, 17, 42, 59):
        mask = log.users == user
        folded = fold_in(model, log.items[mask], log.weights[mask])
        np.testing.assert_allclose(folded, model.user_factors[user], rtol=1e-4, atol=1e-5)


def test_scores_are_the_best_rank_k_reconstruction(block) -> None:
    block.weights = np.random.default_rng(7).uniform(1, 5, size=block.n_interactions).astype(np.float32)
    trained = train(block, factors=5, scheme="none")
    dense = weighted_matrix(interaction_matrix(block), "none")[0].toarray()
    u, s, vt = np.linalg.svd(dense, full_matrices=False)
    best_rank_5 = (u[:, :5] * s[:5]) @ vt[:5]
    # Randomized SVD with 4 power iterations: close to, not exactly, the best rank-5 approximation.
    np.testing.assert_allclose(trained.user_factors @ trained.item_factors.T, best_rank_5, atol=2e-2)
    np.testing.assert_allclose(trained.singular_values, s[:5], rtol=1e-3)
    optimal_error = np.linalg.norm(dense - best_rank_5)
    assert np.linalg.norm(dense - trained.user_factors @ trained.item_factors.T) < 1.001 * optimal_error


def test_content_vectors_land_near_their_category() -> None:
    log = block_log(cold_items=3)
    trained = train(log, factors=4, scheme="log")
    assert trained.content_based.sum() == 6
    assert not trained.content_based[:20].any()
    unit = trained.item_factors / np.linalg.norm(trained.item_factors, axis=1, keepdims=True)
    for cold in np.flatnonzero(trained.content_based):
        nearest_warm = np.argsort(-(unit[:20] @ unit[cold]))[:5]
        expected = log.categories[cold]
        assert all(log.categories[i] == expected for i in nearest_warm), (cold, nearest_warm)


def test_popularity_prefers_recent_interactions() -> None:
    log = block_log(n_users=2, n_items=4, per_user=2)
    log.users = np.array([0, 1], dtype=np.int32)
    log.items = np.array([0, 1], dtype=np.int32)
    log.weights = np.ones(2, dtype=np.float32)
    log.timestamps = np.array([0, 90 * 86_400], dtype=np.int64)  # item 0 touched 90 days before item 1
    log.events = np.zeros(2, dtype=np.int8)
    popularity = train(log, factors=1, scheme="log").popularity
    assert popularity[1] > popularity[0] > 0


def test_map_has_two_coordinates_per_item(block) -> None:
    trained = train(block, factors=4)
    assert trained.item_map.shape == (block.n_items, 2)
    assert np.isfinite(trained.item_map).all()


def test_closed_form_ridge_matches_scikit_learn() -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    features, vectors = rng.normal(size=(57, 6)), rng.normal(size=(57, 3))
    warm = np.arange(57) < 50  # fit on the first 50 items, predict the other 7
    expected = Ridge(alpha=2.0).fit(features[warm], vectors[warm]).predict(features[~warm])
    regression = ContentRegression(features, warm, alpha=2.0)
    np.testing.assert_allclose(regression.predict(vectors, np.flatnonzero(~warm)), expected, rtol=1e-4, atol=1e-5)
    # Fitted once, it predicts for other vectors as a fresh fit would (what the tuner relies on).
    other = rng.normal(size=(57, 3))
    expected = Ridge(alpha=2.0).fit(features[warm], other[warm]).predict(features)
    np.testing.assert_allclose(regression.predict(other), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"shrinkage": 0.3},
        {"scaling": 1.0, "shrinkage": 1.0},
        {"pop_alpha": 0.5},
        {"min_rating": 3.0},
        {"centre": True},
        {"scaling": 0.5, "shrinkage": 0.1, "pop_alpha": 0.25, "min_rating": 2.0, "centre": True},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
@pytest.mark.parametrize("scheme", ["log", "bm25"])
def test_fold_in_reproduces_the_trained_vector_for_every_variant(scheme: str, options: dict[str, float]) -> None:
    log = block_log(n_users=60, n_items=30, per_user=8, seed=3)
    log.weights = np.random.default_rng(1).integers(1, 6, size=log.n_interactions).astype(np.float32)
    config = ModelConfig(5, scheme, **options)  # type: ignore[arg-type]
    model = build_model(*package(log, train_config(log, config)))
    for user in (0, 17, 42, 59):
        mask = log.users == user
        folded = fold_in(model, log.items[mask], log.weights[mask])
        np.testing.assert_allclose(folded, model.user_factors[user], rtol=1e-4, atol=1e-5)


def test_shrinkage_is_the_filter_sigma2_over_sigma2_plus_lambda(block) -> None:
    block.weights = np.random.default_rng(7).uniform(1, 5, size=block.n_interactions).astype(np.float32)
    trained = train(block, factors=4, scheme="none", shrinkage=0.5)
    dense = weighted_matrix(interaction_matrix(block), "none")[0].toarray()
    _, s, vt = np.linalg.svd(dense, full_matrices=False)
    s2 = s[:4] ** 2
    filtered = (vt[:4].T * (s2 / (s2 + 0.5 * s2.mean()))) @ vt[:4]
    np.testing.assert_allclose(trained.user_factors @ trained.item_factors.T, dense @ filtered, atol=2e-2)


def test_min_rating_drops_dislikes_and_centring_keeps_equal_rows_at_one() -> None:
    from reccore.weighting import weight_rows

    indptr, indices = np.array([0, 3, 5]), np.array([0, 1, 2, 0, 1])
    raw = np.array([1.0, 4.0, 5.0, 2.0, 2.0])
    ones = np.ones(3, dtype=np.float32)
    thresholded = weight_rows(indptr, indices, raw, ones, "none", 1.0, min_rating=3.0)
    np.testing.assert_allclose(thresholded, [0.0, 4.0, 5.0, 0.0, 0.0])
    centred = weight_rows(indptr, indices, raw, ones, "none", 1.0, centre=True)
    np.testing.assert_allclose(centred, [2 - 10 / 3, 5 - 10 / 3, 6 - 10 / 3, 1.0, 1.0], rtol=1e-6)
    both = weight_rows(indptr, indices, raw, ones, "none", 1.0, min_rating=3.0, centre=True)
    np.testing.assert_allclose(both, [0.0, 0.5, 1.5, 0.0, 0.0])


def test_recency_popularity_is_the_same_summed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.train as train_module
    from pipeline.sources.synthetic import generate

    log = generate(5_000, seed=8)
    whole = train_module.recency_popularity(log)
    monkeypatch.setattr(train_module, "POPULARITY_CHUNK_ROWS", 333)  # 16 chunks, the last one short
    np.testing.assert_allclose(train_module.recency_popularity(log), whole, rtol=1e-6)
    assert whole.sum() > 0 and (whole > 0).sum() > log.n_items // 2
