"""The Spark time split holds out exactly the rows ``pipeline.evaluate.time_split`` holds out."""

from __future__ import annotations

import numpy as np
from pyspark.sql import SparkSession

from pipeline.evaluate import random_split, time_split
from pipeline.sources.synthetic import generate
from pipeline.spark.split import with_split, with_time_split


def test_split_matches_the_single_process_split(spark: SparkSession) -> None:
    log = generate(5_000, seed=5)
    # Coarse timestamps force ties, which both sides must break by row order.
    times = log.timestamps // 86_400
    rows = zip(log.users.tolist(), times.tolist(), range(log.n_interactions), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, t long, rid long")
    got = with_time_split(frame).orderBy("rid").select("test").toPandas()["test"].to_numpy()  # type: ignore[index]
    log.timestamps = times
    expected = time_split(log)
    assert expected.sum() > 0 and not expected.all()
    np.testing.assert_array_equal(got, expected)


def test_random_split_holds_out_as_many_rows_per_user_as_the_single_process_split(spark: SparkSession) -> None:
    log = generate(5_000, seed=5)
    rows = zip(log.users.tolist(), log.timestamps.tolist(), range(log.n_interactions), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, t long, rid long")

    def spark_mask(seed: int) -> np.ndarray:
        split = with_split(frame, "random", seed).orderBy("rid").select("test")
        return split.toPandas()["test"].to_numpy()  # type: ignore[index]

    got, expected = spark_mask(3), random_split(log, seed=3)
    counts = lambda mask: np.bincount(log.users[mask], minlength=log.n_users)  # noqa: E731
    np.testing.assert_array_equal(counts(got), counts(expected))  # the same rule ...
    assert not np.array_equal(got, time_split(log))  # ... not the newest rows
    np.testing.assert_array_equal(spark_mask(3), got)  # seeded: the same draw again
    assert not np.array_equal(spark_mask(4), got)  # and another seed draws differently
