"""Randomized truncated SVD over a row-distributed sparse matrix: scikit-learn's algorithm, in passes.

Why not MLlib's ``RowMatrix.computeSVD``: it picks distributed ARPACK, hundreds of passes over the
data (without native ARPACK here); measured in ``scripts/bench_spark.py --svd`` (figures in the README).
This is the randomized SVD the single-process engine runs (``sklearn.utils.extmath.randomized_svd``,
``n_iter=4``, 10 oversamples, the same seeded Gaussian start and the same transpose rule), regrouped
so that each power iteration is ONE pass over the blocks computing ``AᵀA·X`` (every block adds its
``A_bᵀ(A_b·X)``); the normalisation between passes is a QR of an items×l matrix on the driver.
In exact arithmetic it spans the same subspace as scikit-learn's LU-normalised iterations, so the
singular values agree to float32 rounding (~1e-6 relative; tested), not just to the method's error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from pipeline.spark.matrix import WeightedMatrix, block_matrix
from pipeline.train import MIN_SINGULAR_VALUE, SVD_POWER_ITERATIONS, spectral_item_factors, svd_rank
from reccore.artifacts import npy_bytes, npy_load

if TYPE_CHECKING:
    import pyarrow as pa

OVERSAMPLES = 10  # scikit-learn's default n_oversamples


class RowOperator(Protocol):
    """The products the SVD needs from an m×n matrix ``A`` it cannot hold."""

    shape: tuple[int, int]

    def gram(self, x: np.ndarray) -> np.ndarray:
        """``Aᵀ(A·x)`` for a local n×l ``x``."""
        ...

    def rmatmul(self, y: np.ndarray) -> np.ndarray:
        """``Aᵀ·y`` for a local m×l ``y``."""
        ...

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``A·x`` for a local n×l ``x``, as a local m×l array."""
        ...


class LocalOperator:
    """A scipy matrix as a :class:`RowOperator` (tests and small inputs)."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix = sp.csr_matrix(matrix, dtype=np.float64)
        self.shape: tuple[int, int] = self.matrix.shape

    def gram(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix.T @ (self.matrix @ x))

    def rmatmul(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix.T @ y)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix @ x)


def _orth(x: np.ndarray) -> np.ndarray:
    return la.qr(x, mode="economic", check_finite=False)[0]


def randomized_svd(
    op: RowOperator, factors: int, seed: int, n_iter: int = SVD_POWER_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Right singular vectors ``V`` (n, k) and singular values (k,) of ``op``'s matrix, float64.

    ``q = n_iter`` power iterations cost q+1 passes (q+2 when the matrix is wider than tall, where
    scikit-learn transposes it and starts from the users' side).
    """
    m, n = op.shape
    k = svd_rank(factors, (m, n))
    size = k + OVERSAMPLES
    # scikit-learn draws the start with RandomState(seed).normal and rounds it to the matrix's float32.
    start = np.random.RandomState(seed)
    if m < n:  # scikit-learn transposes: the range is found on the items' side from a users×l start
        omega = start.normal(size=(m, size)).astype(np.float32).astype(np.float64)
        x = _orth(op.rmatmul(omega))
        for _ in range(n_iter):
            x = _orth(op.gram(x))
        h = x.T @ op.gram(x)  # = BBᵀ for B = xᵀAᵀ, whose left singular vectors rotate x into V
        eigenvalues, vectors = np.linalg.eigh((h + h.T) / 2)
        order = np.argsort(eigenvalues)[::-1][:k]
        return x @ vectors[:, order], np.sqrt(np.maximum(eigenvalues[order], 0.0))
    x = start.normal(size=(n, size)).astype(np.float32).astype(np.float64)
    for _ in range(n_iter):
        x = _orth(op.gram(x))
    w = op.gram(x)  # Q = A·x·L⁻ᵀ is orthonormal for LLᵀ = xᵀAᵀAx, so B = QᵀA = L⁻¹·wᵀ
    gram = x.T @ w
    lower = np.linalg.cholesky((gram + gram.T) / 2)
    b = la.solve_triangular(lower, w.T, lower=True, check_finite=False)
    _, sigma, vt = np.linalg.svd(b, full_matrices=False)
    return vt[:k].T, sigma[:k]


def factorise(
    op: RowOperator, factors: int, seed: int, scaling: float, shrinkage: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item factors, user factors ``A·Q·Σ⁻²`` and ``Σ``, as ``pipeline.train.spectral_factors`` makes them."""
    v, sigma = randomized_svd(op, factors, seed)
    sigma = np.maximum(sigma.astype(np.float32), MIN_SINGULAR_VALUE)
    item_factors = spectral_item_factors(v, sigma, scaling, shrinkage)
    squared = np.square(sigma.astype(np.float64)).astype(np.float32)
    user_factors = op.matmul((item_factors / squared).astype(np.float64)).astype(np.float32)
    return item_factors, user_factors, sigma


class BlockOperator:
    """A :class:`WeightedMatrix`'s blocks as a :class:`RowOperator`: each product is one Spark pass.

    The local operand travels as a broadcast of npy bytes; each task sums its blocks' partial products
    and returns one (n×l) partial, so the driver receives one partial per task slot, not per block.
    """

    def __init__(self, matrix: WeightedMatrix) -> None:
        self.matrix = matrix
        self.shape = matrix.shape
        self.spark = matrix.blocks.sparkSession
        self.slots = self.spark.sparkContext.defaultParallelism

    def _pass(
        self, operand: np.ndarray, kernel: Callable[[np.ndarray, sp.csr_matrix, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        broadcast = self.spark.sparkContext.broadcast(npy_bytes(operand))
        n_items, out_shape = self.shape[1], (self.shape[1], operand.shape[1])

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            local = npy_load(broadcast.value)
            total = np.zeros(out_shape)
            for batch in batches:
                for record in batch.to_pylist():
                    rows, block = block_matrix(record, n_items)
                    total += kernel(rows, block, local)
            yield pa.RecordBatch.from_pydict({"part": [npy_bytes(total)]})

        parts = self.matrix.blocks.coalesce(self.slots).mapInArrow(run, "part binary").toArrow()
        broadcast.unpersist()
        return np.sum([npy_load(part) for part in parts["part"].to_pylist()], axis=0)

    def gram(self, x: np.ndarray) -> np.ndarray:
        return self._pass(x, lambda rows, block, local: block.T @ (block @ local))

    def rmatmul(self, y: np.ndarray) -> np.ndarray:
        return self._pass(y, lambda rows, block, local: block.T @ local[rows])

    def matmul(self, x: np.ndarray) -> np.ndarray:
        broadcast = self.spark.sparkContext.broadcast(npy_bytes(x))
        n_items = self.shape[1]

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            local = npy_load(broadcast.value)
            for batch in batches:
                for record in batch.to_pylist():
                    rows, block = block_matrix(record, n_items)
                    product = np.asarray(block @ local, dtype=np.float32)
                    yield pa.RecordBatch.from_pydict({"rows": [npy_bytes(rows)], "values": [npy_bytes(product)]})

        parts = self.matrix.blocks.mapInArrow(run, "rows binary, values binary").toArrow()
        broadcast.unpersist()
        result = np.zeros((self.shape[0], x.shape[1]), dtype=np.float32)
        for rows, values in zip(parts["rows"].to_pylist(), parts["values"].to_pylist(), strict=True):
            result[npy_load(rows)] = npy_load(values)
        return result
