"""The guarded choice of the search: the one-standard-error rule over paired per-user scores.

It guards against the winner's curse. Among the settings within one standard error of the best (paired
per-user differences), the cheapest (smallest k) is preferred; it replaces the untuned default only if it
beats the default by more than one standard error of their paired difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.train import ModelConfig


@dataclass
class Decision:
    """The guarded choice: what was chosen and why, with the margins it was judged on."""

    chosen: ModelConfig
    default: ModelConfig
    best: ModelConfig  # the highest mean validation NDCG@10 of the last rung
    margin: float  # the chosen setting's mean paired gain over the default (0 when the default is kept)
    standard_error: float  # of that paired difference
    users: int  # (fold, user) pairs the last rung was judged on
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.label,
            "default": self.default.label,
            "best": self.best.label,
            "kept_default": self.chosen == self.default,
            "margin": round(self.margin, 6),
            "standard_error": round(self.standard_error, 6),
            "validation_pairs": self.users,
            "rule": "a setting replaces the default only if its paired gain exceeds one standard error; "
            "among settings within one standard error of the best, the smallest k is chosen",
            "reason": self.reason,
        }


def decide(scores: dict[ModelConfig, np.ndarray], default: ModelConfig) -> Decision:
    """The one-standard-error choice over paired per-user scores (the same users, in the same order, for all).

    The best mean wins only against settings outside its noise: among those within one standard
    error of it, the smallest k is chosen (cheaper to serve). That choice then replaces ``default``
    only if its paired gain over the default exceeds one standard error of the difference.
    """
    order = list(scores)
    best = max(order, key=lambda c: scores[c].mean())  # max keeps the first of equals: deterministic
    close = [c for c in order if scores[best].mean() - scores[c].mean() <= _standard_error(scores[best] - scores[c])]
    chosen = min(close, key=lambda c: (c.factors, -scores[c].mean(), order.index(c)))
    gain = scores[chosen] - scores[default]
    margin, error = float(gain.mean()), _standard_error(gain)
    pairs = len(scores[default])
    if chosen == default:
        reason = "the default is the cheapest setting within one standard error of the best"
    elif margin > error:
        reason = f"beats the default by {margin:.4f} NDCG@10, more than one standard error ({error:.4f})"
    else:
        reason = (
            f"{chosen.label} gains only {margin:+.4f} NDCG@10 over the default, within one standard error "
            f"({error:.4f}): the default is kept"
        )
        chosen, margin = default, 0.0
    return Decision(chosen, default, best, margin, error, pairs, reason)


def _standard_error(differences: np.ndarray) -> float:
    return float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else 0.0
