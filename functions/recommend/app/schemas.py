"""The API's request and response models: the one place that defines the JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from reccore.events import EventType, event_strength
from reccore.recommend import MAX_FOLD_IN, MAX_HISTORY
from reccore.scoring import Source, Strategy

MAX_K = 100
MAX_IDS = 200  # bound on every other list of ids in a request
# Unix seconds up to 2100-01-01: larger values are almost always milliseconds, which would sort wrongly.
MAX_TIMESTAMP = 4_102_444_800
MAX_PAGE = 100
MAX_MAP_SAMPLE = 20_000
MAX_OFFSET = 10_000_000  # bound on paging offsets
MAX_TEXT = 200  # bound on query strings (q, category)
MAX_EVENTS = 500  # events per POST /events batch (Firehose's PutRecordBatch limit)
MAX_ID = 256  # user and item id length


def valid_unicode(value: str) -> str:
    """``value`` if UTF-8 can encode it; JSON's ``"\\udfff"`` decodes to a lone surrogate, which it cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone UTF-16 surrogate is not)") from None
    return value


def json_integer(value: Any) -> Any:
    """Refuse what JSON Schema's ``integer`` refuses (strings, booleans); ``5.0`` is one, ``5.5`` is not."""
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


Text = Annotated[str, AfterValidator(valid_unicode)]
"""A request string: any Unicode text, but never one a response could fail to encode."""


def trimmed(value: str) -> str:
    """``value`` if it has no leading or trailing whitespace: the training log trims ids, so " a" would be "a"."""
    if value != value.strip():
        raise ValueError("must not start or end with whitespace (training reads ids trimmed)")
    return value


LoggedId = Annotated[Text, AfterValidator(trimmed)]
"""An id that goes into the training log: the pipeline must read it back as the same id."""
# JSON integers in bounds. The bounds sit on the int itself, inside the BeforeValidator. Put on the field instead
# (``k: Annotated[int, BeforeValidator(...)] = Field(ge=1)``) they still validate, but pydantic hangs them on the
# wrapping validator and, for a nullable field, the spec shows ``"ge"``/``"le"``, which JSON Schema ignores
# (issue 20). strict=False: 4.0 is an integer in a strict model (json_integer still refuses strings and booleans).
TopK = Annotated[int, Field(ge=1, le=MAX_K, strict=False), BeforeValidator(json_integer)]
UnixSeconds = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP, strict=False), BeforeValidator(json_integer)]
ItemId = str
RecommendationId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex digits.")]


@dataclass(frozen=True, eq=False)  # hashed by identity: Annotated metadata in a union must hash
class JsonSchemaExtra:
    """``Annotated`` metadata adding keywords to a type's own JSON Schema (not the field's, which a union wraps)."""

    keywords: dict[str, Any]

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


class _Strict(BaseModel):
    # strict: JSON types as documented; "5" is not an integer and 0 is not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorResponse(BaseModel):
    """Every error: ``{"error": code, "message": ...}``."""

    error: str
    message: str
    details: list[dict[str, object]] | None = None


ERROR_DESCRIPTIONS = {
    400: "Bad request (`bad_request`; the message says which). A JSON body that cannot be parsed: bytes that are not "
    "valid UTF-8, arrays or objects nested too deeply (a little under 1,000 levels is the limit), or a number with "
    "more than 4,300 digits (a JSON syntax error is a 422 instead). A CORS preflight from an origin that is not "
    "allowed. Or, from uvicorn itself before the app runs, an HTTP request it cannot parse, such as a request line "
    "over its size limit (text/plain).",
    404: "Unknown id or route",
    413: "Request body larger than REC_MAX_BODY_BYTES",
    422: "Invalid parameters or body",
    503: "No model can be served yet (nothing published, loading, or the store unreachable); see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``statuses`` with the shared :class:`ErrorResponse` shape."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses
    }
    if 400 in responses:  # the server's own answer to unparseable HTTP: the one error the app cannot shape
        responses[400]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return responses


COMMON_ERRORS = error_responses(400, 413, 422, 503)  # any route can answer these


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


class RecentItem(_Strict):
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


class RecommendRequest(_Strict):
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


class EventIn(_Strict):
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


class EventsRequest(_Strict):
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
