"""Users: a searchable page of ids and one user's recent history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.deps import ModelDep
from app.schemas import (
    COMMON_ERRORS,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TEXT,
    HistoryEntry,
    UserHistory,
    UserPage,
    UserSummary,
    error_responses,
)
from app.views import views
from reccore.errors import UnknownUserError

router = APIRouter(tags=["users"], responses=COMMON_ERRORS)

DEFAULT_HISTORY = 50


@router.get("/users", response_model=UserPage)
async def list_users(
    model: ModelDep,
    q: Annotated[str | None, Query(max_length=MAX_TEXT, description="Case-insensitive substring of the id.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> UserPage:
    """A page of user ids (model order) with their interaction counts, optionally filtered by q."""
    tables = views(model)
    if q:
        matches = tables.user_search.search(q)
        total, page = len(matches), matches[offset : offset + limit].tolist()
    else:
        total, page = model.n_users, list(range(min(offset, model.n_users), min(offset + limit, model.n_users)))
    counts = tables.user_counts
    return UserPage(
        model_version=model.version,
        total=total,
        limit=limit,
        offset=offset,
        users=[UserSummary(user_id=model.user_ids[u], n_interactions=int(counts[u])) for u in page],
    )


@router.get("/users/{user_id}", response_model=UserHistory, responses=error_responses(404))
async def user_history(
    user_id: Annotated[str, Path(max_length=1024)],
    model: ModelDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_HISTORY,
) -> UserHistory:
    """A user's most recent interactions, newest first, with item metadata and event names."""
    user = model.user_index.get(user_id)
    if user is None:
        raise UnknownUserError(f"unknown user id {user_id[:MAX_TEXT]!r}: not in model {model.version}")
    rows = model.user_history(user)
    start, stop = rows.start, min(rows.stop, rows.start + limit)
    events = model.manifest.event_types
    history = [
        HistoryEntry(
            item_id=model.item_ids[i],
            title=model.titles[i],
            category=model.categories[i],
            timestamp=datetime.fromtimestamp(t, tz=UTC),
            event=events[e] if 0 <= e < len(events) else str(e),
        )
        for i, t, e in zip(
            model.history_items[start:stop].tolist(),
            model.history_times[start:stop].tolist(),
            model.history_events[start:stop].tolist(),
            strict=True,
        )
    ]
    return UserHistory(
        user_id=user_id, model_version=model.version, n_interactions=rows.stop - rows.start, history=history
    )
