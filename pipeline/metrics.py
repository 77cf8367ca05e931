"""Ranking metrics: the one module that defines them (pipeline evaluation and the reports use it).

Each per-user function takes the ranked item ids (best first) and the set of
relevant ids; :func:`summarise` averages them over users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

METRICS = ("precision", "recall", "ndcg", "map")


def precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Hits in the top ``k`` divided by ``k``."""
    return sum(1 for item in ranked[:k] if item in relevant) / k


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Hits in the top ``k`` divided by the number of relevant items."""
    if not relevant:
        return 0.0
    return sum(1 for item in ranked[:k] if item in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Binary-relevance NDCG: DCG of the ranking over the DCG of an ideal one."""
    dcg = sum(1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return float(dcg / ideal) if ideal else 0.0


def average_precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Mean of precision@i over the ranks i of the hits, divided by min(|relevant|, k)."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(ranked[:k]):
        if item in relevant:
            hits += 1
            total += hits / (rank + 1)
    return total / min(len(relevant), k)


def coverage(recommendations: Iterable[Sequence[int]], n_items: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list."""
    shown: set[int] = set()
    for ranked in recommendations:
        shown.update(ranked)
    return len(shown) / n_items if n_items else 0.0


def mean_popularity_rank(recommendations: Iterable[Sequence[int]], popularity_rank: np.ndarray) -> float:
    """Mean popularity rank (0 = most popular) of all recommended items: lower means more popularity bias."""
    ranks = [popularity_rank[item] for ranked in recommendations for item in ranked]
    return float(np.mean(ranks)) if ranks else 0.0


def summarise(
    rankings: Mapping[int, Sequence[int]],
    relevant: Mapping[int, set[int]],
    k: int,
    n_items: int,
    popularity_rank: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean of every metric over the users of ``rankings``, plus coverage (and popularity bias if ranks given)."""
    users = list(rankings)
    functions = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "ndcg": ndcg_at_k,
        "map": average_precision_at_k,
    }
    result = {
        f"{name}@{k}": float(np.mean([fn(rankings[u], relevant[u], k) for u in users])) if users else 0.0
        for name, fn in functions.items()
    }
    result["coverage"] = coverage(rankings.values(), n_items)
    if popularity_rank is not None:
        result["popularity_rank"] = mean_popularity_rank(rankings.values(), popularity_rank)
    result["users"] = float(len(users))
    return result
