"""Hyperparameter search on validation folds carved from the training data, budgeted in trials.

The tuner is given a training log only: the caller splits off its test interactions first, so
nothing held out for testing can influence the choice. Inside it, the run's own objective (its
per-user ``time`` or ``random`` split, :func:`pipeline.evaluate.holdout_split`) is applied once
more per fold: ``random`` draws a fresh 80/20 split per fold; ``time`` validates on each user's
newest 20%, then on the 20% before that, and so on (backtesting).

The search is successive halving over a fixed schedule (:data:`RUNGS`): every setting on an
eighth of the first fold's users, the best quarter on three eighths of the users of two folds,
the best quarter of those on every user of every fold. The work is a function of the data and the seed alone, so
the same input gives the same model on any machine, however fast or busy.

The decision guards against the winner's curse. Among the settings within one standard error
of the best (paired per-user differences), the cheapest (smallest k) is preferred; it replaces
the untuned default only if it beats the default by more than one standard error of their
paired difference. Settings that share an input transform share one SVD per fold (fitted at
the largest k they need, then truncated), and each is ranked exactly as the service ranks
(:func:`offline_rankings`, tested).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

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
from reccore.settings import PipelineSettings
from reccore.weighting import Scheme

_SCORING_BATCH = 256  # users per dense score block: 256 × 100k items × 4 B = 100 MB at most
# Validation users per fold. 1,000 keeps the standard error of a paired NDCG@10 difference near
# 0.002–0.004 on the synthetic data and MovieLens once three folds are pooled.
MAX_TUNE_USERS = 1000
FOLDS = 3
# (folds, share of each fold's users) per rung of the successive halving; KEEP of a rung goes on. Early rungs
# only rank settings (paired on the same users, their differences are far less noisy than their scores).
RUNGS: tuple[tuple[int, float], ...] = ((1, 0.125), (2, 0.375), (FOLDS, 1.0))
KEEP = 1 / 4

Group = tuple[Scheme, float, float, bool]  # an input transform: weighting, pop_alpha, min_rating, centre


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
        """Every setting, grouped by input transform (one SVD per group); ``first`` leads if given."""
        groups = itertools.product(self.weightings, self.pop_alphas, self.min_ratings, self.centres)
        configs = [
            ModelConfig(k, w, beta, shrink, alpha, rating, centre)
            for w, alpha, rating, centre in groups
            for k, beta, shrink in itertools.product(self.factors, self.scalings, self.shrinkages)
        ]
        if first is not None:
            configs = [first, *(c for c in configs if c != first)]
        return configs

    def to_dict(self) -> dict[str, list[Any]]:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}


def rating_space(space: SearchSpace, log: InteractionLog, thresholds: Sequence[float] = (0.0, 3.0)) -> SearchSpace:
    """``space`` plus minimum ratings and per-user centring when the log holds explicit ratings."""
    if "rating" not in log.event_types or len(np.unique(log.weights)) < 2:
        return space
    return SearchSpace(**{**space.__dict__, "min_ratings": tuple(thresholds), "centres": (False, True)})


def group_of(config: ModelConfig) -> Group:
    return (config.weighting, config.pop_alpha, config.min_rating, config.centre)


@dataclass
class Decision:
    """The guarded choice: what was chosen and why, with the margins it was judged on."""

    chosen: ModelConfig
    default: ModelConfig
    best: ModelConfig  # the highest mean validation NDCG@10 of the last rung
    margin: float  # the chosen setting's mean paired gain over the default (0 when the default is kept)
    standard_error: float  # of that paired difference
    users: int  # (fold, user) pairs the last rung was judged on
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.label,
            "default": self.default.label,
            "best": self.best.label,
            "kept_default": self.chosen == self.default,
            "margin": round(self.margin, 6),
            "standard_error": round(self.standard_error, 6),
            "validation_pairs": self.users,
            "rule": "a setting replaces the default only if its paired gain exceeds one standard error; "
            "among settings within one standard error of the best, the smallest k is chosen",
            "reason": self.reason,
        }


@dataclass
class TuningResult:
    """What the search tried on each rung, what it chose and why, and how long it took."""

    best: ModelConfig  # the setting the run uses (the default unless a setting beat it by more than the noise)
    decision: Decision
    rungs: list[dict[ModelConfig, float]]  # per rung: mean validation NDCG@10 of each setting scored there
    space: SearchSpace
    objective: Objective
    seconds: float
    validation_users: list[int]  # per fold
    notes: list[str] = field(default_factory=list)

    @property
    def trials(self) -> list[tuple[ModelConfig, float]]:
        """Every setting with its score on the last rung it reached (deterministic order)."""
        reached: dict[ModelConfig, float] = {}
        for rung in self.rungs:
            reached.update(rung)
        return list(reached.items())

    @property
    def planned(self) -> int:
        return len(self.rungs[0]) if self.rungs else 0

    def to_manifest(self) -> dict[str, Any]:
        """JSON-ready record for the manifest: the space, every rung's scores, the decision, the time spent."""
        return {
            "objective": self.objective,
            "split": f"{FOLDS} validation folds of the training data, each the run's {self.objective} split applied "
            "once more",
            "metric": f"ndcg@{K}",
            "search": "successive halving: "
            + "; ".join(
                f"rung {r}: {len(scores)} settings on {n_folds} fold(s), {share:.0%} of the users"
                for r, (scores, (n_folds, share)) in enumerate(zip(self.rungs, RUNGS, strict=False))
            ),
            "space": self.space.to_dict(),
            "rungs": [
                [{**config.params(), f"ndcg@{K}": round(score, 6)} for config, score in rung.items()]
                for rung in self.rungs
            ],
            "decision": self.decision.to_dict(),
            "best": self.best.params(),
            "validation_users": self.validation_users,
            "seconds": round(self.seconds, 3),
        }

    @property
    def summary(self) -> str:
        d = self.decision
        verdict = (
            f"kept the default {d.default.label}"
            if d.chosen == d.default
            else f"chose {d.chosen.label} (+{d.margin:.4f} NDCG@10 over the default, s.e. {d.standard_error:.4f})"
        )
        return (
            f"tuned on {self.objective}-split validation: {verdict}; {self.planned} settings by successive halving "
            f"in {self.seconds:.1f} s"
        )


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


def tune(
    train_log: InteractionLog,
    space: SearchSpace,
    default: ModelConfig,
    seed: int = 42,
    objective: Objective = "time",
    progress: Callable[[str], None] | None = None,
) -> TuningResult:
    """Search ``space`` on validation folds of ``train_log`` by successive halving; guarded against noise.

    Parameters
    ----------
    train_log
        Training data only: whatever the caller will test on must not be in it.
    default
        The untuned setting. It is scored on every rung and kept unless a setting beats it by more
        than one standard error of their paired per-user difference.
    objective
        The caller's own split, applied once more per fold (see :func:`validation_folds`).
    """
    with threadpool_limits(1):  # many small products: threads only contend (10x slower on a busy machine)
        return _search(train_log, space, default, seed, objective, progress)


def _search(
    train_log: InteractionLog,
    space: SearchSpace,
    default: ModelConfig,
    seed: int,
    objective: Objective,
    progress: Callable[[str], None] | None,
) -> TuningResult:
    start = time.perf_counter()
    builders = validation_folds(train_log, objective, seed)
    folds: list[Fold] = []
    candidates = space.configs(default)
    rungs: list[dict[ModelConfig, float]] = []
    pooled: dict[ModelConfig, np.ndarray] = {}
    for n_folds, share in RUNGS:
        while len(folds) < n_folds:
            folds.append(builders[len(folds)]())
        pooled = {}
        k_max = _largest_k(candidates)  # a fold's SVD of a group is fitted once, at the k its first rung needs
        for config in candidates:
            k = k_max[group_of(config)]
            parts = [fold.score(config, math.ceil(share * len(fold.users)), k) for fold in folds[:n_folds]]
            pooled[config] = np.concatenate(parts)
        rungs.append({config: float(scores.mean()) if len(scores) else 0.0 for config, scores in pooled.items()})
        if progress is not None:
            progress(f"  rung {len(rungs) - 1}: {len(candidates)} settings on {n_folds} fold(s), {share:.0%} of users")
        ranked = sorted(candidates, key=lambda c: -rungs[-1][c])  # stable: ties keep the grid's order
        candidates = ranked[: max(1, math.ceil(len(ranked) * KEEP))]
        if default not in candidates:
            candidates.append(default)
        for fold in folds:
            fold.forget({group_of(c) for c in candidates})
    decision = decide(pooled, default)
    return TuningResult(
        best=decision.chosen,
        decision=decision,
        rungs=rungs,
        space=space,
        objective=objective,
        seconds=time.perf_counter() - start,
        validation_users=[len(fold.users) for fold in folds],
    )


def _largest_k(configs: list[ModelConfig]) -> dict[Group, int]:
    largest: dict[Group, int] = {}
    for config in configs:
        largest[group_of(config)] = max(largest.get(group_of(config), 0), config.factors)
    return largest


def decide(scores: dict[ModelConfig, np.ndarray], default: ModelConfig) -> Decision:
    """The one-standard-error choice over paired per-user scores (the same users, in the same order, for all).

    The best mean wins only against settings outside its noise: among those within one standard
    error of it, the smallest k is chosen (cheaper to serve). That choice then replaces ``default``
    only if its paired gain over the default exceeds one standard error of the difference.
    """
    order = list(scores)
    best = max(order, key=lambda c: scores[c].mean())  # max keeps the first of equals: deterministic
    close = [c for c in order if scores[best].mean() - scores[c].mean() <= _standard_error(scores[best] - scores[c])]
    chosen = min(close, key=lambda c: (c.factors, -scores[c].mean(), order.index(c)))
    gain = scores[chosen] - scores[default]
    margin, error = float(gain.mean()), _standard_error(gain)
    pairs = len(scores[default])
    if chosen == default:
        reason = "the default is the cheapest setting within one standard error of the best"
    elif margin > error:
        reason = f"beats the default by {margin:.4f} NDCG@10, more than one standard error ({error:.4f})"
    else:
        reason = (
            f"{chosen.label} gains only {margin:+.4f} NDCG@10 over the default, within one standard error "
            f"({error:.4f}): the default is kept"
        )
        chosen, margin = default, 0.0
    return Decision(chosen, default, best, margin, error, pairs, reason)


def _standard_error(differences: np.ndarray) -> float:
    return float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else 0.0


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
    log: InteractionLog, test: np.ndarray, settings: PipelineSettings, objective: Objective,
    progress: Callable[[str], None] | None = None,
) -> TuningResult:  # fmt: skip
    """The pipeline run's search, on the log minus the run's ``test`` rows (its held-out evaluation)."""
    train_log = log.subset(~test)
    space = rating_space(SearchSpace(), train_log)
    return tune(train_log, space, settings_config(settings), settings.seed, objective, progress)
