"""Which items a request may get, without per-request O(catalogue) work.

An :class:`Allowed` is built from a request's filters and seen items in time proportional to the
number of categories and blocked items, using structures the :class:`~reccore.model.Model` holds:
per-category member arrays (computed once at load) and a packed bitmap per distinct set of allowed
categories (computed on first use of that set, then cached with the model). Searches get a FAISS
``IDSelector`` built from those, so filtering happens inside the index search; membership checks
of a few candidates (the popularity backfill) look up each candidate's category.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import faiss
import numpy as np

_BITMAP_CACHE_SIZE = 64  # distinct allowed-category sets whose bitmaps a model keeps


class CategorySets:
    """Per-category item positions and cached bitmaps of category unions, built once per model."""

    def __init__(self, category_codes: np.ndarray, n_categories: int) -> None:
        self.codes = category_codes
        order = np.argsort(category_codes, kind="stable")
        bounds = np.searchsorted(category_codes[order], np.arange(n_categories + 1))
        self.members = [order[bounds[c] : bounds[c + 1]].astype(np.int64) for c in range(n_categories)]
        self.sizes = np.diff(bounds).astype(np.int64)
        self._bitmaps: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def bitmap(self, ok: np.ndarray) -> np.ndarray:
        """Packed little-endian bitmap of the items whose category is marked in ``ok`` (one bool per category)."""
        key = np.packbits(ok).tobytes()
        with self._lock:
            cached = self._bitmaps.get(key)
            if cached is not None:
                self._bitmaps.move_to_end(key)
                return cached
        bitmap = np.packbits(ok[self.codes], bitorder="little")  # once per distinct category set
        with self._lock:
            self._bitmaps[key] = bitmap
            while len(self._bitmaps) > _BITMAP_CACHE_SIZE:
                self._bitmaps.popitem(last=False)
        return bitmap


@dataclass
class Allowed:
    """The items a ranking may contain: allowed categories minus blocked (excluded or seen) items.

    ``category_ok`` is None when every category is allowed. ``blocked`` is sorted and distinct.
    """

    sets: CategorySets
    category_ok: np.ndarray | None
    blocked: np.ndarray
    count: int = field(init=False)

    def __post_init__(self) -> None:
        if self.category_ok is None:
            self.count = len(self.sets.codes) - len(self.blocked)
        else:
            in_allowed = self.category_ok[self.sets.codes[self.blocked]] if len(self.blocked) else self.blocked
            self.count = int(self.sets.sizes[self.category_ok].sum()) - int(np.count_nonzero(in_allowed))

    @classmethod
    def build(
        cls,
        sets: CategorySets,
        category_names: list[str],
        include: frozenset[str] | None,
        exclude: frozenset[str],
        blocked: Iterable[int],
    ) -> Allowed:
        ok: np.ndarray | None = None
        if include is not None or exclude:
            lookup = {name: code for code, name in enumerate(category_names)}
            ok = np.zeros(len(category_names), dtype=bool) if include is not None else np.ones(len(lookup), bool)
            ok[[lookup[n] for n in include or () if n in lookup]] = True
            ok[[lookup[n] for n in exclude if n in lookup]] = False
        ids = np.fromiter(blocked, dtype=np.int64)
        ids = np.sort(ids)
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids
        return cls(sets=sets, category_ok=ok, blocked=ids)

    @classmethod
    def from_mask(cls, sets: CategorySets, mask: np.ndarray) -> Allowed:
        """An arbitrary boolean mask over the catalogue (offline callers): blocked = the masked-out items."""
        return cls(sets=sets, category_ok=None, blocked=np.flatnonzero(~mask).astype(np.int64))

    @property
    def unfiltered(self) -> bool:
        return self.category_ok is None and not len(self.blocked)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Whether each of ``ids`` is allowed (O(len(ids) · log blocked))."""
        ok = np.ones(len(ids), dtype=bool) if self.category_ok is None else self.category_ok[self.sets.codes[ids]]
        if len(self.blocked):
            at = np.searchsorted(self.blocked, ids).clip(max=len(self.blocked) - 1)
            ok &= self.blocked[at] != ids
        return ok

    def members(self) -> np.ndarray:
        """Every allowed position, ascending: O(allowed items), for small allowed sets only."""
        if self.category_ok is None:
            candidates = np.arange(len(self.sets.codes), dtype=np.int64)
        else:
            candidates = np.sort(np.concatenate([self.sets.members[c] for c in np.flatnonzero(self.category_ok)]))
        return candidates[self.contains(candidates)] if len(self.blocked) else candidates

    def selector(self) -> faiss.IDSelector | None:
        """A FAISS selector for this set (None when unfiltered). Keep it referenced while searching."""
        parts: list[faiss.IDSelector] = []
        if self.category_ok is not None:
            bitmap = self.sets.bitmap(self.category_ok)
            parts.append(_Keep(faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), bitmap))
        if len(self.blocked):
            batch = faiss.IDSelectorBatch(len(self.blocked), faiss.swig_ptr(self.blocked))
            parts.append(_Keep(faiss.IDSelectorNot(batch), batch))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else _Keep(faiss.IDSelectorAnd(parts[0], parts[1]), *parts)


def _Keep(selector: faiss.IDSelector, *owned: object) -> faiss.IDSelector:
    """Attach the objects a SWIG selector points into, so they live as long as it does."""
    selector.referenced_objects = owned  # type: ignore[attr-defined]
    return selector
