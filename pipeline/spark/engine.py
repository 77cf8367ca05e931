"""``--engine spark``: the scale-dependent stages of ``pipeline.job.run`` on Spark.

Spark reads, checks and indexes the tables, holds out the time split, aggregates and weights the
matrix and runs the SVD passes. The driver then holds the log's integer columns (the artifacts
include every user's history, so they have to pass through it) and assembles everything per item
with the single-process engine's own code: content vectors, popularity, the map, the FAISS indexes,
the evaluation and the publish through ``reccore``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import Objective
from pipeline.sources import MOVIELENS_100K, SYNTHETIC
from pipeline.spark.events import read_events
from pipeline.spark.formats import is_log
from pipeline.spark.matrix import weighted_matrix
from pipeline.spark.read import read_interactions
from pipeline.spark.session import get_session
from pipeline.spark.split import with_split
from pipeline.spark.stage import local_copy, reads_s3
from pipeline.spark.svd import BlockOperator, factorise
from pipeline.train import ModelConfig, TrainedModel, assemble
from reccore.errors import ConfigError, DataSourceError
from reccore.settings import PipelineSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkEngine:
    """The :class:`pipeline.engine.Engine` on Spark; ``spark`` defaults to a session on ``settings.master``."""

    name = "spark"

    def __init__(self, settings: PipelineSettings, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self._spark = spark
        self._frame: DataFrame | None = None
        self._tests: dict[str, np.ndarray] = {}
        self._objective: Objective = "time"
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = get_session(self.settings.master, self.settings.driver_memory)
        return self._spark

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="recsys-spark-")
        return Path(self._scratch.name)

    def _inputs(self) -> tuple[str | None, str | None, str | None, bool]:
        """(interactions table, items table, event log, whether the log's items must be in the items table)."""
        s = self.settings
        if s.source == MOVIELENS_100K:
            raise ConfigError("--engine spark reads tables (CSV/Parquet, files or directories) and event logs; "
                              "use the single-process engine for movielens-100k")  # fmt: skip
        if s.source == SYNTHETIC:
            if s.items is not None:
                raise DataSourceError(f"{s.items}: an items table applies only to file sources, not to 'synthetic'")
            from pipeline.sources.synthetic import write_parquet

            interactions, items = write_parquet(
                s.interactions, s.seed, self._scratch_dir() / "synthetic", n_items=s.n_items
            )
            return str(interactions), str(items), s.events, False  # as load_source: the log may add items
        if is_log(s.source):
            if s.events is not None:
                raise DataSourceError(f"{s.events}: --events adds a log to a base source; {s.source} is a log already")
            return None, s.items, s.source, True
        return s.source, s.items, s.events, True

    def _readable(self, uri: str, name: str) -> str:
        """``uri``, or its local copy when it is on S3 and this session cannot read S3 (local mode)."""
        if not uri.startswith("s3://") or reads_s3(self.spark):
            return uri
        return str(local_copy(uri, self._scratch_dir() / name))

    def load(self) -> InteractionLog:
        source, items, log_uri, strict = self._inputs()
        events = None
        if log_uri is not None:
            events = read_events(self.spark, self._readable(log_uri, "events"), log_uri)
        table = None if source is None else self._readable(source, "interactions")
        indexed = read_interactions(self.spark, table, items, events, strict_items=strict)
        # Both objectives' test rows, collected with the log; split() keeps the one the run is judged on.
        frame = with_split(indexed.frame, "time", self.settings.seed, "test_time")
        frame = with_split(frame, "random", self.settings.seed, "test_random")
        frame = frame.select("u", "i", "w", "t", "e", "test_time", "test_random")
        from pyspark import StorageLevel

        self._frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        columns = self._frame.toArrow()
        if events is not None and events.frame is not None:
            events.frame.unpersist()  # the frame above is cached now (it would re-read the log if evicted)

        def take(name: str, dtype: type) -> np.ndarray:
            """One column as numpy, then dropped from the Arrow table: the peak holds the log once, not twice."""
            nonlocal columns
            array = columns[name].to_numpy().astype(dtype, copy=False)
            columns = columns.drop_columns([name])
            return array

        self._tests = {"time": take("test_time", bool), "random": take("test_random", bool)}
        log = InteractionLog(
            user_ids=indexed.user_ids,
            item_ids=indexed.item_ids,
            users=take("u", np.int32),
            items=take("i", np.int32),
            weights=take("w", np.float32),
            timestamps=take("t", np.int64),
            events=take("e", np.int8),
            event_types=indexed.event_types,
            titles=indexed.titles,
            categories=indexed.categories,
            prices=indexed.prices,
            source=self.settings.source if log_uri is None or source is None else f"{self.settings.source} + {log_uri}",
            extra={"interactions_file": source, "items_file": items, **({"events": events.stats} if events else {})},
        )
        del columns
        import pyarrow as pa

        pa.default_memory_pool().release_unused()  # the collected batches' memory, back to the system
        log.validate()
        return log

    def split(self, log: InteractionLog, objective: Objective) -> np.ndarray:
        test = self._tests.get(objective)
        if test is None or len(test) != log.n_interactions:
            raise RuntimeError("SparkEngine.split: call load() first; the split is computed with the log")
        self._objective = objective
        self._tests = {objective: test}  # the other objective's mask is not needed again
        return test

    def train(self, log: InteractionLog, test: np.ndarray | None, config: ModelConfig) -> TrainedModel:
        if self._frame is None:
            raise RuntimeError("SparkEngine.train: call load() first")
        # The Spark split column and the driver's mask are the same rows (collected together in load).
        frame = self._frame if test is None else self._frame.where(~self._frame[f"test_{self._objective}"])
        c = config
        matrix = weighted_matrix(frame.select("u", "i", "w"), log.n_users, log.n_items, c.weighting, c.pop_alpha,
                                 c.min_rating, c.centre)  # fmt: skip
        try:
            operator = BlockOperator(matrix)
            item_factors, user_factors, sigma = factorise(operator, c.factors, self.settings.seed, c.scaling,
                                                          c.shrinkage)  # fmt: skip
        finally:
            matrix.blocks.unpersist()
        subset = log if test is None else log.subset(~test)
        return assemble(subset, item_factors, user_factors, sigma, matrix.item_weights, matrix.warm,
                        matrix.weighting, matrix.n_pairs)  # fmt: skip

    def close(self) -> None:
        """Release the cached frame and the synthetic data's scratch directory (the session stays)."""
        if self._frame is not None:
            self._frame.unpersist()
            self._frame = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
