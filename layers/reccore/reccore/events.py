"""What an interaction is worth: one mapping from event type (and an optional value) to the raw strength.

Training (every source), the API's weighted ``recent_items`` and the events route all turn an
event into a strength here, and the weighting scheme (:mod:`reccore.weighting`) then applies to
the summed strengths. A ``value`` (a rating, or an explicit weight) wins over the event's default.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

EventType = Literal["view", "click", "purchase", "rating"]
EVENT_TYPES: tuple[EventType, ...] = ("view", "click", "purchase", "rating")
# Default strength of an event without a value; a rating without a value counts as one interaction.
EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 2.0, "purchase": 5.0, "rating": 1.0}
DEFAULT_WEIGHT = 1.0


def event_strength(event: str | None = None, value: float | None = None) -> float:
    """The raw strength of one interaction: its ``value`` if given, else its event's default weight."""
    if value is not None:
        return float(value)
    return EVENT_WEIGHTS.get(event or "", DEFAULT_WEIGHT)


def event_strengths(events: np.ndarray, event_types: list[str]) -> np.ndarray:
    """Vectorised :func:`event_strength` for event codes into ``event_types`` (no values)."""
    per_type = np.array([event_strength(name) for name in event_types] or [DEFAULT_WEIGHT], dtype=np.float32)
    return per_type[np.asarray(events, dtype=np.int64)]
