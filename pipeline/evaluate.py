"""Offline evaluation through the production path: packaged artifacts → ``reccore`` model → service scoring."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from pipeline.data import InteractionLog, order_by_user
from pipeline.metrics import summarise
from pipeline.package import package
from pipeline.train import TrainedModel, train
from reccore.encoding import decode_dir
from reccore.layout import Manifest
from reccore.model import Model, assemble
from reccore.recommend import recommend
from reccore.scoring import Filters, Ranking, allowed_items, rank, seen_items
from reccore.weighting import Scheme

K = 10
MAX_EVAL_USERS = 2000  # standard error of NDCG@10 ≈ 0.004 here; bounds the gate at any scale
HOLDOUT = 0.2  # each user's newest 20% of interactions are held out ...
MIN_HISTORY = 5  # ... if they have at least this many; others stay wholly in training

# The objective a run is judged on, and tuned for: which interactions a per-user split holds out.
Objective = Literal["time", "random"]
OBJECTIVES: tuple[Objective, ...] = ("time", "random")
OBJECTIVE_TITLES: dict[str, str] = {
    "time": "time split (each user's newest 20% held out)",
    "random": "random split (seeded per-user 80/20)",
}


def default_objective(log: InteractionLog) -> Objective:
    """``random`` for a table of explicit ratings (as rating benchmarks are scored), ``time`` for event logs.

    A log is a table of ratings when ``rating`` is its only event type: MovieLens, or a file with a
    ``rating`` column and no ``event`` column. Synthetic data, the event log and tables of views,
    clicks or purchases predict what a user does next, so they are judged on their newest interactions.
    """
    return "random" if log.event_types == ["rating"] else "time"


def holdout_split(log: InteractionLog, objective: Objective, seed: int = 42) -> np.ndarray:
    """The test mask of ``objective``'s per-user split: :func:`time_split` or :func:`random_split`."""
    if objective == "time":
        return time_split(log)
    if objective == "random":
        return random_split(log, seed=seed)
    raise ValueError(f"objective: unknown {objective!r}; expected one of {OBJECTIVES}")


def time_split(log: InteractionLog, holdout: float = HOLDOUT, min_interactions: int = MIN_HISTORY) -> np.ndarray:
    """Test mask holding out each user's newest ``holdout`` share (at least one) of interactions.

    Users with fewer than ``min_interactions`` stay wholly in training.
    """
    return _hold_out_last(log.users, log.timestamps, log.n_users, holdout, min_interactions)


def random_split(log: InteractionLog, holdout: float = 0.2, seed: int = 42, min_interactions: int = 5) -> np.ndarray:
    """Test mask holding out a seeded random ``holdout`` share of each eligible user's interactions."""
    order_key = np.random.default_rng(seed).permutation(log.n_interactions)
    return _hold_out_last(log.users, order_key, log.n_users, holdout, min_interactions)


def _hold_out_last(
    users: np.ndarray, order_key: np.ndarray, n_users: int, holdout: float, min_interactions: int
) -> np.ndarray:
    order = order_by_user(users, order_key)
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_users = users[order]
    position = np.arange(len(users)) - starts[sorted_users]
    n_test = np.where(counts >= min_interactions, np.maximum(1, np.floor(counts * holdout)), 0)
    test = np.zeros(len(users), dtype=bool)
    test[order] = position >= (counts - n_test)[sorted_users]
    return test


def relevant_items(
    train: InteractionLog, test: InteractionLog, users: Iterable[int] | None = None
) -> dict[int, set[int]]:
    """Per test user (optionally only ``users``), held-out items they had not interacted with in training."""
    test_users, test_items = test.users, test.items
    train_users, train_items = train.users, train.items
    if users is not None:
        chosen = np.fromiter(users, dtype=np.int64)
        keep_test, keep_train = np.isin(test_users, chosen), np.isin(train_users, chosen)
        test_users, test_items = test_users[keep_test], test_items[keep_test]
        train_users, train_items = train_users[keep_train], train_items[keep_train]
    n_items = np.int64(train.n_items)
    new = ~np.isin(
        test_users.astype(np.int64) * n_items + test_items, train_users.astype(np.int64) * n_items + train_items
    )
    relevant: dict[int, set[int]] = {}
    for user, item in zip(test_users[new].tolist(), test_items[new].tolist(), strict=True):
        relevant.setdefault(user, set()).add(item)
    return relevant


def sample_users(users: Iterable[int], limit: int, seed: int) -> list[int]:
    pool = sorted(users)
    if len(pool) <= limit:
        return pool
    return sorted(np.random.default_rng(seed).choice(pool, size=limit, replace=False).tolist())


def served_files(
    log: InteractionLog, factors: int, weighting: Scheme, scaling: float, seed: int, **options: Any
) -> tuple[Manifest, dict[str, bytes]]:
    """Train on ``log`` and package the artifacts the service loads (exact index): what :func:`served_model`
    loads, and what a study that asks the running service publishes for it.

    ``options`` are :func:`pipeline.train.train`'s keyword-only hyperparameters (shrinkage, pop_alpha, ...).
    """
    trained = train(log, factors, weighting, seed, scaling, **options)
    return package_as_served(log, trained, seed, scaling=scaling, **options)


def served_model(
    log: InteractionLog, factors: int, weighting: Scheme, scaling: float, seed: int, **options: Any
) -> Model:
    """Train on ``log`` and load the packaged artifacts exactly as the service would (exact index)."""
    return _load(*served_files(log, factors, weighting, scaling, seed, **options))


def package_as_served(
    log: InteractionLog, trained: TrainedModel, seed: int, **params: Any
) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files of ``trained`` with an exact index, whichever engine trained it."""
    params = {"seed": seed, "index": "flat", "source": log.source, **params}
    return package(log, trained, "flat", params, seed)


def load_as_served(log: InteractionLog, trained: TrainedModel, seed: int, **params: Any) -> Model:
    """Package ``trained`` (exact index) and load it exactly as the service would, whichever engine trained it."""
    return _load(*package_as_served(log, trained, seed, **params))


def _load(manifest: Manifest, files: dict[str, bytes]) -> Model:
    """Like the service (``load_model``'s default), the files are written out and memory-mapped: each file's
    bytes are freed once written, and the arrays are pages of the files, not a second copy of the model
    next to the log (at 100M interactions that copy was ~2.4 GB of the driver's peak)."""
    with tempfile.TemporaryDirectory(prefix="recsys-served-") as scratch:
        for name in list(files):
            (Path(scratch) / name).write_bytes(files.pop(name))
        return assemble(manifest, decode_dir(scratch, manifest.index.type))  # mappings outlive the files


def rank_users(
    model: Model, users: list[int], strategy: str, k: int = K, progress: bool = False
) -> dict[int, list[int]]:
    """Top-``k`` per user: ``model`` exactly as the service answers a known user, ``popularity`` its fallback.

    Both exclude the user's seen items.
    """
    rankings: dict[int, list[int]] = {}
    for user in tqdm(users, desc=f"evaluate {strategy}", disable=not progress, leave=False):
        if strategy == "model":
            ranking: Ranking = recommend(model, k, user=user)
        else:
            ranking = rank(model, None, k, allowed_items(model, Filters(), seen_items(model, user)))
        rankings[user] = ranking.items.tolist()
    return rankings


def evaluate(
    model: Model, relevant: dict[int, set[int]], seed: int = 42, k: int = K, progress: bool = False
) -> dict[str, dict[str, float]]:
    """Metrics of the SVD model and of the popularity baseline on the same users."""
    users = sample_users(relevant, MAX_EVAL_USERS, seed)
    popularity_rank = np.empty(model.n_items, dtype=np.int64)
    popularity_rank[model.popular_order] = np.arange(model.n_items)
    return {
        name: summarise(rank_users(model, users, name, k, progress), relevant, k, model.n_items, popularity_rank)
        for name in ("model", "popularity")
    }
