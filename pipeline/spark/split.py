"""The per-user splits as Spark windows: the rules of ``pipeline.evaluate.time_split`` and ``random_split``.

Each user with at least ``MIN_HISTORY`` rows holds out their newest ``HOLDOUT`` share (at least one);
ties in time fall back to file order (``rid``), as the single-process engine's stable sort does. The
random split holds out the same number of rows per user, ordered by a seeded hash of the row id: the
same rule as the single-process engine's, not the same draw (numpy's permutation has no Spark twin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.evaluate import HOLDOUT, MIN_HISTORY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def with_time_split(frame: DataFrame) -> DataFrame:
    """``frame`` (columns ``u``, ``t``, ``rid``) plus a boolean ``test`` column."""
    return with_split(frame, "time", 0)


def with_split(frame: DataFrame, objective: str, seed: int, column: str = "test") -> DataFrame:
    """``frame`` (columns ``u``, ``t``, ``rid``) plus a boolean ``column``: ``objective``'s test rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = ("t", "rid") if objective == "time" else (F.xxhash64("rid", F.lit(seed)), "rid")
    count = F.count(F.lit(1)).over(Window.partitionBy("u"))
    position = F.row_number().over(Window.partitionBy("u").orderBy(*order)) - 1
    n_test = F.when(count >= MIN_HISTORY, F.greatest(F.lit(1.0), F.floor(count * F.lit(HOLDOUT)))).otherwise(0)
    return frame.withColumn(column, position >= count - n_test)
