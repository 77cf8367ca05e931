"""One SparkSession for the engine, configured for the pipeline's data sizes."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "recsys-pipeline"


def get_session(master: str = "local[*]", driver_memory: str = "4g") -> SparkSession:
    """The active SparkSession, or a new one on ``master``.

    On EMR Serverless a session already exists (spark-submit made it), so the arguments only matter locally.
    ANSI mode is off so that a malformed value casts to null and is reported by row, as the single-process
    engine does, instead of failing the whole job with a cast error.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers must run this interpreter (the venv with numpy, pyarrow and reccore), not python3 on
    # PATH; PySpark reads the variable when it creates the context (the spark.pyspark.python conf is spark-submit's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName(APP_NAME)
        .config("spark.driver.memory", driver_memory)
        # The driver collects the log's columns (it assembles the artifacts); no result-size cap.
        .config("spark.driver.maxResultSize", "0")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Small until the engine knows the row count (pipeline.spark.read sets it from there).
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
