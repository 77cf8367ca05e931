"""Per-user state out of the model artifact: each user's newest interactions and every item they have seen.

One interface, :class:`UserStateStore`, two backends:

- :class:`~reccore.userstate.embedded.EmbeddedStore` (no table configured, e.g. serving a model from a directory):
  the model artifact keeps the training histories; this holds the events posted since, in process memory.
- :class:`~reccore.userstate.dynamodb.DynamoStore` (the deployed default): a DynamoDB table, read with one
  ``Query`` per user; :mod:`reccore.userstate.table` is the table's layout.

Event ids are unique per user: the same id from two users is two events (the pipeline's log reader agrees).
This module holds what both backends share: the records, the interface and the rules for merging them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_MAX_EVENTS = 200
MAX_SEEN = 5_000  # seen-item exclusion reaches this far back, past the N newest events
MAX_EVENT_IDS = 2_000


@dataclass(frozen=True)
class Event:
    """One interaction: an item id, the event type, an optional value (rating / weight), unix seconds."""

    item_id: str
    event: str
    timestamp: int
    value: float | None = None
    event_id: str | None = None
    recommendation_id: str | None = None  # the answer it followed (logged for attribution, not stored)

    def encode(self) -> list[Any]:
        return [self.item_id, self.event, self.timestamp, self.value]

    @classmethod
    def decode(cls, row: list[Any]) -> Event:
        item_id, event, timestamp, value = row
        return cls(str(item_id), str(event), int(timestamp), None if value is None else float(value))


@dataclass
class UserState:
    """What the store knows of one user. ``base`` comes from training, ``live`` from events posted since."""

    user_id: str
    base: list[Event] = field(default_factory=list)  # oldest first
    base_through: int | None = None
    live: list[Event] = field(default_factory=list)  # oldest first
    seen: list[str] = field(default_factory=list)  # distinct item ids, oldest first

    def fresh(self, cutoff: int | None) -> list[Event]:
        """Live events newer than ``cutoff`` (a model's newest training timestamp) and the synced base."""
        floor = max(cutoff if cutoff is not None else -1, self.base_through if self.base_through is not None else -1)
        return [e for e in self.live if e.timestamp > floor]


@dataclass(frozen=True)
class AppendResult:
    accepted: int  # events stored
    duplicates: int  # events whose event_id the store already had (for the same user)


@dataclass(frozen=True)
class BaseWrite:
    written: int  # users whose base item was written
    skipped: list[str]  # users that could not be written (each logged with its reason); the others still were


class UserStateStore(Protocol):
    """Where per-user state lives; see the module docstring."""

    def get(self, user_id: str) -> UserState | None:
        """The user's state, or ``None`` if the store has nothing for them. Raises :class:`UserStateError`."""

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        """Add ``(user_id, event)`` pairs; an ``event_id`` seen before is not added again."""

    def put_base(self, states: Iterable[UserState], version: str) -> BaseWrite:
        """Replace the training-side state (``base``, ``base_through``, ``seen``) of each user.

        A user that cannot be written is skipped and reported; only a store that is down raises.
        """


def merge_seen(seen: list[str], items: Iterable[str]) -> list[str]:
    """``seen`` then ``items``, each id once (a re-seen one moves to the newest end), the newest ``MAX_SEEN``."""
    merged = dict.fromkeys(seen)
    for item in items:
        merged.pop(item, None)
        merged[item] = None  # re-seen items move to the newest end
    return list(merged)[-MAX_SEEN:]


def newest_events(events: list[Event], limit: int) -> list[Event]:
    """The ``limit`` newest of ``events``, oldest first."""
    return sorted(events, key=lambda e: e.timestamp)[-limit:]
