"""Faults of the model store over HTTP (moto's server): each leaves a loaded model serving, makes a fresh
environment answer 503 within the wait bound, and heals without a restart. Plus the refusal backoff."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from reliability_stack import Moto

from app.main import app
from app.registry import ModelRegistry, registry
from reccore.encoding import npy_bytes, npy_load
from reccore.layout import LATEST_KEY, Files
from reccore.settings import ServiceSettings
from reccore.storage import ArtifactStore, LocalStore, open_store
from reccore.versions import new_version, publish

BUCKET = "fault-bucket"
# Tight bounds so the tests are quick; the defaults are 1 s / 2 s / 2 attempts / 5 s.
FAST_S3 = {"REC_S3_CONNECT_TIMEOUT": "0.5", "REC_S3_READ_TIMEOUT": "0.5", "REC_S3_MAX_ATTEMPTS": "1"}


@pytest.fixture()
def moto(s3_server: str) -> Iterator[Moto]:
    server = Moto(BUCKET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def api() -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _health(api: TestClient) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    response = api.get("/health")
    return response.status_code, response.json(), time.monotonic() - start


def _serves_every_path(api: TestClient, version: str) -> None:
    for response in (
        api.post("/recommend", json={"k": 3}),
        api.post("/recommend", json={"recent_items": ["i000001", "i000002"], "k": 3}),
        api.post("/recommend", json={"k": 3, "exclude_categories": ["books"]}),
        api.get("/items/i000001/similar?k=3"),
    ):
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == version


def _wait_for(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def _publish_inconsistent(store: ArtifactStore, source: Any) -> str:
    """Files that pass their checksums but disagree: user factors with 3 columns, the index with 50 dims."""
    files = dict(source.files)
    files[Files.USER_FACTORS] = npy_bytes(npy_load(files[Files.USER_FACTORS])[:, :3].copy())
    manifest = source.manifest.model_copy(update={"version": new_version()})
    return publish(store, manifest, files, retention=50).version


def test_stalled_store_loaded_model_keeps_serving_fresh_process_503s_then_recovers(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    moto: Moto,
    api: TestClient,
) -> None:
    v1 = publish_version(moto.store("stall"), published_model)
    uri = f"s3://{BUCKET}/stall"
    configure_service(uri, refresh_seconds=0, AWS_ENDPOINT_URL_S3=moto.endpoint, **FAST_S3)
    assert _health(api)[1]["model_version"] == v1
    _wait_for(lambda: registry.model is not None and not registry.model.parts.pending(), timeout=10)  # prepare()
    moto.pause()  # SIGSTOP: connections are accepted by the kernel, nothing answers
    try:
        for _ in range(3):  # refresh_seconds=0: every request checks LATEST against the stalled store
            status, body, elapsed = _health(api)
            assert status == 200 and body["model_version"] == v1 and elapsed < 2.0
            assert body["stale"] is True and body["stale_reason"] == "store_unreachable"
        _serves_every_path(api, v1)

        # A fresh environment (the registry forgets its model), with a read timeout above the request's wait.
        configure_service(
            uri, refresh_seconds=0, AWS_ENDPOINT_URL_S3=moto.endpoint, REC_S3_READ_TIMEOUT="10",
            REC_LOAD_WAIT_SECONDS="1",
        )  # fmt: skip
        status, body, elapsed = _health(api)
        assert status == 503 and body == {  # the store is not answering: a quick 503 that says so
            "error": "model_unavailable",
            "message": "the model store is not answering; retry later",
        }
        assert 0.9 < elapsed < 2.0
    finally:
        moto.resume()
    # The load started by that request goes on in the background and finishes once S3 answers again.
    _wait_for(lambda: _health(api)[0] == 200, timeout=15)
    status, body, _ = _health(api)
    assert body["model_version"] == v1 and body["stale"] is False


def test_a_part_not_fetched_yet_when_the_store_stalls_is_a_503_for_its_paths_only(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    moto: Moto,
    api: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1 = publish_version(moto.store("parts"), published_model)
    configure_service(f"s3://{BUCKET}/parts", refresh_seconds=3600, AWS_ENDPOINT_URL_S3=moto.endpoint, **FAST_S3)
    monkeypatch.setattr(registry, "_prepare", None)  # no background fetch: the parts wait for their first use
    assert _health(api)[1]["model_version"] == v1
    assert registry.model is not None and set(registry.model.parts.pending()) == set(Files.DEFERRED)
    moto.pause()
    try:
        known = api.post("/recommend", json={"user_id": "u000001", "k": 3})
        assert known.status_code == 200 and known.json()["model_version"] == v1  # needs no deferred part
        for response in (
            api.get("/items/i000001/similar?k=3"),
            api.post("/recommend", json={"recent_items": ["i000001"]}),
        ):
            assert response.status_code == 503 and response.json() == {
                "error": "model_unavailable",
                "message": "part of the model could not be fetched from the store; retry later",
            }
    finally:
        moto.resume()
    _serves_every_path(api, v1)  # fetched by the first request that needs them, once the store answers
    assert registry.model.parts.pending() == [Files.ITEM_MAP]  # only the map needs it


def test_refused_store_loaded_model_keeps_serving_and_recovers_when_it_is_back(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    moto: Moto,
    api: TestClient,
) -> None:
    v1 = publish_version(moto.store("refused"), published_model)
    uri = f"s3://{BUCKET}/refused"
    configure_service(uri, refresh_seconds=0, AWS_ENDPOINT_URL_S3=moto.endpoint, **FAST_S3)
    assert _health(api)[1]["model_version"] == v1
    _wait_for(lambda: registry.model is not None and not registry.model.parts.pending(), timeout=10)  # prepare()
    moto.stop()  # connection refused
    status, body, elapsed = _health(api)
    assert status == 200 and body["model_version"] == v1 and body["stale_reason"] == "store_unreachable"
    assert elapsed < 2.0
    _serves_every_path(api, v1)

    configure_service(uri, refresh_seconds=0, AWS_ENDPOINT_URL_S3=moto.endpoint, **FAST_S3)  # fresh environment
    status, body, elapsed = _health(api)
    assert status == 503 and body["error"] == "model_unavailable" and elapsed < 2.0
    assert "127.0.0.1" not in str(body) and BUCKET not in str(body)

    moto.start()  # back, empty (moto keeps state in memory): republish
    v2 = publish_version(moto.store("refused"), published_model)
    _wait_for(lambda: _health(api)[0] == 200, timeout=5)  # failed loads are retried once a second
    assert _health(api)[1]["model_version"] == v2


def test_emptied_store_keeps_serving_marks_stale_and_recovers(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=0)
    assert _health(api)[1]["model_version"] == v1
    store.delete(store.list_keys(""))
    status, body, _ = _health(api)
    assert status == 200 and body["model_version"] == v1
    assert body["stale_reason"] == "nothing_published"
    configure_service(fresh_prefix, refresh_seconds=0)
    assert _health(api)[0] == 503
    v2 = publish_version(store, published_model)
    registry._retry_at = 0.0  # skip the one-second retry pause
    assert _health(api)[1]["model_version"] == v2


def test_shape_inconsistent_version_is_refused_logged_and_remembered(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
    log_lines: Any,
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=0)
    assert _health(api)[1]["model_version"] == v1
    bad = _publish_inconsistent(store, published_model)
    for _ in range(3):
        status, body, _ = _health(api)
        assert status == 200 and body["model_version"] == v1
        assert body["stale"] is True and body["stale_reason"] == "version_refused"
    _serves_every_path(api, v1)
    logs = log_lines.getvalue()
    assert logs.count('"new model version refused') == 1  # remembered: not downloaded again within its backoff
    assert bad in logs and "user_factors.npy has shape" in logs

    configure_service(fresh_prefix, refresh_seconds=0)  # a fresh environment cannot serve it either
    status, body, _ = _health(api)
    assert status == 503 and body["message"] == "the model could not be loaded; retry later"

    good = publish_version(store, published_model)
    registry._retry_at = 0.0
    status, body, _ = _health(api)
    assert status == 200 and body["model_version"] == good and body["stale"] is False


def test_latest_pointing_nowhere_fresh_environment_is_503_then_recovers(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
) -> None:
    store = open_store(fresh_prefix)
    store.put(LATEST_KEY, b"20990101T000000Z-ghost0")
    configure_service(fresh_prefix, refresh_seconds=0)
    status, body, _ = _health(api)
    assert status == 503 and "ghost" not in str(body)
    good = publish_version(store, published_model)
    registry._retry_at = 0.0
    assert _health(api)[1]["model_version"] == good


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_version_is_retried_with_exponential_backoff(published_model: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "models")
    v1 = publish(store, published_model.manifest.model_copy(update={"version": new_version()}), published_model.files)
    clock = FakeClock()
    settings = ServiceSettings(model_uri=str(store.root), refresh_seconds=10, cache_dir=str(tmp_path / "cache"))
    attempts: list[str] = []

    def validate(model: Any) -> None:
        attempts.append(model.version)
        from reccore.validation import validate_model

        validate_model(model)

    reg = ModelRegistry(settings=lambda: settings, clock=clock, validate=validate)
    assert reg.acquire().version == v1.version
    bad = _publish_inconsistent(store, published_model)
    retries: list[float] = []
    for _ in range(60):  # ten simulated minutes, a request every 10 s
        clock.now += 10
        before = attempts.count(bad)
        assert reg.acquire().version == v1.version
        if attempts.count(bad) > before:
            retries.append(clock.now)
        assert reg.stale_reason == "version_refused"
    gaps = np.diff(retries).tolist()
    assert gaps[:4] == [10.0, 20.0, 40.0, 80.0]  # max(refresh, 1 s) · 2^(failures-1)
    assert len(retries) < 10  # not once per refresh (60 times)
