"""The recall gate and --index auto: tuning to the smallest passing value, refusal, exact below the threshold."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline.index
from pipeline.index import QuerySet, build_index, recall, tune
from pipeline.index_choice import choose_indexes, query_sets
from reccore.errors import QualityGateError


def _vectors(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, 16))
    codes = rng.integers(0, 8, size=n)
    items = (centres[codes] + 0.8 * rng.standard_normal((n, 16))).astype(np.float32)
    users = (centres[rng.integers(0, 8, size=500)] + rng.standard_normal((500, 16))).astype(np.float32)
    return items, users, np.array([f"c{c}" for c in codes])


def test_auto_keeps_exact_search_below_the_threshold() -> None:
    items, users, categories = _vectors()
    chosen = choose_indexes(items, users, categories, "auto", 0.95, exact_below=len(items) + 1)
    assert chosen.info.type == "flat" and chosen.info.recall_at_10 is None
    assert "exact_below" in chosen.info.selection[0]["reason"]


def test_auto_above_the_threshold_publishes_a_tuned_index_that_meets_the_gate() -> None:
    items, users, categories = _vectors()
    chosen = choose_indexes(items, users, categories, "auto", 0.95, exact_below=1000)
    info = chosen.info
    assert info.type in ("ivf", "hnsw")
    assert info.recall_at_10 is not None and info.recall_at_10 >= 0.95
    assert info.filtered_recall_at_10 is not None and info.filtered_recall_at_10 >= 0.95
    assert {r["kind"] for r in info.selection} == {"ivf", "hnsw"}
    # the published index really has that recall, measured afresh
    assert recall(chosen.index_ip, QuerySet.of("check", items, users[:200])) >= 0.9


def test_tuning_finds_the_smallest_passing_nprobe() -> None:
    items, users, categories = _vectors()
    index = build_index(items, "ivf")
    sets = query_sets(items, users, categories, seed=1)
    params, recalls = tune(index, sets, 0.95)
    nprobe = params["nprobe"]
    assert min(recalls.values()) >= 0.95 and index.nprobe == nprobe  # type: ignore[attr-defined]
    if nprobe > 1:
        index.nprobe = nprobe - 1  # type: ignore[attr-defined]
        assert min(recall(index, s) for s in sets) < 0.95


def test_an_index_tuned_too_low_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    items, users, categories = _vectors()
    monkeypatch.setattr(pipeline.index, "IVF_MAX_NPROBE", 1)  # the tuner may not search enough lists
    with pytest.raises(QualityGateError, match="recall@10"):
        choose_indexes(items, users, categories, "ivf", 0.99, exact_below=0)


def test_auto_falls_back_to_exact_when_nothing_meets_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    items, users, categories = _vectors(n=2000)
    monkeypatch.setattr(pipeline.index, "IVF_MAX_NPROBE", 1)
    monkeypatch.setattr(pipeline.index, "HNSW_EF_SEARCH", 1)
    monkeypatch.setattr(pipeline.index, "HNSW_M", 4)
    chosen = choose_indexes(items, users, categories, "auto", 0.999, exact_below=0)
    assert chosen.info.type == "flat"
    assert [r["passed"] for r in chosen.info.selection[:2]] == [False, False]
