"""Validation folds of a training log, and each setting's per-user score on them, ranked as the service ranks.

Inside the training log, the run's own objective (its per-user ``time`` or ``random`` split,
:func:`pipeline.evaluate.holdout_split`) is applied once more per fold: ``random`` draws a fresh 80/20
split per fold; ``time`` validates on each user's newest 20%, then on the 20% before that, and so on
(backtesting). Settings that share an input transform share one SVD per fold (fitted at the largest k
they need, then truncated), and each is ranked exactly as the service ranks (:func:`offline_rankings`, tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from pipeline.data import InteractionLog
from pipeline.evaluate import K, Objective, holdout_split, relevant_items
from pipeline.metrics import ndcg_at_k
from pipeline.train import (
    ContentRegression,
    ModelConfig,
    TrainedModel,
    interaction_matrix,
    item_features,
    recency_popularity,
    spectral_item_factors,
    truncated_svd,
    weighted_matrix,
)
from reccore.weighting import Scheme

_SCORING_BATCH = 256  # users per dense score block: 256 × 100k items × 4 B = 100 MB at most
# Validation users per fold. 1,000 keeps the standard error of a paired NDCG@10 difference near
# 0.002–0.004 on the synthetic data and MovieLens once three folds are pooled.
MAX_TUNE_USERS = 1000
FOLDS = 3

Group = tuple[Scheme, float, float, bool]  # an input transform: weighting, pop_alpha, min_rating, centre


def group_of(config: ModelConfig) -> Group:
    return (config.weighting, config.pop_alpha, config.min_rating, config.centre)


def rank_vectors(
    vectors: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, popular: np.ndarray, k: int = K
) -> list[list[int]]:
    """Top-``k`` per row of ``vectors`` by ``p·q`` over all items minus that row's ``seen`` items.

    A zero vector gets the popularity order (``popular``), as the service falls back to it.
    """
    rankings: list[list[int]] = []
    for start in range(0, len(vectors), _SCORING_BATCH):
        chunk = vectors[start : start + _SCORING_BATCH]
        blocked = seen[start : start + _SCORING_BATCH]
        scores = chunk @ items.T
        scores[blocked.nonzero()] = -np.inf
        n = min(k, items.shape[0])
        top = np.argpartition(scores, scores.shape[1] - n, axis=1)[:, -n:]  # the n largest, unordered
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        for row in range(len(chunk)):
            if not chunk[row].any():
                excluded = set(blocked[row].indices.tolist())
                rankings.append([int(i) for i in popular if i not in excluded][:k])
            else:
                rankings.append([int(i) for i in top[row] if scores[row, i] > -np.inf])
    return rankings


def offline_rankings(
    trained: TrainedModel, seen: sp.csr_matrix, users: Sequence[int], k: int = K
) -> dict[int, list[int]]:
    """Top-``k`` per user by ``p·q`` over all items minus ``seen``: the service's ranking, offline."""
    users = list(users)
    popular = np.argsort(-trained.popularity, kind="stable")
    ranked = rank_vectors(trained.user_factors[users], trained.item_factors, seen[users], popular, k)
    return dict(zip(users, ranked, strict=True))


class Fold:
    """One validation fold: the data to fit on, the users to score, and each setting's per-user NDCG@10."""

    def __init__(self, fit_log: InteractionLog, relevant: dict[int, set[int]], seed: int) -> None:
        pool = np.array(sorted(relevant), dtype=np.int64)
        self.users = np.random.default_rng(seed).permutation(pool)[:MAX_TUNE_USERS]  # a prefix is a random sample
        self.relevant = [relevant[int(u)] for u in self.users]
        self.raw = interaction_matrix(fit_log)
        self.warm = np.bincount(self.raw.indices, minlength=fit_log.n_items) > 0
        self.cold = np.flatnonzero(~self.warm)
        self.content = ContentRegression(item_features(fit_log), self.warm) if len(self.cold) else None
        self.popular = np.argsort(-recency_popularity(fit_log), kind="stable")
        self.seed = seed
        self.svds: dict[Group, tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = {}
        self.scores: dict[ModelConfig, np.ndarray] = {}

    def score(self, config: ModelConfig, n_users: int, k_max: int) -> np.ndarray:
        """Per-user validation NDCG@10 of ``config`` for the first ``n_users``; only new users are ranked."""
        done = self.scores.get(config, np.zeros(0))
        if len(done) < n_users:
            weighted, v, sigma = self._svd(group_of(config), k_max)
            k = min(config.factors, len(sigma))
            items = spectral_item_factors(v[:, :k], sigma[:k], config.scaling, config.shrinkage)
            if self.content is not None:
                items[self.cold] = self.content.predict(items, self.cold)
            squared = np.square(sigma[:k].astype(np.float64)).astype(np.float32)
            new = self.users[len(done) : n_users]
            vectors = np.asarray(weighted[new] @ (items / squared), dtype=np.float32)  # the users' own fold-in
            ranked = rank_vectors(vectors, items, self.raw[new], self.popular)
            gains = [ndcg_at_k(r, self.relevant[len(done) + i], K) for i, r in enumerate(ranked)]
            done = self.scores[config] = np.concatenate([done, gains])
        return done[:n_users]

    def _svd(self, group: Group, k_max: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        if group not in self.svds:
            weighted = weighted_matrix(self.raw, *group)[0]
            self.svds[group] = (weighted, *truncated_svd(weighted, k_max, self.seed))
        return self.svds[group]

    def forget(self, groups: set[Group]) -> None:
        """Drop the SVDs of groups no setting still needs (they are the search's memory)."""
        for group in set(self.svds) - groups:
            del self.svds[group]


def validation_folds(
    train_log: InteractionLog, objective: Objective, seed: int, n_folds: int = FOLDS
) -> list[Callable[[], Fold]]:
    """Builders of the folds, each applied to ``train_log`` only (built when the search first needs them).

    ``random``: fold f holds out a fresh seeded 80/20 draw. ``time``: fold 0 holds out each user's newest
    20%, fold 1 the newest 20% of what remains, and so on: older and older windows.
    """

    def build(f: int) -> Fold:
        log = train_log
        if objective == "time":
            for _ in range(f):
                log = log.subset(~holdout_split(log, "time"))
        held = holdout_split(log, objective, seed + 1 + f)
        fit_log = log.subset(~held)
        return Fold(fit_log, relevant_items(fit_log, log.subset(held)), seed + f)

    return [lambda f=f: build(f) for f in range(n_folds)]  # type: ignore[misc]
