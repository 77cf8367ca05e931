"""POST /recommend: the request (a user, a session's recent items, filters) and the scored answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from app.schemas.common import (
    MAX_IDS,
    MAX_TIMESTAMP,
    ItemId,
    JsonSchemaExtra,
    LoggedId,
    RecommendationId,
    StrictModel,
    Text,
    TopK,
)
from reccore.events import EventType, event_strength
from reccore.recommend import MAX_FOLD_IN, MAX_HISTORY
from reccore.scoring import Source, Strategy


class RecentItem(StrictModel):
    """One interaction of ``recent_items``: weighted as training weighs it (``reccore.events.event_strength``)."""

    item_id: Text
    event: EventType | None = Field(None, description="view (1), click (2), purchase (5) or rating; default view.")
    value: float | None = Field(
        None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        strict=True,
        description="A rating or explicit weight; wins over the event.",
    )
    timestamp: float | None = Field(
        None, ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False, strict=True, description="Unix seconds."
    )

    @property
    def strength(self) -> float:
        return event_strength(self.event, self.value)


def _entry_kind(value: Any) -> str:
    return "id" if isinstance(value, str) else "object"


# A bare id is {"item_id": id}: a view at its place in the list. Tagged so a bad object's error names its field
# (recent_items.3.object.value) without a second error for "not a string".
RecentEntry = Annotated[Annotated[Text, Tag("id")] | Annotated[RecentItem, Tag("object")], Discriminator(_entry_kind)]
BARE_ID_STRENGTH = event_strength()

TIMESTAMPS_ALL_OR_NONE = "give a timestamp on every entry or on none (then list order is time order)"
# An entry "has a timestamp" when it is an object whose timestamp is a number (null counts as none).
_STAMPED: dict[str, Any] = {
    "type": "object",
    "required": ["timestamp"],
    "properties": {"timestamp": {"type": "number"}},
}
# RecommendRequest's runtime rule (_timestamps_on_all_or_none) as JSON Schema: no entry stamped, or every one.
TIMESTAMPS_RULE: dict[str, Any] = {
    "anyOf": [
        {"title": "No timestamps", "items": {"not": _STAMPED}},
        {"title": "A timestamp on every entry", "items": _STAMPED},
    ],
    "x-timestamps": "all-or-none",
}
History = Annotated[list[RecentEntry], Field(max_length=MAX_HISTORY), JsonSchemaExtra(TIMESTAMPS_RULE)]


class RecommendRequest(StrictModel):
    user_id: Text | None = Field(None, min_length=1, max_length=256)
    session_id: LoggedId | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="An anonymous session's id: keeps its experiment variant stable and is logged with the "
        "impression (user_id, if given, is used for both instead).",
    )
    k: TopK = 10
    exclude_seen: bool = True
    recent_items: History | None = Field(
        None,
        description=(
            "The session's or user's interactions, oldest first (or each with a timestamp), as ids or objects. "
            f"All are excluded from the answer; with the user's stored events, the newest {MAX_FOLD_IN:,} are "
            "folded in. Timestamps on all entries or on none: give a timestamp on every entry (then bare ids "
            "are not allowed) or on none (then list order is time order); a list that mixes them is a 422."
        ),
    )
    include_categories: list[Text] | None = Field(None, max_length=MAX_IDS)
    exclude_categories: list[Text] | None = Field(None, max_length=MAX_IDS)
    exclude_items: list[Text] | None = Field(None, max_length=MAX_IDS)
    diversity: float = Field(
        0.0, ge=0.0, le=1.0, description="Maximal marginal relevance λ over the top candidates: 0 is the plain ranking."
    )
    explain: bool = Field(
        False, description="Say why: each item gets `because`, its top contributing history items (off by default)."
    )

    @field_validator("recent_items")
    @classmethod
    def _timestamps_on_all_or_none(cls, entries: list[str | RecentItem] | None) -> list[str | RecentItem] | None:
        stamped = sum(isinstance(entry, RecentItem) and entry.timestamp is not None for entry in entries or ())
        if 0 < stamped < len(entries or ()):
            raise ValueError(TIMESTAMPS_ALL_OR_NONE)
        return entries

    def history(self) -> tuple[list[str], list[float], list[float] | None]:
        """``recent_items`` as parallel lists: ids, raw strengths, and timestamps (``None`` if not given)."""
        entries = self.recent_items or []
        ids = [entry if isinstance(entry, str) else entry.item_id for entry in entries]
        strengths = [BARE_ID_STRENGTH if isinstance(entry, str) else entry.strength for entry in entries]
        timed = bool(entries) and isinstance(entries[0], RecentItem) and entries[0].timestamp is not None
        timestamps = [entry.timestamp or 0.0 for entry in entries if isinstance(entry, RecentItem)] if timed else None
        return ids, strengths, timestamps


class Reason(BaseModel):
    item_id: ItemId
    title: str
    share: float = Field(description="This history item's contribution over the item's whole score.")


class ScoredItem(BaseModel):
    item_id: ItemId
    score: float | None = Field(
        description="The model's score (the item's vector against the user's or session's; cosine for similar "
        "items); null for a popularity backfill, whose number is on another scale (see popularity)."
    )
    popularity: float | None = Field(
        None, description="A popularity backfill's recency-weighted popularity; null for the model's items."
    )
    rank: int
    title: str
    category: str
    source: Source = Field(
        description="model: collaborative vector; content: a cold item's metadata vector; popular: backfill."
    )
    because: list[Reason] | Literal["popular"] | None = Field(
        None,
        description="With explain: the (up to 3) history items that contribute most to this item's score, with "
        'their shares (exact: the score is a sum over the history); "popular" for a popularity backfill.',
    )


class RecommendResponse(BaseModel):
    user_id: str | None
    model_version: str
    strategy: Strategy
    items: list[ScoredItem]
    unknown_items: list[ItemId] = Field(default_factory=list, description="recent_items ids not in the catalogue.")
    unknown_categories: list[str] = Field(
        default_factory=list,
        description="include_categories / exclude_categories names the catalogue does not have (see GET /categories).",
    )
    truncated_items: int = Field(
        0,
        description=(
            f"Interactions (recent_items, and the user's stored events) older than the newest {MAX_FOLD_IN:,}: "
            "not folded in, still excluded."
        ),
    )
    realtime_events: int = Field(
        0, description="Events posted since the model was trained that shaped this answer (real-time)."
    )
    degraded: bool = Field(
        False, description="The user-state store was unreachable: answered from what the model artifact knows."
    )
    recommendation_id: RecommendationId = Field(
        description="This answer's id: send it with the events that follow it (POST /events) for attribution."
    )
    variant: Literal["champion", "challenger"] = Field(
        "champion", description="Which model of a running experiment served it (champion when none runs)."
    )
