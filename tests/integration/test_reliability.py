"""The standing reliability checks over real HTTP: issue 9's curl through uvicorn, and a bounded schemathesis run.

`make reliability` runs the longer versions (scripts/reliability.py) and writes docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from pipeline.client import free_port, service_command
from tests.integration.stack import REPO, aws_env, base_env, http, start, stop, tail, wait_until

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS_SECONDS = 30  # the whole test stays under a minute; `make reliability` runs longer
ISSUE_BODY = '{"recent_items":["\\udfff"]}'  # what curl sends for --data-binary '{"recent_items":["\udfff"]}'


@pytest.fixture(scope="module")
def live_api(published_model: Any, s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving the session's published model on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    env = base_env(
        **aws_env(s3_server),
        PYTHONPATH=os.pathsep.join([str(REPO / "layers" / "reccore"), str(REPO)]),
        REC_MODEL_URI=published_model.uri,
        REC_CACHE_DIR=str(log.parent / "cache"),
        REC_LOG_LEVEL="WARNING",
    )
    process = start(service_command(port), cwd=REPO, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(url + "/health") == 200, 60, "uvicorn answering /health", process)
        yield url
    finally:
        stop(process)
        assert "Traceback" not in tail(log, 400), tail(log)


def _status(url: str) -> int:
    try:
        return http("GET", url, timeout=5)[0]
    except OSError:
        return 0


def test_the_issue_curl_gets_a_422_and_the_connection_stays_usable(live_api: str) -> None:
    curl = subprocess.run(
        ["curl", "-s", "-w", "\\n%{http_code}", "-X", "POST", f"{live_api}/recommend",
         "-H", "content-type: application/json", "--data-binary", '{"recent_items":["\\udfff"]}'],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    body, status = curl.stdout.rsplit("\n", 1)
    assert status == "422", curl.stdout
    assert json.loads(body)["error"] == "validation_error"

    host, port = live_api.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:  # one keep-alive connection: the bad request, then a good one on the same socket
        connection.request("POST", "/recommend", ISSUE_BODY.encode(), {"content-type": "application/json"})
        first = connection.getresponse()
        assert first.status == 422 and json.loads(first.read())["error"] == "validation_error"
        connection.request("POST", "/recommend", b'{"k": 2}', {"content-type": "application/json"})
        second = connection.getresponse()
        assert second.status == 200 and len(json.loads(second.read())["items"]) == 2
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/items/%ED%BF%BF", "/users/%ED%BF%BF", "/items?q=%ED%BF%BF"])
def test_non_utf8_paths_and_queries_are_422_over_http(live_api: str, path: str) -> None:
    status, headers, body = http("GET", live_api + path, timeout=10)
    assert status == 422 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "validation_error"


def test_schemathesis_finds_no_failure(live_api: str, tmp_path: Path) -> None:
    """All checks, every phase, bounded in time: no 5xx, no schema violation, no undocumented status."""
    assert SCHEMATHESIS.exists(), "schemathesis is in the dev extra: make install"
    command = [
        str(SCHEMATHESIS), "--config-file", str(SCHEMATHESIS_CONFIG), "run", f"{live_api}/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful", "--checks", "all",
        "--max-time", str(SCHEMATHESIS_SECONDS), "--seed", "9", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=SCHEMATHESIS_SECONDS * 3, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None and int(generated.group(1)) >= 100, output[-2000:]
