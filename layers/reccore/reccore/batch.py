"""Recommendations for many known users at once, answering exactly as :func:`reccore.recommend.recommend` does.

Each user is planned and completed by the same functions the single path uses (strategy, seen items,
filters, backfill); only the index search is shared: one FAISS search per chunk of users, with the
request's filters as a selector, fetching ``k`` plus the most items any user in the chunk has seen, then
each user's seen items dropped. For an exact or IVF index that is the same answer as the user's own
filtered search (the same probed lists for the same query); users for whom it is not provably the same
(an HNSW index, diversity, too few hits left) go through the single path.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from reccore.model import Model
from reccore.recommend import complete, plan, recommend
from reccore.scoring import Filters, Ranking, allowed, scores_directly, search_parameters

CHUNK = 256  # users per batched search


def recommend_users(
    model: Model,
    users: list[int | None],
    k: int,
    filters: Filters | None = None,
    exclude_seen: bool = True,
    diversity: float = 0.0,
    threads: int = 1,
) -> Iterator[Ranking]:
    """One ranking per entry of ``users`` (a model row, or None for an unknown user), in order."""
    filters = filters or Filters()
    chunks = [users[start : start + CHUNK] for start in range(0, len(users), CHUNK)]

    def run(chunk: list[int | None]) -> list[Ranking]:
        return _chunk(model, chunk, k, filters, exclude_seen, diversity)

    if threads <= 1:
        for chunk in chunks:
            yield from run(chunk)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:  # FAISS releases the GIL while it searches
        for rankings in pool.map(run, chunks):
            yield from rankings


def _chunk(
    model: Model, users: list[int | None], k: int, filters: Filters, exclude_seen: bool, diversity: float
) -> list[Ranking]:
    plans = [plan(model, user, None, exclude_seen) for user in users]
    shared = isinstance(model.index_ip, faiss.IndexFlat | faiss.IndexIVF) and diversity == 0.0
    searched = [i for i, (_, vector, _, _) in enumerate(plans) if vector is not None] if shared else []
    found: dict[int, Ranking] = {}
    if searched:
        common = allowed(model, filters)  # the request's filters, without any user's seen items
        fetch = min(model.n_items, k + max(len(plans[i][2]) for i in searched))
        queries = np.stack([plans[i][1] for i in searched]).astype(np.float32)  # type: ignore[misc]
        selector = common.selector()
        params = search_parameters(model.index_ip, fetch, selector)
        if params is None:
            scores, ids = model.index_ip.search(queries, fetch)
        else:
            scores, ids = model.index_ip.search(queries, fetch, params=params)
        for row, i in enumerate(searched):
            seen_ids = np.asarray(plans[i][2], dtype=np.int64)
            keep = (ids[row] >= 0) & ~np.isin(ids[row], seen_ids)
            hits, hit_scores = ids[row][keep][:k], scores[row][keep][:k]
            n_allowed = allowed(model, filters, plans[i][2]).count
            if len(hits) >= min(k, n_allowed) and not scores_directly(model, n_allowed):
                found[i] = Ranking.of(model, hits, hit_scores)
    rankings: list[Ranking] = []
    for i, (user, (strategy, vector, seen, _)) in enumerate(zip(users, plans, strict=True)):
        if i in found:
            permitted = allowed(model, filters, seen)
            rankings.append(complete(model, k, strategy, vector, permitted, diversity, found=found[i]))
        else:
            rankings.append(
                recommend(model, k, user=user, filters=filters, exclude_seen=exclude_seen, diversity=diversity)
            )
    return rankings
