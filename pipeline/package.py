"""Turn a trained model into the published file set and its manifest (the writer side of ``reccore.encoding``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipeline.data import InteractionLog, order_by_user
from pipeline.index_choice import IndexChoice, choose_indexes
from pipeline.train import TrainedModel
from reccore.encoding import ItemTable, ModelContents, encode
from reccore.layout import USER_ARRAYS_KEY, Files, Manifest
from reccore.versions import new_version


def history_arrays(log: InteractionLog) -> dict[str, np.ndarray]:
    """Each user's interactions as CSR arrays, newest first within a user."""
    order = order_by_user(log.users, -log.timestamps)
    counts = np.bincount(log.users, minlength=log.n_users)
    indptr = np.zeros(log.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return {
        Files.HISTORY_INDPTR: indptr,
        Files.HISTORY_ITEMS: log.items[order].astype(np.int32),
        Files.HISTORY_TIMES: log.timestamps[order].astype(np.int64),
        Files.HISTORY_EVENTS: log.events[order].astype(np.int8),
    }


def package(
    log: InteractionLog,
    trained: TrainedModel,
    index_kind: IndexChoice = "flat",
    params: dict[str, Any] | None = None,
    seed: int = 42,
    user_arrays: bool = True,
    min_recall: float = 0.95,
    exact_below: int = 50_000,
) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest (without file checksums; ``publish`` adds them) and the bytes of every file.

    With ``user_arrays`` false the per-user files are left out and ``manifest.data["user_arrays"]`` is false:
    the version is item-side only (users' state then lives in the user-state table).

    The indexes come from :func:`pipeline.index_choice.choose_indexes`: an approximate one is tuned and
    gated on recall@10 against exact search (``QualityGateError`` if it misses ``min_recall``).
    """
    chosen = choose_indexes(
        trained.item_factors, trained.user_factors, log.categories, index_kind, min_recall, exact_below, seed
    )
    contents = ModelContents(
        arrays={
            Files.USER_FACTORS: trained.user_factors,
            Files.ITEM_FACTORS: trained.item_factors,
            Files.SINGULAR_VALUES: trained.singular_values,
            Files.ITEM_WEIGHTS: trained.item_weights,
            Files.POPULARITY: trained.popularity,
            Files.CONTENT_BASED: trained.content_based,
            Files.ITEM_MAP: trained.item_map,
            **(history_arrays(log) if user_arrays else {}),
        },
        user_ids=[str(u) for u in log.user_ids],
        items=ItemTable(
            item_id=[str(i) for i in log.item_ids],
            title=list(log.titles),
            category=list(log.categories),
            price=np.asarray(log.prices, dtype=np.float32),
        ),
        index_ip=chosen.index_ip,
        index_cos=chosen.index_cos,
    )
    manifest = Manifest(
        version=new_version(),
        created_at=datetime.now(UTC),
        params={**(params or {}), "factors": int(trained.item_factors.shape[1]), "weighting": trained.weighting},
        data={**data_stats(log, trained), USER_ARRAYS_KEY: user_arrays},
        index=chosen.info,
        event_types=list(log.event_types),
    )
    return manifest, encode(contents, user_arrays)


def data_stats(log: InteractionLog, trained: TrainedModel) -> dict[str, Any]:
    """Sizes and shape of the training data, for the manifest and the run summary."""
    counts = np.bincount(log.items, minlength=log.n_items)
    top = np.sort(counts)[::-1][: max(1, log.n_items // 100)]
    return {
        "source": log.source,
        "n_users": log.n_users,
        "n_items": log.n_items,
        "n_interactions": log.n_interactions,
        "density": trained.n_pairs / max(1, log.n_users * log.n_items),
        "content_based_items": int(trained.content_based.sum()),
        "top_1pct_item_share": float(top.sum() / max(1, counts.sum())),
        "time_range": [int(log.timestamps.min()), int(log.timestamps.max())] if log.n_interactions else None,
    }
