"""Cold start through the served model: users folded in at request time, items placed by their content vectors.

Cold users are measured the way clients call the API: the service, started on the published model
(:mod:`pipeline.quality.api`), answers JSON bodies over HTTP, a held-out user's history as ``recent_items``
objects (event, value, timestamp) and the same user, trained in-model, by ``user_id``, on both of ``make eval``'s
protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import evaluate
from pipeline.data import InteractionLog, order_by_user
from pipeline.evaluate import K, random_split, relevant_items, time_split
from pipeline.metrics import ndcg_at_k, summarise
from pipeline.quality.api import history_body, serving
from pipeline.quality.baselines import binary_matrix, popularity_rank
from pipeline.quality.protocols import PROTOCOLS, ColdItemSplit
from pipeline.train import ModelConfig
from reccore.layout import Manifest
from reccore.model import Model
from reccore.scoring import Filters, allowed_items, seen_items

MIN_INTERACTIONS = 5  # as pipeline.evaluate's splits: fewer, and a user holds nothing out
TOP_SHARE = 0.1  # "ranked in the top 10% of the candidates": random placement hits this 10% of the time


SvdConfig = ModelConfig  # one point of the tuning grid: the pipeline's own hyperparameters


def served_model(log: InteractionLog, config: SvdConfig, seed: int = 42) -> Model:
    """Train on ``log`` and load the packaged artifacts exactly as the service would."""
    return evaluate.served_model(log, config.factors, config.weighting, config.scaling, seed, **_options(config))


def served_files(log: InteractionLog, config: SvdConfig, seed: int = 42) -> tuple[Manifest, dict[str, bytes]]:
    """Train on ``log`` and package the artifacts :func:`served_model` loads, for the service to load them."""
    return evaluate.served_files(log, config.factors, config.weighting, config.scaling, seed, **_options(config))


def _options(config: SvdConfig) -> dict[str, object]:
    return {k: v for k, v in config.params().items() if k not in ("factors", "weighting", "scaling")}


@dataclass
class ColdUsers:
    """Users held out of training entirely, on one of ``make eval``'s protocols.

    Attributes
    ----------
    train
        Every interaction of the other users: the model that must fold the held-out users in.
    in_model
        ``train`` plus the held-out users' training share: the same users trained in-model.
    history
        The held-out users' training share (what a client sends as ``recent_items``).
    relevant
        Per held-out user: their held-out items that are not in their ``history``.
    """

    protocol: str
    users: np.ndarray
    train: InteractionLog
    in_model: InteractionLog
    history: InteractionLog
    relevant: dict[int, set[int]]


def cold_user_splits(log: InteractionLog, share: float = 0.15, seed: int = 42) -> dict[str, ColdUsers]:
    """Hold out ``share`` of the users (the same users on both protocols) from training entirely.

    Each held-out user's interactions are split by the protocol's own holdout (``time``: their newest
    20%; ``random``: a seeded 20%); the rest is their history, folded in or trained on.
    """
    counts = np.bincount(log.users, minlength=log.n_users)
    eligible = np.flatnonzero(counts >= MIN_INTERACTIONS)
    n_held = min(len(eligible), max(1, round(share * log.n_users)))
    held = np.sort(np.random.default_rng(seed).choice(eligible, size=n_held, replace=False))
    is_held = np.isin(log.users, held)
    splits: dict[str, ColdUsers] = {}
    for protocol in PROTOCOLS:
        test = time_split(log) if protocol == "time" else random_split(log, seed=seed)
        early, late = log.subset(is_held & ~test), log.subset(is_held & test)
        relevant = relevant_items(early, late)
        users = np.array(sorted(relevant), dtype=np.int64)
        splits[protocol] = ColdUsers(
            protocol, users, log.subset(~is_held), log.subset(~(is_held & test)), early, relevant
        )
    return splits


@dataclass
class ColdUserResult:
    """The same held-out users through the API, per protocol: folded in (``recent_items``) vs in-model (``user_id``)."""

    users: dict[str, int]
    fold_in: dict[str, dict[str, float]]
    in_model: dict[str, dict[str, float]]
    bare_ids: dict[str, dict[str, float]]  # fold-in of the same histories as bare ids: every interaction a view
    interval: dict[str, tuple[float, float]]  # paired-bootstrap 95% interval of the NDCG@10 ratio
    truncated: dict[str, int]  # fold-in answers with truncated_items > 0
    own_history_returned: dict[str, int]  # items of a user's own history in their fold-in answer (must be 0)

    def protocol_ratio(self, protocol: str) -> float:
        """Fold-in NDCG@10 over in-model NDCG@10 on ``protocol``."""
        base = self.in_model[protocol][f"ndcg@{K}"]
        return self.fold_in[protocol][f"ndcg@{K}"] / base if base else 0.0

    @property
    def ratio(self) -> float:
        """The worse protocol's fold-in NDCG@10 over in-model NDCG@10."""
        return min(self.protocol_ratio(p) for p in self.fold_in)


def _bootstrap_ratio(folded: np.ndarray, trained: np.ndarray, seed: int, rounds: int = 2000) -> tuple[float, float]:
    """95% interval of mean(folded) / mean(trained), resampling users (paired)."""
    picks = np.random.default_rng(seed).integers(0, len(folded), size=(rounds, len(folded)))
    ratios = folded[picks].mean(axis=1) / np.maximum(trained[picks].mean(axis=1), 1e-12)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def evaluate_cold_users(splits: dict[str, ColdUsers], config: SvdConfig, seed: int = 42, k: int = K) -> ColdUserResult:
    """Ask the service, as a client would, for each held-out user: by ``recent_items`` of a model without them,
    and by ``user_id`` of a model trained with them."""
    result = ColdUserResult({}, {}, {}, {}, {}, {}, {})
    for protocol, split in splits.items():
        users = split.users.tolist()
        order = order_by_user(split.history.users, split.history.timestamps)  # per user, oldest first
        starts = np.searchsorted(split.history.users[order], users, side="left")
        ends = np.searchsorted(split.history.users[order], users, side="right")
        folded: dict[int, list[int]] = {}
        bare: dict[int, list[int]] = {}
        with serving(*served_files(split.train, config, seed)) as service:
            for n, user in enumerate(users):
                rows = order[starts[n] : ends[n]]
                body = history_body(split.history, rows, k)
                answer = service.recommend(body)
                folded[user] = [service.model.item_index[item["item_id"]] for item in answer["items"]]
                bare[user] = service.ranked({**body, "recent_items": [e["item_id"] for e in body["recent_items"]]})
                result.truncated[protocol] = result.truncated.get(protocol, 0) + (answer["truncated_items"] > 0)
                own = set(split.history.items[rows].tolist())
                result.own_history_returned[protocol] = result.own_history_returned.get(protocol, 0) + len(
                    own & set(folded[user])
                )
        with serving(*served_files(split.in_model, config, seed)) as service:
            ids = service.model.user_ids
            trained = {user: service.ranked({"user_id": ids[user], "k": k}) for user in users}
        ranks = popularity_rank(binary_matrix(split.in_model))
        n_items = split.train.n_items
        result.users[protocol] = len(users)
        result.fold_in[protocol] = summarise(folded, split.relevant, k, n_items, ranks)
        result.in_model[protocol] = summarise(trained, split.relevant, k, n_items, ranks)
        result.bare_ids[protocol] = summarise(bare, split.relevant, k, n_items, ranks)
        folded_ndcg, trained_ndcg = (
            np.array([ndcg_at_k(rankings[u], split.relevant[u], k) for u in users]) for rankings in (folded, trained)
        )
        result.interval[protocol] = _bootstrap_ratio(folded_ndcg, trained_ndcg, seed)
    return result


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
