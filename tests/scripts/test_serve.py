"""`make serve MODEL=DIR` (scripts/serve.py): a real uvicorn process serves a directory model over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from processes import port_is_free

from pipeline.client import free_port
from pipeline.job import run
from reccore.settings import PipelineSettings, env_name

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "scripts" / "serve.py"


@pytest.fixture(scope="module")
def directory_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    output = tmp_path_factory.mktemp("models")
    result = run(PipelineSettings(output=str(output), interactions=5000, seed=5, force=True))
    return output, result.version


def request(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_healthy(base: str, process: subprocess.Popen[str], timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            status, body = request(f"{base}/health")
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no healthy answer at {base} within {timeout:.0f} s")


def stop(process: subprocess.Popen[str]) -> int:
    """Ctrl-C to the whole session (make and its child), then a hard stop if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise


def test_make_serve_serves_a_directory_model(directory_model: tuple[Path, str], tmp_path: Path) -> None:
    model_dir, version = directory_model
    port = free_port()
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "serve", f"MODEL={model_dir}",
               f"API_PORT={port}", f"PY={sys.executable}"]  # fmt: skip
    env = {**os.environ, env_name("cache_dir"): str(tmp_path / "cache")}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        health = wait_healthy(base, process)
        assert health["model_version"] == version
        status, body = request(f"{base}/recommend", {"k": 3})
        assert status == 200 and body["model_version"] == version and len(body["items"]) == 3
    finally:
        stop(process)  # make itself reports the Ctrl-C in its exit code; uvicorn shuts down cleanly
    output = process.stdout.read() if process.stdout else ""
    assert f"serve: {version} from {model_dir}" in output
    assert "Traceback" not in output
    assert port_is_free("127.0.0.1", port), "the server is still listening after Ctrl-C"


def test_serve_without_a_model_is_one_message(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SERVE), "--model", str(tmp_path / "empty"), "--port",
                             str(free_port())], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no model to serve" in result.stderr and "empty" in result.stderr


def test_serve_on_a_taken_port_is_one_message_before_anything_else(directory_model: tuple[Path, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(SERVE), "--model", str(directory_model[0]), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"port {port} is taken" in result.stderr and "API_PORT" in result.stderr
    assert "serve:" not in result.stdout  # no banner first
