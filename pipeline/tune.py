"""Hyperparameter search on a validation split carved from the training data, within a time budget.

The tuner is given a training log only: the caller splits off its test interactions first,
so nothing held out for testing can influence the choice. Inside it, the same per-user
split is applied once more (train → fit + validation). Settings that share an input
transform share one SVD (fitted at the largest k and truncated), and each is scored with
:func:`offline_rankings`, which ranks exactly as the service does (tested).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from pipeline.data import InteractionLog
from pipeline.evaluate import K, relevant_items, sample_users, time_split
from pipeline.metrics import ndcg_at_k
from pipeline.train import (
    ModelConfig,
    TrainedModel,
    content_vectors,
    interaction_matrix,
    recency_popularity,
    spectral_factors,
    truncated_svd,
    weighted_matrix,
)
from reccore.settings import PipelineSettings
from reccore.weighting import Scheme

Splitter = Callable[[InteractionLog], np.ndarray]
_SCORING_BATCH = 256  # users per dense score block: 256 × 100k items × 4 B = 100 MB at most
# Validation users per setting. Scoring them is most of a trial's cost; 1,000 keeps the standard error
# of a validation NDCG@10 near 0.005 on the synthetic data while halving the search's time.
MAX_TUNE_USERS = 1000


@dataclass(frozen=True)
class SearchSpace:
    """The grid the tuner walks: every combination of these values."""

    # Pruned on MovieLens-100K validation splits: β = 1, pop_alpha = 0.5 and bm25/tfidf never won there,
    # and k = 400 won only by noise-level margins while costing 8× k = 50 to serve.
    factors: tuple[int, ...] = (20, 50, 100, 200)
    weightings: tuple[Scheme, ...] = ("log", "none")
    scalings: tuple[float, ...] = (0.0, 0.5)
    shrinkages: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0)
    pop_alphas: tuple[float, ...] = (0.0, 0.25)
    min_ratings: tuple[float, ...] = (0.0,)
    centres: tuple[bool, ...] = (False,)

    def configs(self, first: ModelConfig | None = None) -> list[ModelConfig]:
        """Every setting, grouped by input transform (one SVD per group); ``first``'s group and ``first`` lead."""
        groups = list(itertools.product(self.weightings, self.pop_alphas, self.min_ratings, self.centres))
        if first is not None:
            lead = (first.weighting, first.pop_alpha, first.min_rating, first.centre)
            groups.sort(key=lambda g: g != lead)
        configs = [
            ModelConfig(k, w, beta, shrink, alpha, rating, centre)
            for w, alpha, rating, centre in groups
            for k, beta, shrink in itertools.product(self.factors, self.scalings, self.shrinkages)
        ]
        if first is not None and first in configs:
            configs.remove(first)
            configs.insert(0, first)
        return configs

    def to_dict(self) -> dict[str, list[Any]]:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}


def rating_space(space: SearchSpace, log: InteractionLog, thresholds: Sequence[float] = (0.0, 3.0)) -> SearchSpace:
    """``space`` plus minimum ratings and per-user centring when the log holds explicit ratings."""
    if "rating" not in log.event_types or len(np.unique(log.weights)) < 2:
        return space
    return SearchSpace(**{**space.__dict__, "min_ratings": tuple(thresholds), "centres": (False, True)})


@dataclass
class TuningResult:
    """What the search tried, what won, and how long it took."""

    best: ModelConfig
    trials: list[tuple[ModelConfig, float]]
    space: SearchSpace
    seconds: float
    budget: float
    planned: int
    stopped_by_budget: bool
    validation_users: int
    notes: list[str] = field(default_factory=list)

    def to_manifest(self) -> dict[str, Any]:
        """JSON-ready record for the manifest: the space, every trial, the winner, the time spent."""
        return {
            "split": "per-user time split of the training data (newest 20% per user) as validation",
            "metric": f"ndcg@{K}",
            "space": self.space.to_dict(),
            "trials": [{**config.params(), f"ndcg@{K}": round(score, 6)} for config, score in self.trials],
            "best": self.best.params(),
            "best_ndcg@10": round(dict(self.trials)[self.best], 6),
            "validation_users": self.validation_users,
            "seconds": round(self.seconds, 3),
            "budget_seconds": self.budget,
            "tried": len(self.trials),
            "planned": self.planned,
            "stopped_by_budget": self.stopped_by_budget,
        }

    @property
    def summary(self) -> str:
        text = (
            f"tuned on validation: {self.best.label} (NDCG@10 {dict(self.trials)[self.best]:.4f}), "
            f"{len(self.trials)} of {self.planned} settings in {self.seconds:.1f} s"
        )
        if self.stopped_by_budget:
            text += f"; stopped by the {self.budget:g} s budget"
        return text


def offline_rankings(
    trained: TrainedModel, seen: sp.csr_matrix, users: Sequence[int], k: int = K
) -> dict[int, list[int]]:
    """Top-``k`` per user by ``p·q`` over all items minus ``seen``, in batches: the service's ranking, offline.

    A user whose vector is zero gets the popularity order, as the service falls back to it.
    """
    rankings: dict[int, list[int]] = {}
    items = trained.item_factors
    popular = np.argsort(-trained.popularity, kind="stable")
    for start in range(0, len(users), _SCORING_BATCH):
        chunk = list(users[start : start + _SCORING_BATCH])
        vectors = trained.user_factors[chunk]
        scores = vectors @ items.T
        scores[seen[chunk].nonzero()] = -np.inf
        n = min(k, items.shape[0])
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        for row, user in enumerate(chunk):
            if not vectors[row].any():
                blocked = set(seen[user].indices.tolist())
                rankings[user] = [int(i) for i in popular if i not in blocked][:k]
            else:
                rankings[user] = [int(i) for i in top[row] if scores[row, i] > -np.inf]
    return rankings


def validation_split(
    train_log: InteractionLog, splitter: Splitter = time_split
) -> tuple[InteractionLog, dict[int, set[int]]]:
    """The data to fit on and, per validation user, the held-out items to find (``splitter`` on ``train_log``)."""
    validation = splitter(train_log)
    fit_log = train_log.subset(~validation)
    return fit_log, relevant_items(fit_log, train_log.subset(validation))


def tune(
    train_log: InteractionLog,
    space: SearchSpace,
    first: ModelConfig | None = None,
    seed: int = 42,
    budget: float = 60.0,
    splitter: Splitter = time_split,
    progress: Callable[[str], None] | None = None,
) -> TuningResult:
    """Search ``space`` on a validation split of ``train_log``; returns every trial and the best setting.

    Parameters
    ----------
    train_log
        Training data only: whatever the caller will test on must not be in it.
    first
        Tried first (normally the untuned default), so a tight budget still yields a known setting.
    budget
        Seconds; the search stops after the setting that crosses it (at least one is always tried).
    splitter
        Returns the validation mask of a log: the caller's own protocol applied once more.
    """
    start = time.perf_counter()
    fit_log, relevant = validation_split(train_log, splitter)
    users = sample_users(relevant, MAX_TUNE_USERS, seed)
    raw = interaction_matrix(fit_log)
    seen = raw.copy()
    warm = np.bincount(raw.indices, minlength=fit_log.n_items) > 0
    popularity = recency_popularity(fit_log)
    configs = space.configs(first)
    k_max = max(space.factors)
    trials: list[tuple[ModelConfig, float]] = []
    stopped = False
    cache: dict[tuple[object, ...], tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = {}
    for config in configs:
        if trials and time.perf_counter() - start > budget:
            stopped = True
            break
        group = (config.weighting, config.pop_alpha, config.min_rating, config.centre)
        if group not in cache:
            cache.clear()  # configs arrive grouped: one SVD in memory at a time
            weighted = weighted_matrix(raw, config.weighting, config.pop_alpha, config.min_rating, config.centre)[0]
            cache[group] = (weighted, *truncated_svd(weighted, k_max, seed))
        weighted, v, sigma = cache[group]
        k = min(config.factors, len(sigma))
        user_factors, item_factors = spectral_factors(weighted, v[:, :k], sigma[:k], config.scaling, config.shrinkage)
        if not warm.all():
            item_factors[~warm] = content_vectors(fit_log, item_factors, warm)[~warm]
        trained = TrainedModel(
            user_factors, item_factors, sigma[:k], np.ones(0), ~warm, popularity, np.empty((0, 2)), {}, raw.nnz
        )
        rankings = offline_rankings(trained, seen, users)
        score = float(np.mean([ndcg_at_k(rankings[u], relevant[u], K) for u in users])) if users else 0.0
        trials.append((config, score))
        if progress is not None:
            progress(f"  {config.label}: validation NDCG@10 {score:.4f}")
    best = max(trials, key=lambda trial: trial[1])[0]  # max keeps the first of equals: deterministic
    return TuningResult(
        best=best,
        trials=trials,
        space=space,
        seconds=time.perf_counter() - start,
        budget=budget,
        planned=len(configs),
        stopped_by_budget=stopped,
        validation_users=len(users),
    )


def tuning_enabled(settings: PipelineSettings, log: InteractionLog) -> bool:
    """``settings.tune`` if set, else on for logs of at most ``settings.tune_max_interactions``."""
    if settings.tune is not None:
        return settings.tune
    return log.n_interactions <= settings.tune_max_interactions


def settings_config(settings: PipelineSettings) -> ModelConfig:
    """The untuned model: the hyperparameters as the settings (flags, environment, defaults) give them."""
    return ModelConfig(
        settings.factors, settings.weighting, settings.scaling, settings.shrinkage, settings.pop_alpha,
        settings.min_rating, settings.centre,
    )  # fmt: skip


def tune_for_run(
    log: InteractionLog, settings: PipelineSettings, progress: Callable[[str], None] | None = None
) -> TuningResult:
    """The pipeline run's search: the run's test interactions (its time split) are removed before tuning."""
    train_log = log.subset(~time_split(log))
    space = rating_space(SearchSpace(), train_log)
    return tune(train_log, space, settings_config(settings), settings.seed, settings.tune_budget, progress=progress)
