"""Nested, honest evaluation: every choice made on validation folds carved from the training data.

For each protocol the pipeline's own tuner (:func:`pipeline.tuning.search.tune`) searches its space on
validation folds (the protocol's per-user split applied once more to the training data); EASE's
λ is chosen on the same folds and users; only then is the test split touched, once for the
untuned default, once for the tuner's choice and once for EASE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import K, Objective, rank_users, served_model
from pipeline.metrics import ndcg_at_k
from pipeline.quality.baselines import EASE_L2, binary_matrix, ease, rank_with
from pipeline.quality.protocols import Split
from pipeline.train import ModelConfig
from pipeline.tuning.folds import validation_folds
from pipeline.tuning.search import SearchSpace, TuningResult, rating_space, tune

Metrics = dict[str, float]
Scorer = Callable[[dict[int, list[int]]], Metrics]

UNTUNED = "SVD, untuned default (`--no-tune`)"
ALL = "SVD, tuned: the pipeline's search (the default run)"


@dataclass
class NestedResult:
    """One protocol: what validation chose, and those choices' test metrics."""

    protocol: str
    tuning: TuningResult
    chosen: dict[str, tuple[ModelConfig, float]]  # row -> (setting, its validation NDCG@10 on the last rung)
    test: dict[str, Metrics]  # row -> test metrics of its setting, through the served path
    ease_validation: dict[float, float]  # λ -> validation NDCG@10, pooled over the tuner's folds
    ease_l2: float
    ease_test: Metrics


def ease_on_validation(
    train_log: InteractionLog, objective: Objective, seed: int, l2s: Sequence[float] = EASE_L2
) -> dict[float, float]:
    """EASE's validation NDCG@10 for each λ, on the tuner's own folds and users."""
    gains: dict[float, list[float]] = {l2: [] for l2 in l2s}
    for build in validation_folds(train_log, objective, seed):
        fold = build()
        matrix = fold.raw.copy()
        matrix.data[:] = 1.0  # binary, as binary_matrix(fit_log)
        users = fold.users.tolist()
        for l2 in l2s:
            rankings = rank_with(ease(matrix, l2), matrix, users, K)
            gains[l2] += [ndcg_at_k(rankings[u], rel, K) for u, rel in zip(users, fold.relevant, strict=True)]
    return {l2: float(np.mean(g)) if g else 0.0 for l2, g in gains.items()}


def evaluate_nested(
    log: InteractionLog,
    split: Split,
    protocol: Objective,
    default: ModelConfig,
    score: Scorer,
    users: list[int],
    space: SearchSpace | None = None,
    seed: int = 42,
    ease_l2: Sequence[float] = EASE_L2,
) -> NestedResult:
    """Tune on validation folds inside ``split.train``, then test the untuned default, the tuned choice and EASE."""
    space = rating_space(space or SearchSpace(), split.train)
    tuning = tune(split.train, space, default, seed, protocol)
    last = tuning.rungs[-1]
    chosen = {UNTUNED: (default, last[default]), ALL: (tuning.best, last[tuning.best])}
    test: dict[str, Metrics] = {}
    for row, (config, _) in chosen.items():
        options = {k: v for k, v in config.params().items() if k not in ("factors", "weighting", "scaling")}
        model = served_model(split.train, config.factors, config.weighting, config.scaling, seed, **options)
        test[row] = score(rank_users(model, users, "model", K))
    by_l2 = ease_on_validation(split.train, protocol, seed, ease_l2)
    best_l2 = max(by_l2, key=lambda l2: by_l2[l2])
    matrix = binary_matrix(split.train)
    ease_test = score(rank_with(ease(matrix, best_l2), matrix, users, K))
    return NestedResult(protocol, tuning, chosen, test, by_l2, best_l2, ease_test)
