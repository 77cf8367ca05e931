"""Confidence weighting of interaction rows: one implementation for training and fold-in.

The pipeline weights the whole user×item matrix with :func:`weight_rows`; the
service weights an anonymous session's items with the same function, so that a
user folded in at request time gets exactly the vector training would give.
Only numpy here: rows are passed as CSR arrays.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Scheme = Literal["none", "log", "bm25", "tfidf"]
SCHEMES: tuple[Scheme, ...] = ("none", "log", "bm25", "tfidf")
BM25_K1 = 1.2
BM25_B = 0.75


def item_weights(document_freq: np.ndarray, n_users: int, scheme: Scheme) -> np.ndarray:
    """Per-item factor of the weighting (an IDF for bm25/tfidf, ones otherwise).

    Items nobody interacted with get the median weight of the others, so that a
    cold item in a session neither dominates nor vanishes from the fold-in.
    """
    df = np.asarray(document_freq, dtype=np.float64)
    if scheme == "bm25":
        idf = np.log1p((n_users - df + 0.5) / (df + 0.5))
    elif scheme == "tfidf":
        idf = np.log((1.0 + n_users) / (1.0 + df)) + 1.0
    else:
        return np.ones(len(df), dtype=np.float32)
    warm = df > 0
    if warm.any() and not warm.all():
        idf[~warm] = np.median(idf[warm])
    return idf.astype(np.float32)


def weight_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    weights: np.ndarray,
    scheme: Scheme,
    avg_row_length: float,
) -> np.ndarray:
    """Weighted values for CSR rows ``(indptr, indices, data)``; returns a new float32 ``data``.

    Parameters
    ----------
    data
        Raw strength per (user, item): the sum of that pair's interaction weights.
    weights
        Per-item factors from :func:`item_weights`.
    avg_row_length
        Mean raw row sum over the training users (BM25's length normalisation).
    """
    raw = np.asarray(data, dtype=np.float64)
    if scheme == "none":
        out = raw
    elif scheme == "log":
        out = np.log1p(raw)
    elif scheme == "tfidf":
        out = np.log1p(raw) * weights[indices]
    elif scheme == "bm25":
        row_sums = np.add.reduceat(raw, indptr[:-1]) if len(raw) else np.zeros(len(indptr) - 1)
        row_sums[np.diff(indptr) == 0] = 0.0  # reduceat repeats a value for empty rows
        length_norm = (1.0 - BM25_B) + BM25_B * row_sums / max(avg_row_length, 1e-9)
        per_entry = np.repeat(length_norm, np.diff(indptr))
        out = raw * (BM25_K1 + 1.0) / (BM25_K1 * per_entry + raw) * weights[indices]
    else:
        raise ValueError(f"unknown weighting scheme {scheme!r}; expected one of {SCHEMES}")
    return out.astype(np.float32)
