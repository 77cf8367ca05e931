"""The S3 store's bounds: explicit timeouts and attempts, and a stalled endpoint failing fast."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from reccore.storage import S3Store, S3Timeouts, open_store


@pytest.fixture()
def stalled_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A port that accepts TCP connections (the kernel's backlog) but never answers: a stopped S3."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield endpoint
    finally:
        listener.close()


def test_the_client_carries_the_configured_timeouts(mock_s3: object) -> None:
    store = open_store("s3://some-bucket/prefix", timeouts=S3Timeouts(connect=0.5, read=1.5, max_attempts=3))
    assert isinstance(store, S3Store)
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.5)
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_without_timeouts_the_client_keeps_botocores_defaults(mock_s3: object) -> None:
    store = open_store("s3://some-bucket/prefix")
    assert isinstance(store, S3Store)
    assert store.client.meta.config.read_timeout == 60


def test_a_stalled_endpoint_fails_within_attempts_times_the_read_timeout(stalled_endpoint: str) -> None:
    timeouts = S3Timeouts(connect=0.3, read=0.3, max_attempts=2)
    store = open_store("s3://some-bucket/prefix", timeouts=timeouts)
    start = time.monotonic()
    with pytest.raises(Exception, match=r"timeout|Read timed out") as raised:
        store.get("models/LATEST")
    elapsed = time.monotonic() - start
    assert "ReadTimeout" in type(raised.value).__name__
    # Two attempts of 0.3 s plus standard-mode backoff (at most 1 s): far below botocore's 60 s default.
    assert elapsed < timeouts.max_attempts * (timeouts.connect + timeouts.read) + 1.5
