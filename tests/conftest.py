"""Shared fixtures: a local S3 (moto server), a model published by the real pipeline, and the service pointed at it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from reccore.layout import Files, Manifest
from reccore.settings import PipelineSettings, get_service_settings
from reccore.storage import ArtifactStore, open_store
from reccore.versions import new_version, publish, read_latest_version, read_manifest, read_verified

REPO = Path(__file__).resolve().parents[1]
BUCKET = "rec-test-artifacts"
MAIN_PREFIX = "main"
SYNTHETIC_INTERACTIONS = 20_000
SEED = 7


@dataclass(frozen=True)
class PublishedModel:
    """A model version published by the real pipeline, plus its files for re-publishing copies."""

    uri: str
    version: str
    manifest: Manifest
    files: dict[str, bytes]


@pytest.fixture
def mock_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's in-process S3 (``mock_aws``) with dummy credentials and no endpoint override; yields a client.

    For fast unit tests. It resets moto's in-process state, which is why ``s3_server`` runs in its own process.
    """
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("s3")  # created inside the mock, as moto requires


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's server in its own process on a free port; AWS_ENDPOINT_URL_{S3,DYNAMODB,FIREHOSE} point at it.

    A separate process, not ``ThreadedMotoServer``: an in-process server shares moto's global state, which
    every ``mock_aws`` in the unit tests resets, wiping the buckets of the session.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_http(endpoint, server)
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
                mp.delenv(name, raising=False)
            # One moto server stands in for every AWS service the system uses.
            for service in ("S3", "DYNAMODB", "FIREHOSE"):
                mp.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def published_model(s3_server: str) -> PublishedModel:
    """A small synthetic model trained and published by ``pipeline.job.run`` into moto's S3."""
    from pipeline.job import run

    uri = f"s3://{BUCKET}/{MAIN_PREFIX}"
    result = run(PipelineSettings(output=uri, interactions=SYNTHETIC_INTERACTIONS, seed=SEED, force=True, tune=False))
    store = open_store(uri)
    manifest = read_manifest(store, result.version)
    files = {name: read_verified(store, manifest, name) for name in Files.ALL}
    return PublishedModel(uri=uri, version=result.version, manifest=manifest, files=files)


def publish_copy(store: ArtifactStore, source: PublishedModel, corrupt: str | None = None) -> str:
    """Publish ``source``'s files as a new version with ``reccore.versions.publish``; returns its id.

    ``corrupt`` names a file to overwrite with other bytes after publishing, so the manifest's
    checksum no longer matches (what a botched upload or a bit flip looks like to a reader).
    """
    manifest = source.manifest.model_copy(update={"version": new_version()})
    published = publish(store, manifest, source.files, retention=50)
    if corrupt is not None:
        store.put(f"models/{published.version}/{corrupt}", b"not the published bytes")
    assert read_latest_version(store) == published.version
    return published.version


@pytest.fixture()
def publish_version() -> Callable[..., str]:
    """:func:`publish_copy` as a fixture (tests cannot import from conftest)."""
    return publish_copy


@pytest.fixture()
def fresh_prefix(s3_server: str, request: pytest.FixtureRequest) -> str:
    """An empty ``s3://bucket/prefix`` of this test's own, so tests that publish cannot disturb others."""
    return f"s3://{BUCKET}/t-{request.node.name[:40]}-{os.urandom(3).hex()}".replace("[", "-").replace("]", "")


@pytest.fixture()
def configure_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, s3_server: str
) -> Iterator[Callable[..., None]]:
    """Point the service at a model location (env + settings cache + registry reset)."""
    from app.registry import registry
    from app.state import reset_state

    cache_dir = str(tmp_path_factory.mktemp("reccore-cache"))

    def configure(uri: str, refresh_seconds: float = 60.0, **env: str) -> None:
        monkeypatch.setenv("REC_MODEL_URI", uri)
        monkeypatch.setenv("REC_REFRESH_SECONDS", str(refresh_seconds))
        monkeypatch.setenv("REC_CACHE_DIR", cache_dir)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_service_settings.cache_clear()
        registry.reset()
        reset_state()

    yield configure
    get_service_settings.cache_clear()
    registry.reset()
    reset_state()


@pytest.fixture()
def client(configure_service: Callable[..., None], published_model: PublishedModel) -> Iterator[Any]:
    """A TestClient on the service serving the session's published model."""
    from fastapi.testclient import TestClient

    from app.main import app

    configure_service(published_model.uri)
    with TestClient(app) as test_client:
        yield test_client
