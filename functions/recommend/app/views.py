"""Per-model lookup tables the routes need, built once per model version (not per request)."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from reccore.model import Model

_RECORD = "\x00"  # between strings; a query containing a separator matches nothing
_FIELD = "\x01"  # between the fields of one string, so no match spans two fields


@dataclass(frozen=True)
class SubstringIndex:
    """Case-insensitive substring search over many short strings, in C speed via one ``re`` scan."""

    haystack: str
    starts: np.ndarray  # offset of each string in the haystack

    @classmethod
    def build(cls, *columns: Sequence[str]) -> SubstringIndex:
        """Index record ``i`` = the ``i``-th string of every column (a query matches any one of them)."""
        records = [_FIELD.join(_clean(text) for text in fields) for fields in zip(*columns, strict=True)]
        lengths = np.fromiter((len(r) + 1 for r in records), dtype=np.int64, count=len(records))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(_RECORD.join(records), starts)

    def search(self, query: str) -> np.ndarray:
        """Positions (ascending) of the strings that contain ``query``."""
        query = query.lower()
        if not query:
            return np.arange(len(self.starts))
        if _RECORD in query or _FIELD in query:
            return np.empty(0, dtype=np.int64)
        offsets = np.fromiter((m.start() for m in re.finditer(re.escape(query), self.haystack)), dtype=np.int64)
        return np.unique(np.searchsorted(self.starts, offsets, side="right") - 1)


def _clean(text: str) -> str:
    return text.lower().replace(_RECORD, " ").replace(_FIELD, " ")


@dataclass(frozen=True)
class ModelViews:
    """Derived tables of one :class:`Model`."""

    popularity_rank: np.ndarray  # 1-based rank of each item by popularity
    category_items: dict[str, np.ndarray]  # category -> item positions in popularity order
    category_counts: dict[str, int]
    user_counts: np.ndarray  # interactions per user
    item_counts: np.ndarray  # interactions per item
    map_order: np.ndarray  # a seeded permutation of the items: the first n are the map's sample


_lock = threading.Lock()
_views: weakref.WeakKeyDictionary[Model, ModelViews] = weakref.WeakKeyDictionary()
# The substring indexes hold every id and title as text (about 100 MB at 1M items): built on the first search.
_item_searches: weakref.WeakKeyDictionary[Model, SubstringIndex] = weakref.WeakKeyDictionary()
_user_searches: weakref.WeakKeyDictionary[Model, SubstringIndex] = weakref.WeakKeyDictionary()
MAP_SEED = 0

T = TypeVar("T")


def _cached(cache: weakref.WeakKeyDictionary[Model, T], model: Model, build: Callable[[Model], T]) -> T:
    """``cache[model]``, built once on first use and dropped with the model (a weak reference)."""
    found = cache.get(model)
    if found is not None:
        return found
    with _lock:
        found = cache.get(model)
        if found is None:
            found = cache[model] = build(model)
        return found


def views(model: Model) -> ModelViews:
    """The tables of ``model``."""
    return _cached(_views, model, _build)


def item_search(model: Model) -> SubstringIndex:
    """Search over each item's "id title"."""
    return _cached(_item_searches, model, lambda m: SubstringIndex.build(m.item_ids, m.titles))


def user_search(model: Model) -> SubstringIndex:
    return _cached(_user_searches, model, lambda m: SubstringIndex.build(m.user_ids))


def _build(model: Model) -> ModelViews:
    rank = np.empty(model.n_items, dtype=np.int64)
    rank[model.popular_order] = np.arange(1, model.n_items + 1)
    codes = model.category_codes[model.popular_order]
    category_items = {name: model.popular_order[codes == c] for c, name in enumerate(model.category_names)}
    return ModelViews(
        popularity_rank=rank,
        category_items=category_items,
        category_counts={name: len(items) for name, items in category_items.items()},
        user_counts=np.diff(model.history_indptr),
        item_counts=np.bincount(model.history_items, minlength=model.n_items),
        map_order=np.random.default_rng(MAP_SEED).permutation(model.n_items),
    )
