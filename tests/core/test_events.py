"""Event strengths: one mapping for training and serving."""

from __future__ import annotations

import numpy as np

from reccore.events import EVENT_WEIGHTS, event_strength, event_strengths


def test_value_wins_over_the_event_default() -> None:
    assert event_strength("purchase") == 5.0
    assert event_strength("purchase", 2.5) == 2.5
    assert event_strength("rating", 4.0) == 4.0
    assert event_strength(None) == event_strength("something-else") == 1.0


def test_vectorised_strengths_match_the_scalar_rule() -> None:
    types = ["view", "purchase", "unknown", "click"]
    codes = np.array([0, 1, 2, 3, 1], dtype=np.int8)
    expected = [event_strength(types[c]) for c in codes]
    np.testing.assert_array_equal(event_strengths(codes, types), np.array(expected, dtype=np.float32))
    assert expected == [1.0, EVENT_WEIGHTS["purchase"], 1.0, 2.0, 5.0]
