"""The Spark time split holds out exactly the rows ``pipeline.evaluate.time_split`` holds out."""

from __future__ import annotations

import numpy as np
from pyspark.sql import SparkSession

from pipeline.evaluate import time_split
from pipeline.sources.synthetic import generate
from pipeline.spark.split import with_time_split


def test_split_matches_the_single_process_split(spark: SparkSession) -> None:
    log = generate(5_000, seed=5)
    # Coarse timestamps force ties, which both sides must break by row order.
    times = log.timestamps // 86_400
    rows = zip(log.users.tolist(), times.tolist(), range(log.n_interactions), strict=True)
    frame = spark.createDataFrame(list(rows), "u int, t long, rid long")
    got = with_time_split(frame).orderBy("rid").select("test").toPandas()["test"].to_numpy()
    log.timestamps = times
    expected = time_split(log)
    assert expected.sum() > 0 and not expected.all()
    np.testing.assert_array_equal(got, expected)
