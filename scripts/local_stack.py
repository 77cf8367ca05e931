"""What ``demo.py`` and ``sam_local.py`` share: port checks, readiness waits, child processes, a local model.

Imported by those scripts (Python puts a script's own folder on ``sys.path``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

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


def wait_for(url: str, name: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers; stop with a message if ``process`` dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            where = f"its log, {log}" if log is not None else "its output above"
            raise SystemExit(f"{name} exited with code {process.returncode}; see {where}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f} s")


def _default_sigint() -> None:
    # Even if our SIGINT is ignored (a background job's is), children must take the Ctrl-C they are sent.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ProcessGroup:
    """Child processes, each in its own session, stopped together."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *command: str | Path, cwd: Path = ROOT, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``command``; its output goes to ``log`` (appended) if given, else to this terminal."""
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=self.env, start_new_session=True,
                                   preexec_fn=_default_sigint, stdout=out,
                                   stderr=subprocess.STDOUT if out else None)  # fmt: skip
        if out is not None:
            out.close()  # the child holds its own descriptor
        self.processes.append(process)
        return process

    def wait_while_running(self) -> None:
        """Return when any process exits (the caller treats that as a failure)."""
        while all(p.poll() is None for p in self.processes):
            time.sleep(0.5)

    def stop(self, first_signal: int = signal.SIGTERM, timeout: float = 10.0) -> list[subprocess.Popen[bytes]]:
        """Signal every process group, wait up to ``timeout`` in all, then SIGKILL stragglers; returns those."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, first_signal)
        killed, deadline = [], time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                killed.append(process)
        return killed


MODEL_CACHE = ROOT / ".cache" / "demo-models"  # the local S3 lives only as long as the demo: keep its models here


def publish_local_model(
    s3_url: str, bucket: str, prefix: str, interactions: int, env: Mapping[str, str], cache: Path | None = None
) -> None:
    """Create ``bucket`` on the local S3 and publish a synthetic model to ``s3://bucket/prefix``.

    With ``cache``, the models published by an earlier start are put back first and the pipeline runs with
    ``--reuse``: it retrains only if the input or the settings changed. The models are then saved to ``cache``.
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
    subprocess.run([PY, "-m", "pipeline", "run", "--output", f"s3://{bucket}/{prefix}", "--interactions",
                    str(interactions), *reuse], cwd=ROOT, env={**env, "AWS_ENDPOINT_URL_S3": s3_url},
                   check=True)  # fmt: skip
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=models):
            for entry in page.get("Contents", []):
                target = cache / entry["Key"][len(models) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, entry["Key"], str(target))


def start_demo_experiment(s3_url: str, bucket: str, prefix: str, interactions: int, env: Mapping[str, str]) -> str:
    """Publish a challenger beside the live model (8 factors, untuned: a weaker model) and start an experiment
    serving it to half of the users; LATEST stays on the champion. Returns the challenger's version."""
    import json

    import boto3

    from reccore.layout import LATEST_KEY

    uri = f"s3://{bucket}/{prefix}"
    child = {**env, "AWS_ENDPOINT_URL_S3": s3_url}
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    latest = f"{prefix}/{LATEST_KEY}"
    champion = s3.get_object(Bucket=bucket, Key=latest)["Body"].read()
    print("\n== publishing a challenger (8 factors, untuned) for the experiment", flush=True)
    run = subprocess.run([PY, "-m", "pipeline", "run", "--output", uri, "--interactions", str(interactions),
                          "--factors", "8", "--no-tune", "--no-reuse", "--json"],
                         cwd=ROOT, env=child, check=True, capture_output=True, text=True)  # fmt: skip
    challenger = str(json.loads(run.stdout)["version"])
    s3.put_object(Bucket=bucket, Key=latest, Body=champion)  # the champion stays live
    subprocess.run([PY, "-m", "pipeline", "experiment", "start", "--model", uri, "--challenger", challenger,
                    "--share", "0.5"], cwd=ROOT, env=child, check=True)  # fmt: skip
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
