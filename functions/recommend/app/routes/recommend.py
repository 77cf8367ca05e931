"""``POST /recommend``: personalized, fold-in or popular top-k with filters and popularity backfill."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Response

from app.deps import ModelDep
from app.responses import json_response
from app.schemas import COMMON_ERRORS, RecommendRequest, RecommendResponse, Strategy
from reccore.model import Model
from reccore.scoring import Filters, allowed_items, fold_in, seen_items
from reccore.scoring import recommend as rank

router = APIRouter(tags=["recommend"], responses=COMMON_ERRORS)


def scored_items(model: Model, items: np.ndarray, scores: np.ndarray, sources: Sequence[str]) -> list[dict[str, Any]]:
    """``ScoredItem``-shaped dicts for ranked item positions (rank is 1-based)."""
    ids, titles, categories = model.item_ids, model.titles, model.categories
    return [
        {
            "item_id": ids[i],
            "score": s if math.isfinite(s) else 0.0,
            "rank": r,
            "title": titles[i],
            "category": categories[i],
            "source": src,
        }
        for r, (i, s, src) in enumerate(zip(items.tolist(), scores.tolist(), sources, strict=True), start=1)
    ]


def _positions(model: Model, ids: list[str] | None) -> tuple[list[int], list[str]]:
    """Known positions (in order, repeats kept) and unknown ids (deduplicated) of ``ids``."""
    known: list[int] = []
    unknown: dict[str, None] = {}
    lookup = model.item_index
    for item_id in ids or ():
        position = lookup.get(item_id)
        if position is None:
            unknown[item_id] = None
        else:
            known.append(position)
    return known, list(unknown)


def _usable(vector: np.ndarray) -> bool:
    # A zero or non-finite vector scores every item alike: popularity answers better.
    return 0.0 < float(np.dot(vector, vector)) < math.inf


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(body: RecommendRequest, model: ModelDep) -> Response:
    """Top-k items for a known user, an anonymous session (recent_items) or nobody (popular)."""
    user = model.user_index.get(body.user_id) if body.user_id is not None else None
    recent, ignored = _positions(model, body.recent_items)

    strategy: Strategy = "popular"
    vector: np.ndarray | None = None
    if user is not None and _usable(model.user_factors[user]):
        strategy, vector = "personalized", model.user_factors[user]
    elif recent:
        folded = fold_in(model, np.asarray(recent, dtype=np.int64))
        if _usable(folded):
            strategy, vector = "fold_in", folded

    seen: list[int] = []
    if body.exclude_seen:
        seen = recent if user is None else [*seen_items(model, user).tolist(), *recent]
    excluded, _unknown = _positions(model, body.exclude_items)  # unknown ids cannot be recommended anyway
    filters = Filters(
        exclude_items=frozenset(excluded),
        # An empty include list means "no restriction" (a multiselect with nothing picked), not "nothing".
        include_categories=frozenset(body.include_categories) if body.include_categories else None,
        exclude_categories=frozenset(body.exclude_categories or ()),
    )
    ranking = rank(model, vector, body.k, allowed_items(model, filters, seen))
    # Built as RecommendResponse's JSON directly: validating our own output costs more than the scoring
    # (the p50 budget is 0.5 ms); the tests validate responses against the schema instead.
    return json_response(
        {
            "user_id": body.user_id,
            "model_version": model.version,
            "strategy": strategy,
            "items": scored_items(model, ranking.items, ranking.scores, ranking.sources),
            "ignored_items": ignored,
        }
    )
