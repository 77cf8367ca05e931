"""The evaluation run: baselines and the SVD grid on both protocols, then the cold-start studies.

Ours always goes through the production path: ``train`` → ``package`` (the published
artifacts) → ``build_model`` (what the service loads) → ``pipeline.evaluate.rank_users``
(the service's scoring, seen items excluded, FAISS retrieval).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from pipeline.data import InteractionLog
from pipeline.evaluate import MAX_EVAL_USERS, K, rank_users, sample_users
from pipeline.metrics import ndcg_at_k, summarise
from pipeline.quality.baselines import EASE_L2, binary_matrix, ease, item_knn, most_popular, popularity_rank, rank_with
from pipeline.quality.coldstart import (
    ColdItemResult,
    ColdUserResult,
    SvdConfig,
    cold_user_splits,
    evaluate_cold_items,
    evaluate_cold_users,
    served_model,
)
from pipeline.quality.nested import ALL, NestedResult, evaluate_nested
from pipeline.quality.protocols import PROTOCOLS, Protocol, cold_item_split, make_split
from pipeline.tuning.search import SearchSpace
from reccore.weighting import SCHEMES, Scheme

GRID_FACTORS = (10, 20, 50, 100)
GRID_SCALINGS = (0.0, 0.5)
GOAL_VS_POPULAR = 1.7  # the quality goal: NDCG@10 at least this multiple of most-popular's, on every protocol
Metrics = dict[str, float]


@dataclass
class ProtocolResult:
    """Every method's metrics on one split."""

    protocol: str
    baselines: dict[str, Metrics]
    ease_l2: float
    svd: dict[SvdConfig, Metrics]
    nested: NestedResult | None = None  # every choice made on validation (the honest numbers)

    @property
    def popular_ndcg(self) -> float:
        return self.baselines["most popular"][f"ndcg@{K}"]

    @property
    def ease_ndcg(self) -> float:
        return self.baselines["EASE"][f"ndcg@{K}"]


@dataclass
class EvaluationResult:
    """Everything the report shows."""

    source: str
    data: dict[str, int]
    protocols: dict[str, ProtocolResult]
    default: SvdConfig
    best: SvdConfig  # closest to EASE: the highest worst-protocol NDCG@10 ratio to EASE
    recommended: SvdConfig  # the same, among the configs that meet GOAL_VS_POPULAR on every protocol
    cold_users: dict[SvdConfig, ColdUserResult]
    cold_items: dict[SvdConfig, ColdItemResult]
    grid: tuple[tuple[int, ...], tuple[Scheme, ...], tuple[float, ...]]
    timings: dict[str, float] = field(default_factory=dict)

    def ratio_to_ease(self, config: SvdConfig) -> float:
        """The worse protocol's NDCG@10 of ``config`` divided by EASE's (1.0 = on par)."""
        return ratio_to_ease(self.protocols, config)

    def meets_goal(self, config: SvdConfig) -> bool:
        return meets_goal(self.protocols, config)


def ratio_to_ease(protocols: dict[str, ProtocolResult], config: SvdConfig) -> float:
    """The worse protocol's NDCG@10 of ``config`` divided by EASE's (1.0 = on par)."""
    return min(p.svd[config][f"ndcg@{K}"] / p.ease_ndcg for p in protocols.values())


def meets_goal(protocols: dict[str, ProtocolResult], config: SvdConfig) -> bool:
    """NDCG@10 at least ``GOAL_VS_POPULAR`` × most popular's on every protocol."""
    return all(p.svd[config][f"ndcg@{K}"] >= GOAL_VS_POPULAR * p.popular_ndcg for p in protocols.values())


def evaluate_protocol(
    log: InteractionLog,
    protocol: Protocol,
    configs: Sequence[SvdConfig],
    seed: int = 42,
    ease_l2: Sequence[float] = EASE_L2,
    progress: bool = False,
    default: SvdConfig | None = None,
    space: SearchSpace | None = None,
) -> ProtocolResult:
    """Baselines (EASE at its best λ on this split) and every SVD config on one split, same users, same metrics.

    With ``default``, also the nested evaluation: ``space`` searched on a validation split, then tested.
    """
    split = make_split(log, protocol, seed)
    matrix = binary_matrix(split.train)
    ranks = popularity_rank(matrix)
    users = sample_users(split.relevant, MAX_EVAL_USERS, seed)

    def score(rankings: dict[int, list[int]]) -> Metrics:
        metrics = summarise(rankings, split.relevant, K, log.n_items, ranks)
        per_user = np.array([ndcg_at_k(rankings[u], split.relevant[u], K) for u in rankings])
        metrics[f"ndcg@{K}_se"] = float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else 0.0
        return metrics

    baselines = {
        "most popular": score(rank_with(most_popular(matrix), matrix, users, K)),
        "item-kNN": score(rank_with(item_knn(matrix), matrix, users, K)),
    }
    by_l2 = {l2: score(rank_with(ease(matrix, l2), matrix, users, K)) for l2 in ease_l2}
    best_l2 = max(by_l2, key=lambda l2: by_l2[l2][f"ndcg@{K}"])
    baselines["EASE"] = by_l2[best_l2]
    svd: dict[SvdConfig, Metrics] = {}
    for config in tqdm(configs, desc=f"SVD grid, {protocol} split", disable=not progress, leave=False):
        model = served_model(split.train, config, seed)
        svd[config] = score(rank_users(model, users, "model", K))
    nested = None
    if default is not None:
        nested = evaluate_nested(log, split, protocol, default, score, users, space, seed, ease_l2=ease_l2)
    return ProtocolResult(protocol, baselines, best_l2, svd, nested)


def run_evaluation(
    log: InteractionLog,
    default: SvdConfig,
    factors: Sequence[int] = GRID_FACTORS,
    weightings: Sequence[Scheme] = SCHEMES,
    scalings: Sequence[float] = GRID_SCALINGS,
    seed: int = 42,
    progress: bool = False,
    ease_l2: Sequence[float] = EASE_L2,
    space: SearchSpace | None = None,
) -> EvaluationResult:
    """Run both protocols over the grid (plus ``default``), pick the config closest to EASE, then cold start."""
    timings: dict[str, float] = {}
    configs = [SvdConfig(k, w, s) for w in weightings for s in scalings for k in factors]
    if default not in configs:
        configs.append(default)
    protocols: dict[str, ProtocolResult] = {}
    for protocol in PROTOCOLS:
        start = time.perf_counter()
        protocols[protocol] = evaluate_protocol(log, protocol, configs, seed, ease_l2, progress, default, space)
        nested = protocols[protocol].nested
        tuning = f", validation search of {len(nested.tuning.trials)} settings" if nested else ""
        timings[f"{protocol} split: baselines + {len(configs)} SVD configs{tuning}"] = time.perf_counter() - start

    best = max(configs, key=lambda c: ratio_to_ease(protocols, c))
    passing = [c for c in configs if meets_goal(protocols, c)] or configs
    recommended = max(passing, key=lambda c: ratio_to_ease(protocols, c))
    chosen = [p.nested.chosen[ALL][0] for p in protocols.values() if p.nested and ALL in p.nested.chosen]
    studied = list(dict.fromkeys([default, *chosen, recommended, best]))
    start = time.perf_counter()
    users_splits = cold_user_splits(log, seed=seed)
    cold_users = {c: evaluate_cold_users(users_splits, c, seed) for c in studied}
    timings["cold-start users"] = time.perf_counter() - start
    start = time.perf_counter()
    items_split = cold_item_split(log, seed=seed)
    cold_items = {c: evaluate_cold_items(items_split, c, seed) for c in studied}
    timings["cold items"] = time.perf_counter() - start
    data = {"users": log.n_users, "items": log.n_items, "interactions": log.n_interactions}
    return EvaluationResult(
        source=log.source,
        data=data,
        protocols=protocols,
        default=default,
        best=best,
        recommended=recommended,
        cold_users=cold_users,
        cold_items=cold_items,
        grid=(tuple(factors), tuple(weightings), tuple(scalings)),
        timings=timings,
    )
