"""The scale-dependent stages of a run behind one interface: load, split, train.

:func:`pipeline.job.run` calls an :class:`Engine`: this process (``single-process``, below) or Spark
(:class:`pipeline.spark.engine.SparkEngine`); evaluation, packaging and publishing are shared.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import Objective, holdout_split
from pipeline.sources import load_source
from pipeline.train import ModelConfig, TrainedModel, train_config
from reccore.settings import PipelineSettings


class Engine(Protocol):
    """The scale-dependent stages. ``train`` returns arrays aligned with the log's user and item codes."""

    name: str

    def load(self) -> InteractionLog: ...

    def split(self, log: InteractionLog, objective: Objective) -> np.ndarray:
        """The test mask of ``objective``'s per-user split (``pipeline.evaluate.holdout_split``)."""
        ...

    def train(self, log: InteractionLog, test: np.ndarray | None, config: ModelConfig) -> TrainedModel:
        """Train ``config`` on the log's rows outside ``test`` (all rows when ``None``)."""
        ...


class SingleProcessEngine:
    """Everything in this process: numpy/scipy arrays and scikit-learn's randomized SVD."""

    name = "single-process"

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    def load(self) -> InteractionLog:
        s = self.settings
        return load_source(
            s.source, s.items, interactions=s.interactions, seed=s.seed, events=s.events, n_items=s.n_items
        )

    def split(self, log: InteractionLog, objective: Objective) -> np.ndarray:
        return holdout_split(log, objective, self.settings.seed)

    def train(self, log: InteractionLog, test: np.ndarray | None, config: ModelConfig) -> TrainedModel:
        return train_config(log if test is None else log.subset(~test), config, self.settings.seed)


def make_engine(settings: PipelineSettings) -> Engine:
    if settings.engine == "spark":
        from pipeline.spark.engine import SparkEngine  # deferred: pyspark is the optional `spark` extra

        return SparkEngine(settings)
    return SingleProcessEngine(settings)
