"""Metric definitions checked against rankings worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics import (
    average_precision_at_k,
    coverage,
    mean_popularity_rank,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    summarise,
)

# Ranking [7, 3, 9, 1, 5] against relevant {3, 1, 8}: hits at ranks 2 and 4 (1-based).
RANKED = [7, 3, 9, 1, 5]
RELEVANT = {3, 1, 8}


def test_precision_and_recall_by_hand() -> None:
    assert precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 5)
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0


def test_ndcg_by_hand() -> None:
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at ranks 2 and 4
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # three relevant items at the top
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([3, 1, 8], RELEVANT, 3) == pytest.approx(1.0)
    assert ndcg_at_k([0, 2], RELEVANT, 2) == 0.0


def test_average_precision_by_hand() -> None:
    # precision at the hits: 1/2 at rank 2, 2/4 at rank 4; divided by min(|relevant|, k) = 3
    assert average_precision_at_k(RANKED, RELEVANT, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    # with k = 2 only the first hit counts and the divisor is min(3, 2) = 2
    assert average_precision_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / 2) / 2)
    assert average_precision_at_k([3, 1, 8], RELEVANT, 3) == pytest.approx(1.0)


def test_coverage_and_popularity_rank_by_hand() -> None:
    assert coverage([[1, 2], [2, 3]], n_items=10) == pytest.approx(3 / 10)
    ranks = np.array([0, 1, 2, 3, 4])
    assert mean_popularity_rank([[0, 4], [2]], ranks) == pytest.approx((0 + 4 + 2) / 3)


def test_summarise_averages_over_users() -> None:
    result = summarise({1: [3, 0], 2: [5, 6]}, {1: {3}, 2: {9}}, k=2, n_items=10)
    assert result["precision@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["recall@2"] == pytest.approx((1 + 0) / 2)
    assert result["ndcg@2"] == pytest.approx((1 + 0) / 2)
    assert result["coverage"] == pytest.approx(4 / 10)
    assert result["users"] == 2
