"""The search: a space of settings walked by successive halving on validation folds, budgeted in trials.

The tuner is given a training log only: the caller splits off its test interactions first, so
nothing held out for testing can influence the choice (the folds: :mod:`pipeline.tuning.folds`).

The search is successive halving over a fixed schedule (:data:`RUNGS`): every setting on an
eighth of the first fold's users, the best quarter on three eighths of the users of two folds,
the best quarter of those on every user of every fold. The work is a function of the data and the seed alone, so
the same input gives the same model on any machine, however fast or busy. The last rung's scores go to the
guarded choice (:func:`pipeline.tuning.decision.decide`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.data import InteractionLog
from pipeline.evaluate import K, Objective
from pipeline.train import ModelConfig
from pipeline.tuning.decision import Decision, decide
from pipeline.tuning.folds import FOLDS, Fold, Group, group_of, validation_folds
from reccore.settings import PipelineSettings
from reccore.weighting import Scheme

# (folds, share of each fold's users) per rung of the successive halving; KEEP of a rung goes on. Early rungs
# only rank settings (paired on the same users, their differences are far less noisy than their scores).
RUNGS: tuple[tuple[int, float], ...] = ((1, 0.125), (2, 0.375), (FOLDS, 1.0))
KEEP = 1 / 4


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
