"""The pipeline job: load → evaluate on a time split → retrain on everything → index → publish.

``run`` is what both the CLI and the Lambda handler call. The stages that depend on the data's
scale (load, split, the weighted matrix and its SVD) sit behind an :class:`Engine`: this process
(``single-process``) or Spark (``pipeline.spark``); evaluation, packaging and publishing are shared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import MAX_EVAL_USERS, evaluate, load_as_served, relevant_items, sample_users, time_split
from pipeline.package import package
from pipeline.reporting import StageEvent, StageHook
from pipeline.sources import load_source
from pipeline.train import TrainedModel, train
from reccore.artifacts import MANIFEST_NAME, publish, version_key
from reccore.errors import QualityGateError
from reccore.settings import PipelineSettings
from reccore.storage import open_store

GATE_METRIC = "ndcg@10"


@dataclass
class RunResult:
    """What a run did: the published version, where, the metrics, and how long each stage took."""

    version: str
    uri: str
    metrics: dict[str, dict[str, float]]
    data: dict[str, Any]
    index: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(Protocol):
    """The scale-dependent stages. ``train`` returns arrays aligned with the log's user and item codes."""

    name: str

    def load(self) -> InteractionLog: ...

    def split(self, log: InteractionLog) -> np.ndarray:
        """The test mask of the per-user time split (``pipeline.evaluate.time_split``)."""
        ...

    def train(self, log: InteractionLog, test: np.ndarray | None) -> TrainedModel:
        """Train on the log's rows outside ``test`` (all rows when ``None``)."""
        ...


class SingleProcessEngine:
    """Everything in this process: numpy/scipy arrays and scikit-learn's randomized SVD."""

    name = "single-process"

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    def load(self) -> InteractionLog:
        s = self.settings
        return load_source(s.source, s.items, interactions=s.interactions, seed=s.seed)

    def split(self, log: InteractionLog) -> np.ndarray:
        return time_split(log)

    def train(self, log: InteractionLog, test: np.ndarray | None) -> TrainedModel:
        s = self.settings
        return train(log if test is None else log.subset(~test), s.factors, s.weighting, s.seed, s.scaling)


def make_engine(settings: PipelineSettings) -> Engine:
    if settings.engine == "spark":
        from pipeline.spark.engine import SparkEngine  # deferred: pyspark is the optional `spark` extra

        return SparkEngine(settings)
    return SingleProcessEngine(settings)


class _Stages:
    def __init__(self, on_stage: StageHook | None) -> None:
        self.timings: dict[str, float] = {}
        self.on_stage = on_stage or (lambda event: None)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.on_stage(StageEvent(name, "started"))
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.on_stage(StageEvent(name, "failed", round(time.perf_counter() - start, 3)))
            raise
        self.timings[name] = round(time.perf_counter() - start, 3)
        self.on_stage(StageEvent(name, "finished", self.timings[name]))


def run(
    settings: PipelineSettings,
    progress: bool = False,
    on_stage: StageHook | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Run the whole job with ``settings``; raises a ``RecError`` and publishes nothing on failure.

    ``progress`` draws progress bars; ``on_stage`` is called as each stage starts and ends; ``engine``
    defaults to the one ``settings.engine`` names.
    """
    engine = engine or make_engine(settings)
    stage = _Stages(on_stage)
    params = {"seed": settings.seed, "index": settings.index, "source": settings.source, "scaling": settings.scaling}

    with stage("load"):
        log = engine.load()
    metrics = _holdout_metrics(log, engine, settings, stage, progress)
    _check_beats_popularity(metrics, settings.force)

    with stage("train on all data"):
        trained = engine.train(log, None)
    with stage("index"):
        manifest, files = package(log, trained, settings.index, params, settings.seed)
        manifest.metrics = metrics
        manifest.engine = engine.name
    recall = manifest.index.recall_at_10
    if recall is not None and recall < settings.min_recall:
        raise QualityGateError(
            f"{settings.index} index recall@10 is {recall:.3f} against exact search, below --min-recall "
            f"{settings.min_recall}; nothing published (use --index flat or lower --min-recall)"
        )
    with stage("publish"):
        store = open_store(settings.output)
        published = publish(store, manifest, files, retention=settings.retention)
    return RunResult(
        version=published.version,
        uri=f"{store.uri}/{version_key(published.version, MANIFEST_NAME)}",
        metrics=metrics,
        data=published.data,
        index=published.index.model_dump(),
        timings=stage.timings,
        sizes={name: len(data) for name, data in files.items()},
    )


def _holdout_metrics(
    log: InteractionLog, engine: Engine, settings: PipelineSettings, stage: _Stages, progress: bool
) -> dict[str, dict[str, float]]:
    """Train on all but each user's newest interactions and evaluate on those, through the served code path.

    A function of its own so that the held-out model's memory is released before the final training.
    """
    with stage("split"):
        test_mask = engine.split(log)
        train_log = log.subset(~test_mask)
        test_users = np.flatnonzero(np.bincount(log.users[test_mask], minlength=log.n_users))
        users = sample_users(test_users.tolist(), MAX_EVAL_USERS, settings.seed)
        relevant = relevant_items(train_log, log.subset(test_mask), users)
    with stage("train on the training split"):
        model = load_as_served(train_log, engine.train(log, test_mask), settings.scaling, settings.seed)
    with stage("evaluate"):
        return evaluate(model, relevant, settings.seed, progress=progress)


def _check_beats_popularity(metrics: dict[str, dict[str, float]], force: bool) -> None:
    model, popular = metrics["model"][GATE_METRIC], metrics["popularity"][GATE_METRIC]
    if model <= popular and not force:
        raise QualityGateError(
            f"the model's {GATE_METRIC} {model:.4f} does not beat popularity's {popular:.4f}; "
            "nothing published (--force publishes anyway)"
        )
