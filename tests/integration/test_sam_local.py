"""`sam build`, `sam local start-api` and `sam local invoke` against a local S3, on this offline machine.

Needs the docker engine (``apt-get install docker.io``; started here if none answers) and, when the real
Lambda base image cannot be pulled, the offline stand-in from ``scripts/standin_base_image.sh``
(``debootstrap``). Nothing here is skipped: a missing tool fails the test with what to install.

The local S3 listens on the docker bridge's gateway address, not on 127.0.0.1: sam 1.x does not put the
function's container on the host network even with ``--docker-network host`` (aws/aws-sam-cli#4236), so
the container reaches the host only through the bridge. The host reaches that address too.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_stack import provision_realtime, sam_local_env_vars
from moto.server import ThreadedMotoServer

from pipeline.client import free_port
from reccore.storage import S3Store
from reccore.versions import new_version, publish, read_latest_version
from tests.integration.stack import (
    KNOWN_ITEM,
    KNOWN_USER,
    REPO,
    SAM,
    api_events,
    aws_env,
    base_env,
    check_event_answer,
    docker_bridge_address,
    http,
    port_is_open,
    start,
    stop,
    tail,
    wait_until,
)

pytestmark = pytest.mark.slow

BUCKET, PREFIX = "recsys-local", "recsys"  # samconfig.toml's local parameter_overrides name this location
REALTIME = "recsys-local-users"
SAMCONFIG = REPO / "samconfig.toml"


def run(command: list[str], timeout: float, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Run to completion within ``timeout`` s and return stdout; on failure, the output is the assertion message."""
    result = subprocess.run(command, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True)
    output = f"{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{output}"
    return result.stdout


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A running docker engine: the one that answers, else dockerd started (and stopped) here."""
    assert shutil.which("docker"), "the docker client is missing: apt-get install -y docker.io"
    if docker_answers():
        yield
        return
    data_root = tmp_path_factory.mktemp("dockerd")
    run([str(REPO / "scripts" / "start_dockerd.sh"), str(data_root)], timeout=120)
    try:
        yield
    finally:
        pid = int((data_root / "dockerd.pid").read_text())
        subprocess.run(["kill", str(pid)], check=False)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to stop")


@pytest.fixture(scope="module")
def sam_env() -> dict[str, str]:
    """sam's own environment: dummy credentials (it passes them to the function), no telemetry."""
    assert SAM.exists(), f"{SAM} is missing: make test installs aws-sam-cli into .venv-sam"
    env = base_env(**aws_env("http://unused.invalid"), SAM_CLI_TELEMETRY="0")
    del env["AWS_ENDPOINT_URL_S3"]  # the function gets it from --env-vars; sam itself talks to no AWS API
    return env


@pytest.fixture(scope="module")
def built_template(docker_engine: None, sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of both image functions into a temp dir (on the stand-in base if the real one can't be pulled)."""
    run([str(REPO / "scripts" / "standin_base_image.sh")], timeout=900)
    work = tmp_path_factory.mktemp("sam-build")
    # From a temp cwd, so sam's own scratch (.aws-sam/deps) stays out of the repo; samconfig.toml is still
    # found beside the template.
    run(
        [str(SAM), "build", "--template", str(REPO / "template.yaml"),
         "--build-dir", str(work / "build"), "--cache-dir", str(work / "cache")],
        cwd=work, env=sam_env, timeout=900,
    )  # fmt: skip
    return work / "build" / "template.yaml"


@pytest.fixture(scope="module")
def bridge_s3(docker_engine: None, published_model: Any) -> Iterator[str]:
    """A moto S3 on the docker bridge's gateway address, holding the session's model at s3://recsys-local/recsys."""
    server = ThreadedMotoServer(ip_address=docker_bridge_address(), port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    try:
        client.create_bucket(Bucket=BUCKET)
        manifest = published_model.manifest.model_copy(update={"version": new_version()})
        published = publish(S3Store(BUCKET, PREFIX, client=client), manifest, published_model.files, retention=5)
        assert read_latest_version(S3Store(BUCKET, PREFIX, client=client)) == published.version
        provision_realtime(endpoint, BUCKET, PREFIX, REALTIME, "us-east-1")
        yield endpoint
    finally:
        server.stop()


def model_version(endpoint: str, prefix: str = PREFIX) -> str:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    return read_latest_version(S3Store(BUCKET, prefix, client=client))


@pytest.fixture(scope="module")
def env_vars_file(bridge_s3: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`--env-vars`: both functions' boto3 on the local moto server (the template declares the variables empty)
    and the local user-state table and event stream in place of the stack's."""
    path = tmp_path_factory.mktemp("sam-env") / "env.json"
    path.write_text(json.dumps(sam_local_env_vars(bridge_s3, REALTIME)))
    return path


def sam_containers(log: Path) -> set[str]:
    """Ids of the containers the sam run behind ``log`` created (sam logs each one)."""
    return set(re.findall(r"SAM_CONTAINER_ID: ([0-9a-f]{12,64})", log.read_text(errors="replace")))


def remove_containers(ids: set[str]) -> None:
    existing = set(run(["docker", "ps", "-aq", "--no-trunc"], timeout=60).split())
    leftover = [i for i in ids if any(e.startswith(i) for e in existing)]
    if leftover:
        subprocess.run(["docker", "rm", "-f", *leftover], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def start_api_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sam-api") / "start-api.log"


@pytest.fixture(scope="module")
def api(built_template: Path, env_vars_file: Path, sam_env: dict[str, str], start_api_log: Path) -> Iterator[str]:
    """`sam local start-api` on a free port with samconfig.toml's local settings; stopped with Ctrl-C."""
    port = free_port()
    log = start_api_log
    process = start(
        [str(SAM), "local", "start-api", "--template", str(built_template), "--config-file", str(SAMCONFIG),
         "--host", "127.0.0.1", "--port", str(port), "--docker-network", "host", "--skip-pull-image",
         "--env-vars", str(env_vars_file)],
        cwd=built_template.parent, env=sam_env, log=log,
    )  # fmt: skip
    try:
        wait_until(lambda: port_is_open(port), 120, f"sam local start-api on port {port}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, first=signal.SIGINT, grace=30)  # sam removes its warm containers on Ctrl-C
        remove_containers(sam_containers(log))
        print(tail(log, 60))


def get(url: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    status, headers, raw = http("POST" if body is not None else "GET", url, body, timeout=120)
    is_json = headers.get("content-type", "").startswith("application/json")
    return status, json.loads(raw) if is_json else raw.decode(errors="replace"), headers


def test_start_api_serves_every_route(api: str, bridge_s3: str) -> None:
    version = model_version(bridge_s3)

    status, body, _ = get(f"{api}/health")
    assert status == 200 and body["status"] == "ok" and body["model_version"] == version, body

    status, body, _ = get(f"{api}/recommend", {"user_id": KNOWN_USER, "k": 5})
    assert status == 200 and body["strategy"] == "personalized" and len(body["items"]) == 5, body
    # A cold start: a visitor the model has never seen, known only by the items just viewed.
    recent = ["i000001", "i000002", "i000003"]
    status, body, _ = get(f"{api}/recommend", {"user_id": "visitor-1", "recent_items": recent, "k": 5})
    assert status == 200 and body["strategy"] == "fold_in" and len(body["items"]) == 5, body
    assert not set(recent) & {item["item_id"] for item in body["items"]}
    status, body, _ = get(f"{api}/recommend", {"k": 4})
    assert status == 200 and body["strategy"] == "popular" and len(body["items"]) == 4, body
    status, body, _ = get(f"{api}/recommend", {"user_id": KNOWN_USER, "k": 0})
    assert status == 422 and body["error"] == "validation_error" and body["details"], body
    status, body, _ = get(f"{api}/recommend", {"k": -3, "unknown_field": 1})
    assert status == 422 and body["error"] == "validation_error", body

    status, body, _ = get(f"{api}/items/{KNOWN_ITEM}/similar?k=5")
    ids = [item["item_id"] for item in body["items"]]
    assert status == 200 and len(ids) == 5 and KNOWN_ITEM not in ids, body
    status, body, _ = get(f"{api}/items?limit=3")
    assert status == 200 and len(body["items"]) == 3 and body["total"] > 3, body
    category = body["items"][0]["category"]
    status, body, _ = get(f"{api}/items?limit=5&category={category}")
    assert status == 200 and body["items"] and {i["category"] for i in body["items"]} == {category}, body
    status, body, _ = get(f"{api}/items/{KNOWN_ITEM}")
    assert status == 200 and body["item_id"] == KNOWN_ITEM and body["popularity_rank"] >= 1, body
    status, body, _ = get(f"{api}/items/no-such-item")
    assert status == 404 and body["error"] == "unknown_item", body
    status, body, _ = get(f"{api}/items/map?sample=50")
    assert status == 200 and len(body["points"]) == 50, body
    status, body, _ = get(f"{api}/categories")
    assert status == 200 and category in {c["name"] for c in body["categories"]}, body

    status, body, _ = get(f"{api}/users?limit=2")
    assert status == 200 and len(body["users"]) == 2, body
    status, body, _ = get(f"{api}/users/{KNOWN_USER}?limit=3")
    assert status == 200 and body["user_id"] == KNOWN_USER and 1 <= len(body["history"]) <= 3, body

    # /docs must point at an openapi.json that resolves behind the local gateway too.
    status, page, headers = get(f"{api}/docs")
    assert status == 200 and headers["content-type"].startswith("text/html"), page
    spec_url = re.search(r"url: '([^']+openapi\.json)'", page)
    assert spec_url, page[:2000]
    status, spec, _ = get(f"{api}{spec_url.group(1)}")
    assert status == 200 and "/recommend" in spec["paths"], spec
    # ... and at Swagger UI's own script, served by the function through the gateway (no CDN).
    script = re.search(r"src=\"([^\"]+swagger-ui-bundle\.js)\"", page)
    assert script and "//" not in script.group(1), page[:2000]
    status, bundle, _ = get(f"{api}{script.group(1)}")
    assert status == 200 and len(bundle) > 500_000, bundle[:200]


def test_start_api_does_not_enforce_iam_authorization(api: str, start_api_log: Path) -> None:
    """The template signs every route (AWS_IAM); sam local says it cannot emulate that and lets unsigned calls in."""
    status, body, _ = get(f"{api}/users?limit=1")
    assert status == 200 and len(body["users"]) == 1, body
    log = start_api_log.read_text(errors="replace")
    for route in ("/users", "/recommend"):
        assert f"Authorizer 'AWS_IAM' for route '{route}' is not supported for local emulation" in log, log[-3000:]


@pytest.mark.parametrize("name", sorted(api_events()))
def test_local_invoke_every_api_event(
    name: str, built_template: Path, env_vars_file: Path, sam_env: dict[str, str], bridge_s3: str
) -> None:
    output = run(
        [str(SAM), "local", "invoke", "RecommendFunction", "--template", str(built_template),
         "--config-file", str(SAMCONFIG), "--event", str(REPO / "events" / name), "--env-vars", str(env_vars_file),
         "--docker-network", "host", "--skip-pull-image"],
        cwd=built_template.parent, env=sam_env, timeout=180,
    )  # fmt: skip
    response = last_json_line(output)
    assert "errorType" not in response, output[-3000:]
    check_event_answer(name, response["statusCode"], json.loads(response["body"]), model_version(bridge_s3))


def test_local_invoke_pipeline_publishes(
    built_template: Path, env_vars_file: Path, sam_env: dict[str, str], bridge_s3: str, tmp_path: Path
) -> None:
    prefix = f"sam-pipeline-{uuid.uuid4().hex[:8]}"
    env_vars = json.loads(env_vars_file.read_text())
    env_vars["PipelineFunction"]["REC_OUTPUT"] = f"s3://{BUCKET}/{prefix}"
    (tmp_path / "env.json").write_text(json.dumps(env_vars))
    output = run(
        [str(SAM), "local", "invoke", "PipelineFunction", "--template", str(built_template),
         "--config-file", str(SAMCONFIG), "--event", str(REPO / "events" / "pipeline_small.json"),
         "--env-vars", str(tmp_path / "env.json"), "--docker-network", "host", "--skip-pull-image"],
        cwd=built_template.parent, env=sam_env, timeout=600,
    )  # fmt: skip
    result = last_json_line(output)
    assert "errorType" not in result, output[-3000:]
    assert result["uri"].startswith(f"s3://{BUCKET}/{prefix}/") and result["data"]["n_interactions"] == 20_000
    assert model_version(bridge_s3, prefix) == result["version"]


def last_json_line(stdout: str) -> dict[str, Any]:
    """The function's response: sam prints it on stdout (the function's logs go to stderr)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "sam printed no response"
    value = json.loads(lines[-1])
    assert isinstance(value, dict), lines[-1]
    return value
