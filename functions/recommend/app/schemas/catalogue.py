"""The read views: health, similar items, items, categories, users and their histories, the map, the experiment."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
)

from app.schemas.common import (
    ItemId,
)
from app.schemas.recommend import ScoredItem


class Health(BaseModel):
    status: Literal["ok"]
    stale: bool = Field(
        False,
        description="True if the served model may not be the newest: the store is unreachable or a newer "
        "version was refused (see stale_reason).",
    )
    stale_reason: Literal["store_unreachable", "version_refused", "nothing_published"] | None = None
    model_version: str
    model_created_at: datetime
    n_items: int
    n_users: int
    index_type: str
    index_params: dict[str, int] = Field(
        default_factory=dict, description="Tuned search parameters of an approximate index (nprobe, efSearch, ...)."
    )
    index_recall_at_10: float | None = Field(
        None, description="Recall@10 against exact search measured at publish time; null for an exact index."
    )
    index_filtered_recall_at_10: float | None = Field(None, description="The same under heavy category filters.")
    dims: int
    loaded_at: datetime
    first_load: bool = Field(
        description="True for the first request answered with this execution environment's first model (the "
        "process's start; not to be confused with cold-start users and items)."
    )
    faiss_simd: str
    model_params: dict[str, Any] = Field(
        default_factory=dict,
        description="The model's hyperparameters, each once: factors, weighting (the scheme's name), scaling, "
        "shrinkage, pop_alpha, min_rating, centre.",
    )
    tuned: bool = Field(False, description="True if the hyperparameters were chosen on validation folds.")
    split: Literal["time", "random"] | None = Field(
        None,
        description="What the model was evaluated and tuned on: each user's newest (time) or a random (random) 20%; "
        "null for models published before the objective was recorded.",
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


class ExperimentResponse(BaseModel):
    experiment: dict[str, Any] | None = Field(
        description="The experiment object (reccore.experiment.Experiment: id, challenger, champion, share, "
        "started_at, status, decisions, looks; not its salt), or null when none was ever started."
    )
