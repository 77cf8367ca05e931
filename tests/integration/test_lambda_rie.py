"""Lambda runtime parity without Docker: each image's CMD under the Runtime Interface Emulator and awslambdaric.

The handler runs in a virtual environment holding only the image's requirements.txt, awslambdaric and
reccore (``--no-deps``), from a task root holding only what the Dockerfile copies. A module the image
would miss fails here the way it would fail in Lambda.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.client import free_port
from reccore.errors import ModelNotFoundError
from reccore.storage import open_store
from reccore.versions import read_latest_version, read_manifest
from tests.integration.stack import (
    REPO,
    RIE,
    api_events,
    aws_env,
    base_env,
    check_event_answer,
    http,
    lambda_answer,
    port_is_open,
    runtime_venv,
    start,
    stop,
    tail,
    wait_until,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Emulator:
    url: str
    log: Path

    def invoke(self, event: Any, timeout: float = 60.0) -> Any:
        status, _, body = http("POST", f"{self.url}/2015-03-31/functions/function/invocations", event, timeout=timeout)
        assert status == 200, f"emulator answered {status}: {body[:500]!r}\n{tail(self.log)}"
        return json.loads(body)


def run_emulator(
    tmp: Path, venv: Path, handler: str, packages: dict[str, Path], env: dict[str, str]
) -> Iterator[Emulator]:
    """The RIE on a free port, running ``python -m awslambdaric handler`` from a task root of ``packages``."""
    assert RIE is not None, "aws-lambda-rie-x86_64 not found: install aws-sam-cli into .venv-sam (make test does)"
    task_root = tmp / "task"
    for name, source in packages.items():
        shutil.copytree(source, task_root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    port, runtime_api_port = free_port(), free_port()  # the runtime API's default, 9001, may be taken
    log = tmp / "rie.log"
    process = start(
        [str(RIE), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
         "--runtime-api-address", f"127.0.0.1:{runtime_api_port}",
         str(venv / "bin" / "python"), "-m", "awslambdaric", handler],
        cwd=task_root, env={**env, "LAMBDA_TASK_ROOT": str(task_root)}, log=log,
    )  # fmt: skip
    try:
        wait_until(lambda: port_is_open(port), 30, f"the emulator on port {port}", process)
        yield Emulator(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def recommend_emulator(
    tmp_path_factory: pytest.TempPathFactory, s3_server: str, published_model: Any
) -> Iterator[Emulator]:
    venv = runtime_venv(REPO / "functions" / "recommend" / "requirements.txt")
    tmp = tmp_path_factory.mktemp("rie-recommend")
    env = base_env(
        **aws_env(s3_server),
        AWS_LAMBDA_FUNCTION_NAME="RecommendFunction",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_LAMBDA_FUNCTION_TIMEOUT="15",
        REC_MODEL_URI=published_model.uri,
        REC_CACHE_DIR=str(tmp / "cache"),
    )
    yield from run_emulator(tmp, venv, "app.handler.handler", {"app": REPO / "functions/recommend/app"}, env)


@pytest.mark.parametrize("name", sorted(api_events()))
def test_recommend_handler_answers_every_api_event(
    name: str, recommend_emulator: Emulator, published_model: Any
) -> None:
    status, body = lambda_answer(recommend_emulator.invoke(api_events()[name]))
    check_event_answer(name, status, body, published_model.version)


def test_recommend_handler_logs_structured_json(recommend_emulator: Emulator) -> None:
    recommend_emulator.invoke(api_events()["health.json"])
    records = [json.loads(line) for line in recommend_emulator.log.read_text().splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("message") == "request"]
    assert requests, tail(recommend_emulator.log)
    assert all("model_version" in r and "first_load" in r for r in requests)


def test_pipeline_handler_publishes_a_new_version(
    tmp_path: Path, s3_server: str, fresh_prefix: str, published_model: Any
) -> None:
    venv = runtime_venv(REPO / "functions" / "pipeline" / "requirements.txt")
    event = json.loads((REPO / "events" / "pipeline_small.json").read_text())
    env = base_env(
        **aws_env(s3_server),
        AWS_LAMBDA_FUNCTION_NAME="PipelineFunction",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="3008",
        AWS_LAMBDA_FUNCTION_TIMEOUT="900",
        REC_OUTPUT=fresh_prefix,
    )
    store = open_store(fresh_prefix)
    with pytest.raises(ModelNotFoundError):
        read_latest_version(store)
    for emulator in run_emulator(tmp_path, venv, "pipeline.handler.handler", {"pipeline": REPO / "pipeline"}, env):
        result = emulator.invoke(event, timeout=300)
        assert "errorType" not in result, f"the pipeline raised: {result}\n{tail(emulator.log)}"
        assert result["uri"].startswith(f"{fresh_prefix}/")
        assert result["data"]["n_interactions"] == event["interactions"]
        # LATEST moved to the version the handler reported, and that version reads back verified.
        assert read_latest_version(store) == result["version"] != published_model.version
        assert read_manifest(store, result["version"]).version == result["version"]
