"""The API's request and response models: the one place that defines the JSON shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reccore.events import EventType
from reccore.scoring import Source, Strategy

MAX_K = 100
MAX_IDS = 200  # bound on every list of ids in a request
MAX_PAGE = 100
MAX_MAP_SAMPLE = 20_000
MAX_OFFSET = 10_000_000  # bound on paging offsets
MAX_TEXT = 200  # bound on query strings (q, category)
MAX_EVENTS = 500  # events per POST /events batch (Firehose's PutRecordBatch limit)
MAX_ID = 256  # user and item id length

ItemId = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    """Every error: ``{"error": code, "message": ...}``."""

    error: str
    message: str
    details: list[dict[str, object]] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str
    model_created_at: datetime
    n_items: int
    n_users: int
    index_type: str
    dims: int
    loaded_at: datetime
    cold_start: bool = Field(description="True if this execution environment loaded its first model for this request.")
    faiss_simd: str


class RecommendRequest(_Strict):
    user_id: str | None = Field(None, min_length=1, max_length=256)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    recent_items: list[ItemId] | None = Field(
        None, max_length=MAX_IDS, description="Items of an anonymous session, for fold-in."
    )
    include_categories: list[str] | None = Field(None, max_length=MAX_IDS)
    exclude_categories: list[str] | None = Field(None, max_length=MAX_IDS)
    exclude_items: list[ItemId] | None = Field(None, max_length=MAX_IDS)


class ScoredItem(BaseModel):
    item_id: ItemId
    score: float
    rank: int
    title: str
    category: str
    source: Source = Field(
        description="model: collaborative vector; content: a cold item's metadata vector; popular: backfill."
    )


class RecommendResponse(BaseModel):
    user_id: str | None
    model_version: str
    strategy: Strategy
    items: list[ScoredItem]
    ignored_items: list[ItemId] = Field(default_factory=list, description="recent_items ids not in the catalogue.")
    realtime_events: int = Field(
        0, description="Events posted since the model was trained that shaped this answer (real-time)."
    )
    degraded: bool = Field(
        False, description="The user-state store was unreachable: answered from what the model artifact knows."
    )


class EventIn(_Strict):
    user_id: str = Field(min_length=1, max_length=MAX_ID)
    item_id: ItemId = Field(min_length=1, max_length=MAX_ID)
    event: EventType
    value: float | None = Field(
        None, gt=0, le=1e6, allow_inf_nan=False, description="A rating or explicit weight; default: the event's."
    )
    timestamp: int | None = Field(
        None, ge=0, le=2**40, description="Unix seconds; default: when received. At most a few minutes ahead."
    )
    event_id: str | None = Field(
        None, min_length=1, max_length=128, description="Makes a retried batch count once in the user-state store."
    )


class EventsRequest(_Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    model_version: str
    accepted: int = Field(description="Events stored and logged for training.")
    duplicates: int = Field(description="Events whose event_id had been stored already (not counted twice).")
    unknown_items: list[ItemId] = Field(
        default_factory=list, description="Accepted item ids the current model does not know (a newer catalogue)."
    )


class SimilarResponse(BaseModel):
    item_id: ItemId
    model_version: str
    content_based: bool
    items: list[ScoredItem]


class Item(BaseModel):
    item_id: ItemId
    title: str
    category: str
    price: float
    content_based: bool


class ItemDetail(Item):
    model_version: str
    popularity_rank: int
    n_interactions: int


class ItemPage(BaseModel):
    model_version: str
    total: int
    limit: int
    offset: int
    items: list[Item]


class Category(BaseModel):
    name: str
    n_items: int


class CategoryList(BaseModel):
    model_version: str
    categories: list[Category]


class UserSummary(BaseModel):
    user_id: str
    n_interactions: int


class UserPage(BaseModel):
    model_version: str
    total: int
    limit: int
    offset: int
    users: list[UserSummary]


class HistoryEntry(BaseModel):
    item_id: ItemId
    title: str
    category: str
    timestamp: datetime
    event: str


class UserHistory(BaseModel):
    user_id: str
    model_version: str
    n_interactions: int
    history: list[HistoryEntry]


class MapPoint(BaseModel):
    item_id: ItemId
    title: str
    x: float
    y: float
    category: str
    content_based: bool


class ItemMap(BaseModel):
    model_version: str
    total: int
    points: list[MapPoint]
