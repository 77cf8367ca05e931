"""A servable model: the published files turned into arrays, id maps and FAISS indexes.

Loading one from a store is :mod:`reccore.loading`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np

from reccore.columns import CategoryColumn, IdLookup
from reccore.encoding import ModelContents, decode
from reccore.errors import ModelLoadError, ModelPartError
from reccore.filtering import CategorySets
from reccore.layout import Files, Manifest


class Parts:
    """The parts of a model that may arrive after it starts serving: :attr:`Files.DEFERRED`.

    A part not given at construction is fetched by ``fetch(name)`` on its first use, in the thread that needs
    it (so on Lambda, within the invocation that needs it), or by :meth:`prefetch` in the background; each
    part once. A failed fetch raises :class:`ModelPartError` (a 503 for that request) and is tried again by
    the next use.
    """

    def __init__(
        self,
        given: dict[str, Any],
        shape: tuple[int, int],
        fetch: Callable[[str], Any] | None = None,
        done: Callable[[], object] | None = None,
    ) -> None:
        self._values = {name: value for name, value in given.items() if name in Files.DEFERRED and value is not None}
        self._shape = shape  # (n_items, dims): what every part must agree with
        self._fetch = fetch
        self._done = done  # called once every part is here (the load directory is removed)
        self._locks = {name: threading.Lock() for name in Files.DEFERRED}

    def get(self, name: str) -> Any:
        value = self._values.get(name)
        if value is not None:
            return value
        with self._locks[name]:
            if name not in self._values:
                if self._fetch is None:
                    raise ModelPartError(f"{name} is missing from the model")
                try:
                    value = self._fetch(name)
                except Exception as exc:
                    raise ModelPartError(f"{name} could not be fetched: {type(exc).__name__}: {exc}") from exc
                problem = _part_problem(name, value, self._shape)
                if problem:
                    raise ModelPartError(problem)
                self._values[name] = value
                if not self.pending() and self._done is not None:
                    self._done()
            return self._values[name]

    def pending(self) -> list[str]:
        return [name for name in Files.DEFERRED if name not in self._values]

    def prefetch(self) -> dict[str, str]:
        """Fetch every pending part; the failures by name (each is tried again on its first use)."""
        failures = {}
        for name in self.pending():
            try:
                self.get(name)
            except ModelPartError as exc:
                failures[name] = str(exc)
        return failures

    def problems(self) -> list[str]:
        """Row counts of the parts given at construction that disagree (the rest is for validation)."""
        shape = (self._shape[0], None)
        return [p for name, value in self._values.items() if (p := _part_problem(name, value, shape))]


def _part_problem(name: str, value: Any, shape: tuple[int, int | None]) -> str | None:
    """A part whose rows (and, unless ``shape[1]`` is None, columns) disagree with ``(n_items, dims)``."""
    n_items, dims = shape
    if isinstance(value, faiss.Index):
        got = (value.ntotal, value.d)
    else:
        got = (len(value), value.shape[1] if value.ndim == 2 else 0)
    want = (n_items, got[1] if dims is None else 2 if name == Files.ITEM_MAP else dims)
    return None if got == want else f"{name} has {got[0]} rows of {got[1]} values, expected {want[0]} of {want[1]}"


@dataclass(frozen=True, eq=False)
class Model:
    """One immutable model version. Requests hold a reference for their whole lifetime."""

    manifest: Manifest
    user_ids: Sequence[str]  # a StringColumn: strings decoded on access
    item_ids: Sequence[str]
    titles: Sequence[str]
    categories: CategoryColumn
    prices: np.ndarray
    user_factors: np.ndarray
    singular_values: np.ndarray
    item_weights: np.ndarray
    popularity: np.ndarray
    content_based: np.ndarray
    history_indptr: np.ndarray
    history_items: np.ndarray
    history_times: np.ndarray
    history_events: np.ndarray
    index_ip: faiss.Index
    parts: Parts  # item_factors, item_map and index_cos: maybe fetched on first use (Files.DEFERRED)
    user_index: IdLookup  # id -> row, without a dict of every id
    item_index: IdLookup
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    popular_order: np.ndarray = field(init=False)
    category_sets: CategorySets = field(init=False)  # per-category id sets for filtered search

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        shapes = {
            Files.USER_FACTORS: (self.user_factors.shape[0], n_users),
            Files.POPULARITY: (len(self.popularity), n_items),
            Files.CONTENT_BASED: (len(self.content_based), n_items),
            Files.HISTORY_INDPTR: (len(self.history_indptr), n_users + 1),
            Files.INDEX_IP: (self.index_ip.ntotal, n_items),
        }
        bad = [f"{name} has {got} rows, expected {want}" for name, (got, want) in shapes.items() if got != want]
        bad += self.parts.problems()
        if bad:
            raise ModelLoadError(f"model {self.manifest.version} is inconsistent: " + "; ".join(bad))
        set_ = object.__setattr__  # frozen dataclass: derived fields are set once here
        set_(self, "popular_order", np.argsort(-self.popularity, kind="stable").astype(np.int32))
        set_(self, "category_sets", CategorySets(self.category_codes, len(self.category_names)))

    @property
    def item_factors(self) -> np.ndarray:
        return self.parts.get(Files.ITEM_FACTORS)

    @property
    def item_map(self) -> np.ndarray:
        return self.parts.get(Files.ITEM_MAP)

    @property
    def index_cos(self) -> faiss.Index:
        return self.parts.get(Files.INDEX_COS)

    @property
    def category_names(self) -> list[str]:
        return self.categories.names

    @property
    def category_codes(self) -> np.ndarray:
        return self.categories.codes

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def trained_through(self) -> int | None:
        """Unix time of the newest interaction the model was trained on: later events are new to it."""
        time_range = self.manifest.data.get("time_range")
        return int(time_range[1]) if time_range else None

    def user_history(self, user: int) -> slice:
        """Positions of ``user``'s interactions in the history arrays, newest first."""
        return slice(int(self.history_indptr[user]), int(self.history_indptr[user + 1]))


def build_model(manifest: Manifest, files: dict[str, bytes], cache_dir: str | None = None) -> Model:
    """Assemble a :class:`Model` from already verified file contents.

    A version published without per-user arrays (``manifest.user_arrays`` false) gives a model with zero
    users; its users' state lives in the user-state store.
    """
    if not manifest.user_arrays:
        files = {name: data for name, data in files.items() if name not in Files.USER_SIDE}
    try:
        contents = decode(files, cache_dir)
    except ModelLoadError as exc:
        raise ModelLoadError(f"model {manifest.version} cannot be loaded: {exc}") from exc
    return assemble(manifest, contents)


def assemble(
    manifest: Manifest,
    contents: ModelContents,
    fetch: Callable[[str], Any] | None = None,
    done: Callable[[], object] | None = None,
) -> Model:
    """A :class:`Model` from decoded contents (in memory or mapped); ``fetch`` gives the deferred parts the
    contents lack and ``done`` is called once they are all here (see :class:`Parts`)."""
    arrays = contents.arrays
    try:
        user_index, item_index = contents.lookups()
        categories = contents.items.category
        return Model(
            manifest=manifest,
            user_ids=contents.user_ids,
            item_ids=contents.items.item_id,
            titles=contents.items.title,
            categories=categories if isinstance(categories, CategoryColumn) else CategoryColumn.of(categories),
            prices=contents.items.price,
            user_factors=arrays[Files.USER_FACTORS],
            singular_values=arrays[Files.SINGULAR_VALUES],
            item_weights=arrays[Files.ITEM_WEIGHTS],
            popularity=arrays[Files.POPULARITY],
            content_based=arrays[Files.CONTENT_BASED].astype(bool),
            history_indptr=arrays[Files.HISTORY_INDPTR],
            history_items=arrays[Files.HISTORY_ITEMS],
            history_times=arrays[Files.HISTORY_TIMES],
            history_events=arrays[Files.HISTORY_EVENTS],
            index_ip=contents.index_ip,
            parts=Parts(
                {**arrays, Files.INDEX_COS: contents.index_cos},
                (len(contents.items.item_id), len(arrays[Files.SINGULAR_VALUES])),
                fetch,
                done,
            ),
            user_index=user_index,
            item_index=item_index,
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"model {manifest.version} cannot be loaded: {type(exc).__name__}: {exc}") from exc
