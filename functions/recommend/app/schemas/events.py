"""POST /events: a batch of interactions, and what was accepted."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)

from app.schemas.common import (
    MAX_EVENTS,
    MAX_ID,
    ItemId,
    LoggedId,
    RecommendationId,
    StrictModel,
    UnixSeconds,
)
from reccore.events import EventType


class EventIn(StrictModel):
    user_id: LoggedId = Field(min_length=1, max_length=MAX_ID)
    item_id: LoggedId = Field(min_length=1, max_length=MAX_ID)
    event: EventType
    value: float | None = Field(
        None, gt=0, le=1e6, allow_inf_nan=False, description="A rating or explicit weight; default: the event's."
    )
    timestamp: UnixSeconds | None = Field(
        None, description="Unix seconds; default: when received. At most a few minutes ahead."
    )
    event_id: LoggedId | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Unique per user: a retried batch counts once, in the user-state store and in training.",
    )
    recommendation_id: RecommendationId | None = Field(
        None,
        description="The recommendation_id of the POST /recommend answer this event followed (a click on one of "
        "its items, a purchase after it): online experiments attribute the event to that answer's variant.",
    )


class EventsRequest(StrictModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    model_version: str
    accepted: int = Field(description="Events stored and logged for training.")
    duplicates: int = Field(description="Events whose event_id the same user had stored already (not counted twice).")
    unknown_items: list[ItemId] = Field(
        default_factory=list, description="Accepted item ids the current model does not know (a newer catalogue)."
    )
    before_training_cutoff: int = Field(
        0,
        description="Accepted events of users the model knows, dated at or before its newest training event: "
        "stored and logged for the next training run, but they do not change those users' answers until then "
        "(the model may hold them already). A new user's events always count.",
    )
