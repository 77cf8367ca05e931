"""The pass-wise randomized SVD reproduces scikit-learn's, locally and over Spark blocks."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import SparkSession
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd

from pipeline.sources.synthetic import generate
from pipeline.spark.matrix import weighted_matrix
from pipeline.spark.svd import BlockOperator, LocalOperator, randomized_svd
from pipeline.train import SVD_POWER_ITERATIONS, interaction_matrix
from pipeline.train import weighted_matrix as single_process_weighted


@pytest.mark.parametrize("transpose", [False, True], ids=["tall", "wide"])
def test_same_singular_values_and_subspace_as_scikit_learn(transpose: bool) -> None:
    log = generate(20_000, seed=2)
    matrix, _, _ = single_process_weighted(interaction_matrix(log), "log")
    if transpose != (matrix.shape[0] < matrix.shape[1]):
        matrix = matrix.T.tocsr()  # exercise both of scikit-learn's orientations
    _, sigma, vt = sklearn_randomized_svd(matrix, 20, n_iter=SVD_POWER_ITERATIONS, random_state=7)
    v, got = randomized_svd(LocalOperator(matrix), 20, seed=7)
    np.testing.assert_allclose(got, sigma, rtol=1e-4)
    # Same vectors up to sign: |cosine| of each pair ~ 1 (leading ones; the tail may rotate slightly).
    cosines = np.abs(np.sum(v * vt.T, axis=0))
    assert cosines[:10].min() > 0.999


def test_block_operator_products_equal_the_local_ones(spark: SparkSession) -> None:
    log = generate(3_000, seed=4)
    rows = zip(log.users.tolist(), log.items.tolist(), log.weights.tolist(), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, i int, w float")
    matrix = weighted_matrix(frame, log.n_users, log.n_items, "log")
    local = LocalOperator(single_process_weighted(interaction_matrix(log), "log")[0])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(log.n_items, 5)), rng.normal(size=(log.n_users, 5))
    # One chunk of item rows per pass, and many (37 rows each, the last one short): the reduce-scatter.
    for distributed in (BlockOperator(matrix), BlockOperator(matrix, chunk_rows=37)):
        assert log.n_items % 37 and (distributed.chunk_rows > log.n_items or distributed.chunk_rows == 37)
        np.testing.assert_allclose(distributed.gram(x), local.gram(x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(distributed.rmatmul(y), local.rmatmul(y), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(distributed.matmul(x), local.matmul(x), rtol=1e-5, atol=1e-5)
    matrix.blocks.unpersist()
