"""Helpers of the integration tests: ports, bounded waits, process groups, runtime-only venvs, event checks.

Imported by the ``test_*.py`` files beside it as ``tests.integration.stack``.
Every wait here has a deadline, and every process is started in its own session so that
stopping it stops its children too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events"
SAM = REPO / ".venv-sam" / "bin" / "sam"
# The Lambda Runtime Interface Emulator that the aws-sam-cli wheel ships (and `sam local` layers onto images).
RIE = next(
    iter(sorted((REPO / ".venv-sam").glob("lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64"))), None
)
# Same version as the offline stand-in base image bakes in (scripts/standin_base_image.sh).
AWSLAMBDARIC = "awslambdaric==4.2.2"
# Ids the API events name; the synthetic source generates them at any size.
KNOWN_USER = "u0000001"
KNOWN_ITEM = "i000001"


# --- ports and waits ---------------------------------------------------------------------------------------------


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[Any] | None = None
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s, or at once if ``process`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with code {process.returncode} first")
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def http(
    method: str, url: str, body: Any = None, timeout: float = 60.0, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library; returns (status, headers, body) for any status."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if body is not None and "content-type" not in {k.lower() for k in request.headers}:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


# --- processes ---------------------------------------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    """A small, explicit environment: nothing from the test process (PYTHONPATH, AWS profiles) leaks in."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR", "DOCKER_HOST") if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env


def aws_env(endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """Dummy credentials and the local S3 endpoint, as boto3 reads them."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def start(
    command: list[str] | tuple[str, ...], *, cwd: Path, env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (its own process group), stdout and stderr to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[Any], first: signal.Signals = signal.SIGTERM, grace: float = 20.0) -> None:
    """Signal the process group, wait up to ``grace`` s, then SIGKILL it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):  # children that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def docker_bridge_address() -> str:
    """The host's address on docker's default bridge: what a container on that bridge reaches the host by."""
    out = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    bridge = json.loads(out.stdout)[0]
    gateways = [c["Gateway"] for c in bridge["IPAM"]["Config"] or [] if c.get("Gateway")]
    if gateways:
        return str(gateways[0])
    # The default bridge often leaves IPAM's gateway blank: ask the kernel for its interface's address.
    name = bridge["Options"].get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        siocgifaddr = 0x8915
        packed = fcntl.ioctl(sock.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])


# --- runtime-only virtual environments --------------------------------------------------------------------------


def runtime_venv(requirements: Path, cache_root: Path = REPO / ".cache") -> Path:
    """A venv holding ONLY ``requirements`` + awslambdaric + reccore (``--no-deps``), as the image does.

    Cached under ``.cache/rie-venv-<hash>`` (keyed by the requirements, awslambdaric and the Python version);
    created on first use, so a clean machine builds it. reccore is reinstalled every time (it changes often
    and installs in seconds). A dependency the image would miss is missing here too.
    """
    key = hashlib.sha256(f"{requirements.read_text()}\n{AWSLAMBDARIC}\n{sys.version}".encode()).hexdigest()[:16]
    venv = cache_root / f"rie-venv-{requirements.parent.name}-{key}"
    python = venv / "bin" / "python"
    done = venv / ".complete"
    # pip keeps the machine's own settings (index, certificates, proxies); nothing else leaks in.
    passed = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.lower().endswith("_proxy")}
    pip_env = base_env(**{**passed, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements), AWSLAMBDARIC],
            check=True, timeout=600, env=pip_env,
        )  # fmt: skip
        done.touch()
    reinstall = ["install", "--quiet", "--no-deps", "--force-reinstall", str(REPO / "layers" / "reccore")]
    subprocess.run([str(python), "-m", "pip", *reinstall], check=True, timeout=300, env=pip_env)
    return venv


# --- the API events and what each must answer ---------------------------------------------------------------------


def api_events() -> dict[str, dict[str, Any]]:
    """Every API Gateway event in events/ by file name (the pipeline's events have no requestContext)."""
    events = {path.name: json.loads(path.read_text()) for path in sorted(EVENTS_DIR.glob("*.json"))}
    return {name: event for name, event in events.items() if isinstance(event, dict) and "requestContext" in event}


def check_event_answer(name: str, status: int, body: Any, model_version: str) -> None:
    """What the API must answer to each events/*.json; an event without an expectation here fails."""
    if name in ("health.json", "health_named_stage.json"):
        assert status == 200, body
        assert body["status"] == "ok" and body["model_version"] == model_version
    elif name == "recommend_known_user.json":
        assert status == 200, body
        assert body["strategy"] == "personalized" and body["user_id"] == KNOWN_USER
        assert len(body["items"]) == 5 and body["model_version"] == model_version
    elif name == "recommend_cold_user.json":
        assert status == 200, body
        assert body["strategy"] == "fold_in" and len(body["items"]) == 5
        # Items the visitor just interacted with are not recommended back.
        assert not {"i000001", "i000002", "i000003"} & {item["item_id"] for item in body["items"]}
    elif name == "similar_items.json":
        assert status == 200, body
        ids = [item["item_id"] for item in body["items"]]
        assert body["item_id"] == KNOWN_ITEM and len(ids) == 5 and KNOWN_ITEM not in ids
    elif name == "events_post.json":
        assert status == 200, body
        assert body["accepted"] == 3 and body["unknown_items"] == ["unknown-item"]
    elif name == "bad_request.json":
        assert status == 422, body
        assert body["error"] == "validation_error" and body["message"] and body["details"]
    else:
        raise AssertionError(f"events/{name} has no expected answer: add one to check_event_answer")


def lambda_answer(response: Mapping[str, Any]) -> tuple[int, Any]:
    """(statusCode, parsed JSON body) of an API Gateway proxy response returned by the handler."""
    assert "errorType" not in response, f"the handler raised: {response}"
    assert not response.get("isBase64Encoded"), response
    return int(response["statusCode"]), json.loads(response["body"])
