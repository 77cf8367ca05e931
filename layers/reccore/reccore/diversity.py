"""Diversity by maximal marginal relevance (MMR) over the top candidates, with the cosine of item vectors.

Each next item maximises ``(1 − λ)·relevance − λ·max cosine to the items already chosen``, where
relevance is the candidate's score scaled to [0, 1] over the candidates. λ = 0 is the plain ranking;
λ = 1 picks the best item first and then, each time, the candidate least like those already chosen.
"""

from __future__ import annotations

import numpy as np

from reccore.model import Model
from reccore.scoring import Ranking

POOL_FACTOR = 5  # candidates considered per returned item
MIN_POOL = 50


def pool_size(k: int) -> int:
    """How many top candidates MMR chooses ``k`` items from."""
    return max(MIN_POOL, POOL_FACTOR * k)


def mmr(model: Model, candidates: Ranking, k: int, diversity: float) -> Ranking:
    """``k`` items of ``candidates`` (best first) re-ranked by MMR; their scores and sources are kept."""
    if diversity <= 0.0 or len(candidates.items) <= 1:
        return _take(candidates, np.arange(min(k, len(candidates.items))))
    vectors = model.item_factors[candidates.items].astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    scores = candidates.scores.astype(np.float64)
    spread = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    chosen: list[int] = []
    closest = np.full(len(scores), -np.inf)  # max cosine to a chosen item; -inf before the first pick
    available = np.ones(len(scores), dtype=bool)
    for _ in range(min(k, len(scores))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = np.where(available, (1.0 - diversity) * relevance - diversity * penalty, -np.inf)
        best = int(np.argmax(value))  # ties go to the better-ranked candidate
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, unit @ unit[best])
    return _take(candidates, np.asarray(chosen, dtype=np.int64))


def intra_list_diversity(model: Model, items: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 − cosine) between the item vectors of a list (0 for < 2 items)."""
    if len(items) < 2:
        return 0.0
    vectors = model.item_factors[items].astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    cosine = unit @ unit.T
    n = len(items)
    return float((n * n - cosine.sum()) / (n * (n - 1)))  # the diagonal contributes 1 − 1 = 0


def _take(ranking: Ranking, order: np.ndarray) -> Ranking:
    return Ranking(
        items=ranking.items[order],
        scores=ranking.scores[order],
        sources=[ranking.sources[i] for i in order.tolist()],
        strategy=ranking.strategy,
    )
