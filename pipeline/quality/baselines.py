"""Reference recommenders computed on the same split as ours: most popular, item-kNN (cosine), EASE.

They score dense user×item blocks, which is fine at MovieLens scale (EASE inverts an
items×items matrix); they are yardsticks for the served SVD, not served themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from pipeline.data import InteractionLog

MAX_DENSE_ITEMS = 20_000  # an items×items float64 matrix beyond this is several GB
EASE_L2 = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0)

Scorer = Callable[[sp.csr_matrix], np.ndarray]


def binary_matrix(log: InteractionLog) -> sp.csr_matrix:
    """Users×items, 1 where the user interacted with the item (repeats and ratings ignored)."""
    matrix = sp.csr_matrix(
        (np.ones(log.n_interactions, dtype=np.float64), (log.users, log.items)), shape=(log.n_users, log.n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def item_counts(matrix: sp.csr_matrix) -> np.ndarray:
    """Number of users per item."""
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)


def popularity_rank(matrix: sp.csr_matrix) -> np.ndarray:
    """Per item, its rank by user count (0 = most popular): the popularity-bias reference for every method."""
    ranks = np.empty(matrix.shape[1], dtype=np.int64)
    ranks[np.argsort(-item_counts(matrix), kind="stable")] = np.arange(matrix.shape[1])
    return ranks


def _check_dense(matrix: sp.csr_matrix) -> None:
    if matrix.shape[1] > MAX_DENSE_ITEMS:
        raise ValueError(f"matrix: {matrix.shape[1]} items is too many for a dense item×item baseline")


def most_popular(matrix: sp.csr_matrix) -> Scorer:
    """Every user gets the items by descending user count."""
    counts = item_counts(matrix)
    return lambda rows: np.broadcast_to(counts, (rows.shape[0], len(counts))).copy()


def item_knn(matrix: sp.csr_matrix) -> Scorer:
    """Score = sum of cosine similarities to the user's items (full neighbourhood, self-similarity removed)."""
    _check_dense(matrix)
    norms = np.sqrt(item_counts(matrix))
    norms[norms == 0] = 1.0
    similarity = (matrix.T @ matrix).toarray() / np.outer(norms, norms)
    np.fill_diagonal(similarity, 0.0)
    return lambda rows: np.asarray(rows @ similarity)


def ease(matrix: sp.csr_matrix, l2: float = 500.0) -> Scorer:
    """EASE (Steck 2019): ``B = I - P·diag(1/diag(P))`` with ``P = (XᵀX + λI)⁻¹``, zero diagonal."""
    _check_dense(matrix)
    gram = (matrix.T @ matrix).toarray()
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return lambda rows: np.asarray(rows @ weights)


def rank_with(
    scorer: Scorer, matrix: sp.csr_matrix, users: list[int], k: int, batch: int = 512
) -> dict[int, list[int]]:
    """Top-``k`` per user by ``scorer``, items the user interacted with in ``matrix`` excluded (as the service does)."""
    rankings: dict[int, list[int]] = {}
    k = min(k, matrix.shape[1])
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        rows = matrix[chunk]
        scores = np.array(scorer(rows), dtype=np.float64)
        scores[rows.nonzero()] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        allowed = np.take_along_axis(scores, top, axis=1) > -np.inf
        for user, items, keep in zip(chunk, top, allowed, strict=True):
            rankings[user] = items[keep].tolist()
    return rankings
