"""`make demo` (scripts/demo.py): it comes up, answers, stops cleanly on Ctrl-C, and refuses a taken port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import port_is_free

from pipeline.client import free_port
from tests.integration.stack import KNOWN_USER, REPO, base_env, http, start, stop, tail, wait_until

pytestmark = pytest.mark.slow

DEMO = REPO / "scripts" / "demo.py"
UP_LINE = "the demo is up"


def processes_naming(ports: list[int]) -> dict[int, str]:
    """Live processes whose command line names one of ``ports`` (what the demo started listens on them)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(port).encode() in args for port in ports):
            found[int(entry.name)] = b" ".join(args).decode(errors="replace")
    return found


def demo_command(api: int, ui: int, s3: int, cache: Path) -> list[str]:
    return [sys.executable, str(DEMO), "--api-port", str(api), "--ui-port", str(ui), "--s3-port", str(s3),
            "--interactions", "20000", "--model-cache", str(cache)]  # fmt: skip


@pytest.fixture()
def ports() -> list[int]:
    chosen: set[int] = set()
    while len(chosen) < 3:
        chosen.add(free_port())
    return sorted(chosen)


@pytest.fixture()
def demo(ports: list[int], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    api, ui, s3 = ports
    log = tmp_path / "demo.log"
    command = demo_command(api, ui, s3, tmp_path / "models")
    process = start(command, cwd=REPO, env=base_env(PYTHONUNBUFFERED="1"), log=log)
    try:
        yield process, log
    finally:
        stop(process, grace=5)
        # If the test failed half-way, the demo's children (each in a session of its own) may still run.
        for pid in processes_naming(ports):
            os.kill(pid, signal.SIGKILL)


def test_demo_comes_up_answers_and_stops_cleanly_on_ctrl_c(
    demo: tuple[subprocess.Popen[bytes], Path], ports: list[int]
) -> None:
    process, log = demo
    api, ui, s3 = ports
    wait_until(lambda: UP_LINE in log.read_text(errors="replace"), 240, f"{UP_LINE!r} in the output", process)

    status, _, body = http("GET", f"http://127.0.0.1:{api}/health", timeout=30)
    assert status == 200, body
    health = json.loads(body)
    assert health["status"] == "ok" and health["model_version"]
    status, _, body = http("POST", f"http://127.0.0.1:{api}/recommend", {"user_id": KNOWN_USER, "k": 5}, timeout=30)
    answer = json.loads(body)
    assert status == 200 and answer["strategy"] == "personalized" and len(answer["items"]) == 5, answer
    # An experiment runs: the user gets the champion (LATEST, what /health shows) or the challenger.
    assert (answer["model_version"] == health["model_version"]) == (answer["variant"] == "champion"), answer
    # The deployed real-time path on the local AWS: an event goes to DynamoDB and Firehose, the next answer moves.
    bought = [item["item_id"] for item in answer["items"][:2]]
    events = {"events": [{"user_id": KNOWN_USER, "item_id": i, "event": "purchase"} for i in bought]}
    status, _, body = http("POST", f"http://127.0.0.1:{api}/events", events, timeout=30)
    assert status == 200 and json.loads(body)["accepted"] == 2, body
    status, _, body = http("POST", f"http://127.0.0.1:{api}/recommend", {"user_id": KNOWN_USER, "k": 5}, timeout=30)
    after = json.loads(body)
    assert status == 200 and after["realtime_events"] == 2 and not after["degraded"], after
    assert not set(bought) & {item["item_id"] for item in after["items"]}
    status, _, body = http("GET", f"http://127.0.0.1:{ui}/_stcore/health", timeout=30)
    assert status == 200 and body.strip() == b"ok", body

    # Simulated visitors and one decision-job run: the experiment has a look with both variants' figures.
    def looked() -> bool:
        experiment = json.loads(http("GET", f"http://127.0.0.1:{api}/experiment", timeout=30)[2])["experiment"]
        return bool(experiment and experiment["looks"])

    wait_until(looked, 180, "the experiment's first look")
    experiment = json.loads(http("GET", f"http://127.0.0.1:{api}/experiment", timeout=30)[2])["experiment"]
    assert experiment["champion"] == health["model_version"] and experiment["share"] in (0.0, 0.5)
    look = experiment["looks"][-1]["variants"]
    assert look["champion"]["impressions"] > 0 and look["challenger"]["impressions"] > 0, look

    # Ctrl-C in a terminal signals the foreground process group: the demo (its children have their own).
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not stop within 20 s of Ctrl-C:\n{tail(log)}")
    assert code == 0, tail(log)
    wait_until(lambda: all(port_is_free("127.0.0.1", p) for p in ports), 10, f"ports {ports} to be free again")
    assert not processes_naming(ports), "processes left running after Ctrl-C"

    # The next start restores the models and does not retrain: same input, same settings.
    again = log.with_name("again.log")
    second = start(demo_command(api, ui, s3, log.parent / "models"), cwd=REPO, env=base_env(PYTHONUNBUFFERED="1"),
                   log=again)  # fmt: skip
    try:
        wait_until(lambda: UP_LINE in again.read_text(errors="replace"), 240, f"{UP_LINE!r} again", second)
        assert "not retrained" in again.read_text(errors="replace"), tail(again)
        status, _, body = http("GET", f"http://127.0.0.1:{api}/health", timeout=30)
        assert status == 200 and json.loads(body)["model_version"] == health["model_version"], body
        status, _, body = http("POST", f"http://127.0.0.1:{api}/recommend", {"user_id": KNOWN_USER, "k": 5}, timeout=30)
        assert status == 200 and json.loads(body)["strategy"] == "personalized", body
    finally:
        stop(second, grace=5)


def test_demo_refuses_a_taken_port(ports: list[int], tmp_path: Path) -> None:
    api, ui, s3 = ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", api))
        taken.listen()
        result = subprocess.run(
            demo_command(api, ui, s3, tmp_path / "models"),
            cwd=REPO,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {api}" in result.stderr and "API_PORT" in result.stderr, result.stderr
    assert port_is_free("127.0.0.1", s3) and port_is_free("127.0.0.1", ui), "the demo started something before refusing"
