"""The pipeline job: load → split → tune → evaluate on the split → retrain on everything → index → publish.

``run`` is what both the CLI and the Lambda handler call. The stages that depend on the data's
scale (load, split, the weighted matrix and its SVD) sit behind an :class:`pipeline.engine.Engine`: this
process (``single-process``) or Spark (``pipeline.spark``); evaluation, packaging and publishing are shared.
A run whose input and settings match the live model reuses it (:mod:`pipeline.reuse`); after publishing,
users go into the state table (:mod:`pipeline.usersync`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.data import InteractionLog
from pipeline.engine import Engine, make_engine
from pipeline.evaluate import MAX_EVAL_USERS, default_objective, evaluate, load_as_served, relevant_items, sample_users
from pipeline.package import package
from pipeline.reporting import StageEvent, StageHook
from pipeline.reuse import live_match, run_fingerprint
from pipeline.train import ModelConfig
from pipeline.tuning.search import TuningResult, settings_config, tune_for_run, tuning_enabled
from pipeline.usersync import sync_and_record
from reccore.encoding import decode_dir
from reccore.errors import ConfigError, QualityGateError
from reccore.layout import LATEST_KEY, MANIFEST_NAME, Manifest, version_key
from reccore.model import assemble
from reccore.settings import PipelineSettings
from reccore.storage import S3Store, open_store
from reccore.validation import validate_model
from reccore.versions import publish

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
    params: dict[str, Any] = field(default_factory=dict)  # the model's hyperparameters
    tuning: str | None = None  # one-line summary of the validation search, if one ran
    user_sync: dict[str, Any] | None = None  # what the sync to the user-state table did (None: no table)
    reused: bool = False  # True: the live model already matched this input and settings; nothing was trained

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


def run(
    settings: PipelineSettings,
    progress: bool = False,
    on_stage: StageHook | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Run the whole job with ``settings``; raises a ``RecError`` and publishes nothing on failure.

    ``progress`` draws progress bars; ``on_stage`` is called as each stage starts and ends; ``engine``
    defaults to the one ``settings.engine`` names.

    Runs with one BLAS thread, so the published arrays do not depend on the machine's core count: a 2-thread
    SVD differs from a 1-thread one in the last bits. Sparse products dominate, so it costs little (training
    measured here: 1M interactions 0.7 s either way, 5M 3.5 s either way, 10M 8.6 s against 7.6 s).
    """
    with threadpool_limits(1, user_api="blas"):
        return _run(settings, progress, on_stage, engine or make_engine(settings))


def check_output(uri: str) -> None:
    """Fail at once, in one line, if the output cannot be reached: before training, not after it.

    Raises
    ------
    ConfigError
        No credentials, no such bucket, an endpoint that does not answer, access denied.
    """
    store = open_store(uri)
    try:
        # S3Store.list_keys reads a missing bucket as empty (a reader's view); a publisher must hear of it.
        if isinstance(store, S3Store):  # one listing call: credentials, the bucket and the endpoint at once
            store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.key(LATEST_KEY), MaxKeys=1)
        else:
            store.list_keys(LATEST_KEY)
    except Exception as exc:  # any failure here means the publish would fail after the training
        reason = "no AWS credentials found" if type(exc).__name__ == "NoCredentialsError" else f"{exc}"
        raise ConfigError(
            f"cannot publish to {uri}: {reason}. Publish to a directory instead: --output DIR (e.g. --output ./models)"
        ) from exc


def _run(settings: PipelineSettings, progress: bool, on_stage: StageHook | None, engine: Engine) -> RunResult:
    stage = _Stages(on_stage)
    check_output(settings.output)

    with stage("load"):
        log = engine.load()
    fingerprint = run_fingerprint(settings, log)
    if settings.reuse:
        reused = _reuse(settings, log, fingerprint, stage)
        if reused is not None:
            return reused
    objective = settings.split or default_objective(log)
    with stage("split"):
        test = engine.split(log, objective)
    config, tuning = settings_config(settings), None
    if tuning_enabled(settings, log):
        # The search trains in this process on the driver's log (a log small enough to tune is small enough).
        with stage("tune on validation folds of the training data"):
            tuning = tune_for_run(log, test, settings, objective)
        config = tuning.best
    params = {"seed": settings.seed, "index": settings.index, "source": settings.source, **config.params()}
    params["tuned"] = tuning is not None
    params["split"] = objective
    params["fingerprint"] = fingerprint
    metrics = _holdout_metrics(log, test, engine, settings, config, stage, progress)
    _check_beats_popularity(metrics, settings.force)

    with stage("train on all data"):
        trained = engine.train(log, None, config)
    with stage("index"):
        user_arrays = settings.user_arrays if settings.user_arrays is not None else not settings.user_table
        manifest, files = package(
            log, trained, settings.index, params, settings.seed, user_arrays,
            min_recall=settings.min_recall, exact_below=settings.exact_below,
        )  # fmt: skip
        manifest.metrics = metrics
        manifest.engine = engine.name
        manifest.tuning = _tuning_record(tuning)
        if "events" in log.extra:
            manifest.data["events"] = log.extra["events"]
    # A second guard: choose_indexes already refuses an index that misses the gate.
    measured = [r for r in (manifest.index.recall_at_10, manifest.index.filtered_recall_at_10) if r is not None]
    recall = min(measured) if measured else None
    if recall is not None and recall < settings.min_recall:
        raise QualityGateError(
            f"{settings.index} index recall@10 is {recall:.3f} against exact search, below --min-recall "
            f"{settings.min_recall}; nothing published (use --index flat or lower --min-recall)"
        )
    with stage("validate"):
        _validate_thoroughly(manifest, files)
    with stage("publish"):
        store = open_store(settings.output)
        published = publish(store, manifest, files, retention=settings.retention)
    sync = None
    if settings.user_table:
        with stage("sync users"):
            sync = sync_and_record(log, settings, store, published.version)
    return RunResult(
        version=published.version,
        uri=f"{store.uri}/{version_key(published.version, MANIFEST_NAME)}",
        metrics=metrics,
        data=published.data,
        index=published.index.model_dump(),
        timings=stage.timings,
        sizes={name: len(data) for name, data in files.items()},
        params=params,
        tuning=tuning.summary if tuning is not None else None,
        user_sync=sync,
    )


def _reuse(settings: PipelineSettings, log: InteractionLog, fingerprint: str, stage: _Stages) -> RunResult | None:
    """The live model at ``settings.output`` if it was trained on the same log with the same settings, else None."""
    store = open_store(settings.output)
    manifest = live_match(store, fingerprint)
    if manifest is None:
        return None
    sync = None
    if settings.user_table:
        with stage("sync users"):  # every user: the table may be new even though the model is not
            sync = sync_and_record(log, settings, store, manifest.version, full=True)
    return RunResult(
        version=manifest.version,
        uri=f"{store.uri}/{version_key(manifest.version, MANIFEST_NAME)}",
        metrics=manifest.metrics,
        data=manifest.data,
        index=manifest.index.model_dump(),
        timings=stage.timings,
        params=manifest.params,
        tuning=f"reused: {manifest.version} was trained on this input with these settings (--no-reuse retrains)",
        user_sync=sync,
        reused=True,
    )


def _validate_thoroughly(manifest: Manifest, files: dict[str, bytes]) -> None:
    """Every value of the files about to be published, as the service will map them (``validate_model(thorough)``).

    The service checks only what is cheap when it loads (the checksums prove the bytes are these), so the value
    scans happen once, here: a version that fails them is never published.
    """
    with tempfile.TemporaryDirectory(prefix="recsys-publish-") as scratch:
        for name, data in files.items():
            (Path(scratch) / name).write_bytes(data)
        validate_model(assemble(manifest, decode_dir(scratch, manifest.index.type)), thorough=True)


def _tuning_record(tuning: TuningResult | None) -> dict[str, Any] | None:
    return tuning.to_manifest() if tuning is not None else None


def _holdout_metrics(
    log: InteractionLog,
    test_mask: np.ndarray,
    engine: Engine,
    settings: PipelineSettings,
    config: ModelConfig,
    stage: _Stages,
    progress: bool,
) -> dict[str, dict[str, float]]:
    """Train on all but the ``test_mask`` rows and evaluate on those, through the served code path.

    A function of its own so that the held-out model's memory is released before the final training.
    """
    with stage("select test users"):
        train_log = log.subset(~test_mask)
        test_users = np.flatnonzero(np.bincount(log.users[test_mask], minlength=log.n_users))
        users = sample_users(test_users.tolist(), MAX_EVAL_USERS, settings.seed)
        relevant = relevant_items(train_log, log.subset(test_mask), users)
    with stage("train on the training split"):
        model = load_as_served(train_log, engine.train(log, test_mask, config), settings.seed, **config.params())
    with stage("evaluate"):
        return evaluate(model, relevant, settings.seed, progress=progress)


def _check_beats_popularity(metrics: dict[str, dict[str, float]], force: bool) -> None:
    model, popular = metrics["model"][GATE_METRIC], metrics["popularity"][GATE_METRIC]
    if model <= popular and not force:
        raise QualityGateError(
            f"the model's {GATE_METRIC} {model:.4f} does not beat popularity's {popular:.4f}; "
            "nothing published (--force publishes anyway)"
        )
