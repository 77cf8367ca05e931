"""Per-user state and the training event log, built from the settings on first use.

With ``REC_USER_TABLE`` set the state lives in DynamoDB, else in process memory (on top of the
histories in the model artifact). With ``REC_EVENTS_STREAM`` set accepted events go to Firehose,
else straight under ``<REC_MODEL_URI>/events/`` through the artifact store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends
from starlette.concurrency import run_in_threadpool

from app.logging import logger
from reccore.deadline import remaining
from reccore.errors import DeadlineError, UserStateError
from reccore.eventlog import EventLog, FirehoseLog, StoreLog
from reccore.events import event_strength
from reccore.impressions import IMPRESSIONS_DIR, ImpressionLog
from reccore.model import Model
from reccore.recommend import Interactions
from reccore.settings import get_service_settings
from reccore.storage import S3Timeouts, open_store
from reccore.userstate import Event, UserState, UserStateStore
from reccore.userstate.dynamodb import DynamoStore
from reccore.userstate.embedded import EmbeddedStore

T = TypeVar("T")


def _client_config() -> object:
    # A request must not wait on the table or the stream longer than on S3: the same REC_S3_* bounds, then
    # the store's failure is answered from the artifact (degraded) and the route's from a 503.
    return S3Timeouts.of(get_service_settings()).client_config()


@lru_cache(maxsize=1)
def get_user_store() -> UserStateStore:
    settings = get_service_settings()
    if settings.user_table:
        return DynamoStore(
            settings.user_table, settings.user_events, settings.user_ttl_days, client_config=_client_config()
        )
    return EmbeddedStore(settings.user_events, settings.embedded_max_users)


@lru_cache(maxsize=1)
def get_event_log() -> EventLog:
    settings = get_service_settings()
    if settings.events_stream:
        return FirehoseLog(settings.events_stream, client_config=_client_config())
    return StoreLog(open_store(settings.model_uri, timeouts=S3Timeouts.of(settings)))


@lru_cache(maxsize=1)
def get_impression_log() -> ImpressionLog:
    settings = get_service_settings()
    if settings.impressions_stream:
        return ImpressionLog(FirehoseLog(settings.impressions_stream, client_config=_client_config()).put_records)
    store = open_store(settings.model_uri, timeouts=S3Timeouts.of(settings))
    return ImpressionLog(StoreLog(store, IMPRESSIONS_DIR).put_records)


def reset_state() -> None:
    """Forget the store and the logs (tests; changed settings)."""
    get_user_store.cache_clear()
    get_event_log.cache_clear()
    get_impression_log.cache_clear()


async def user_store() -> UserStateStore:
    # async, so FastAPI calls it on the event loop: a sync dependency costs a worker-thread hop per request.
    return get_user_store()


async def event_log() -> EventLog:
    return get_event_log()


UserStoreDep = Annotated[UserStateStore, Depends(user_store)]
EventLogDep = Annotated[EventLog, Depends(event_log)]


async def within_deadline(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a worker thread, abandoned (left to finish there) when the request's deadline passes.

    Raises :class:`DeadlineError` then: a stalled backend costs the request what is left of its deadline.
    """
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineError(f"{_name(call)}: the request's deadline had passed")
    try:
        return await asyncio.wait_for(run_in_threadpool(call, *args), timeout=left)
    except TimeoutError:
        raise DeadlineError(f"{_name(call)} did not answer within the request's deadline") from None


def _name(call: Callable[..., Any]) -> str:
    return getattr(call, "__qualname__", type(call).__name__)


async def read_state(store: UserStateStore, user_id: str) -> tuple[UserState | None, bool]:
    """The user's stored state and whether the store failed (then ``None``: answer from the artifact)."""
    try:
        if isinstance(store, EmbeddedStore):  # memory only: not worth a thread hop
            return store.get(user_id), False
        return await within_deadline(store.get, user_id), False
    except (UserStateError, DeadlineError) as exc:
        logger.warning("user state unavailable; answering from the model", extra={"reason": str(exc)})
        return None, True


@dataclass(frozen=True)
class StateInput:
    """A user's stored state turned into what the core takes: interactions to fold in and items to exclude."""

    items: list[int]  # item positions of the interactions, oldest first
    strengths: list[float]  # raw strength of each
    timestamps: list[int]  # unix seconds of each
    seen: np.ndarray
    realtime_events: int  # events newer than the model among the interactions


def state_input(model: Model, state: UserState | None, known: bool) -> StateInput:
    """Fresh events (newer than the model) for a user the model knows; every stored event otherwise.

    A user the model never trained on has nothing in it to double-count, so their events count whatever
    their timestamps (a new user's imported past purchases, dated before the model's newest training event);
    only a synced training history (``base``) sets a floor then.
    """
    if state is None:
        return StateInput([], [], [], np.empty(0, dtype=np.int64), 0)
    fresh = state.fresh(model.trained_through if known else None)
    events: list[Event] = fresh if known else [*state.base, *fresh]
    rows = model.item_index.rows_of([e.item_id for e in events])
    usable = [(e, row) for e, row in zip(events, rows, strict=True) if row is not None]
    first_fresh = len(events) - len(fresh)  # the fresh events come last
    return StateInput(
        items=[row for _, row in usable],
        strengths=[event_strength(e.event, e.value) for e, _ in usable],
        timestamps=[e.timestamp for e, _ in usable],
        seen=np.array([row for row in model.item_index.rows_of(state.seen) if row is not None], dtype=np.int64),
        realtime_events=sum(1 for row in rows[first_fresh:] if row is not None),
    )


def with_request(
    stored: StateInput, positions: list[int], strengths: list[float], times: list[float] | None
) -> Interactions:
    """The stored interactions followed by a request's: ordered by timestamp if the request gives them, else the
    request's come last (newest), as a session appends."""
    timestamps = None if times is None else [*stored.timestamps, *times]
    return Interactions.of(stored.items + positions, stored.strengths + strengths, timestamps)
