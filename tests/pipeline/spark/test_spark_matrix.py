"""The Spark-weighted matrix equals ``pipeline.train.weighted_matrix`` for every scheme."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.sql import SparkSession

from pipeline.sources.synthetic import generate
from pipeline.spark.matrix import block_matrix, weighted_matrix
from pipeline.train import interaction_matrix
from pipeline.train import weighted_matrix as single_process_weighted
from reccore.weighting import SCHEMES, Scheme

OPTIONS = {"pop_alpha": 0.5, "min_rating": 2.0, "centre": True}  # the tuning grid's other weighting options


@pytest.mark.parametrize(
    ("scheme", "options"), [*((s, {}) for s in SCHEMES), ("bm25", OPTIONS)], ids=[*SCHEMES, "bm25-options"]
)
def test_blocks_reassemble_to_the_single_process_matrix(
    spark: SparkSession, scheme: Scheme, options: dict[str, Any]
) -> None:
    log = generate(3_000, seed=11)  # repeat (user, item) pairs included: they must be summed first
    rows = zip(log.users.tolist(), log.items.tolist(), log.weights.tolist(), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, i int, w float")
    matrix = weighted_matrix(frame, log.n_users, log.n_items, scheme, **options)
    expected, weights, weighting = single_process_weighted(interaction_matrix(log), scheme, **options)

    got = sp.lil_matrix(expected.shape, dtype=np.float64)
    for record in matrix.blocks.toArrow().to_pylist():
        rows_of_block, block = block_matrix(record, log.n_items)
        got[rows_of_block] = block
    matrix.blocks.unpersist()
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-6)
    np.testing.assert_allclose(matrix.item_weights, weights, rtol=1e-6)
    assert matrix.weighting["avg_row_length"] == pytest.approx(weighting["avg_row_length"], rel=1e-6)
    assert matrix.n_pairs == expected.nnz and matrix.weighting == pytest.approx(weighting)
    np.testing.assert_array_equal(matrix.warm, np.bincount(expected.indices, minlength=log.n_items) > 0)
