"""The model registry: lazy load, one load under concurrency, hot swap, broken versions, failure and recovery."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import app.loader as loader_module
import app.registry as registry_module
from app.deps import ModelDep
from app.main import app, create_app
from app.registry import registry
from reccore.layout import LATEST_KEY, Files
from reccore.storage import open_store

SERVICE_ROOT = Path(__file__).resolve().parents[2] / "functions" / "recommend"


@pytest.fixture()
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every ``load_model`` call the registry makes (the version asked for)."""
    calls: list[str | None] = []
    real = loader_module.load_model

    def counting(store: Any, version: str | None = None, **options: Any) -> Any:
        calls.append(version)
        return real(store, version=version, **options)

    monkeypatch.setattr(loader_module, "load_model", counting)
    return calls


@pytest.fixture()
def api() -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _version(api: TestClient) -> str:
    response = api.get("/health")
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_importing_the_handler_touches_no_s3(s3_server: str, published_model: Any) -> None:
    probe = """
import boto3, botocore.client
calls = []
real = botocore.client.BaseClient._make_api_call
def spy(self, name, params):
    calls.append(name)
    return real(self, name, params)
botocore.client.BaseClient._make_api_call = spy
import app.handler
from app.registry import registry
assert registry.model is None
print("after-import", len(calls))
from conftest import make_event, FakeLambdaContext
response = app.handler.handler(make_event("GET", "/health"), FakeLambdaContext())
print("after-request", len(calls), response["statusCode"])
"""
    env = {
        **os.environ,
        "REC_MODEL_URI": published_model.uri,
        "PYTHONPATH": os.pathsep.join(
            [str(SERVICE_ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("after-")]
    assert lines[0] == "after-import 0"
    calls, status = lines[1].split()[1:]
    assert int(calls) >= 2 and status == "200"  # LATEST, manifest, files: the spy does see S3 calls


def test_concurrent_first_requests_load_once(
    configure_service: Callable[..., None], published_model: Any, load_calls: list[str | None]
) -> None:
    configure_service(published_model.uri)
    barrier = threading.Barrier(8)
    results: list[dict[str, Any]] = []

    def first_request() -> None:
        client = TestClient(app)
        barrier.wait()
        results.append(client.get("/health").json())

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 8 and {r["model_version"] for r in results} == {published_model.version}
    assert len(load_calls) == 1
    assert sum(r["first_load"] for r in results) == 1


def test_hot_swap_serves_the_new_version_and_in_flight_requests_keep_theirs(
    configure_service: Callable[..., None], published_model: Any, publish_version: Callable[..., str], fresh_prefix: str
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=0)
    probe_app = create_app()
    started, release = threading.Event(), threading.Event()

    @probe_app.get("/slow")
    def slow(model: ModelDep) -> dict[str, str]:
        started.set()
        assert release.wait(timeout=30)
        return {"version": model.version}  # the Model object this request started with

    api = TestClient(probe_app)
    assert _version(api) == v1
    in_flight: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: in_flight.update(TestClient(probe_app).get("/slow").json()))
    thread.start()
    assert started.wait(timeout=30)
    v2 = publish_version(store, published_model)
    assert _version(api) == v2  # refresh_seconds=0: the next request sees the new LATEST
    release.set()
    thread.join(timeout=30)
    assert in_flight == {"version": v1}
    assert api.post("/recommend", json={"k": 3}).json()["model_version"] == v2


def test_refresh_interval_limits_latest_checks(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=3600)
    assert _version(api) == v1
    publish_version(store, published_model)
    assert _version(api) == v1  # not checked again within the hour


def test_broken_new_version_keeps_the_old_one_until_a_good_one_appears(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
    load_calls: list[str | None],
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=0)
    assert _version(api) == v1
    bad = publish_version(store, published_model, corrupt=Files.ITEM_FACTORS)
    assert _version(api) == v1
    assert load_calls.count(bad) == 1
    for _ in range(3):  # refresh_seconds=0: every request checks LATEST, but the bad version is not re-downloaded
        assert _version(api) == v1
    assert load_calls.count(bad) == 1
    good = publish_version(store, published_model)
    assert _version(api) == good


def test_latest_naming_a_missing_version_keeps_the_old_one(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
) -> None:
    store = open_store(fresh_prefix)
    v1 = publish_version(store, published_model)
    configure_service(fresh_prefix, refresh_seconds=0)
    assert _version(api) == v1
    store.put(LATEST_KEY, b"20990101T000000Z-ghost0")
    assert _version(api) == v1
    store.put(LATEST_KEY, b"")  # an emptied pointer: still serving
    assert _version(api) == v1


def test_no_model_is_503_with_a_public_reason_and_the_location_only_in_the_logs(
    configure_service: Callable[..., None], fresh_prefix: str, api: TestClient, log_lines: io.StringIO
) -> None:
    configure_service(fresh_prefix)
    for response in (api.get("/health"), api.post("/recommend", json={}), api.get("/items")):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "error": "model_unavailable",
            "message": "no model has been published yet; retry later",
        }
        assert "s3://" not in response.text and fresh_prefix.split("/")[-1] not in response.text
    assert f"no model published at {fresh_prefix}/models/LATEST" in log_lines.getvalue()


def test_missing_bucket_is_503(configure_service: Callable[..., None], api: TestClient) -> None:
    configure_service("s3://no-such-bucket-here/models")
    response = api.get("/health")
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"


def test_unsupported_model_uri_is_503(configure_service: Callable[..., None], api: TestClient) -> None:
    configure_service("ftp://somewhere/models")
    response = api.get("/health")
    assert response.status_code == 503 and response.json()["error"] == "misconfigured"


def test_checksum_mismatch_is_503_then_recovers_without_restart(
    configure_service: Callable[..., None],
    published_model: Any,
    publish_version: Callable[..., str],
    fresh_prefix: str,
    api: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    load_calls: list[str | None],
) -> None:
    store = open_store(fresh_prefix)
    publish_version(store, published_model, corrupt=Files.INDEX_IP)
    configure_service(fresh_prefix)
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "error": "model_unavailable",
        "message": "the published model failed its integrity checks; retry later",
    }
    calls = len(load_calls)
    assert api.get("/health").status_code == 503
    assert len(load_calls) == calls, "a failed load is retried at most once a second, not on every request"

    good = publish_version(store, published_model)
    monkeypatch.setattr(registry_module, "MIN_RETRY_SECONDS", 0.0)
    registry._retry_at = 0.0  # the second has passed
    recovered = api.get("/health")
    assert recovered.status_code == 200
    assert recovered.json()["model_version"] == good
    assert recovered.json()["first_load"] is True  # the first model this environment loaded
