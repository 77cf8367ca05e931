"""Real-time loop benchmark: POST /events and /recommend with the user-state store, through the front door.

- in-process (API Gateway event → Mangum → response, in a fresh process like a Lambda's) and over HTTP (uvicorn):
  POST /events p50/p99 and events per second, for batches of 1 and 100 events;
- /recommend p50/p99 for a known user with the DynamoDB store (moto's server over HTTP) against the embedded store;
- time from an accepted event to a changed recommendation, and whether the very next request shows it.

Everything runs on 127.0.0.1 against one moto server (S3, DynamoDB, Firehose) and stops by itself.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench_record import LoadWatch, record
from bench_service import BUCKET, PREFIX, describe, percentiles
from local_stack import local_aws, provision_realtime

from pipeline.client import free_port, service_command

ROOT = Path(__file__).resolve().parent.parent
EVENT_TEMPLATE = ROOT / "events" / "recommend_known_user.json"
N = 500
KNOWN_USER = "u0000001"


def _request(handler: Any, template: dict[str, Any], method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    event = {**template, "rawPath": path, "body": json.dumps(payload)}
    event["requestContext"] = {**template["requestContext"], "http": {**template["requestContext"]["http"],
                               "method": method, "path": path}}  # fmt: skip
    response = handler(event, None)
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def _events(n: int, user: str) -> dict[str, Any]:
    return {"events": [{"user_id": user, "item_id": f"i{1 + (k * 37) % 9000:06d}", "event": "click"} for k in range(n)]}


Row = dict[str, Any]


def _row(store: str, mode: str, what: str, samples: list[float], **extra: Any) -> Row:
    row = {"store": store, "mode": mode, "what": what, **percentiles(samples), **extra}
    rate = f"  {extra['events_per_s']:,} events/s" if "events_per_s" in extra else ""
    changed = f"; next request changed {extra['next_request_changed']}" if "next_request_changed" in extra else ""
    print(f"  {mode:<10} {store:<9} {what:<24} {describe(row)}{rate}{changed}", flush=True)
    return row


def in_process(label: str) -> None:
    sys.path.insert(0, str(ROOT / "functions" / "recommend"))
    from app.handler import handler  # after the environment is set

    rows: list[Row] = []
    template = json.loads(EVENT_TEMPLATE.read_text())
    call = lambda method, path, payload: _request(handler, template, method, path, payload)  # noqa: E731
    for _ in range(50):
        call("POST", "/recommend", {"user_id": KNOWN_USER, "k": 10})
    for batch in (1, 100):
        samples = []
        for n in range(N // (10 if batch > 1 else 1)):
            body = _events(batch, f"bench-{batch}-{n % 50}")
            start = time.perf_counter()
            assert call("POST", "/events", body)["accepted"] == batch
            samples.append(time.perf_counter() - start)
        rate = round(batch * len(samples) / sum(samples))
        rows.append(_row(label, "in-process", f"POST /events ×{batch}", samples, events_per_s=rate))
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        call("POST", "/recommend", {"user_id": KNOWN_USER, "k": 10})
        samples.append(time.perf_counter() - start)
    rows.append(_row(label, "in-process", "/recommend known user", samples))
    delays, next_request = [], 0
    for trial in range(50):
        user = f"loop-{trial}-{uuid.uuid4().hex[:6]}"
        before = call("POST", "/recommend", {"user_id": user, "k": 10})
        start = time.perf_counter()
        call("POST", "/events", {"events": [{"user_id": user, "item_id": "i000042", "event": "purchase"}]})
        after = call("POST", "/recommend", {"user_id": user, "k": 10})
        delays.append(time.perf_counter() - start)
        next_request += after["strategy"] == "fold_in" and after["items"] != before["items"]
    rows.append(_row(label, "in-process", "event → changed answer", delays,
                     next_request_changed=f"{next_request}/{len(delays)}"))  # fmt: skip
    print("ROWS " + json.dumps(rows))


def over_http(env: dict[str, str], label: str) -> list[Row]:
    import http.client

    port = free_port()
    server = subprocess.Popen(
        service_command(port, "--no-access-log", "--log-level", "warning"),
        cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rows: list[Row] = []

    def post(path: str, payload: dict[str, Any]) -> None:
        connection.request("POST", path, body=json.dumps(payload), headers={"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                post("/recommend", {"user_id": KNOWN_USER, "k": 10})
                break
            except (ConnectionError, http.client.HTTPException, AssertionError):
                connection.close()
                if time.monotonic() > deadline:
                    raise SystemExit("uvicorn did not become ready") from None
                time.sleep(0.2)
        for batch in (1, 100):
            samples = []
            for n in range(N // (10 if batch > 1 else 1)):
                body = _events(batch, f"http-{batch}-{n % 50}")
                start = time.perf_counter()
                post("/events", body)
                samples.append(time.perf_counter() - start)
            rate = round(batch * len(samples) / sum(samples))
            rows.append(_row(label, "HTTP", f"POST /events ×{batch}", samples, events_per_s=rate))
        samples = []
        for _ in range(N):
            start = time.perf_counter()
            post("/recommend", {"user_id": KNOWN_USER, "k": 10})
            samples.append(time.perf_counter() - start)
        rows.append(_row(label, "HTTP", "/recommend known user", samples))
        return rows
    finally:
        connection.close()
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    import boto3

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    store = {"REC_USER_TABLE": "bench-users", "REC_EVENTS_STREAM": "bench-users"}
    load = LoadWatch()
    rows: list[Row] = []
    with local_aws() as aws:
        base = {**aws, "REC_MODEL_URI": f"s3://{BUCKET}/{PREFIX}"}
        endpoint = aws["AWS_ENDPOINT_URL"]
        os.environ.update(base)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        provision_realtime(endpoint, BUCKET, PREFIX, "bench-users", "us-east-1")
        train = [sys.executable, "-m", "pipeline", "run", "--output", base["REC_MODEL_URI"], "--json", "--no-tune"]
        subprocess.run(train, cwd=ROOT, env={**os.environ, **base, "REC_USER_ARRAYS": "true"}, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        print("model: 100k synthetic interactions, 10,000 items, 6,500 users, flat index; AWS parts on moto")
        for label, extra in (("embedded", {}), ("dynamodb", store)):
            env = {**os.environ, **base, **extra}
            out = subprocess.run([sys.executable, __file__, "--in-process", label], env=env, check=True,
                                 stdout=subprocess.PIPE, text=True).stdout  # fmt: skip
            print("\n".join(line for line in out.splitlines() if not line.startswith("ROWS ")))
            rows += json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])
            rows += over_http({**base, **extra}, label)
    record("realtime", {"rows": rows}, load)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--in-process"]:
        in_process(sys.argv[2])
    else:
        main()
