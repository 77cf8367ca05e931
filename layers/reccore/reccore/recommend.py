"""The one recommendation path: the API, the offline evaluation and batch jobs all call :func:`recommend`.

It chooses the strategy (a known user's stored vector, the fold-in of their interactions, or
popularity), excludes what the user has already seen, applies the request's filters, and
backfills from popularity so that ``k`` items come back whenever the filters allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reccore.model import Model
from reccore.scoring import Filters, Ranking, Strategy, allowed_items, fold_in, rank, seen_items


@dataclass(frozen=True)
class Interactions:
    """Interactions given with a request: item positions, repeats allowed, with their raw strengths."""

    items: np.ndarray  # int64 item positions
    strengths: np.ndarray | None = None  # raw strength per entry (event weight or rating); 1 each when None

    @classmethod
    def of(cls, items: list[int] | np.ndarray, strengths: list[float] | np.ndarray | None = None) -> Interactions:
        values = None if strengths is None else np.asarray(strengths, dtype=np.float64)
        return cls(items=np.asarray(items, dtype=np.int64), strengths=values)


def usable(vector: np.ndarray) -> bool:
    """Whether ``vector`` can rank: a zero or non-finite one scores every item alike; popularity answers better."""
    return 0.0 < float(np.dot(vector, vector)) < math.inf


def recommend(
    model: Model,
    k: int,
    user: int | None = None,
    interactions: Interactions | None = None,
    filters: Filters | None = None,
    exclude_seen: bool = True,
    seen: np.ndarray | None = None,
) -> Ranking:
    """Top-``k`` items for a known user, a set of interactions, or nobody.

    Parameters
    ----------
    user
        The user's row in the model, if the model knows them.
    interactions
        Interactions the model has not trained on: an anonymous session's items, or events posted since
        the model was trained.
    filters
        Items and categories the answer may not (or must) contain.
    exclude_seen
        Leave out the user's training history, ``interactions`` and ``seen``.
    seen
        More item positions the user has already had (e.g. from a user-state store), excluded like the rest.

    Returns
    -------
    Ranking
        ``strategy`` is ``personalized`` for a known user with a usable vector: their stored vector plus the
        fold-in of ``interactions`` (the fold-in is linear in the weighted row, so for items new to the user this
        is exactly the vector training on them would give, with none/log/tfidf weighting). It is ``fold_in`` when
        only ``interactions`` give a usable vector, and ``popular`` when nothing does.
    """
    recent = interactions.items if interactions is not None else np.empty(0, dtype=np.int64)
    strengths = interactions.strengths if interactions is not None else None
    stored = model.user_factors[user] if user is not None else None
    vector: np.ndarray | None = None
    strategy: Strategy = "popular"
    if stored is not None and usable(stored):
        strategy = "personalized"
        vector = stored + fold_in(model, recent, strengths) if len(recent) else stored
    elif len(recent):
        strategy, vector = "fold_in", fold_in(model, recent, strengths)
    if vector is not None and not usable(vector):
        strategy, vector = "popular", None
    excluded: list[int] = []
    if exclude_seen:
        if user is not None:
            excluded += seen_items(model, user).tolist()
        excluded += recent.tolist()
        if seen is not None:
            excluded += np.asarray(seen, dtype=np.int64).tolist()
    ranking = rank(model, vector, k, allowed_items(model, filters or Filters(), excluded))
    ranking.strategy = strategy
    return ranking
