"""The evaluation splits: per-user time / random holdout, held-out (cold) users and held-out (cold) items.

Each split returns the training log plus what is evaluated against it, so a test can
check directly that nothing held out reaches training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data import InteractionLog, order_by_user
from pipeline.evaluate import OBJECTIVE_TITLES, OBJECTIVES, Objective, holdout_split, relevant_items

# The study's protocols are the run's objectives (pipeline.evaluate), under the names the report uses.
Protocol = Objective
PROTOCOLS = OBJECTIVES
PROTOCOL_TITLES = OBJECTIVE_TITLES


@dataclass
class Split:
    """A training log and, per test user, the held-out items they had not seen in training."""

    protocol: str
    train: InteractionLog
    relevant: dict[int, set[int]]


def make_split(log: InteractionLog, protocol: Protocol, seed: int = 42) -> Split:
    """The ``time`` or ``random`` per-user 80/20 split of ``pipeline.evaluate``."""
    test = holdout_split(log, protocol, seed)
    train_log = log.subset(~test)
    return Split(protocol, train_log, relevant_items(train_log, log.subset(test)))


@dataclass
class ColdUserSplit:
    """Users held out of training entirely; each has an early history to fold in and later items to find.

    Attributes
    ----------
    users
        Held-out user codes.
    train
        Every interaction of the other users (the model that must fold the held-out users in).
    in_model
        ``train`` plus the held-out users' early halves (the same users trained in-model).
    history
        Per held-out user: item codes and raw strengths of the early half, oldest first.
    relevant
        Per held-out user: items of the late half that are not in the early half.
    """

    users: np.ndarray
    train: InteractionLog
    in_model: InteractionLog
    history: dict[int, tuple[np.ndarray, np.ndarray]]
    relevant: dict[int, set[int]]


def chronological_position(log: InteractionLog) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction: its 0-based position in its user's history (oldest first), and the user's count."""
    order = order_by_user(log.users, log.timestamps)  # stable: ties keep log order
    counts = np.bincount(log.users, minlength=log.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(log.n_interactions, dtype=np.int64)
    position[order] = np.arange(log.n_interactions) - starts[log.users[order]]
    return position, counts[log.users]


def cold_user_split(
    log: InteractionLog, share: float = 0.1, seed: int = 42, min_interactions: int = 4
) -> ColdUserSplit:
    """Hold out ``share`` of all users (drawn from those with ``min_interactions``+) entirely from training."""
    counts = np.bincount(log.users, minlength=log.n_users)
    eligible = np.flatnonzero(counts >= min_interactions)
    n_held = min(len(eligible), max(1, round(share * log.n_users)))
    held = np.sort(np.random.default_rng(seed).choice(eligible, size=n_held, replace=False))
    is_held = np.isin(log.users, held)
    position, user_counts = chronological_position(log)
    early = is_held & (position < (user_counts + 1) // 2)
    late = is_held & ~early
    history: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for user in held.tolist():
        rows = np.flatnonzero(early & (log.users == user))
        rows = rows[np.argsort(position[rows])]
        history[user] = (log.items[rows], log.weights[rows])
    relevant = relevant_items(log.subset(early), log.subset(late))
    return ColdUserSplit(held, log.subset(~is_held), log.subset(~late), history, relevant)


@dataclass
class ColdItemSplit:
    """Items held out of training (metadata kept), and the (user, item) pairs that show who consumed them."""

    items: np.ndarray
    train: InteractionLog
    pair_users: np.ndarray
    pair_items: np.ndarray


def cold_item_split(log: InteractionLog, share: float = 0.05, seed: int = 42) -> ColdItemSplit:
    """Hold out ``share`` of the catalogue (drawn from items with interactions) and all their interactions.

    Pairs are kept only for users who still have training interactions, i.e. who have a vector.
    """
    warm = np.flatnonzero(np.bincount(log.items, minlength=log.n_items) > 0)
    n_held = min(len(warm), max(1, round(share * log.n_items)))
    held = np.sort(np.random.default_rng(seed).choice(warm, size=n_held, replace=False))
    is_held = np.isin(log.items, held)
    train_log = log.subset(~is_held)
    has_vector = np.bincount(train_log.users, minlength=log.n_users) > 0
    pairs = np.unique(np.column_stack([log.users[is_held], log.items[is_held]]), axis=0)
    pairs = pairs[has_vector[pairs[:, 0]]]
    return ColdItemSplit(held, train_log, pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))
