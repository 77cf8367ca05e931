"""The pipeline job: load → evaluate on a time split → retrain on everything → index → publish.

``run`` is what both the CLI and the Lambda handler call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import MAX_EVAL_USERS, evaluate, relevant_items, sample_users, served_model, time_split
from pipeline.package import package
from pipeline.reporting import StageEvent, StageHook
from pipeline.sources import load_source
from pipeline.train import train
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


def run(settings: PipelineSettings, progress: bool = False, on_stage: StageHook | None = None) -> RunResult:
    """Run the whole job with ``settings``; raises a ``RecError`` and publishes nothing on failure.

    ``progress`` draws progress bars; ``on_stage`` is called as each stage starts and ends.
    """
    stage = _Stages(on_stage)
    params = {"seed": settings.seed, "index": settings.index, "source": settings.source, "scaling": settings.scaling}

    with stage("load"):
        log = load_source(settings.source, settings.items, interactions=settings.interactions, seed=settings.seed)
    metrics = _holdout_metrics(log, settings, params, stage, progress)
    _check_beats_popularity(metrics, settings.force)

    with stage("train on all data"):
        trained = train(log, settings.factors, settings.weighting, settings.seed, settings.scaling)
    with stage("index"):
        manifest, files = package(
            log, trained, settings.index, params, settings.seed, settings.min_recall, settings.exact_below
        )
        manifest.metrics = metrics
    # A second guard: choose_indexes already refuses an index that misses the gate.
    measured = [r for r in (manifest.index.recall_at_10, manifest.index.filtered_recall_at_10) if r is not None]
    recall = min(measured) if measured else None
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
    log: InteractionLog, settings: PipelineSettings, params: dict[str, Any], stage: _Stages, progress: bool
) -> dict[str, dict[str, float]]:
    """Train on all but each user's newest interactions and evaluate on those, through the served code path.

    A function of its own so that the held-out model's memory is released before the final training.
    """
    with stage("split"):
        test_mask = time_split(log)
        train_log = log.subset(~test_mask)
        test_users = np.flatnonzero(np.bincount(log.users[test_mask], minlength=log.n_users))
        users = sample_users(test_users.tolist(), MAX_EVAL_USERS, settings.seed)
        relevant = relevant_items(train_log, log.subset(test_mask), users)
    with stage("train on the training split"):
        model = served_model(train_log, settings.factors, settings.weighting, settings.scaling, settings.seed)
    with stage("evaluate"):
        return evaluate(model, relevant, settings.seed, progress=progress)


def _check_beats_popularity(metrics: dict[str, dict[str, float]], force: bool) -> None:
    model, popular = metrics["model"][GATE_METRIC], metrics["popularity"][GATE_METRIC]
    if model <= popular and not force:
        raise QualityGateError(
            f"the model's {GATE_METRIC} {model:.4f} does not beat popularity's {popular:.4f}; "
            "nothing published (--force publishes anyway)"
        )
