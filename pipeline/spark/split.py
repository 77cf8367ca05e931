"""The per-user time split as a Spark window: the same rule as ``pipeline.evaluate.time_split``.

Each user with at least ``MIN_HISTORY`` rows holds out their newest ``HOLDOUT`` share (at least one);
ties in time fall back to file order (``rid``), as the single-process engine's stable sort does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.evaluate import HOLDOUT, MIN_HISTORY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def with_time_split(frame: DataFrame) -> DataFrame:
    """``frame`` (columns ``u``, ``t``, ``rid``) plus a boolean ``test`` column."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    count = F.count(F.lit(1)).over(Window.partitionBy("u"))
    position = F.row_number().over(Window.partitionBy("u").orderBy("t", "rid")) - 1
    n_test = F.when(count >= MIN_HISTORY, F.greatest(F.lit(1.0), F.floor(count * F.lit(HOLDOUT)))).otherwise(0)
    return frame.withColumn("test", position >= count - n_test)
