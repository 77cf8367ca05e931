"""FAISS indexes over the item vectors, their recall against exact search, and the tuning that gates them.

An approximate index is tuned to the smallest nprobe (IVF) or efSearch (HNSW) whose recall@10
against exact search meets the gate on every query set it is given (held-out user vectors, and the
same queries under a heavy category filter), and refused if even the largest value misses it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from reccore.scoring import search_parameters

IndexKind = Literal["flat", "ivf", "hnsw"]
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 1024  # the largest efSearch the tuner tries
IVF_TRAIN_PER_LIST = 64  # k-means training rows per inverted list (FAISS warns below 39)
IVF_MAX_NPROBE = 1024  # the largest nprobe the tuner tries
RECALL_QUERIES = 1000
LATENCY_QUERIES = 200


@contextmanager
def all_cores() -> Iterator[None]:
    """FAISS on every core for builds and batch searches (the service runs it on one: see reccore.scoring)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), for cosine via inner product."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 4·√n, with at least 39 vectors per list."""
    target = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    return int(max(1, min(target, n // 39)))


def build_index(vectors: np.ndarray, kind: IndexKind, seed: int = 42) -> faiss.Index:
    """An inner-product index: exact (``IndexFlatIP``), IVF-Flat or HNSW-Flat (search parameters untuned)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dims = vectors.shape[1]
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dims)
    elif kind == "ivf":
        nlist = ivf_lists(len(vectors))
        index = faiss.index_factory(dims, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        size = min(len(vectors), IVF_TRAIN_PER_LIST * nlist)
        sample = vectors[np.sort(rng.choice(len(vectors), size=size, replace=False))]
        index.cp.seed = seed  # type: ignore[attr-defined]
        index.train(sample)
        index.nprobe = min(nlist, IVF_MAX_NPROBE)  # type: ignore[attr-defined]
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dims, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"index: unknown kind {kind!r}; expected 'flat', 'ivf' or 'hnsw'")
    index.add(vectors)
    return index


@dataclass(frozen=True)
class QuerySet:
    """Recall queries, optionally under a filter (a FAISS selector), with their exact top-10."""

    name: str
    queries: np.ndarray
    truth: np.ndarray
    selector: faiss.IDSelector | None = None

    @classmethod
    def of(
        cls, name: str, vectors: np.ndarray, queries: np.ndarray, selector: faiss.IDSelector | None = None
    ) -> QuerySet:
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, truth = _search_all(exact, queries, min(10, exact.ntotal), selector)
        return cls(name, queries, truth, selector)


def _search_all(
    index: faiss.Index, queries: np.ndarray, k: int, selector: faiss.IDSelector | None
) -> tuple[np.ndarray, np.ndarray]:
    params = search_parameters(index, k, selector)
    return index.search(queries, k) if params is None else index.search(queries, k, params=params)


def recall(index: faiss.Index, query_set: QuerySet) -> float:
    """Share of the exact top-10 neighbours that ``index`` (with its current search parameters) returns."""
    _, found = _search_all(index, query_set.queries, query_set.truth.shape[1], query_set.selector)
    truth = query_set.truth
    hits = sum(len(set(t) - {-1} & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def recall_at_10(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray) -> float:
    """Recall@10 of ``index`` against exact inner-product search over ``vectors``."""
    return recall(index, QuerySet.of("queries", vectors, queries))


def latency_us(index: faiss.Index, queries: np.ndarray, selector: faiss.IDSelector | None = None) -> float:
    """Median microseconds of a one-query search, as the service runs it (one at a time, one thread)."""
    times = []
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    for row in np.ascontiguousarray(queries[:LATENCY_QUERIES], dtype=np.float32):
        start = time.perf_counter()
        _search_all(index, row.reshape(1, -1), 10, selector)
        times.append(time.perf_counter() - start)
    faiss.omp_set_num_threads(before)
    return float(np.median(times) * 1e6)


def _knob(index: faiss.Index) -> tuple[str, int, int, Callable[[int], None]]:
    """The search-time parameter of an approximate index: its name, smallest and largest value tried, setter.

    HNSW starts at 10: searches use ``max(efSearch, k)``, so a smaller value would not be what runs at k = 10.
    """
    if isinstance(index, faiss.IndexIVF):
        nlist = int(index.nlist)

        def set_nprobe(value: int) -> None:
            index.nprobe = value

        return "nprobe", 1, min(nlist, IVF_MAX_NPROBE), set_nprobe

    def set_ef(value: int) -> None:
        index.hnsw.efSearch = value  # type: ignore[attr-defined]

    return "efSearch", min(10, HNSW_EF_SEARCH), HNSW_EF_SEARCH, set_ef


def tune(index: faiss.Index, query_sets: list[QuerySet], min_recall: float) -> tuple[dict[str, int], dict[str, float]]:
    """Set ``index`` to the smallest nprobe/efSearch meeting ``min_recall`` on every query set.

    Returns the parameter and each set's recall at it. If even the largest value misses, the index is
    left there and the (failing) recalls are returned: the caller refuses it.
    """
    name, smallest, largest, set_value = _knob(index)

    def passes(value: int) -> tuple[bool, dict[str, float]]:
        set_value(value)
        recalls = {q.name: recall(index, q) for q in query_sets}
        return min(recalls.values()) >= min_recall, recalls

    value, low = smallest, smallest - 1  # doubling up, then a binary search down to the smallest passing value
    ok, recalls = passes(value)
    while not ok and value < largest:
        low, value = value, min(largest, value * 2)
        ok, recalls = passes(value)
    if not ok:
        return {name: value}, recalls
    while value - low > 1:
        middle = (low + value) // 2
        middle_ok, middle_recalls = passes(middle)
        if middle_ok:
            value, recalls = middle, middle_recalls
        else:
            low = middle
    set_value(value)
    return {name: value}, recalls


def sample_rows(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` non-zero rows of ``vectors`` drawn without replacement, as recall queries."""
    nonzero = np.flatnonzero(np.linalg.norm(vectors, axis=1) > 0)
    rng = np.random.default_rng(seed)
    return vectors[rng.choice(nonzero, size=min(n, len(nonzero)), replace=False)]
