"""How to run the SVD on Spark: MLlib's computeSVD vs randomized SVDs, on a synthetic matrix (k=50).

1. ``RowMatrix.computeSVD(50)``: MLlib picks distributed ARPACK (the Java fallback: no native ARPACK here).
2. Randomized, MLlib operations: ``RowMatrix.multiply`` by the local n×l matrix, ``tallSkinnyQR`` of the
   result, and the product with Aᵀ as a second RowMatrix (items as rows) times the collected Q.
3. Randomized, the engine's passes (``pipeline.spark.svd.BlockOperator``): one pass per power iteration.
Printed: wall time of each and the largest relative difference of its singular values from scikit-learn's.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as la
from sklearn.utils.extmath import randomized_svd as sklearn_svd

from pipeline.sources.synthetic import generate
from pipeline.spark.matrix import weighted_matrix
from pipeline.spark.session import get_session
from pipeline.spark.svd import OVERSAMPLES, BlockOperator, randomized_svd
from pipeline.train import SVD_POWER_ITERATIONS, interaction_matrix
from pipeline.train import weighted_matrix as single_process_weighted

K = 50


def _rows(spark, matrix):
    from pyspark.mllib.linalg import Vectors
    from pyspark.mllib.linalg.distributed import RowMatrix

    csr, n = matrix.tocsr(), matrix.shape[1]
    rows = [Vectors.sparse(n, csr.indices[a:b].tolist(), csr.data[a:b].astype(float).tolist())
            for a, b in zip(csr.indptr[:-1], csr.indptr[1:], strict=True)]  # fmt: skip
    return RowMatrix(spark.sparkContext.parallelize(rows, 4).cache())


def _dense(x: np.ndarray):
    from pyspark.mllib.linalg import DenseMatrix

    return DenseMatrix(x.shape[0], x.shape[1], x.ravel(order="F").tolist())


def _collect(row_matrix) -> np.ndarray:
    return np.array([row.toArray() for row in row_matrix.rows.collect()])


def rowmatrix_randomized(spark, matrix, seed: int = 42) -> np.ndarray:
    a, at = _rows(spark, matrix), _rows(spark, matrix.T)
    x = np.random.RandomState(seed).normal(size=(matrix.shape[1], K + OVERSAMPLES))
    for _ in range(SVD_POWER_ITERATIONS):
        q = _collect(a.multiply(_dense(x)).tallSkinnyQR(computeQ=True).Q)
        x = la.qr(_collect(at.multiply(_dense(q))), mode="economic")[0]
    q = _collect(a.multiply(_dense(x)).tallSkinnyQR(computeQ=True).Q)
    b = _collect(at.multiply(_dense(q))).T
    return np.linalg.svd(b, compute_uv=False)[:K]


def compare(interactions: int = 100_000) -> None:
    spark = get_session("local[2]", "4g")
    log = generate(interactions, 42)
    matrix, _, _ = single_process_weighted(interaction_matrix(log), "log")
    _, reference, _ = sklearn_svd(matrix, K, n_iter=SVD_POWER_ITERATIONS, random_state=42)
    print(f"matrix {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} non-zeros, k={K}")

    def show(name: str, start: float, sigma: np.ndarray) -> None:
        error = np.max(np.abs(np.sort(sigma)[::-1][:K] - reference) / reference)
        print(f"  {name:<44} {time.perf_counter() - start:8.1f} s   max rel. diff vs scikit-learn {error:.1e}")

    rows = zip(log.users.tolist(), log.items.tolist(), log.weights.tolist(), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, i int, w float")
    start = time.perf_counter()
    blocks = weighted_matrix(frame, log.n_users, log.n_items, "log")
    _, sigma = randomized_svd(BlockOperator(blocks), K, seed=42)
    show("randomized, engine passes (incl. weighting)", start, sigma)
    start = time.perf_counter()
    show("randomized, RowMatrix.multiply + tallSkinnyQR", start, rowmatrix_randomized(spark, matrix))
    start = time.perf_counter()
    svd = _rows(spark, matrix).computeSVD(K, computeU=False)
    show("RowMatrix.computeSVD (ARPACK)", start, svd.s.toArray())
