"""Service benchmark: in-process handler latency, HTTP latency via uvicorn, and cold start.

Targets (issue 3), at the default 10k-item catalogue (100k synthetic interactions):
  in-process handler (event → Mangum → response) /recommend p50 < 0.5 ms;
  HTTP via uvicorn (1 worker, sequential, keep-alive) p50 < 1 ms;
  cold start (fresh process: import → first /recommend answer, artifacts in a local moto S3) < 1 s.
Cold start is measured with the bytecode cache off (PYTHONDONTWRITEBYTECODE=1, set machine-wide on our VMs:
installed packages use the .pyc pip wrote, the repository's modules are compiled in every process, as in the
Lambda image, whose Dockerfile copies the app without compiling it) and on (PYTHONPYCACHEPREFIX, warmed once).
Everything runs on 127.0.0.1 and stops by itself. Writes its figures to the ``service`` section of
docs/bench.json (see bench_record.py).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_record import LoadWatch, import_seconds, record
from local_stack import local_aws

from pipeline.client import free_port, service_command

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
N = 3000
BUCKET, PREFIX = "bench-artifacts", "recsys"


TARGETS = {"in_process": "< 0.5 ms", "http": "< 1 ms", "cold_start": "< 1 s"}
IMPORTS = ("fastapi", "faiss", "boto3")


def percentiles(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

    return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "n": len(samples)}


def describe(figures: dict[str, Any]) -> str:
    return (f"p50 {figures['p50_ms']:6.3f} ms  p90 {figures['p90_ms']:6.3f} ms  p99 {figures['p99_ms']:6.3f} ms  "
            f"(n={figures['n']})")  # fmt: skip


def in_process(env: dict[str, str]) -> None:
    """Prints one line per case, then the figures as one JSON line (read by the parent)."""
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
    figures = {}
    for name, event in cases.items():
        for _ in range(200):  # warm-up (the first call loads the model)
            assert handler(event, None)["statusCode"] == 200  # type: ignore[arg-type]  # no Lambda context here
        samples = []
        for _ in range(N):
            start = time.perf_counter()
            handler(event, None)  # type: ignore[arg-type]
            samples.append(time.perf_counter() - start)
        figures[name] = percentiles(samples)
        print(f"  in-process {name:<24} {describe(figures[name])}", flush=True)
    print(json.dumps(figures))


def over_http(env: dict[str, str]) -> dict[str, Any]:
    # http.client with one keep-alive connection: a lighter client than httpx, so the figure is the server's.
    import http.client

    port = free_port()
    server = subprocess.Popen(
        service_command(port, "--workers", "1", "--no-access-log", "--log-level", "warning"),
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
                health = response.read()
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
        figures = percentiles(samples)
        print(f"  HTTP (uvicorn) /recommend          {describe(figures)}")
        return {"/recommend known user": figures, "faiss_simd": json.loads(health).get("faiss_simd")}
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


def cold_start_once(env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", COLD_START], cwd=ROOT, env={**env, "REC_CACHE_DIR": cache},
                             capture_output=True, text=True, check=True)  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cold_start(env: dict[str, str], label: str, runs: int = 5) -> dict[str, Any]:
    results = [cold_start_once(env) for _ in range(runs)]
    totals = [r["total"] for r in results]
    figures = {
        "median_s": round(statistics.median(totals), 3),
        "min_s": round(min(totals), 3),
        "max_s": round(max(totals), 3),
        "import_median_s": round(statistics.median(r["import"] for r in results), 3),
        "runs": runs,
        "PYTHONDONTWRITEBYTECODE": env.get("PYTHONDONTWRITEBYTECODE"),
        "PYTHONPYCACHEPREFIX": "a warmed temporary directory" if env.get("PYTHONPYCACHEPREFIX") else None,
    }
    print(
        f"  cold start, bytecode cache {label:<3} (import → first /recommend): median {figures['median_s']:.3f} s "
        f"(import {figures['import_median_s']:.3f} s), min {figures['min_s']:.3f} s, max {figures['max_s']:.3f} s, "
        f"runs {runs}"
    )
    return figures


def cold_starts(env: dict[str, str]) -> dict[str, Any]:
    """Cold start with the bytecode cache off, then on; and the big imports, cache off."""
    cache_vars = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    base = {k: v for k, v in {**os.environ, **env}.items() if k not in cache_vars}
    off = {**base, "PYTHONDONTWRITEBYTECODE": "1"}
    figures = {"cache_off": cold_start(off, "off")}
    with tempfile.TemporaryDirectory() as pycache:
        on = {**base, "PYTHONPYCACHEPREFIX": pycache}
        cold_start_once(on)  # fills the cache
        figures["cache_on"] = cold_start(on, "on")
    figures["import_s"] = {module: import_seconds(module, off) for module in IMPORTS}
    print("  import, cache off (fresh process, median of 3): "
          + ", ".join(f"{m} {s:.2f} s" for m, s in figures["import_s"].items()))  # fmt: skip
    return figures


def main() -> None:
    import boto3

    load = LoadWatch()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with local_aws() as aws:
        env = {**aws, "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}"}
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        command = [sys.executable, "-m", "pipeline", "run", "--output", env["REC_MODEL_URI"], "--json", "--no-tune"]
        run = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True, text=True)
        data = json.loads(run.stdout)["data"]
        model = {"interactions": data["n_interactions"], "items": data["n_items"], "users": data["n_users"],
                 "index": "flat"}  # fmt: skip
        print(f"model: {model['interactions']:,} synthetic interactions, {model['items']:,} items, "
              f"{model['users']:,} users, flat index")  # fmt: skip
        cold = cold_starts(env)
        http = over_http(env)
        # In a fresh process, like the Lambda's, not this one (which hosts the local S3 and imported numpy early).
        child = subprocess.run([sys.executable, __file__, "--in-process"], env={**os.environ, **env}, check=True,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        *lines, last = child.stdout.rstrip().splitlines()
        print("\n".join(lines))
        figures = {"model": model, "targets": TARGETS, "faiss_simd": http.pop("faiss_simd"),
                   "in_process": json.loads(last), "http": http, "cold_start": cold}  # fmt: skip
    record("service", figures, load)


if __name__ == "__main__":
    if sys.argv[1:] == ["--in-process"]:
        in_process({})
    else:
        main()
