"""``--index flat|ivf|hnsw|auto``: build both indexes, tune and gate an approximate one, record what was measured.

``auto`` keeps exact search below ``exact_below`` items; above it, it builds each approximate kind,
tunes it to the smallest search parameter that meets ``min_recall`` on held-out user vectors, on the
same vectors under heavy category filters (half the categories excluded) and, for the similar-items
index, on item vectors, and keeps the one with the lowest one-query latency. If none passes, exact
search is published (its recall is 1 by construction). An explicitly requested approximate index that
misses the gate raises :class:`QualityGateError`: it is never published.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np

from pipeline import index as idx
from reccore.errors import QualityGateError
from reccore.layout import IndexInfo

IndexChoice = Literal["flat", "ivf", "hnsw", "auto"]
AUTO_CANDIDATES: tuple[idx.IndexKind, ...] = ("ivf", "hnsw")
FILTERS = 4  # distinct "half the categories excluded" filters, each applied to a share of the queries


@dataclass
class ChosenIndexes:
    index_ip: faiss.Index
    index_cos: faiss.Index
    info: IndexInfo


def query_sets(
    item_vectors: np.ndarray, user_vectors: np.ndarray, categories: np.ndarray, seed: int
) -> list[idx.QuerySet]:
    """Held-out user vectors as queries, unfiltered and under filters that each exclude half the categories."""
    queries = idx.sample_rows(user_vectors, idx.RECALL_QUERIES, seed)
    sets = [idx.QuerySet.of("users", item_vectors, queries)]
    names, codes = np.unique(categories, return_inverse=True)
    if len(names) < 2 or len(queries) < FILTERS:
        return sets
    rng = np.random.default_rng(seed)
    for number, part in enumerate(np.array_split(np.arange(len(queries)), FILTERS)):
        ok = np.ones(len(names), dtype=bool)
        ok[rng.choice(len(names), size=len(names) // 2, replace=False)] = False
        bitmap = np.packbits(ok[codes], bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        selector.referenced_objects = (bitmap,)  # type: ignore[attr-defined]
        sets.append(idx.QuerySet.of(f"filtered_{number}", item_vectors, queries[part], selector))
    return sets


@idx.all_cores()  # a contextmanager is also a decorator: every call runs inside it
def choose_indexes(
    item_vectors: np.ndarray,
    user_vectors: np.ndarray,
    categories: list[str] | np.ndarray,
    kind: IndexChoice,
    min_recall: float,
    exact_below: int,
    seed: int = 42,
) -> ChosenIndexes:
    """The recommendation (inner product) and similar-items (cosine) indexes for ``kind``, tuned and gated.

    Builds and batch recall searches use every core; latencies are measured on one, as the service runs.
    """
    item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    unit = idx.normalise(item_vectors)
    dims = int(item_vectors.shape[1])
    n = len(item_vectors)
    if kind == "flat" or (kind == "auto" and n < exact_below):
        reason = "requested" if kind == "flat" else f"auto: {n:,} items < exact_below {exact_below:,}"
        flat = ChosenIndexes(idx.build_index(item_vectors, "flat"), idx.build_index(unit, "flat"), IndexInfo(
            type="flat", dims=dims, selection=[{"kind": "flat", "reason": reason}]))  # fmt: skip
        return flat
    sets_ip = query_sets(item_vectors, user_vectors, np.asarray(categories).astype(str), seed)
    sets_cos = [idx.QuerySet.of("items", unit, idx.sample_rows(unit, idx.RECALL_QUERIES, seed))]
    candidates = AUTO_CANDIDATES if kind == "auto" else (kind,)
    results: list[tuple[float, ChosenIndexes]] = []
    selection: list[dict[str, Any]] = []
    for candidate in candidates:
        start = time.perf_counter()
        index_ip = idx.build_index(item_vectors, candidate, seed)
        index_cos = idx.build_index(unit, candidate, seed)
        build = time.perf_counter() - start
        params, recalls = idx.tune(index_ip, sets_ip, min_recall)
        cos_params, cos_recalls = idx.tune(index_cos, sets_cos, min_recall)
        filtered = [r for name, r in recalls.items() if name.startswith("filtered")]
        passed = min([*recalls.values(), *cos_recalls.values()]) >= min_recall
        record: dict[str, Any] = {
            "kind": candidate,
            "params": params,
            "similar_params": cos_params,
            "recall_at_10": round(recalls["users"], 4),
            "filtered_recall_at_10": round(min(filtered), 4) if filtered else None,
            "similar_recall_at_10": round(cos_recalls["items"], 4),
            "build_seconds": round(build, 2),
            "passed": passed,
        }
        if passed:
            filtered_set = next((s for s in sets_ip if s.selector is not None), None)
            latency = idx.latency_us(index_ip, sets_ip[0].queries)
            if filtered_set is not None:
                latency = (latency + idx.latency_us(index_ip, filtered_set.queries, filtered_set.selector)) / 2
            record["latency_us"] = round(latency, 1)
            extra: dict[str, int] = dict(params)
            if isinstance(index_ip, faiss.IndexIVF):
                extra["nlist"] = int(index_ip.nlist)
            else:
                extra["M"] = idx.HNSW_M
            info = IndexInfo(
                type=candidate,
                dims=dims,
                params={**extra, **{f"similar_{k}": v for k, v in cos_params.items()}},
                recall_at_10=record["recall_at_10"],
                filtered_recall_at_10=record["filtered_recall_at_10"],
            )
            results.append((latency, ChosenIndexes(index_ip, index_cos, info)))
        selection.append(record)
    if results:
        chosen = min(results, key=lambda pair: pair[0])[1]
        chosen.info.selection = selection
        return chosen
    if kind != "auto":
        worst = selection[-1]
        measured = [v for name, v in worst.items() if name.endswith("recall_at_10") and v is not None]
        raise QualityGateError(
            f"{kind} index recall@10 is {min(measured):.3f} "
            f"against exact search at {worst['params']}, below --min-recall {min_recall}; nothing published "
            "(use --index flat or lower --min-recall)"
        )
    selection.append({"kind": "flat", "reason": "auto: no approximate index met --min-recall"})
    return ChosenIndexes(idx.build_index(item_vectors, "flat"), idx.build_index(unit, "flat"), IndexInfo(
        type="flat", dims=dims, selection=selection))  # fmt: skip
