"""Service benchmark: in-process handler latency, HTTP latency via uvicorn, and cold start.

Targets (issue 3), at the default 10k-item catalogue (100k synthetic interactions):
  in-process handler (event → Mangum → response) /recommend p50 < 0.5 ms;
  HTTP via uvicorn (1 worker, sequential, keep-alive) p50 < 1 ms;
  cold start (fresh process: import → first /recommend answer, artifacts in a local moto S3) < 1 s.
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
N = 3000
BUCKET, PREFIX = "bench-artifacts", "recsys"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return f"p50 {pick(0.5):6.3f} ms  p90 {pick(0.9):6.3f} ms  p99 {pick(0.99):6.3f} ms  (n={len(samples)})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_process(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT / "functions" / "recommend"))
    from app.handler import handler  # after the environment is set

    known = json.loads((EVENTS / "recommend_known_user.json").read_text())

    def body(payload: dict[str, object]) -> dict[str, object]:
        return {**known, "body": json.dumps(payload)}

    cases = {
        "/recommend known user": body({"user_id": "u0000001", "k": 10}),
        "/recommend fold-in": body({"recent_items": ["i000001", "i000002", "i000003"], "k": 10}),
        "/recommend popular": body({"k": 10}),
        "/items/{id}/similar": json.loads((EVENTS / "similar_items.json").read_text()),
        "/health": json.loads((EVENTS / "health.json").read_text()),
    }
    for name, event in cases.items():
        for _ in range(200):  # warm-up (the first call loads the model)
            assert handler(event, None)["statusCode"] == 200  # type: ignore[arg-type]  # no Lambda context here
        samples = []
        for _ in range(N):
            start = time.perf_counter()
            handler(event, None)  # type: ignore[arg-type]
            samples.append(time.perf_counter() - start)
        print(f"  in-process {name:<24} {percentiles(samples)}")


def over_http(env: dict[str, str]) -> None:
    # http.client with one keep-alive connection: a lighter client than httpx, so the figure is the server's.
    import http.client

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--app-dir", "functions/recommend", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def post(body: bytes) -> int:
        connection.request("POST", "/recommend", body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection.request("GET", "/health")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    break
            except (ConnectionError, http.client.HTTPException):
                connection.close()
            if time.monotonic() > deadline:
                raise SystemExit("uvicorn did not become healthy")
            time.sleep(0.2)
        payload = json.dumps({"user_id": "u0000001", "k": 10}).encode()
        for _ in range(200):
            post(payload)
        samples = []
        for _ in range(N):
            start = time.perf_counter()
            assert post(payload) == 200
            samples.append(time.perf_counter() - start)
        print(f"  HTTP (uvicorn) /recommend          {percentiles(samples)}")
    finally:
        connection.close()
        server.terminate()
        server.wait(timeout=10)


COLD_START = """
import time, json, sys
start = time.perf_counter()
sys.path.insert(0, "functions/recommend")
from app.handler import handler
imported = time.perf_counter()
event = json.load(open("events/recommend_known_user.json"))
response = handler(event, None)
done = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import": imported - start, "total": done - start}))
"""


def cold_start(env: dict[str, str], runs: int = 5) -> None:
    totals, imports = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, "-c", COLD_START], cwd=ROOT, env={**os.environ, **env,
                                 "REC_CACHE_DIR": cache}, capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        totals.append(result["total"])
        imports.append(result["import"])
    print(
        f"  cold start (import → first /recommend): median {statistics.median(totals):.3f} s "
        f"(import {statistics.median(imports):.3f} s), min {min(totals):.3f} s, max {max(totals):.3f} s, runs {runs}"
    )


def main() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}",
        "REC_LOG_LEVEL": "WARNING",
    }
    try:
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        subprocess.run([sys.executable, "-m", "pipeline", "run", "--output", env["REC_MODEL_URI"], "--json"],
                       cwd=ROOT, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        print("model: 100k synthetic interactions, 10,000 items, 6,500 users, flat index")
        cold_start(env)
        over_http(env)
        # In a fresh process, like the Lambda's, not this one (which hosts the local S3 and imported numpy early).
        subprocess.run([sys.executable, __file__, "--in-process"], env={**os.environ, **env}, check=True)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--in-process"]:
        in_process({})
    else:
        main()
