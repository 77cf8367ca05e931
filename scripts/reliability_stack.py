"""What the reliability run drives: a moto S3 server it can stop, pause and restart, uvicorn APIs, one-shot HTTP.

Imported by ``reliability.py`` (Python puts a script's own folder on ``sys.path``). Everything binds 127.0.0.1 on
free ports, and every process is stopped by the caller's ``finally``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.client import free_port, service_command
from reccore.encoding import npy_bytes, npy_load
from reccore.layout import Files, Manifest, version_key
from reccore.storage import ArtifactStore, S3Store
from reccore.versions import new_version, publish

ROOT = Path(__file__).resolve().parent.parent
RECOVERY_TIMEOUT = 30.0  # seconds a scenario waits for the system to recover after its fault ends
BUCKET, PREFIX = "reliability-artifacts", "recsys"


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Moto:
    """moto's S3 server on a fixed port: stop it (connections refused), pause it (SIGSTOP: accepted, unanswered)."""

    def __init__(self, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)
        self.client().create_bucket(Bucket=self.bucket)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def store(self, prefix: str = PREFIX) -> ArtifactStore:
        return S3Store(self.bucket, prefix, client=self.client())

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class Api:
    """One uvicorn process (1 worker) serving ``s3://BUCKET/PREFIX`` from the given moto server."""

    def __init__(self, moto: Moto, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "reccore"), str(ROOT)]),
            "AWS_ENDPOINT_URL_S3": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}",
            "REC_LOG_LEVEL": "WARNING",
            "REC_CACHE_DIR": str(log.parent / f"cache-{self.port}"),
            **settings,
        }
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                service_command(self.port, "--workers", "1", "--no-access-log", "--log-level", "warning"),
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_port(self.port)

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, float, Any]:
        """(status, seconds, JSON body) of one request on a new connection; status 0 if it failed."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        start = time.monotonic()
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers={"content-type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            return response.status, time.monotonic() - start, json.loads(payload) if payload else None
        except (OSError, http.client.HTTPException, ValueError):
            return 0, time.monotonic() - start, None
        finally:
            connection.close()

    def wait_until(self, check: Any, timeout: float, interval: float = 0.05) -> float | None:
        """Seconds until ``check(status, body)`` of ``GET /health`` holds, or ``None`` after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            status, _, body = self.call("GET", "/health", timeout=10)
            if check(status, body):
                return time.monotonic() - start
            time.sleep(interval)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def republish(store: ArtifactStore, manifest: Manifest, files: dict[str, bytes], fault: str | None = None) -> str:
    """Publish ``files`` as a new version; ``fault`` breaks it: ``corrupt`` (bytes after the checksum) or
    ``inconsistent`` (item factors with 3 columns: checksums pass, shapes disagree with the 50-dim index)."""
    files = dict(files)
    if fault == "inconsistent":
        files[Files.ITEM_FACTORS] = npy_bytes(np.ascontiguousarray(npy_load(files[Files.ITEM_FACTORS])[:, :3]))
    version = publish(store, manifest.model_copy(update={"version": new_version()}), files, retention=100).version
    if fault == "corrupt":
        store.put(version_key(version, Files.INDEX_IP), b"not the published bytes")
    return version
