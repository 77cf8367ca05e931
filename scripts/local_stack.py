"""What ``demo.py`` and ``sam_local.py`` share: port checks, readiness waits, child processes, a local model.

Imported by those scripts (Python puts a script's own folder on ``sys.path``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(url: str, name: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None,
             group: ProcessGroup | None = None) -> None:  # fmt: skip
    """Poll ``url`` until it answers; stop with a message if ``process`` dies or ``timeout`` passes, and with
    :class:`Interrupted` once a stop signal that ``group`` records has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if group is not None:
                group.check()  # the signal may have reached it too (a service manager signals the whole tree)
            where = f"its log, {log}" if log is not None else "its output above"
            raise SystemExit(f"{name} exited with code {process.returncode}; see {where}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if group is None:
                time.sleep(0.3)
            else:
                group.pause(0.3)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f} s")


def _default_sigint() -> None:
    # Even if our SIGINT is ignored (a background job's is), children must take the Ctrl-C they are sent.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl`` on Linux, else None; looked up in the parent, so that a child only calls it."""
    with suppress(OSError, AttributeError):
        return ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
    return None


def _die_with_parent(parent: int, prctl: Any) -> None:
    """``preexec_fn``: the child takes Ctrl-C, and Linux SIGKILLs it when ``parent`` dies (even by SIGKILL)."""
    _default_sigint()
    if prctl is not None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that call: no signal will come
            os._exit(1)


class Interrupted(Exception):
    """A stop signal recorded by :meth:`ProcessGroup.stop_on_signals`, raised where the script can act on it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ProcessGroup:
    """Child processes, each in its own session, stopped together.

    After :meth:`stop_on_signals`, a stop signal is only recorded; the group's waits then raise :class:`Interrupted`.
    A handler that raised at once could fire inside ``subprocess.Popen``, in logging's at-fork hook, which swallows
    the exception ("Exception ignored in ... _releaseLock"): the signal was lost and the children ran on.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.jobs: set[int] = set()  # pids of processes expected to end: their exit is no failure
        self.signum: int | None = None

    def stop_on_signals(self) -> None:
        """Record SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal closed) instead of dying of them. SIGINT is
        caught even if inherited as ignored (a background job's is); an ignored SIGHUP (``nohup``) stays ignored."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, self._record)

    def _record(self, signum: int, frame: object) -> None:
        # Only an assignment: this runs between any two bytecodes of the main thread, inside Popen too.
        self.signum = self.signum or signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop signal has arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``; raise :class:`Interrupted` within 0.1 s of a stop signal."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        self.check()

    def start(self, *command: str | Path, cwd: Path = ROOT, log: Path | None = None,
              env: Mapping[str, str] | None = None, capture: bool = False,
              job: bool = False) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start ``command`` (raises :class:`Interrupted` instead after a stop signal). Its output goes to ``log``
        (appended), to pipes with ``capture``, else to this terminal. A ``job`` is expected to end."""
        self.check()
        out: IO[bytes] | None = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        # Python code in the child before exec is safe only while this process has one thread (another may hold a
        # lock the child would wait for forever): demo.py starts every child from its only thread.
        setup: Callable[[], None] | None = None  # exec resets a caught SIGINT to the default, not an ignored one
        if threading.active_count() == 1:
            setup = functools.partial(_die_with_parent, os.getpid(), _prctl())
        elif signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            setup = _default_sigint
        pipe = subprocess.PIPE if capture else None
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=self.env if env is None else dict(env),
                                   start_new_session=True, preexec_fn=setup, stdout=out or pipe,
                                   stderr=subprocess.STDOUT if out else pipe)  # fmt: skip
        if out is not None:
            out.close()  # the child holds its own descriptor
        self.processes.append(process)
        if job:
            self.jobs.add(process.pid)
        return process

    def run(self, *command: str | Path, env: Mapping[str, str] | None = None, capture: bool = False) -> str:
        """``subprocess.run(check=True)`` in this group: a stop signal raises :class:`Interrupted` at once, and
        :meth:`stop` ends the process. Returns its standard output with ``capture``."""
        process = self.start(*command, env=env, capture=capture, job=True)
        while True:
            try:
                out, err = process.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                self.check()
        self.check()  # a stop signal that reached the process too is no failure of its own
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
        return (out or b"").decode()

    def wait_while_running(self, tick: Callable[[], object] | None = None) -> None:
        """Return when a process other than a job exits (the caller treats that as a failure), calling ``tick``
        every half second meanwhile; raise :class:`Interrupted` on a stop signal."""
        while all(p.poll() is None for p in self.processes if p.pid not in self.jobs):
            if tick is not None:
                tick()
            self.pause(0.5)
        self.check()

    def stop(self, first_signal: int = signal.SIGTERM, timeout: float = 10.0) -> list[subprocess.Popen[bytes]]:
        """Signal every process group, wait up to ``timeout`` in all, then SIGKILL stragglers; returns those."""
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process.pid, first_signal)
        killed, deadline = [], time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
                killed.append(process)
        return killed


def _signal_group(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):  # its leader exited since we looked, and the group is empty
        os.killpg(pid, signum)


MODEL_CACHE = ROOT / ".cache" / "demo-models"  # the local S3 lives only as long as the demo: keep its models here


def publish_local_model(s3_url: str, bucket: str, prefix: str, interactions: int, env: Mapping[str, str],
                        cache: Path | None = None, group: ProcessGroup | None = None) -> None:  # fmt: skip
    """Create ``bucket`` on the local S3 and publish a synthetic model to ``s3://bucket/prefix``.

    With ``cache``, the models published by an earlier start are put back first and the pipeline runs with
    ``--reuse``: it retrains only if the input or the settings changed. The models are then saved to ``cache``.
    With ``group``, the pipeline runs in it (see :meth:`ProcessGroup.run`).
    """
    import boto3

    from reccore.layout import MODELS_DIR

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    models = f"{prefix}/{MODELS_DIR}/"
    reuse = []
    if cache is not None and (cache / "LATEST").is_file():
        for path in sorted(p for p in cache.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, models + path.relative_to(cache).as_posix())
        reuse = ["--reuse"]
        print(f"\n== restored the models of the last start from {cache}", flush=True)
    print(f"\n== training on {interactions:,} synthetic interactions, publishing to s3://{bucket}/{prefix}"
          + (" (unless the restored model was trained on the same input and settings)" if reuse else ""),
          flush=True)  # fmt: skip
    command = [PY, "-m", "pipeline", "run", "--output", f"s3://{bucket}/{prefix}", "--interactions",
               str(interactions), *reuse]  # fmt: skip
    if group is None:
        subprocess.run(command, cwd=ROOT, env={**env, "AWS_ENDPOINT_URL_S3": s3_url}, check=True)
    else:
        group.run(*command, env={**env, "AWS_ENDPOINT_URL_S3": s3_url})
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=models):
            for entry in page.get("Contents", []):
                target = cache / entry["Key"][len(models) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, entry["Key"], str(target))


def start_demo_experiment(s3_url: str, bucket: str, prefix: str, interactions: int, group: ProcessGroup) -> str:
    """Publish a challenger beside the live model (8 factors, untuned: a weaker model) and start an experiment
    serving it to half of the users; LATEST stays on the champion. The pipeline runs in ``group``. Returns the
    challenger's version."""
    import json

    import boto3

    from reccore.layout import LATEST_KEY

    uri = f"s3://{bucket}/{prefix}"
    child = {**group.env, "AWS_ENDPOINT_URL_S3": s3_url}
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=group.env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    latest = f"{prefix}/{LATEST_KEY}"
    champion = s3.get_object(Bucket=bucket, Key=latest)["Body"].read()
    print("\n== publishing a challenger (8 factors, untuned) for the experiment", flush=True)
    out = group.run(PY, "-m", "pipeline", "run", "--output", uri, "--interactions", str(interactions),
                    "--factors", "8", "--no-tune", "--no-reuse", "--json", env=child, capture=True)  # fmt: skip
    challenger = str(json.loads(out)["version"])
    s3.put_object(Bucket=bucket, Key=latest, Body=champion)  # the champion stays live
    group.run(PY, "-m", "pipeline", "experiment", "start", "--model", uri, "--challenger", challenger,
              "--share", "0.5", env=child)  # fmt: skip
    return challenger


def provision_realtime(endpoint: str, bucket: str, prefix: str, name: str, region: str) -> None:
    """The real-time loop's AWS parts on the local moto server: the user-state table and the events stream.

    The stream delivers to ``s3://bucket/prefix/events/`` as the deployed stack's does (template.yaml).
    """
    import boto3

    from reccore.eventlog import create_stream
    from reccore.userstate.table import create_table

    options = {"endpoint_url": endpoint, "region_name": region, "aws_access_key_id": "local",
               "aws_secret_access_key": "local"}  # fmt: skip
    create_table(boto3.client("dynamodb", **options), name)
    create_stream(boto3.client("firehose", **options), name, bucket, prefix)


def sam_local_env_vars(endpoint: str, realtime: str) -> dict[str, dict[str, str]]:
    """``sam local --env-vars`` contents: each function's AWS calls go to the local moto server at ``endpoint``,
    with the user-state table and event stream named ``realtime`` (see :func:`provision_realtime`)."""
    return {
        "RecommendFunction": {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_FIREHOSE": endpoint,
            "REC_USER_TABLE": realtime,
            "REC_EVENTS_STREAM": realtime,
        },
        "PipelineFunction": {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "REC_USER_TABLE": realtime,
        },
    }


@contextmanager
def local_aws() -> Iterator[dict[str, str]]:
    """moto's server in this process on a free loopback port, for the benchmarks; yields the environment that
    points boto3 at it for every service (S3, DynamoDB, Firehose), with dummy credentials. Stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "REC_LOG_LEVEL": "WARNING",
        }
    finally:
        server.stop()
