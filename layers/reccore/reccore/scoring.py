"""Scoring math the service (and the offline evaluation) uses: user vectors, fold-in, filters, retrieval.

Conventions (see ``Files``): item vectors are ``Q = V·Σ^(1+β/2)`` and a user vector
is ``p = x·Q·Σ⁻²`` for a weighted interaction row ``x``. A score is the inner
product ``p·q = x·V·Σ^β·Vᵀ``; with β = 0 that is the rank-k reconstruction
``(UΣVᵀ)[u, i]`` (PureSVD), and β > 0 damps the weaker factors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import faiss
import numpy as np

from reccore.filtering import Allowed
from reccore.model import Model
from reccore.weighting import row_options, weight_rows

Source = Literal["model", "content", "popular"]
Strategy = Literal["personalized", "fold_in", "popular"]
# Requests search one vector at a time; OpenMP's thread hand-off costs more than such a search
# (measured: 415 µs with 2 threads vs 120 µs with 1 for a 10k-item flat index).
faiss.omp_set_num_threads(1)
# Below this fraction of allowed items, scoring the allowed subset directly beats an over-fetching index search.
_DIRECT_SCORING_FRACTION = 0.2
# ...and only while that subset is small: a filtered index search beats scoring 200k of 1M items.
_DIRECT_SCORING_MAX = 20_000


@dataclass(frozen=True)
class Filters:
    """Which items a recommendation may contain (item positions, category names)."""

    exclude_items: frozenset[int] = frozenset()
    include_categories: frozenset[str] | None = None
    exclude_categories: frozenset[str] = frozenset()


@dataclass
class Ranking:
    """Item positions, best first, with scores, where each came from, and (for a recommendation) the strategy.

    The one value every ranking function returns: :func:`top_items`, :func:`rank`, :func:`similar_items`
    and :func:`reccore.recommend.recommend`.
    """

    items: np.ndarray
    scores: np.ndarray
    sources: list[Source] = field(default_factory=list)
    strategy: Strategy | None = None

    @classmethod
    def of(cls, model: Model, items: np.ndarray, scores: np.ndarray) -> Ranking:
        """Items ranked by their vectors: each one's source is ``content`` for cold items, else ``model``."""
        sources: list[Source] = ["content" if model.content_based[i] else "model" for i in items.tolist()]
        return cls(items=items.astype(np.int64), scores=scores.astype(np.float32), sources=sources)


_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def seen_items(model: Model, user: int) -> np.ndarray:
    """Item positions ``user`` interacted with in the training data, ascending and distinct."""
    # Sort-and-compare rather than np.unique, whose hash path took up to 0.6 ms on a
    # 30-element view of a large array (numpy 2.4); this takes a few µs.
    items = np.sort(model.history_items[model.user_history(user)])
    return items[np.concatenate(([True], items[1:] != items[:-1]))] if len(items) else items


def weighted_row(model: Model, items: np.ndarray, strengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An interaction row weighted exactly as training weighted it: its distinct items and their weights.

    Repeats add up, as repeated interactions do in training; the scheme, minimum rating and centring are
    the manifest's ``weighting`` parameters. ``strengths``: raw strength per entry of ``items`` (1 each).
    """
    items = np.asarray(items, dtype=np.int64)
    if strengths is None:
        strengths = np.ones(len(items), dtype=np.float64)
    unique, inverse = np.unique(items, return_inverse=True)
    raw = np.bincount(inverse, weights=strengths, minlength=len(unique))
    params = model.manifest.params.get("weighting", {})
    values = weight_rows(
        np.array([0, len(unique)]),
        unique,
        raw,
        model.item_weights,
        params.get("scheme", "log"),
        float(params.get("avg_row_length", 1.0)),
        **row_options(params),  # type: ignore[arg-type]
    )
    return unique, values.astype(np.float64)


def fold_in(model: Model, items: np.ndarray, strengths: np.ndarray | None = None) -> np.ndarray:
    """Project an interaction row onto the latent space: ``p = x·Q·Σ⁻²`` (``x``: :func:`weighted_row`).

    The same formula serves every spectral filter the pipeline trains (``Q = V·Σ·f^½``). It is linear in
    ``x``, which is what makes an item's score a sum over the row's items (:mod:`reccore.explain`).
    """
    unique, values = weighted_row(model, items, strengths)
    sigma_sq = np.square(model.singular_values.astype(np.float64))
    vector = values @ model.item_factors[unique].astype(np.float64) / sigma_sq
    return vector.astype(np.float32)


def allowed_items(model: Model, filters: Filters, seen: Iterable[int] = ()) -> np.ndarray:
    """Boolean mask over the catalogue of items that pass ``filters`` and are not in ``seen``.

    For offline studies that need every candidate; requests use :func:`allowed` (no n-sized work).
    """
    allowed = np.ones(model.n_items, dtype=bool)
    if filters.include_categories is not None:
        allowed &= np.isin(model.category_codes, _category_codes(model, filters.include_categories))
    if filters.exclude_categories:
        allowed &= ~np.isin(model.category_codes, _category_codes(model, filters.exclude_categories))
    blocked = np.fromiter((*filters.exclude_items, *seen), dtype=np.int64)
    allowed[blocked] = False
    return allowed


def allowed(model: Model, filters: Filters, seen: Iterable[int] = ()) -> Allowed:
    """The items that pass ``filters`` and are not in ``seen``, without building an n-sized mask."""
    return Allowed.build(
        model.category_sets,
        model.category_names,
        filters.include_categories,
        filters.exclude_categories,
        (*filters.exclude_items, *seen),
    )


def _as_allowed(model: Model, permitted: Allowed | np.ndarray) -> Allowed:
    return permitted if isinstance(permitted, Allowed) else Allowed.from_mask(model.category_sets, permitted)


def top_items(model: Model, vector: np.ndarray, k: int, permitted: Allowed | np.ndarray) -> Ranking:
    """The ``k`` allowed items with the highest inner product with ``vector``, via the FAISS index.

    The filter is applied inside the search (a FAISS ID selector); a small allowed set is scored directly.
    """
    permitted = _as_allowed(model, permitted)
    n_allowed = permitted.count
    k = min(k, n_allowed)
    if k <= 0:
        return Ranking.of(model, *_EMPTY)
    if scores_directly(model, n_allowed):
        return _score_directly(model, vector, k, permitted.members())
    ids, scores = _search(model.index_ip, vector, k, permitted.selector())
    if len(ids) < k:  # an approximate index found too few allowed items in what it visited
        return _score_directly(model, vector, k, permitted.members())
    return Ranking.of(model, ids, scores)


def scores_directly(model: Model, n_allowed: int) -> bool:
    """Whether :func:`top_items` scores ``n_allowed`` allowed items directly instead of searching the index."""
    return n_allowed < min(_DIRECT_SCORING_FRACTION * model.n_items, _DIRECT_SCORING_MAX)


def _score_directly(model: Model, vector: np.ndarray, k: int, candidates: np.ndarray) -> Ranking:
    scores = model.item_factors[candidates] @ vector
    best = np.argsort(-scores, kind="stable")[:k]
    return Ranking.of(model, candidates[best], scores[best])


def rank(model: Model, vector: np.ndarray | None, k: int, permitted: Allowed | np.ndarray) -> Ranking:
    """Top-``k`` by ``vector`` (if any), backfilled from popularity to ``k`` items when the filters allow."""
    permitted = _as_allowed(model, permitted)
    ranking = top_items(model, vector, k, permitted) if vector is not None else Ranking.of(model, *_EMPTY)
    return backfill(model, ranking, k, permitted)


def backfill(model: Model, ranking: Ranking, k: int, permitted: Allowed) -> Ranking:
    """``ranking`` topped up to ``k`` items with the most popular allowed items it does not hold."""
    need = min(k, permitted.count) - len(ranking.items)
    if need <= 0:
        return ranking
    taken = set(ranking.items.tolist())
    fill: list[int] = []
    start, chunk = 0, max(64, 4 * (need + len(taken)))
    while len(fill) < need and start < model.n_items:  # popular items in chunks: no pass over the catalogue
        candidates = model.popular_order[start : start + chunk].astype(np.int64)
        fill += [i for i in candidates[permitted.contains(candidates)].tolist() if i not in taken][: need - len(fill)]
        start, chunk = start + chunk, chunk * 4
    items = np.asarray(fill, dtype=np.int64)
    backfilled: list[Source] = ["popular"] * len(items)
    return Ranking(
        items=np.concatenate([ranking.items, items]),
        scores=np.concatenate([ranking.scores, model.popularity[items].astype(np.float32)]),
        sources=[*ranking.sources, *backfilled],
        strategy=ranking.strategy,
    )


def similar_items(model: Model, item: int, k: int) -> Ranking:
    """The ``k`` items nearest to ``item`` by cosine of their vectors, ``item`` itself excluded."""
    vector = model.item_factors[item].astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return Ranking.of(model, *_EMPTY)
    ids, scores = _search(model.index_cos, vector / norm, min(model.n_items, k + 1), None)
    keep = ids != item
    return Ranking.of(model, ids[keep][:k], scores[keep][:k])


def search_parameters(index: faiss.Index, k: int, selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
    """Per-call parameters (never mutate an index other requests are searching): the selector and the
    index's own tuned nprobe / efSearch (efSearch at least ``k``)."""
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.hnsw.efSearch, k))  # type: ignore[attr-defined]
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)  # type: ignore[call-arg]
    return None if selector is None else faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]


def _search(
    index: faiss.Index, vector: np.ndarray, k: int, selector: faiss.IDSelector | None
) -> tuple[np.ndarray, np.ndarray]:
    query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
    params = search_parameters(index, k, selector)
    scores, ids = index.search(query, k) if params is None else index.search(query, k, params=params)
    valid = ids[0] >= 0
    return ids[0][valid].astype(np.int64), scores[0][valid]


def _category_codes(model: Model, names: Iterable[str]) -> np.ndarray:
    lookup = {name: code for code, name in enumerate(model.category_names)}
    return np.array([lookup[n] for n in names if n in lookup], dtype=np.int32)
