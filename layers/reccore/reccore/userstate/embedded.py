"""The embedded user-state backend: the events posted since the model was trained, in process memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from reccore.userstate import (
    DEFAULT_MAX_EVENTS,
    MAX_EVENT_IDS,
    AppendResult,
    BaseWrite,
    Event,
    UserState,
    merge_seen,
    newest_events,
)

DEFAULT_MAX_USERS = 100_000  # the embedded store's LRU cap (REC_EMBEDDED_MAX_USERS)


class EmbeddedStore:
    """In-process state: the events posted since the model was trained (histories stay in the artifact).

    At most ``max_users`` users are held, least recently used dropped first, so memory stays flat however many
    new users arrive; a dropped user's events are still in the training log, and the artifact keeps known users'.
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS, max_users: int = DEFAULT_MAX_USERS) -> None:
        self.max_events = max_events
        self.max_users = max_users
        self._lock = threading.Lock()
        self._states: OrderedDict[str, tuple[UserState, list[str]]] = OrderedDict()  # state, its event ids

    def __len__(self) -> int:
        return len(self._states)

    def get(self, user_id: str) -> UserState | None:
        with self._lock:
            entry = self._states.get(user_id)
            if entry is None:
                return None
            self._states.move_to_end(user_id)
            state = entry[0]
            return UserState(user_id, list(state.base), state.base_through, list(state.live), list(state.seen))

    def _entry(self, user_id: str) -> tuple[UserState, list[str]]:
        entry = self._states.get(user_id)
        if entry is None:
            entry = self._states[user_id] = (UserState(user_id), [])
            while len(self._states) > self.max_users:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(user_id)
        return entry

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        accepted = duplicates = 0
        with self._lock:
            for user_id, event in events:
                state, known = self._entry(user_id)
                if event.event_id is not None and event.event_id in known:
                    duplicates += 1
                    continue
                if event.event_id is not None:
                    known.append(event.event_id)
                    del known[:-MAX_EVENT_IDS]
                state.live = newest_events([*state.live, event], self.max_events)
                state.seen = merge_seen(state.seen, [event.item_id])
                accepted += 1
        return AppendResult(accepted, duplicates)

    def put_base(self, states: Iterable[UserState], version: str) -> BaseWrite:
        written = 0
        with self._lock:
            for new in states:
                state, _ = self._entry(new.user_id)
                state.base, state.base_through = new.base[-self.max_events :], new.base_through
                state.seen = merge_seen(new.seen, state.seen)
                written += 1
        return BaseWrite(written, [])
