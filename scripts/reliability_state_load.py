"""`make reliability`, part 4, scenarios 4-8: contention, a heavy user, many users, a bulk batch, one event id twice.

Each is bounded in requests and time; CPU and memory are read from outside, from /proc.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reliability_stack import BUCKET, ROOT, Api, republish
from reliability_state_stack import TABLE, Outcome, Session, Stack, outcome, summary

CONTENTION_CLIENTS, CONTENTION_EVENTS = 8, 10
HEAVY_BATCHES, BATCH = 12, 500
HEAVY_ID_CHARS = 200
BULK_POSTS = 5
MANY_USERS = 1_000_000
MANY_CHECKPOINTS = (100_000, 250_000, 500_000, 1_000_000)
MANY_CAP = 100_000
MANY_THREADS = 3
MANY_BUDGET_SECONDS = 300.0  # past this (projected), the many-users run stops at the last checkpoint reached
ITEM_LIMIT = 400_000  # DynamoDB's item size limit (bytes)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used, read from outside (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB, read from outside (/proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def contention(stack: Stack, api: Api) -> dict[str, Any]:
    user = f"contended-{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(CONTENTION_CLIENTS)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def item(c: int, n: int) -> str:
        return stack.items[(c * CONTENTION_EVENTS + n) % len(stack.items)]

    expected = {item(c, n) for c in range(CONTENTION_CLIENTS) for n in range(CONTENTION_EVENTS)}

    def client(c: int) -> None:
        session = Session(api.port)
        barrier.wait()
        for n in range(CONTENTION_EVENTS):
            event = {"user_id": user, "item_id": item(c, n), "event": "click", "event_id": f"c{c}-e{n}"}
            result = outcome("events", *session.call("POST", "/events", {"events": [event]}))
            with lock:
                outcomes.append(result)
        session.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CONTENTION_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    status, _, body = api.call("GET", f"/users/{user}?limit=100")
    history = {row["item_id"] for row in (body or {}).get("history", [])}
    return {
        **summary(outcomes),
        "posted": CONTENTION_CLIENTS * CONTENTION_EVENTS,
        "distinct_items": len(expected),
        "history_status": status,
        "n_interactions": (body or {}).get("n_interactions"),
        "history_items_found": len(history & expected),
    }


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item of S and N attributes: names plus values (UTF-8)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode()) + sum(len(str(v).encode()) for v in value.values())
    return size


def heavy(stack: Stack, api: Api) -> dict[str, Any]:
    import boto3

    user = f"heavy-{uuid.uuid4().hex[:8]}"
    outcomes = []
    accepted = 0
    for b in range(HEAVY_BATCHES):
        events = [
            {
                "user_id": user,
                "item_id": f"heavy-item-{b * BATCH + n:06d}-".ljust(HEAVY_ID_CHARS, "x"),
                "event": "view",
                "event_id": f"heavy-{b * BATCH + n:06d}",
            }
            for n in range(BATCH)
        ]
        status, latency, body = api.call("POST", "/events", {"events": events})
        outcomes.append(outcome("events", status, latency, body))
        accepted += (body or {}).get("accepted", 0) if status == 200 else 0
    rec_status, rec_latency, rec_body = api.call("POST", "/recommend", {"user_id": user, "k": 10})
    client = boto3.client("dynamodb", endpoint_url=stack.state.endpoint)
    live = client.get_item(TableName=TABLE, Key={"user_id": {"S": user}, "kind": {"S": "live"}}).get("Item") or {}
    return {
        **summary(outcomes),
        "batch_statuses": [o.status for o in outcomes],
        "accepted": accepted,
        "recommend_status": rec_status,
        "recommend_s": rec_latency,
        "recommend_degraded": (rec_body or {}).get("degraded"),
        "item_bytes": item_bytes(live),
        "stored_events": len(json.loads(live["events"]["S"])) if live else 0,
        "stored_seen": len(json.loads(live["seen"]["S"])) if live else 0,
    }


def bulk(stack: Stack, api: Api) -> dict[str, Any]:
    """Scenario 7, with the CPU seconds the API and the second moto spent on each post (from /proc)."""
    import boto3

    assert stack.state.process is not None
    scan = boto3.client("dynamodb", endpoint_url=stack.state.endpoint).get_paginator("scan")
    outcomes, api_cpu, moto_cpu, stored = [], [], [], []
    for _ in range(BULK_POSTS):
        tag = uuid.uuid4().hex[:6]
        events = [
            {"user_id": f"bulk-{tag}-{n:03d}", "item_id": stack.items[n % len(stack.items)], "event": "view"}
            for n in range(BATCH)
        ]
        api_before, moto_before = cpu_seconds(api.process.pid), cpu_seconds(stack.state.process.pid)
        outcomes.append(outcome("events", *api.call("POST", "/events", {"events": events})))
        time.sleep(2.0)  # a post past its deadline leaves its writes running: let them finish before the next
        api_cpu.append(cpu_seconds(api.process.pid) - api_before)
        moto_cpu.append(cpu_seconds(stack.state.process.pid) - moto_before)
        pages = scan.paginate(
            TableName=TABLE,
            Select="COUNT",
            FilterExpression="begins_with(user_id, :p)",
            ExpressionAttributeValues={":p": {"S": f"bulk-{tag}-"}},
        )
        stored.append(sum(page["Count"] for page in pages))  # users whose state was written in the end
    return {
        **summary(outcomes),
        "latencies_s": [o.latency for o in outcomes],
        "api_cpu_s": statistics.median(api_cpu),
        "moto_cpu_s": statistics.median(moto_cpu),
        "stored": stored,
        "post_statuses": [o.status for o in outcomes],
    }


def twins(stack: Stack) -> dict[str, Any]:
    """Scenario 8: one event id for two users, through the S3 event log to a training run."""
    republish(stack.moto.store("twins"), *stack.model)
    api = stack.started(
        Api(stack.moto, stack.log, REC_MODEL_URI=f"s3://{BUCKET}/twins", REC_USER_TABLE="", REC_EVENTS_STREAM="")
    )
    posted = []
    for user in ("twin-a", "twin-b"):
        event = {"user_id": user, "item_id": stack.items[0], "event": "purchase", "event_id": "order-1"}
        status, _, body = api.call("POST", "/events", {"events": [event]})
        posted.append((status, (body or {}).get("accepted"), (body or {}).get("duplicates")))
    stack.stop(api)
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": stack.moto.endpoint}
    command = [sys.executable, "-m", "pipeline", "run", "--source", "synthetic",
               "--events", f"s3://{BUCKET}/twins/events", "--output", f"s3://{BUCKET}/twins-out",
               "--json", "--no-tune"]  # fmt: skip
    start = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    result: dict[str, Any] = {"posted": posted, "exit": run.returncode, "seconds": time.monotonic() - start}
    if run.returncode == 0:
        result["events"] = json.loads(run.stdout)["data"].get("events")
    else:
        result["stderr"] = run.stderr[-1500:]
        print(run.stderr[-3000:])
    return result


def many_users(stack: Stack) -> dict[str, Any]:
    """Scenario 6: new users in batches of 500 on the embedded store; the API's RSS at each checkpoint."""
    republish(stack.moto.store("embedded"), *stack.model)
    api = stack.started(
        Api(
            stack.moto,
            stack.log,
            REC_MODEL_URI=f"s3://{BUCKET}/embedded",
            REC_USER_TABLE="",
            REC_EVENTS_STREAM="",
            REC_EMBEDDED_MAX_USERS=str(MANY_CAP),
        )
    )
    try:
        api.call("POST", "/recommend", {"user_id": stack.known[0], "k": 10})  # warm the route
        samples = [{"users": 0, **rss_mb(api.process.pid)}]
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        done = 0
        start = time.monotonic()
        stopped_note = None
        items = stack.items
        for target in MANY_CHECKPOINTS:
            elapsed = time.monotonic() - start
            if done and elapsed / done * target > MANY_BUDGET_SECONDS * 1.2:
                stopped_note = f"stopped at {done:,} users: {target:,} would take about {elapsed / done * target:.0f} s"
                break
            batches = iter(range(done // BATCH, target // BATCH))
            take = threading.Lock()

            def worker(batches: Iterator[int] = batches, take: threading.Lock = take) -> None:
                session = Session(api.port)
                while True:
                    with take:
                        b = next(batches, None)
                    if b is None:
                        break
                    events = [
                        {"user_id": f"n{b * BATCH + n:07d}", "item_id": items[(b + n) % len(items)], "event": "view"}
                        for n in range(BATCH)
                    ]
                    status, latency, _ = session.call("POST", "/events", {"events": events})
                    with lock:
                        statuses[status] += 1
                        latencies.append(latency)
                session.close()

            threads = [threading.Thread(target=worker) for _ in range(MANY_THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            done = target
            samples.append({"users": done, "seconds": time.monotonic() - start, **rss_mb(api.process.pid)})
            print("many users:", samples[-1])
        first, _, _ = api.call("GET", "/users/n0000000")
        last, _, _ = api.call("GET", f"/users/n{done - 1:07d}")
        return {
            "samples": samples,
            "users": done,
            "seconds": time.monotonic() - start,
            "statuses": dict(statuses),
            "p50_s": statistics.median(latencies) if latencies else float("nan"),
            "max_s": max(latencies, default=float("nan")),
            "stopped": stopped_note,
            "first_user_status": first,
            "last_user_status": last,
        }
    finally:
        stack.stop(api)
