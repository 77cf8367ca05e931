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


def item_weights(document_freq: np.ndarray, n_users: int, scheme: Scheme, pop_alpha: float = 0.0) -> np.ndarray:
    """Per-item factor of the weighting: an IDF for bm25/tfidf (ones otherwise), times ``df^-pop_alpha``.

    ``pop_alpha`` > 0 normalises the input by popularity (an item seen by ``df`` users
    counts ``df^-pop_alpha``), so the factors are not spent on explaining the head.
    Items nobody interacted with get the median weight of the others, so that a
    cold item in a session neither dominates nor vanishes from the fold-in.
    """
    df = np.asarray(document_freq, dtype=np.float64)
    if scheme == "bm25":
        idf = np.log1p((n_users - df + 0.5) / (df + 0.5))
    elif scheme == "tfidf":
        idf = np.log((1.0 + n_users) / (1.0 + df)) + 1.0
    else:
        idf = np.ones(len(df), dtype=np.float64)
    if pop_alpha:
        idf = idf * np.maximum(df, 1.0) ** -pop_alpha
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
    min_rating: float = 0.0,
    centre: bool = False,
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
    min_rating
        Entries with a raw strength below this weigh 0 (explicit ratings: a dislike is not a like).
    centre
        Shift each row's transformed values so that their mean over the kept entries is 1:
        above-average ratings count more, below-average ones less (possibly below 0), and a
        row of equal strengths (an anonymous session) stays all ones.
    """
    raw = np.asarray(data, dtype=np.float64)
    lengths = np.diff(indptr)
    kept = raw >= min_rating if min_rating > 0 else np.ones(len(raw), dtype=bool)
    if scheme == "none":
        base = raw
    elif scheme in ("log", "tfidf"):
        base = np.log1p(raw)
    elif scheme == "bm25":
        row_sums = np.add.reduceat(raw, indptr[:-1]) if len(raw) else np.zeros(len(indptr) - 1)
        row_sums[lengths == 0] = 0.0  # reduceat repeats a value for empty rows
        length_norm = (1.0 - BM25_B) + BM25_B * row_sums / max(avg_row_length, 1e-9)
        per_entry = np.repeat(length_norm, lengths)
        base = raw * (BM25_K1 + 1.0) / (BM25_K1 * per_entry + raw)
    else:
        raise ValueError(f"unknown weighting scheme {scheme!r}; expected one of {SCHEMES}")
    base = np.where(kept, base, 0.0)
    if centre and len(raw):
        rows = np.repeat(np.arange(len(lengths)), lengths)
        n_kept = np.bincount(rows, weights=kept, minlength=len(lengths))
        means = np.bincount(rows, weights=base, minlength=len(lengths)) / np.maximum(n_kept, 1.0)
        base = np.where(kept, base - means[rows] + 1.0, 0.0)
    return (base * weights[indices]).astype(np.float32)


def row_options(params: dict[str, object]) -> dict[str, object]:
    """The keyword arguments of :func:`weight_rows` stored in a model's ``weighting`` parameters."""
    return {
        "min_rating": float(params.get("min_rating", 0.0) or 0.0),  # type: ignore[arg-type]
        "centre": bool(params.get("centre", False)),
    }
