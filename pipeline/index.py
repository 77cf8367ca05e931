"""FAISS indexes over the item vectors, and the recall check that gates an approximate one."""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["flat", "hnsw"]
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 256
RECALL_QUERIES = 1000


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), for cosine via inner product."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def build_index(vectors: np.ndarray, kind: IndexKind) -> faiss.Index:
    """An inner-product index: exact (``IndexFlatIP``) or approximate (HNSW)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dims = vectors.shape[1]
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dims)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dims, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"index: unknown kind {kind!r}; expected 'flat' or 'hnsw'")
    index.add(vectors)
    return index


def recall_at_10(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray) -> float:
    """Share of exact top-10 neighbours (by inner product over ``vectors``) that ``index`` returns."""
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(10, exact.ntotal)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return hits / truth.size


def sample_rows(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` non-zero rows of ``vectors`` drawn without replacement, as recall queries."""
    nonzero = np.flatnonzero(np.linalg.norm(vectors, axis=1) > 0)
    rng = np.random.default_rng(seed)
    return vectors[rng.choice(nonzero, size=min(n, len(nonzero)), replace=False)]
