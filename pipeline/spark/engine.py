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
from pipeline.sources import MOVIELENS_100K, SYNTHETIC
from pipeline.spark.matrix import weighted_matrix
from pipeline.spark.read import read_interactions
from pipeline.spark.session import get_session
from pipeline.spark.split import with_time_split
from pipeline.spark.svd import BlockOperator, factorise
from pipeline.train import ModelConfig, TrainedModel, assemble
from reccore.errors import ConfigError, DataSourceError
from reccore.settings import PipelineSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkEngine:
    """The :class:`pipeline.job.Engine` on Spark; ``spark`` defaults to a session on ``settings.master``."""

    name = "spark"

    def __init__(self, settings: PipelineSettings, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self._spark = spark
        self._frame: DataFrame | None = None
        self._test: np.ndarray | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = get_session(self.settings.master, self.settings.driver_memory)
        return self._spark

    def _tables(self) -> tuple[str, str | None]:
        s = self.settings
        if s.events:
            raise ConfigError("--engine spark does not read the events log yet (--events); use the single-process "
                              "engine, or convert the log to a Parquet table and pass it as --source")  # fmt: skip
        if s.source == MOVIELENS_100K:
            raise ConfigError("--engine spark reads tables (CSV/Parquet, files or directories); "
                              "use the single-process engine for movielens-100k")  # fmt: skip
        if s.source != SYNTHETIC:
            return s.source, s.items
        if s.items is not None:
            raise DataSourceError(f"{s.items}: an items table applies only to file sources, not to 'synthetic'")
        from pipeline.sources.synthetic import write_parquet

        self._scratch = tempfile.TemporaryDirectory(prefix="recsys-synthetic-")
        interactions, items = write_parquet(s.interactions, s.seed, Path(self._scratch.name))
        return str(interactions), str(items)

    def load(self) -> InteractionLog:
        source, items = self._tables()
        indexed = read_interactions(self.spark, source, items)
        frame = with_time_split(indexed.frame).select("u", "i", "w", "t", "e", "test")
        from pyspark import StorageLevel

        self._frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        columns = self._frame.toArrow()
        self._test = columns["test"].to_numpy().astype(bool)
        log = InteractionLog(
            user_ids=indexed.user_ids,
            item_ids=indexed.item_ids,
            users=columns["u"].to_numpy().astype(np.int32),
            items=columns["i"].to_numpy().astype(np.int32),
            weights=columns["w"].to_numpy().astype(np.float32),
            timestamps=columns["t"].to_numpy().astype(np.int64),
            events=columns["e"].to_numpy().astype(np.int8),
            event_types=indexed.event_types,
            titles=indexed.titles,
            categories=indexed.categories,
            prices=indexed.prices,
            source=self.settings.source,
            extra={"interactions_file": source, "items_file": items},
        )
        del columns
        log.validate()
        return log

    def split(self, log: InteractionLog) -> np.ndarray:
        if self._test is None or len(self._test) != log.n_interactions:
            raise RuntimeError("SparkEngine.split: call load() first; the split is computed with the log")
        return self._test

    def train(self, log: InteractionLog, test: np.ndarray | None, config: ModelConfig) -> TrainedModel:
        if self._frame is None:
            raise RuntimeError("SparkEngine.train: call load() first")
        # The Spark split column and the driver's mask are the same rows (collected together in load).
        frame = self._frame if test is None else self._frame.where(~self._frame["test"])
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
