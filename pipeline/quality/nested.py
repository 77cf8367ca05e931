"""Nested, honest evaluation: every choice made on a validation split carved from the training data.

For each protocol the pipeline's own tuner (:func:`pipeline.tune.tune`) searches its space on a
validation split (the protocol's per-user split applied once more to the training data); EASE's
λ is chosen on the same validation split; only then is the test split touched, once per chosen
configuration. Each model family's winner is the best validation score among the settings that
family allows, read from the one search (the same SVDs, so the same numbers a separate search
of that family would give).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import K, random_split, rank_users, sample_users, served_model, time_split
from pipeline.metrics import ndcg_at_k
from pipeline.quality.baselines import EASE_L2, binary_matrix, ease, rank_with
from pipeline.quality.protocols import Protocol, Split
from pipeline.train import ModelConfig
from pipeline.tune import MAX_TUNE_USERS, SearchSpace, Splitter, TuningResult, rating_space, tune, validation_split

Metrics = dict[str, float]
Scorer = Callable[[dict[int, list[int]]], Metrics]

FAMILIES: dict[str, Callable[[ModelConfig], bool]] = {
    "SVD, Σ^β (k, weighting, β)": lambda c: not (c.shrinkage or c.pop_alpha or c.min_rating or c.centre),
    "+ shrinkage σ²/(σ²+λ)": lambda c: not (c.pop_alpha or c.min_rating or c.centre),
    "+ popularity-normalised input": lambda c: not (c.shrinkage or c.min_rating or c.centre),
    "+ minimum rating / per-user centring": lambda c: not (c.shrinkage or c.pop_alpha),
    "all of the above (the pipeline's search)": lambda c: True,
}
ALL = "all of the above (the pipeline's search)"


def validation_splitter(protocol: Protocol, seed: int) -> Splitter:
    """The protocol's own per-user split, applied once more (to the training data)."""
    if protocol == "time":
        return time_split
    return lambda log: random_split(log, seed=seed + 1)  # a different draw from the test split's


@dataclass
class NestedResult:
    """One protocol: what validation chose, and those choices' test metrics."""

    protocol: str
    tuning: TuningResult
    chosen: dict[str, tuple[ModelConfig, float]]  # family -> (winner, its validation NDCG@10)
    test: dict[str, Metrics]  # family -> test metrics of its winner, through the served path
    default_validation: float  # the untuned default's validation NDCG@10
    same_cost: tuple[ModelConfig, float]  # the best validation setting at the default's k (same serving cost)
    ease_validation: dict[float, float]  # λ -> validation NDCG@10
    ease_l2: float
    ease_test: Metrics


def ease_on_validation(
    train_log: InteractionLog, splitter: Splitter, seed: int, l2s: Sequence[float] = EASE_L2
) -> dict[float, float]:
    """EASE's validation NDCG@10 for each λ (fitted on the training data minus the validation split)."""
    fit_log, relevant = validation_split(train_log, splitter)
    matrix = binary_matrix(fit_log)
    users = sample_users(relevant, MAX_TUNE_USERS, seed)  # the users the tuner validates on
    scores = {}
    for l2 in l2s:
        rankings = rank_with(ease(matrix, l2), matrix, users, K)
        scores[l2] = float(np.mean([ndcg_at_k(rankings[u], relevant[u], K) for u in users]))
    return scores


def evaluate_nested(
    log: InteractionLog,
    split: Split,
    protocol: Protocol,
    default: ModelConfig,
    score: Scorer,
    users: list[int],
    space: SearchSpace | None = None,
    seed: int = 42,
    budget: float = 600.0,
    ease_l2: Sequence[float] = EASE_L2,
) -> NestedResult:
    """Tune on validation inside ``split.train``, then test each family's winner and EASE's chosen λ once."""
    splitter = validation_splitter(protocol, seed)
    space = rating_space(space or SearchSpace(), split.train)
    tuning = tune(split.train, space, default, seed, budget, splitter)
    validation = dict(tuning.trials)
    chosen: dict[str, tuple[ModelConfig, float]] = {}
    for family, allowed in FAMILIES.items():
        candidates = [(c, s) for c, s in tuning.trials if allowed(c)]
        if candidates:
            chosen[family] = max(candidates, key=lambda trial: trial[1])
    test: dict[str, Metrics] = {}
    for family, (config, _) in chosen.items():
        options = {k: v for k, v in config.params().items() if k not in ("factors", "weighting", "scaling")}
        model = served_model(split.train, config.factors, config.weighting, config.scaling, seed, **options)
        test[family] = score(rank_users(model, users, "model", K))
    by_l2 = ease_on_validation(split.train, splitter, seed, ease_l2)
    best_l2 = max(by_l2, key=lambda l2: by_l2[l2])
    matrix = binary_matrix(split.train)
    ease_test = score(rank_with(ease(matrix, best_l2), matrix, users, K))
    same_k = [(c, s) for c, s in tuning.trials if c.factors == default.factors] or tuning.trials
    return NestedResult(
        protocol=protocol,
        tuning=tuning,
        chosen=chosen,
        test=test,
        default_validation=validation.get(default, float("nan")),
        same_cost=max(same_k, key=lambda trial: trial[1]),
        ease_validation=by_l2,
        ease_l2=best_l2,
        ease_test=ease_test,
    )
