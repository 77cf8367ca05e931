"""Randomized truncated SVD over a row-distributed sparse matrix: scikit-learn's algorithm, in passes.

Why not MLlib's ``RowMatrix.computeSVD``: it picks distributed ARPACK, hundreds of passes over the
data (without native ARPACK here); measured in ``scripts/bench_spark.py --svd`` (figures in docs/pipeline.md).
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
from reccore.encoding import npy_bytes, npy_load

if TYPE_CHECKING:
    import pyarrow as pa

OVERSAMPLES = 10  # scikit-learn's default n_oversamples
CHUNK_ROWS = 32_768  # item rows per reduced chunk of a pass's partial products (~15 MB at l = 60)


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
    user_factors = op.matmul((item_factors / squared).astype(np.float64)).astype(np.float32, copy=False)
    return item_factors, user_factors, sigma


class BlockOperator:
    """A :class:`WeightedMatrix`'s blocks as a :class:`RowOperator`: each product is one Spark pass.

    The local operand travels as a broadcast of npy bytes. Each task sums its blocks' partial products
    into one (n×l) partial, cut into chunks of item rows; a shuffle by chunk adds the tasks' partials
    on the executors (a reduce-scatter), so the driver receives one n×l result however many task
    slots there are, instead of one partial per slot (~0.5 GB each at 1M items).
    """

    def __init__(self, matrix: WeightedMatrix, chunk_rows: int = CHUNK_ROWS) -> None:
        self.matrix = matrix
        self.shape = matrix.shape
        self.chunk_rows = chunk_rows
        self.spark = matrix.blocks.sparkSession
        self.slots = self.spark.sparkContext.defaultParallelism

    def _pass(
        self, operand: np.ndarray, kernel: Callable[[np.ndarray, sp.csr_matrix, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        broadcast = self.spark.sparkContext.broadcast(npy_bytes(operand))
        n_items, out_shape = self.shape[1], (self.shape[1], operand.shape[1])
        size = self.chunk_rows
        starts = range(0, n_items, size)

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa
            from pyspark import TaskContext

            local = npy_load(broadcast.value)
            total = np.zeros(out_shape)
            for batch in batches:
                for record in batch.to_pylist():
                    rows, block = block_matrix(record, n_items)
                    total += kernel(rows, block, local)
            context = TaskContext.get()
            task = context.partitionId() if context is not None else 0
            parts = [npy_bytes(total[start : start + size]) for start in starts]
            chunks, tasks = pa.array(range(len(parts)), pa.int32()), pa.array([task] * len(parts), pa.int32())
            yield pa.RecordBatch.from_pydict({"chunk": chunks, "task": tasks, "part": parts})

        def add(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            rows = sorted((r["chunk"], r["task"], r["part"]) for b in batches for r in b.to_pylist())
            sums: dict[int, np.ndarray] = {}
            for chunk, _, part in rows:  # in task order: the same sum on every run
                sums[chunk] = sums[chunk] + npy_load(part) if chunk in sums else npy_load(part)
            chunks = pa.array(list(sums), pa.int32())
            yield pa.RecordBatch.from_pydict({"chunk": chunks, "part": [npy_bytes(x) for x in sums.values()]})

        partials = self.matrix.blocks.coalesce(self.slots).mapInArrow(run, "chunk int, task int, part binary")
        sums = partials.repartition(len(starts), "chunk").mapInArrow(add, "chunk int, part binary").toArrow()
        broadcast.unpersist()
        result = np.zeros(out_shape)
        for chunk, part in zip(sums["chunk"].to_pylist(), sums["part"].to_pylist(), strict=True):
            result[starts[chunk] : starts[chunk] + size] = npy_load(part)
        return result

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
        for batch in parts.to_batches():  # one block's bytes at a time as Python objects: not all users' twice
            for rows, values in zip(batch.column("rows"), batch.column("values"), strict=True):
                result[npy_load(rows.as_py())] = npy_load(values.as_py())
        return result
