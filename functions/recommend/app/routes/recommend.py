"""``POST /recommend``: personalized, fold-in or popular top-k with filters and popularity backfill."""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi import APIRouter, Response

from app.deps import ModelDep
from app.registry import registry
from app.responses import json_response
from app.schemas.common import COMMON_ERRORS
from app.schemas.recommend import RecommendRequest, RecommendResponse
from app.state import StateInput, UserStoreDep, get_impression_log, read_state, state_input, with_request
from reccore.experiment import CHALLENGER, CHAMPION, Variant
from reccore.explain import explain, history
from reccore.impressions import impression
from reccore.model import Model
from reccore.recommend import MAX_FOLD_IN, Interactions
from reccore.recommend import recommend as core_recommend
from reccore.scoring import Filters, Ranking

router = APIRouter(tags=["recommend"], responses=COMMON_ERRORS)


def scored_items(model: Model, ranking: Ranking) -> list[dict[str, Any]]:
    """``ScoredItem``-shaped dicts for a ranking (rank is 1-based). A popularity backfill's number is its
    popularity, on another scale than the model's scores: it goes in ``popularity``, and ``score`` is null."""
    ids, titles, categories = model.item_ids, model.titles, model.categories
    return [
        {
            "item_id": ids[i],
            "score": None if src == "popular" else s if math.isfinite(s) else 0.0,
            "popularity": (s if math.isfinite(s) else 0.0) if src == "popular" else None,
            "rank": r,
            "title": titles[i],
            "category": categories[i],
            "source": src,
        }
        for r, (i, s, src) in enumerate(
            zip(ranking.items.tolist(), ranking.scores.tolist(), ranking.sources, strict=True), start=1
        )
    ]


def _lookup(model: Model, ids: list[str]) -> tuple[list[int], list[str], list[int]]:
    """Known positions (in order, repeats kept), unknown ids (deduplicated) and the indices of the known ones."""
    known: list[int] = []
    kept: list[int] = []
    unknown: dict[str, None] = {}
    for n, (item_id, position) in enumerate(zip(ids, model.item_index.rows_of(ids), strict=True)):
        if position is None:
            unknown[item_id] = None
        else:
            known.append(position)
            kept.append(n)
    return known, list(unknown), kept


def _interactions(model: Model, body: RecommendRequest, stored: StateInput) -> tuple[Interactions, list[str]]:
    """The stored and the known ``recent_items`` interactions for the core, and the unknown ids."""
    ids, strengths, timestamps = body.history()
    known, unknown, kept = _lookup(model, ids)
    times = None if timestamps is None else [timestamps[n] for n in kept]
    return with_request(stored, known, [strengths[n] for n in kept], times), unknown


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(body: RecommendRequest, model: ModelDep, store: UserStoreDep) -> Response:
    """Top-k items for a user (their stored state and events included), an anonymous session, or nobody."""
    experiment, variant, model = _variant(model, body.user_id or body.session_id)
    excluded, _, _ = _lookup(model, body.exclude_items or [])  # unknown ids cannot be recommended anyway
    filters = Filters(
        exclude_items=frozenset(excluded),
        # An empty include list means "no restriction" (a multiselect with nothing picked), not "nothing".
        include_categories=frozenset(body.include_categories) if body.include_categories else None,
        exclude_categories=frozenset(body.exclude_categories or ()),
    )
    user = model.user_index.get(body.user_id) if body.user_id is not None else None
    state, degraded = await read_state(store, body.user_id) if body.user_id is not None else (None, False)
    stored = state_input(model, state, known=user is not None)
    interactions, unknown = _interactions(model, body, stored)
    ranking = core_recommend(
        model,
        body.k,
        user=user,
        interactions=interactions,
        filters=filters,
        exclude_seen=body.exclude_seen,
        seen=stored.seen,
        diversity=body.diversity,
    )
    items = scored_items(model, ranking)
    if body.explain:
        _explain(model, ranking, items, user, interactions)
    recommendation_id = uuid.uuid4().hex
    get_impression_log().log(
        impression(
            recommendation_id,
            body.user_id,
            body.session_id,
            [item["item_id"] for item in items],
            ranking.strategy,
            model.version,
            variant,
            experiment,
        )
    )
    # Built as RecommendResponse's JSON directly: validating our own output costs more than the scoring
    # (the p50 budget is 0.5 ms); the tests validate responses against the schema instead.
    return json_response(
        {
            "user_id": body.user_id,
            "model_version": model.version,
            "strategy": ranking.strategy,
            "items": items,
            "unknown_items": unknown,
            "unknown_categories": _unknown_categories(model, body),
            "truncated_items": ranking.truncated,
            "realtime_events": stored.realtime_events,
            "degraded": degraded,
            "recommendation_id": recommendation_id,
            "variant": variant,
        }
    )


def _unknown_categories(model: Model, body: RecommendRequest) -> list[str]:
    """Category names the request gave that the catalogue lacks (a typo filters nothing, or everything)."""
    known = model.category_names
    given = [*(body.include_categories or ()), *(body.exclude_categories or ())]
    return list(dict.fromkeys(name for name in given if name not in known)) if given else []


def _explain(
    model: Model, ranking: Ranking, items: list[dict[str, Any]], user: int | None, interactions: Interactions
) -> None:
    """Add ``because`` to each item: its top contributing history items (``reccore.explain``), or "popular"."""
    personalized = ranking.strategy == "personalized"
    window = interactions.newest(MAX_FOLD_IN) if ranking.strategy in ("personalized", "fold_in") else None
    row, weights = history(model, user if personalized else None, window)
    targets = [n for n, source in enumerate(ranking.sources) if source != "popular"]
    reasons = explain(model, row, weights, ranking.items[targets])
    for item in items:
        item["because"] = "popular"
    for n, found in zip(targets, reasons, strict=True):
        items[n]["because"] = [
            {"item_id": model.item_ids[r.item], "title": model.titles[r.item], "share": r.share} for r in found
        ]


def _variant(champion: Model, key: str | None) -> tuple[str | None, Variant, Model]:
    """The running experiment's id (or None), this user's or session's variant, and the model that serves it."""
    trial = registry.trial()
    if trial is None:
        return None, CHAMPION, champion
    experiment, challenger = trial
    variant = experiment.variant(key)
    return experiment.id, variant, challenger if variant == CHALLENGER else champion
