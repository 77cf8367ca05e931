"""Lambda freezes the execution environment between invocations: a background thread runs only while some
invocation does. Simulated here with a real uvicorn process frozen (SIGSTOP) after every answer and thawed
(SIGCONT) just before the next request, as Lambda does, with ``AWS_LAMBDA_RUNTIME_API`` set as Lambda sets it.

What must hold: the first load and a swap finish within the invocation that needs them (not after dozens of
invocations), ``/health`` tells the truth about the version served, and a path that needs a part of the model
fetched after the first answer (fold-in, similar items) gets it within its own invocation.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.client import free_port, service_command
from reccore.storage import open_store
from tests.integration.stack import REPO, aws_env, base_env, http, start, stop, tail, wait_until

pytestmark = pytest.mark.slow


class Frozen:
    """A uvicorn process that runs only while a request is in flight."""

    def __init__(self, process: Any, url: str) -> None:
        self.process, self.url = process, url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any], float]:
        os.killpg(self.process.pid, signal.SIGCONT)
        start_at = time.monotonic()
        try:
            status, _, raw = http(method, self.url + path, body, timeout=30)
        finally:
            elapsed = time.monotonic() - start_at
            os.killpg(self.process.pid, signal.SIGSTOP)
        return status, json.loads(raw), elapsed


@pytest.fixture()
def frozen(
    published_model: Any, s3_server: str, fresh_prefix: str, publish_version: Callable[..., str], tmp_path: Any
) -> Iterator[tuple[Frozen, str]]:
    version = publish_version(open_store(fresh_prefix), published_model)
    port, log = free_port(), tmp_path / "uvicorn.log"
    env = base_env(
        **aws_env(s3_server),
        PYTHONPATH=os.pathsep.join([str(REPO / "layers" / "reccore"), str(REPO)]),
        REC_MODEL_URI=fresh_prefix,
        REC_CACHE_DIR=str(tmp_path / "cache"),
        REC_REFRESH_SECONDS="0",  # every invocation reads LATEST: a new version is found by the next one
        REC_LOG_LEVEL="WARNING",
        AWS_LAMBDA_RUNTIME_API="127.0.0.1:9001",  # what Lambda sets: the registry behaves as on Lambda
    )
    process = start(service_command(port), cwd=REPO, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _root_answers(url), 60, "uvicorn listening", process)
        os.killpg(process.pid, signal.SIGSTOP)  # nothing runs between invocations, from the first one on
        yield Frozen(process, url), version
    finally:
        os.killpg(process.pid, signal.SIGCONT)
        stop(process)
        assert "Traceback" not in tail(log, 400), tail(log)


def _root_answers(url: str) -> bool:
    try:
        return http("GET", url + "/", timeout=5)[0] == 200  # the root route needs no model: nothing loads
    except OSError:
        return False


def test_loads_and_swaps_finish_within_the_invocation_that_needs_them(
    frozen: tuple[Frozen, str], fresh_prefix: str, published_model: Any, publish_version: Callable[..., str]
) -> None:
    api, v1 = frozen
    status, body, _ = api.call("POST", "/recommend", {"k": 5})  # the cold start: one invocation
    assert status == 200 and body["model_version"] == v1
    # A part fetched after the first answer: the background fetch is frozen, this invocation gets it.
    for method, path, request in (
        ("POST", "/recommend", {"recent_items": [body["items"][0]["item_id"]], "k": 5}),
        ("GET", f"/items/{body['items'][0]['item_id']}/similar?k=5", None),
    ):
        status, answer, _ = api.call(method, path, request)
        assert status == 200 and answer["model_version"] == v1, answer

    v2 = publish_version(open_store(fresh_prefix), published_model)
    status, body, _ = api.call("POST", "/recommend", {"k": 5})  # the invocation that finds v2 waits for it
    assert status == 200 and body["model_version"] == v2
    status, health, _ = api.call("GET", "/health")
    assert status == 200 and health["model_version"] == v2 and health["stale"] is False
    status, similar, _ = api.call("GET", "/items/" + body["items"][0]["item_id"] + "/similar?k=5")
    assert status == 200 and similar["model_version"] == v2  # v2's parts came with the swap
