"""Exact explanations: which history items an item's score comes from, and how much of it each gives.

A query vector is a fold-in, ``q = x·Q·Σ⁻²`` (:func:`reccore.scoring.fold_in`), of a weighted interaction row
``x``: for a known user their training history (their stored vector is that fold-in, to float32 precision),
plus the request's or the store's newer interactions; for a session, those alone. An item's score is
``q·v_i``, so it is a sum over the row's items ``j`` of ``x_j · (v_j ⊙ σ⁻²) · v_i``: each history item's
contribution, in closed form. The shares returned are each contribution over the sum of all of them, which
is the item's score as the reconstructed vector gives it (equal to the served score within float32 error
when the history is the one the vector was built from; a test checks both). Cost: one ``(history × k)``
product of ``dims``-long vectors per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reccore.events import event_strengths
from reccore.model import Model
from reccore.recommend import Interactions
from reccore.scoring import weighted_row

TOP_REASONS = 3


@dataclass(frozen=True)
class Reason:
    item: int  # a history item's position
    share: float  # its contribution over the item's whole score


def history(model: Model, user: int | None, window: Interactions | None) -> tuple[np.ndarray, np.ndarray]:
    """The weighted row behind a request's vector: distinct items and weights (a known user's training history,
    weighted as training weighted it, then the folded-in interactions)."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if user is not None:
        rows = model.user_history(user)
        strengths = event_strengths(model.history_events[rows], model.manifest.event_types).astype(np.float64)
        parts.append(weighted_row(model, model.history_items[rows], strengths))
    if window is not None and len(window):
        parts.append(weighted_row(model, window.items, window.strengths))
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0)
    if len(parts) == 1:
        return parts[0]
    # An item both trained on and posted again: one entry, its weights added (contributions are linear in them).
    items, inverse = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
    return items, np.bincount(inverse, weights=np.concatenate([p[1] for p in parts]), minlength=len(items))


def explain(
    model: Model, items: np.ndarray, weights: np.ndarray, targets: np.ndarray, top: int = TOP_REASONS
) -> list[list[Reason]]:
    """For each of ``targets`` (item positions), the ``top`` history items with the largest contributions.

    ``items``/``weights``: the weighted row, distinct items (:func:`history`). Contributions can be negative;
    only positive ones are reasons.
    """
    if not len(items) or not len(targets):
        return [[] for _ in targets]
    sigma_sq = np.square(model.singular_values.astype(np.float64))
    basis = model.item_factors[items].astype(np.float64) * weights[:, None] / sigma_sq
    contributions = basis @ model.item_factors[np.asarray(targets)].astype(np.float64).T  # (history, targets)
    totals = contributions.sum(axis=0)
    count = min(top, len(items))
    best = np.argpartition(-contributions, count - 1, axis=0)[:count] if count < len(items) else None
    if best is None:
        best = np.broadcast_to(np.arange(len(items))[:, None], contributions.shape)
    chosen = np.take_along_axis(contributions, best, axis=0)
    order = np.argsort(-chosen, axis=0, kind="stable")
    best, chosen = np.take_along_axis(best, order, axis=0), np.take_along_axis(chosen, order, axis=0)
    positions, values, shares = items[best].tolist(), chosen.tolist(), (chosen / totals).tolist()
    return [
        [Reason(positions[r][t], shares[r][t]) for r in range(count) if values[r][t] > 0 and totals[t] > 0]
        for t in range(len(targets))
    ]
