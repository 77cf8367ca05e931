"""The in-memory interaction log every source produces and every stage consumes.

Columnar numpy arrays with integer codes, so that 10M+ interactions fit without
a dense matrix or a Python object per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_EVENT_TYPES = 127  # InteractionLog.events is int8


@dataclass
class InteractionLog:
    """Interactions plus the item catalogue.

    Attributes
    ----------
    user_ids, item_ids
        Unique string ids; a code ``c`` in ``users``/``items`` means ``user_ids[c]``/``item_ids[c]``.
        ``item_ids`` is the whole catalogue, including items nobody interacted with (cold items).
    users, items
        int32 codes, one per interaction.
    weights
        float32 strength of each interaction (event weight or rating), > 0.
    timestamps
        int64 unix seconds.
    events
        int8 codes into ``event_types``.
    titles, categories, prices
        Item metadata aligned with ``item_ids``.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray
    events: np.ndarray
    event_types: list[str]
    titles: list[str]
    categories: list[str]
    prices: np.ndarray
    source: str = "unknown"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> InteractionLog:
        """The same catalogue and users with only the interactions where ``mask`` is true."""
        return InteractionLog(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            weights=self.weights[mask],
            timestamps=self.timestamps[mask],
            events=self.events[mask],
            event_types=self.event_types,
            titles=self.titles,
            categories=self.categories,
            prices=self.prices,
            source=self.source,
            extra=self.extra,
        )

    def validate(self) -> None:
        """Raise ``ValueError`` if the arrays disagree; sources call this before returning."""
        n = self.n_interactions
        for name in ("items", "weights", "timestamps", "events"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"InteractionLog.{name} has {len(getattr(self, name))} rows, users has {n}")
        if not (len(self.titles) == len(self.categories) == len(self.prices) == self.n_items):
            raise ValueError("InteractionLog item metadata is not aligned with item_ids")
        if n and (self.users.max() >= self.n_users or self.items.max() >= self.n_items):
            raise ValueError("InteractionLog codes out of range")


def order_by_user(users: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Stable order of rows by user, then by ``key`` ascending (``np.lexsort((key, users))``).

    One argsort of a combined int64 key when it fits, which is several times faster
    than a two-key lexsort at 10M rows.
    """
    if len(users) == 0:
        return np.empty(0, dtype=np.int64)
    offset = key.astype(np.int64) - int(key.min())
    span = int(offset.max()) + 1
    if (int(users.max()) + 1) * span >= 2**62:
        return np.lexsort((key, users))
    return np.argsort(users.astype(np.int64) * span + offset, kind="stable")
