"""Cold start through the served model: users folded in at request time, items placed by their content vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import evaluate
from pipeline.data import InteractionLog
from pipeline.evaluate import K, rank_users
from pipeline.metrics import summarise
from pipeline.quality.baselines import binary_matrix, popularity_rank
from pipeline.quality.protocols import ColdItemSplit, ColdUserSplit
from reccore.model import Model
from reccore.recommend import Interactions, recommend
from reccore.scoring import Filters, allowed_items, seen_items
from reccore.weighting import Scheme

TOP_SHARE = 0.1  # "ranked in the top 10% of the candidates": random placement hits this 10% of the time


@dataclass(frozen=True)
class SvdConfig:
    """One point of the tuning grid."""

    factors: int
    weighting: Scheme
    scaling: float = 0.0

    @property
    def label(self) -> str:
        scaled = f", Σ^{self.scaling:g}" if self.scaling else ""
        return f"SVD k={self.factors}, {self.weighting}{scaled}"


def served_model(log: InteractionLog, config: SvdConfig, seed: int = 42) -> Model:
    """Train on ``log`` and load the packaged artifacts exactly as the service would."""
    return evaluate.served_model(log, config.factors, config.weighting, config.scaling, seed)


@dataclass
class ColdUserResult:
    """The same held-out users, folded in at request time vs trained in-model."""

    users: int
    fold_in: dict[str, float]
    in_model: dict[str, float]

    @property
    def ratio(self) -> float:
        """Fold-in NDCG@10 over in-model NDCG@10."""
        base = self.in_model[f"ndcg@{K}"]
        return self.fold_in[f"ndcg@{K}"] / base if base else 0.0


def evaluate_cold_users(split: ColdUserSplit, config: SvdConfig, seed: int = 42, k: int = K) -> ColdUserResult:
    """Fold each held-out user's early half into a model that never saw them, and rank as the service does."""
    users = sorted(split.relevant)
    cold_model = served_model(split.train, config, seed)
    folded: dict[int, list[int]] = {}
    for user in users:
        items, strengths = split.history[user]
        folded[user] = recommend(cold_model, k, interactions=Interactions.of(items, strengths)).items.tolist()
    warm_model = served_model(split.in_model, config, seed)
    trained = rank_users(warm_model, users, "model", k)
    ranks = popularity_rank(binary_matrix(split.in_model))
    n_items = split.train.n_items
    return ColdUserResult(
        users=len(users),
        fold_in=summarise(folded, split.relevant, k, n_items, ranks),
        in_model=summarise(trained, split.relevant, k, n_items, ranks),
    )


@dataclass
class Placement:
    """Where held-out items land in their consumers' rankings: 0 = top, 1 = bottom, random = 0.5."""

    mean_rank: float
    top_share: float

    @property
    def auc(self) -> float:
        return 1.0 - self.mean_rank

    @property
    def lift(self) -> float:
        """Top-10% hit rate over random placement's 10%."""
        return self.top_share / TOP_SHARE


@dataclass
class ColdItemResult:
    """Content-vector placement of held-out items, among every unseen item and among the cold items only."""

    items: int
    pairs: int
    catalogue: Placement
    among_cold: Placement


def _normalised_rank(scores: np.ndarray, candidates: np.ndarray, target: int) -> float:
    """Share of the other candidates scored above ``target`` (ties count half)."""
    mine = scores[target]
    others = scores[candidates[candidates != target]]
    if len(others) == 0:
        return 0.5
    return float(((others > mine).sum() + 0.5 * (others == mine).sum()) / len(others))


def evaluate_cold_items(split: ColdItemSplit, config: SvdConfig, seed: int = 42) -> ColdItemResult:
    """Rank each held-out item for the users who consumed it, with the served user vectors and item vectors."""
    model = served_model(split.train, config, seed)
    if not model.content_based[split.items].all():
        raise ValueError("cold_item_split: a held-out item was trained on")
    everywhere: list[float] = []
    among_cold: list[float] = []
    for user in np.unique(split.pair_users).tolist():
        scores = model.item_factors @ model.user_factors[user]  # the inner product the IP index ranks by
        candidates = np.flatnonzero(allowed_items(model, Filters(), seen_items(model, user)))
        for item in split.pair_items[split.pair_users == user].tolist():
            everywhere.append(_normalised_rank(scores, candidates, item))
            among_cold.append(_normalised_rank(scores, split.items, item))

    def placement(ranks: list[float]) -> Placement:
        values = np.asarray(ranks)
        return Placement(float(values.mean()), float((values < TOP_SHARE).mean()))

    return ColdItemResult(len(split.items), len(everywhere), placement(everywhere), placement(among_cold))
