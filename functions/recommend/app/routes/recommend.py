"""``POST /recommend``: personalized, fold-in or popular top-k with filters and popularity backfill."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Response

from app.deps import ModelDep
from app.responses import json_response
from app.schemas import ErrorResponse, RecommendRequest, RecommendResponse
from app.state import UserStoreDep, as_interactions, read_state, state_input
from reccore.model import Model
from reccore.recommend import recommend as core_recommend
from reccore.scoring import Filters, Ranking

router = APIRouter(tags=["recommend"])
_ERRORS: dict[int | str, dict[str, object]] = {422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


def scored_items(model: Model, ranking: Ranking) -> list[dict[str, Any]]:
    """``ScoredItem``-shaped dicts for a ranking (rank is 1-based)."""
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
        for r, (i, s, src) in enumerate(
            zip(ranking.items.tolist(), ranking.scores.tolist(), ranking.sources, strict=True), start=1
        )
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


@router.post("/recommend", response_model=RecommendResponse, responses=_ERRORS)
async def recommend(body: RecommendRequest, model: ModelDep, store: UserStoreDep) -> Response:
    """Top-k items for a user (their stored state and events included), an anonymous session, or nobody."""
    recent, ignored = _positions(model, body.recent_items)
    excluded, _unknown = _positions(model, body.exclude_items)  # unknown ids cannot be recommended anyway
    filters = Filters(
        exclude_items=frozenset(excluded),
        # An empty include list means "no restriction" (a multiselect with nothing picked), not "nothing".
        include_categories=frozenset(body.include_categories) if body.include_categories else None,
        exclude_categories=frozenset(body.exclude_categories or ()),
    )
    user = model.user_index.get(body.user_id) if body.user_id is not None else None
    state, degraded = await read_state(store, body.user_id) if body.user_id is not None else (None, False)
    stored = state_input(model, state, known=user is not None)
    ranking = core_recommend(
        model,
        body.k,
        user=user,
        interactions=as_interactions([*stored.interactions, *((p, 1.0) for p in recent)]),
        filters=filters,
        exclude_seen=body.exclude_seen,
        seen=stored.seen,
    )
    # Built as RecommendResponse's JSON directly: validating our own output costs more than the scoring
    # (the p50 budget is 0.5 ms); the tests validate responses against the schema instead.
    return json_response(
        {
            "user_id": body.user_id,
            "model_version": model.version,
            "strategy": ranking.strategy,
            "items": scored_items(model, ranking),
            "ignored_items": ignored,
            "realtime_events": stored.realtime_events,
            "degraded": degraded,
        }
    )
