"""Aggregate and weight the user×item matrix on Spark, into row blocks the SVD passes iterate over.

Repeat interactions are summed per (user, item) with Spark SQL; the per-item statistics the weighting
needs (document frequency, mean row length) are Spark aggregations collected to the driver; then each
block of whole users is weighted by :func:`reccore.weighting.weight_rows`, the very function the
single-process engine and the service's fold-in apply, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from reccore.encoding import npy_bytes, npy_load
from reccore.weighting import Scheme, item_weights, weight_rows

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

# ~2M non-zeros (~24 MB) per block: small enough for one task's memory, large enough that each
# pass is a few scipy products per task rather than per-row Python work.
BLOCK_PAIRS = 2_000_000
BLOCK_SCHEMA = "rows binary, indptr binary, indices binary, data binary"


@dataclass
class WeightedMatrix:
    """The weighted matrix as a cached DataFrame of CSR row blocks (npy bytes), plus what fold-in needs."""

    blocks: DataFrame
    shape: tuple[int, int]
    item_weights: np.ndarray  # float32 (n_items,)
    weighting: dict[str, object]
    warm: np.ndarray  # bool (n_items,): items with at least one interaction
    n_pairs: int


def block_matrix(record: dict[str, bytes], n_items: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """A block record → (user codes of its rows, CSR matrix of those rows)."""
    rows = npy_load(record["rows"])
    matrix = sp.csr_matrix(
        (npy_load(record["data"]).astype(np.float64), npy_load(record["indices"]), npy_load(record["indptr"])),
        shape=(len(rows), n_items),
    )
    return rows, matrix


def _weigh_blocks(
    weights: np.ndarray, scheme: Scheme, avg_row_length: float, min_rating: float, centre: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def weigh(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        chunks = list(batches)
        table = pa.Table.from_batches(chunks) if chunks else None
        if table is None or table.num_rows == 0:
            return
        users, items = table["u"].to_numpy(), table["i"].to_numpy()
        order = np.lexsort((items, users))
        users, items, raw = users[order], items[order].astype(np.int32), table["w"].to_numpy()[order]
        rows, starts = np.unique(users, return_index=True)
        indptr = np.append(starts, len(users)).astype(np.int64)
        data = weight_rows(indptr, items, raw, weights, scheme, avg_row_length, min_rating, centre)
        arrays = {"rows": rows.astype(np.int32), "indptr": indptr, "indices": items, "data": data}
        yield pa.RecordBatch.from_pydict({name: [npy_bytes(a)] for name, a in arrays.items()})

    return weigh


def weighted_matrix(
    frame: DataFrame,
    n_users: int,
    n_items: int,
    scheme: Scheme,
    pop_alpha: float = 0.0,
    min_rating: float = 0.0,
    centre: bool = False,
) -> WeightedMatrix:
    """Weight the interactions ``frame`` (columns ``u``, ``i``, ``w``) exactly as ``pipeline.train.weighted_matrix``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    pairs = frame.groupBy("u", "i").agg(F.sum("w").cast("float").alias("w")).persist(StorageLevel.MEMORY_AND_DISK)
    kept = F.sum((F.col("w") >= min_rating).cast("long")).alias("kept")
    per_item = pairs.groupBy("i").agg(F.count(F.lit(1)).alias("pairs"), kept).toArrow()
    codes = per_item["i"].to_numpy()
    pairs_per_item, document_freq = np.zeros(n_items, dtype=np.int64), np.zeros(n_items, dtype=np.int64)
    pairs_per_item[codes], document_freq[codes] = per_item["pairs"].to_numpy(), per_item["kept"].to_numpy()
    lengths = pairs.groupBy("u").agg(F.sum("w").alias("s")).agg(F.count("s").alias("n"), F.avg("s").alias("mean"))
    summary = lengths.first()
    n_active = int(summary["n"]) if summary is not None else 0
    avg_row_length = float(summary["mean"]) if summary is not None and n_active else 1.0
    weights = item_weights(document_freq, n_active, scheme, pop_alpha)
    n_pairs, warm = int(pairs_per_item.sum()), pairs_per_item > 0
    parallelism = pairs.sparkSession.sparkContext.defaultParallelism
    n_blocks = max(parallelism, -(-n_pairs // BLOCK_PAIRS))
    blocks = (
        pairs.repartition(n_blocks, "u")
        .mapInArrow(_weigh_blocks(weights, scheme, avg_row_length, min_rating, centre), BLOCK_SCHEMA)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    blocks.count()  # materialise the cache before the pairs go
    pairs.unpersist()
    return WeightedMatrix(
        blocks=blocks,
        shape=(n_users, n_items),
        item_weights=weights,
        weighting={"scheme": scheme, "avg_row_length": avg_row_length, "min_rating": min_rating, "centre": centre},
        warm=warm,
        n_pairs=n_pairs,
    )
