"""``POST /events``: interactions in, for the next recommendation (user-state store) and the next training run (log)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from app.deps import ModelDep
from app.schemas.common import COMMON_ERRORS
from app.schemas.events import EventsRequest, EventsResponse
from app.state import EventLogDep, UserStoreDep, within_deadline
from reccore.settings import get_service_settings
from reccore.userstate import Event

router = APIRouter(tags=["events"], responses=COMMON_ERRORS)


@router.post("/events", response_model=EventsResponse)
async def post_events(body: EventsRequest, model: ModelDep, store: UserStoreDep, log: EventLogDep) -> EventsResponse:
    """Record a batch of events: logged for training first, then added to each user's state (all or 422)."""
    now = int(time.time())
    latest = now + get_service_settings().event_max_skew_seconds
    future = [
        {
            "loc": ("body", "events", n, "timestamp"),
            "msg": f"more than the allowed skew ahead of {now}",
            "type": "value_error",
        }
        for n, e in enumerate(body.events)
        if e.timestamp is not None and e.timestamp > latest
    ]
    if future:
        raise RequestValidationError(future)
    events = [
        (
            e.user_id,
            Event(
                e.item_id,
                e.event,
                e.timestamp if e.timestamp is not None else now,
                e.value,
                e.event_id,
                e.recommendation_id,
            ),
        )
        for e in body.events
    ]
    # The log first: if the store then fails, a retry logs again (the pipeline drops repeated event ids) rather
    # than the store holding events the training log never saw.
    # Both within the request's deadline: past it, a 503 (the caller retries; the pipeline and the store drop a
    # repeated event_id of the same user).
    await within_deadline(log.write, events)
    result = await within_deadline(store.append, events)
    unknown = dict.fromkeys(e.item_id for e in body.events if e.item_id not in model.item_index)
    cutoff = model.trained_through
    past = 0 if cutoff is None else sum(1 for u, e in events if e.timestamp <= cutoff and u in model.user_index)
    return EventsResponse(
        model_version=model.version,
        accepted=result.accepted,
        duplicates=result.duplicates,
        unknown_items=list(unknown),
        before_training_cutoff=min(past, result.accepted),
    )
