"""`make demo` (scripts/demo.py) stops every process it started, and exits promptly, whichever start-up stage a
stop signal reaches it at; killed outright, its children die with it (Linux's parent-death signal)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="finds processes in /proc")]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.py"
TAG = "REC_DEMO_SIGNAL_TEST"  # set in demo.py's environment, so every process it starts inherits it
REACH = 180.0  # s for the demo to reach a stage
EXIT = 25.0  # s from the signal to demo.py's exit (its stop waits 10 s before SIGKILL; a health poll up to 5 s)
GONE = 5.0  # s for the processes it started to disappear after it exits

Processes = dict[int, list[str]]  # pid -> command line


def started_at(pid: int) -> str | None:
    """When a live process started (in clock ticks since boot, which tells a reused pid); None once it has
    exited (a zombie has: it only waits to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def started_by(token: str) -> Processes:
    """Live processes whose environment carries ``TAG=token``: demo.py and all it started. A process that is
    exiting may already show an empty environment: the caller remembers what it found."""
    mark = f"{TAG}={token}".encode()
    found: Processes = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except OSError:  # it exited while we looked
            continue
    return {pid: args for pid, args in found.items() if started_at(pid) is not None}


def running(*words: str, without: str | None = None) -> Callable[[str, Processes], bool]:
    """A stage: a process whose command line holds each of ``words`` (and not ``without``) is running."""
    return lambda log, processes: any(
        all(word in args for word in words) and without not in args for args in processes.values()
    )


def printed(line: str) -> Callable[[str, Processes], bool]:
    return lambda log, processes: line in log


# Each stage as the demo shows it: the process it is starting (and waiting for), or a line it printed.
STAGES: dict[str, Callable[[str, Processes], bool]] = {
    "moto starting": running("moto.server"),
    "training": running("pipeline", "run", without="--factors"),
    "training the challenger": running("pipeline", "run", "--factors"),
    "API starting": running("uvicorn"),
    "frontend starting": running("streamlit", "run"),
    "all up": printed("the demo is up"),
}
# The port whose server the stage is waiting for: it must not answer yet when the signal is sent.
WAITING_FOR = {"moto starting": "s3", "API starting": "api", "frontend starting": "ui"}


def free_ports(count: int) -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.add(int(sock.getsockname()[1]))
    return dict(zip(("api", "ui", "s3"), sorted(ports), strict=True))


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def kill_all(token: str) -> None:
    for pid in started_by(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _hangup_default() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, int], Path]]:
    """demo.py on free loopback ports with a small synthetic log, in its own session; everything it started is
    killed afterwards, whatever the test did."""
    token, ports, log = uuid.uuid4().hex, free_ports(3), tmp_path / "demo.log"
    command = [sys.executable, str(DEMO), "--api-port", str(ports["api"]), "--ui-port", str(ports["ui"]),
               "--s3-port", str(ports["s3"]), "--interactions", "2000",
               "--model-cache", str(tmp_path / "models")]  # fmt: skip
    env = {**os.environ, TAG: token, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        # SIGHUP at its default, as from a terminal: under nohup (a CI runner may be) the demo rightly keeps it
        # ignored, and the SIGHUP case would test nothing.
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_hangup_default)  # fmt: skip
    try:
        yield process, token, ports, log
    finally:
        kill_all(token)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


CASES = [
    *((stage, signal.SIGTERM) for stage in STAGES),
    ("training", signal.SIGINT),  # Ctrl-C in the terminal
    ("API starting", signal.SIGHUP),  # the terminal closed
    ("training", signal.SIGKILL),  # killed outright: the children must die with it
    ("all up", signal.SIGKILL),
]


@pytest.mark.parametrize(("stage", "signum"), CASES, ids=[f"{s.name}-{stage}" for stage, s in CASES])
def test_a_stop_signal_at_any_stage_stops_everything(
    demo: tuple[subprocess.Popen[bytes], str, dict[str, int], Path], stage: str, signum: signal.Signals
) -> None:
    process, token, ports, log = demo
    seen: dict[int, str | None] = {}  # pid -> start time of each process found
    deadline = time.monotonic() + REACH
    while not STAGES[stage](log.read_text(errors="replace"), before := started_by(token)):
        seen |= {pid: started_at(pid) for pid in before}
        assert process.poll() is None, f"the demo exited with {process.returncode} before {stage!r}:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"the demo did not reach {stage!r} within {REACH:.0f} s:\n{log_tail(log)}"
        time.sleep(0.05)
    seen |= {pid: started_at(pid) for pid in before}
    if stage in WAITING_FOR:
        assert not answers(ports[WAITING_FOR[stage]]), f"{stage!r} was over before the signal: too slow to catch it"
    assert set(before) - {process.pid}, f"nothing started yet at {stage!r}"

    # To the demo's process group, as a terminal or `kill -TERM -- -PGID` does (its children have their own).
    if signum == signal.SIGKILL:
        os.kill(process.pid, signum)
    else:
        os.killpg(process.pid, signum)
    sent = time.monotonic()
    try:
        code = process.wait(timeout=EXIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo still ran {EXIT:.0f} s after {signum.name} at {stage!r}:\n{log_tail(log)}")
    took = time.monotonic() - sent

    def left() -> tuple[set[int], list[str]]:
        processes = {pid for pid, at in seen.items() if at is not None and started_at(pid) == at} | set(
            started_by(token)
        )
        return processes, [name for name, port in ports.items() if answers(port)]

    deadline = time.monotonic() + GONE
    while any(still := left()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(still), f"still running after {signum.name} at {stage!r} (pids, servers answering): {still}"
    expected = {signal.SIGINT: 0, signal.SIGKILL: -signal.SIGKILL}.get(signum, 128 + signum)
    output = log.read_text(errors="replace")
    assert code == expected, f"exit {code} after {signum.name} at {stage!r} ({took:.1f} s):\n{log_tail(log)}"
    assert "Traceback" not in output and "Exception ignored" not in output, log_tail(log)
    if signum != signal.SIGKILL:
        assert f"demo: stopping ({signum.name})" in output, log_tail(log)


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
