"""The Spark engine end to end: it agrees with the single-process engine, records itself, and never
publishes on failure or interruption."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyspark.sql import SparkSession

from pipeline.engine import SingleProcessEngine
from pipeline.job import run
from pipeline.package import package
from pipeline.spark.engine import SparkEngine
from pipeline.tuning.search import settings_config
from reccore.errors import DataSourceError
from reccore.settings import PipelineSettings
from reccore.storage import open_store
from reccore.versions import publish, read_latest_version, read_manifest

USERS_COMPARED = 300


def _publish(engine: SingleProcessEngine | SparkEngine, output: Path) -> np.ndarray:
    """Train on all rows, publish through reccore like the job does; returns the singular values."""
    log = engine.load()
    trained = engine.train(log, None, settings_config(engine.settings))
    manifest, files = package(log, trained, "flat", {"seed": 42}, 42)
    manifest.engine = engine.name
    publish(open_store(str(output)), manifest, files)
    return trained.singular_values


@pytest.fixture
def served(configure_service: Any) -> Iterator[Any]:
    from app.main import app

    def top10(uri: str, users: list[str]) -> dict[str, list[str]]:
        configure_service(uri)
        with TestClient(app) as client:
            answers = {u: client.post("/recommend", json={"user_id": u, "k": 10}) for u in users}
            assert all(r.status_code == 200 for r in answers.values())
            assert client.get("/health").json()["model_version"] == read_latest_version(open_store(uri))
            return {u: [item["item_id"] for item in r.json()["items"]] for u, r in answers.items()}

    yield top10


def test_engines_agree_on_the_same_100k(
    spark: SparkSession, synthetic_100k: tuple[str, str], tmp_path: Path, served: Any
) -> None:
    source, items = synthetic_100k
    settings = PipelineSettings(source=source, items=items, seed=42)
    single = _publish(SingleProcessEngine(settings), tmp_path / "single")
    engine = SparkEngine(settings.model_copy(update={"engine": "spark"}), spark)
    distributed = _publish(engine, tmp_path / "spark")
    engine.close()
    np.testing.assert_allclose(distributed, single, rtol=1e-3)

    store = open_store(str(tmp_path / "spark"))
    assert read_manifest(store, read_latest_version(store)).engine == "spark"
    users = sorted(np.random.default_rng(0).choice(sorted(_user_ids(source)), USERS_COMPARED, replace=False))
    lists = {name: served(str(tmp_path / name), users) for name in ("single", "spark")}
    overlaps = [len(set(lists["single"][u]) & set(lists["spark"][u])) / 10 for u in users]
    assert np.mean(overlaps) >= 0.95, f"mean top-10 overlap {np.mean(overlaps):.3f}"


def _user_ids(source: str) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_table(source, columns=["user_id"])["user_id"].to_pylist())


@pytest.fixture(scope="module")
def spark_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """One ``run`` with the Spark engine on 5k synthetic interactions: (output directory, version, metrics)."""
    output = tmp_path_factory.mktemp("spark-run")
    settings = PipelineSettings(output=str(output), interactions=5_000, seed=3, engine="spark", force=True, tune=False)
    engine = SparkEngine(settings, spark)
    result = run(settings, engine=engine)
    engine.close()
    return output, result.version, result.metrics


def test_run_with_spark_publishes_a_model_recorded_as_spark(spark_run: tuple[Path, str, dict[str, Any]]) -> None:
    output, version, metrics = spark_run
    store = open_store(str(output))
    assert read_latest_version(store) == version
    manifest = read_manifest(store, version)
    assert manifest.engine == "spark" and manifest.data["n_interactions"] == 5_000
    assert set(metrics) == {"model", "popularity"} and metrics["model"]["users"] > 0


def test_bad_input_publishes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,weight\nu1,i1,heavy\n")
    settings = PipelineSettings(source=str(bad), output=str(tmp_path / "out"), engine="spark")
    with pytest.raises(DataSourceError, match="column 'weight' is not a number"):
        run(settings, engine=SparkEngine(settings, spark))
    assert not (tmp_path / "out" / "models" / "LATEST").exists()


def test_an_interrupted_spark_job_never_moves_latest(
    spark: SparkSession,
    synthetic_small: tuple[str, str],
    spark_run: tuple[Path, str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(spark_run[0], tmp_path, dirs_exist_ok=True)  # a published model to protect
    first = spark_run[1]
    interactions, items = synthetic_small
    settings = PipelineSettings(
        source=interactions, items=items, output=str(tmp_path), engine="spark", force=True, tune=False
    )

    training = threading.Event()
    original = SparkEngine.train

    def train_and_signal(self: SparkEngine, log: Any, test: Any, config: Any) -> Any:
        training.set()
        return original(self, log, test, config)

    monkeypatch.setattr(SparkEngine, "train", train_and_signal)
    failure: list[BaseException] = []

    def second_run() -> None:
        try:
            run(settings, engine=SparkEngine(settings, spark))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            failure.append(exc)

    worker = threading.Thread(target=second_run)
    worker.start()
    assert training.wait(timeout=300)
    while worker.is_alive():  # cancel every Spark job of the run until it gives up (as a killed job would)
        spark.sparkContext.cancelAllJobs()
        worker.join(timeout=0.05)
    assert failure, "the run finished despite its jobs being cancelled"
    store = open_store(str(tmp_path))
    assert read_latest_version(store) == first
    assert len(store.list_keys("models/")) == len(store.list_keys(f"models/{first}/")) + 1  # + LATEST only
