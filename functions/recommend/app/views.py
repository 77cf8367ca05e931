"""Per-model lookup tables the routes need, built once per model version (not per request)."""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass

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
    def build(cls, *columns: list[str]) -> SubstringIndex:
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
    item_search: SubstringIndex  # over "item_id title"
    user_search: SubstringIndex
    user_counts: np.ndarray  # interactions per user
    item_counts: np.ndarray  # interactions per item
    map_order: np.ndarray  # a seeded permutation of the items: the first n are the map's sample


_views: weakref.WeakKeyDictionary[Model, ModelViews] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
MAP_SEED = 0


def views(model: Model) -> ModelViews:
    """The tables of ``model``, built on first use and dropped with the model (a weak reference)."""
    found = _views.get(model)
    if found is not None:
        return found
    with _lock:
        found = _views.get(model)
        if found is None:
            found = _views[model] = _build(model)
        return found


def _build(model: Model) -> ModelViews:
    rank = np.empty(model.n_items, dtype=np.int64)
    rank[model.popular_order] = np.arange(1, model.n_items + 1)
    codes = model.category_codes[model.popular_order]
    category_items = {name: model.popular_order[codes == c] for c, name in enumerate(model.category_names)}
    return ModelViews(
        popularity_rank=rank,
        category_items=category_items,
        category_counts={name: len(items) for name, items in category_items.items()},
        item_search=SubstringIndex.build(model.item_ids, model.titles),
        user_search=SubstringIndex.build(model.user_ids),
        user_counts=np.diff(model.history_indptr),
        item_counts=np.bincount(model.history_items, minlength=model.n_items),
        map_order=np.random.default_rng(MAP_SEED).permutation(model.n_items),
    )
