"""The one recommendation path: the API, the offline evaluation and batch jobs all call :func:`recommend`.

It chooses the strategy (a known user's stored vector, the fold-in of their interactions, or
popularity), excludes what the user has already seen, applies the request's filters, and
backfills from popularity so that ``k`` items come back whenever the filters allow.

A long history is folded in only up to its ``MAX_FOLD_IN`` newest interactions, but every
interaction given is excluded from the answer, and the result says how many were left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reccore.diversity import mmr, pool_size
from reccore.filtering import Allowed
from reccore.model import Model
from reccore.scoring import Filters, Ranking, Strategy, allowed, backfill, fold_in, seen_items, top_items

# Interactions folded in per request: the newest this many; every interaction given is still excluded.
# Not a speed limit: fold_in takes 0.05 ms for 1,000 items (0.16 ms for 5,000) on the 10k-item default
# model, while parsing 5,000 objects costs ~10 ms. It keeps the vector about the user's recent taste for
# very long histories, and MovieLens' heaviest user (737 ratings) stays whole, so parity with training holds.
MAX_FOLD_IN = 1_000
# Interactions a request may carry (the API's bound on recent_items; clients such as the offline study cut a
# longer history to its newest this many). Every entry is excluded from the answer, the newest MAX_FOLD_IN
# are folded in. 5,000 objects are ~330 KB of JSON (REC_MAX_BODY_BYTES' default is 1 MiB); validating them
# takes ~10 ms at best, the core's work ~1 ms (scripts/bench_history.py).
MAX_HISTORY = 5_000


@dataclass(frozen=True)
class Interactions:
    """Interactions given with a request: item positions, repeats allowed, with their raw strengths."""

    items: np.ndarray  # int64 item positions
    strengths: np.ndarray | None = None  # raw strength per entry (event weight or rating); 1 each when None
    timestamps: np.ndarray | None = None  # unix seconds per entry; None: list order is time order, oldest first

    @classmethod
    def of(
        cls,
        items: list[int] | np.ndarray,
        strengths: list[float] | np.ndarray | None = None,
        timestamps: list[float] | np.ndarray | None = None,
    ) -> Interactions:
        values = None if strengths is None else np.asarray(strengths, dtype=np.float64)
        times = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        return cls(items=np.asarray(items, dtype=np.int64), strengths=values, timestamps=times)

    def __len__(self) -> int:
        return len(self.items)

    def newest(self, n: int) -> Interactions:
        """The ``n`` newest entries, oldest first: by timestamp if given (ties keep list order), else the last ``n``."""
        if len(self.items) <= n:
            return self
        order = np.arange(len(self.items)) if self.timestamps is None else np.argsort(self.timestamps, kind="stable")
        keep = order[len(order) - n :]
        return Interactions(
            items=self.items[keep],
            strengths=None if self.strengths is None else self.strengths[keep],
            timestamps=None if self.timestamps is None else self.timestamps[keep],
        )


@dataclass
class Recommendation(Ranking):
    """A :class:`Ranking` from :func:`recommend`, plus how many interactions the fold-in left out."""

    truncated: int = 0  # interactions older than the newest ``max_fold_in``: excluded, but not folded in


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
    max_fold_in: int = MAX_FOLD_IN,
    diversity: float = 0.0,
) -> Recommendation:
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
    max_fold_in
        Fold in only the newest this many of ``interactions`` (see :meth:`Interactions.newest`); all are excluded.
    diversity
        λ of maximal marginal relevance in [0, 1] over the top candidates (0: the plain ranking).

    Returns
    -------
    Recommendation
        ``truncated`` is the number of ``interactions`` left out of the fold-in. ``strategy`` is
        ``personalized`` for a known user with a usable vector: their stored vector plus the fold-in of
        ``interactions`` (the fold-in is linear in the weighted row, so for items new to the user this
        is exactly the vector training on them would give, with none/log/tfidf weighting and no per-user
        centring; a centred model centres the new interactions on their own mean). It is ``fold_in`` when
        only ``interactions`` give a usable vector, and ``popular`` when nothing does.
    """
    strategy, vector, excluded, truncated = plan(model, user, interactions, exclude_seen, seen, max_fold_in)
    permitted = allowed(model, filters or Filters(), excluded)
    return complete(model, k, strategy, vector, permitted, diversity, truncated=truncated)


def plan(
    model: Model,
    user: int | None,
    interactions: Interactions | None,
    exclude_seen: bool,
    seen: np.ndarray | None = None,
    max_fold_in: int = MAX_FOLD_IN,
) -> tuple[Strategy, np.ndarray | None, list[int], int]:
    """The strategy, the query vector (None: popularity), the items to leave out and how many interactions
    the fold-in left out, for one request."""
    recent = interactions.items if interactions is not None else np.empty(0, dtype=np.int64)
    window = interactions.newest(max_fold_in) if interactions is not None else Interactions.of([])
    stored = model.user_factors[user] if user is not None else None
    vector: np.ndarray | None = None
    strategy: Strategy = "popular"
    if stored is not None and usable(stored):
        strategy = "personalized"
        vector = stored + fold_in(model, window.items, window.strengths) if len(window) else stored
    elif len(window):
        strategy, vector = "fold_in", fold_in(model, window.items, window.strengths)
    if vector is not None and not usable(vector):
        strategy, vector = "popular", None
    excluded: list[int] = []
    if exclude_seen:
        if user is not None:
            excluded += seen_items(model, user).tolist()
        excluded += recent.tolist()
        if seen is not None:
            excluded += np.asarray(seen, dtype=np.int64).tolist()
    return strategy, vector, excluded, len(recent) - len(window)


def complete(
    model: Model,
    k: int,
    strategy: Strategy,
    vector: np.ndarray | None,
    permitted: Allowed,
    diversity: float = 0.0,
    found: Ranking | None = None,
    truncated: int = 0,
) -> Recommendation:
    """Rank by ``vector`` (or take ``found``, the same search already run in a batch), diversify, backfill."""
    if vector is None:
        ranking = Ranking.of(model, *_EMPTY)
    elif found is not None:
        ranking = found
    elif diversity > 0.0:
        ranking = mmr(model, top_items(model, vector, pool_size(k), permitted), k, diversity)
    else:
        ranking = top_items(model, vector, k, permitted)
    ranking = backfill(model, ranking, k, permitted)
    return Recommendation(ranking.items, ranking.scores, ranking.sources, strategy, truncated)


_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
