"""Users: a searchable page of ids and one user's recent history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.deps import ModelDep
from app.schemas.catalogue import HistoryEntry, UserHistory, UserPage, UserSummary
from app.schemas.common import COMMON_ERRORS, MAX_OFFSET, MAX_PAGE, MAX_TEXT, error_responses
from app.state import UserStoreDep, read_state
from app.views import user_search, views
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
        matches = user_search(model).search(q)
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
    store: UserStoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_HISTORY,
) -> UserHistory:
    """A user's most recent interactions, newest first: events posted since the model, then what it was trained on."""
    user = model.user_index.get(user_id)
    state, _degraded = await read_state(store, user_id)
    if user is None and state is None:
        raise UnknownUserError(f"unknown user id {user_id[:MAX_TEXT]!r}: not in model {model.version}")
    # A user the model never trained on: every stored event counts, as in /recommend (app.state.state_input).
    fresh = state.fresh(model.trained_through if user is not None else None) if state is not None else []
    # (item id, unix time, event name), newest first
    rows: list[tuple[str, int, str]] = [(e.item_id, e.timestamp, e.event) for e in reversed(fresh)]
    if user is not None:
        span = model.user_history(user)
        total = len(fresh) + span.stop - span.start
        stop = min(span.stop, span.start + limit)
        names = model.manifest.event_types
        rows += [
            (model.item_ids[i], t, names[e] if 0 <= e < len(names) else str(e))
            for i, t, e in zip(
                model.history_items[span.start : stop].tolist(),
                model.history_times[span.start : stop].tolist(),
                model.history_events[span.start : stop].tolist(),
                strict=True,
            )
        ]
    else:  # the model holds no per-user arrays (or not this user): the store's training-side history
        base = state.base if state is not None else []
        total = len(fresh) + len(base)
        rows += [(e.item_id, e.timestamp, e.event) for e in reversed(base)]
    lookup = model.item_index
    history = [
        HistoryEntry(
            item_id=item_id,
            title=model.titles[lookup[item_id]] if item_id in lookup else item_id,
            category=model.categories[lookup[item_id]] if item_id in lookup else "unknown",
            timestamp=datetime.fromtimestamp(t, tz=UTC),
            event=event,
        )
        for item_id, t, event in rows[:limit]
    ]
    return UserHistory(user_id=user_id, model_version=model.version, n_interactions=total, history=history)
