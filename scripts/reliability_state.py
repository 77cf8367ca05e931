"""`make reliability`, part 4: user state and the events path, measured from outside over HTTP.

The user-state table (DynamoDB) and the event stream (Firehose) live on a second moto server, so that it can be
stalled (SIGSTOP) or stopped without touching the model's S3; a small threaded proxy in front of it throttles a
share of the DynamoDB calls (moto never throttles). Scenarios, each bounded in requests and time:

1. DynamoDB and Firehose stalled: mixed ``/recommend`` and ``/events``; then resumed, time to recover;
2. the same server refused (stopped); then restarted on its port, table and stream re-created, time to recover;
3. DynamoDB throttled (HTTP 400 ``ProvisionedThroughputExceededException`` on a share of its calls);
4. 8 concurrent clients posting single events for one new user: 503s, and whether every event was kept;
5. a heavy user: 12 batches of 500 events with 200-character item ids (DynamoDB's 400 KB item);
6. a million new users on the embedded store (no table): the API's RSS, read from /proc, against the LRU cap;
7. one ``/events`` batch of 500 events for 500 users against the table: latency;
8. one event id shared by two users, posted, logged to S3 and read back by a training run: records, duplicates.

Everything binds 127.0.0.1; every process this module starts is stopped in a ``finally``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reliability_stack import BUCKET, ROOT, Api, Moto, republish

from reccore.eventlog import create_stream
from reccore.settings import ServiceSettings
from reccore.userstate.table import create_table

STATE_BUCKET = "reliability-events"  # on the second moto: where its Firehose stream delivers
TABLE = "reliability-users"
STREAM = "reliability-events"
STREAM_PREFIX = "stream"
DEADLINE = float(ServiceSettings.model_fields["request_deadline_seconds"].default)  # the APIs keep the default
FAULT_REQUESTS = 20  # scenarios 1 and 2: requests while the fault lasts (half /recommend, half /events)
THROTTLE_REQUESTS = 40
THROTTLE_SHARE = 0.5
CONTENTION_CLIENTS, CONTENTION_EVENTS = 8, 10
HEAVY_BATCHES, BATCH = 12, 500
HEAVY_ID_CHARS = 200
BULK_POSTS = 5
MANY_USERS = 1_000_000
MANY_CHECKPOINTS = (100_000, 250_000, 500_000, 1_000_000)
MANY_CAP = 100_000
MANY_THREADS = 3
MANY_BUDGET_SECONDS = 300.0  # past this (projected), the many-users run stops at the last checkpoint reached
RECOVERY_TIMEOUT = 30.0
ITEM_LIMIT = 400_000  # DynamoDB's item size limit (bytes)
THROTTLED_BODY = json.dumps(
    {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "throttled"}
).encode()


# --- HTTP from outside ------------------------------------------------------------------------------------------


class Session:
    """One keep-alive HTTP/1.1 connection to an API; after a failure the next call opens a new one."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port, self.timeout = port, timeout
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, float, Any]:
        """(status, seconds, JSON body); status 0 if the connection failed or timed out."""
        data = None if body is None else json.dumps(body).encode()
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        start = time.monotonic()
        try:
            self.connection.request(method, path, body=data, headers={"content-type": "application/json"})
            response = self.connection.getresponse()
            payload = response.read()
            return response.status, time.monotonic() - start, json.loads(payload) if payload else None
        except (OSError, http.client.HTTPException, ValueError):
            self.close()
            return 0, time.monotonic() - start, None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass(frozen=True)
class Outcome:
    kind: str  # "recommend" | "events"
    status: int
    latency: float
    degraded: bool = False
    error: str | None = None


def outcome(kind: str, status: int, latency: float, body: Any) -> Outcome:
    body = body if isinstance(body, dict) else {}
    return Outcome(kind, status, latency, bool(body.get("degraded")), body.get("error"))


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Status counts per route, error codes, degraded answers, 5xx other than 503, latencies."""
    latencies = [o.latency for o in outcomes]
    return {
        "requests": len(outcomes),
        "statuses": {
            kind: dict(sorted(Counter(o.status for o in outcomes if o.kind == kind).items()))
            for kind in ("recommend", "events")
            if any(o.kind == kind for o in outcomes)
        },
        "errors": dict(Counter(o.error for o in outcomes if o.error)),
        "degraded": sum(o.degraded for o in outcomes),
        "server_errors": sum(o.status >= 500 and o.status != 503 for o in outcomes),
        "failed_connections": sum(o.status == 0 for o in outcomes),
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "max_s": max(latencies, default=float("nan")),
    }


def mixed(api: Api, count: int, users: list[str], items: list[str], tag: str) -> list[Outcome]:
    """``count`` sequential requests, alternately ``/recommend`` for a known user and one event for them."""
    outcomes = []
    for n in range(count):
        user = users[n % len(users)]
        if n % 2 == 0:
            status, latency, body = api.call("POST", "/recommend", {"user_id": user, "k": 10})
            outcomes.append(outcome("recommend", status, latency, body))
        else:
            event = {"user_id": user, "item_id": items[n % len(items)], "event": "view", "event_id": f"{tag}-{n}"}
            status, latency, body = api.call("POST", "/events", {"events": [event]})
            outcomes.append(outcome("events", status, latency, body))
    return outcomes


def recovery(api: Api, user: str, item: str, tag: str) -> dict[str, float | None]:
    """Seconds until ``/recommend`` answers undegraded and until ``/events`` answers 200 (``None``: not in time)."""
    start = time.monotonic()
    found: dict[str, float | None] = {"recommend_s": None, "events_s": None}
    n = 0
    while time.monotonic() - start < RECOVERY_TIMEOUT and None in found.values():
        if found["recommend_s"] is None:
            status, _, body = api.call("POST", "/recommend", {"user_id": user, "k": 10}, timeout=10)
            if status == 200 and not body["degraded"]:
                found["recommend_s"] = time.monotonic() - start
        if found["events_s"] is None:
            event = {"user_id": user, "item_id": item, "event": "view", "event_id": f"{tag}-recovery-{n}"}
            status, _, _ = api.call("POST", "/events", {"events": [event]}, timeout=10)
            if status == 200:
                found["events_s"] = time.monotonic() - start
        n += 1
        time.sleep(0.05)
    return found


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


# --- the second moto: provisioning and a throttling proxy ---------------------------------------------------------


def provision(state: Moto) -> None:
    """The table and the stream (delivering into the second moto's own bucket)."""
    import boto3

    create_table(boto3.client("dynamodb", endpoint_url=state.endpoint), TABLE)
    create_stream(boto3.client("firehose", endpoint_url=state.endpoint), STREAM, state.bucket, STREAM_PREFIX)


class DynamoProxy:
    """Forwards HTTP to the second moto, and can fault DynamoDB's calls alone (``X-Amz-Target: DynamoDB_*``).

    ``share``: that share of them is answered with a throttling 400 (moto never throttles). ``stall()``: they are
    held unanswered until ``release()`` (a stalled table while Firehose answers). ``stop()`` then ``start()``:
    refused, then back on the same port.
    """

    def __init__(self, upstream_port: int, share: float = 0.0, seed: int = 7) -> None:
        self.upstream_port, self.share = upstream_port, share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.released = threading.Event()
        self.released.set()
        self.port = 0
        self.endpoint = ""
        self.server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()  # open client connections: a stopped server resets them

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.connections.add(self.connection)

            def finish(self) -> None:
                with proxy.lock:
                    proxy.connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def do_POST(self) -> None:
                proxy.handle(self)

            def do_GET(self) -> None:
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # port 0 the first time
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:  # keep-alive connections too: nothing answers on this port any more
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        dynamo = (request.headers.get("X-Amz-Target") or "").startswith("DynamoDB_")
        with self.lock:
            throttle = dynamo and self.random.random() < self.share
            self.counts["dynamodb_calls" if dynamo else "other_calls"] += 1
            self.counts["throttled"] += throttle
        if dynamo and not self.released.is_set():
            with self.lock:
                self.counts["stalled"] += 1
            self.released.wait(120)  # then answered, as a resumed server answers its backlog
        if throttle:
            status, headers, payload = 400, [("Content-Type", "application/x-amz-json-1.0")], THROTTLED_BODY
        else:
            upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            try:
                upstream.request(request.command, request.path, body=body, headers=dict(request.headers))
                response = upstream.getresponse()
                status, payload = response.status, response.read()
                skip = {"content-length", "transfer-encoding", "connection"}
                headers = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
            except (OSError, http.client.HTTPException):
                status, headers, payload = 502, [], b""
            finally:
                upstream.close()
        try:
            request.send_response(status)
            for name, value in headers:
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except OSError:  # the client gave up on a stalled call
            request.close_connection = True


# --- the scenarios ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """What the scenarios share: the model's moto, the second moto, the log, real item ids, and the processes."""

    moto: Moto
    state: Moto
    log: Path
    known: list[str]
    model: tuple[Any, dict[str, bytes]]
    items: list[str] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)

    def api(self, dynamodb: str | None = None, **settings: str) -> Api:
        """An API with the table and the stream on the second moto (``dynamodb``: another DynamoDB endpoint)."""
        env = {
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb or self.state.endpoint,
            "AWS_ENDPOINT_URL_FIREHOSE": self.state.endpoint,
            "REC_USER_TABLE": TABLE,
            "REC_EVENTS_STREAM": STREAM,
            **settings,
        }
        return self.started(Api(self.moto, self.log, **env))

    def started(self, api: Api) -> Api:
        self.apis.append(api)
        if api.wait_until(lambda status, body: status == 200, 60.0) is None:
            status, _, body = api.call("GET", "/health")
            print(self.log.read_text(errors="replace")[-3000:])
            raise SystemExit(
                f"the API on port {api.port} did not serve a model within 60 s (exit code {api.process.poll()}; "
                f"GET /health: {status} {body})"
            )
        return api

    def stop(self, api: Api) -> None:
        api.stop()
        self.apis.remove(api)


def fault(
    stack: Stack, name: str, inject: Callable[[], None], heal: Callable[[], None], dynamodb: str | None = None
) -> dict[str, Any]:
    """Scenarios 1 and 2 on a new API: requests before, during the fault, the heal, and the recovery."""
    api = stack.api(dynamodb=dynamodb)
    try:
        before = summary(mixed(api, 4, stack.known, stack.items, f"{name}-before"))
        inject()
        during = summary(mixed(api, FAULT_REQUESTS, stack.known, stack.items, name))
        heal_start = time.monotonic()
        heal()
        heal_seconds = time.monotonic() - heal_start
        back = recovery(api, stack.known[0], stack.items[0], name)
        return {"before": before, "during": during, "heal_s": heal_seconds, **back}
    finally:
        if stack.state.process is not None:
            stack.state.resume()
        stack.stop(api)


def dynamodb_alone(stack: Stack, name: str) -> dict[str, Any]:
    """DynamoDB alone stalled or refused (through a :class:`DynamoProxy`) while Firehose answers."""
    proxy = DynamoProxy(stack.state.port)
    proxy.start()
    try:
        if name == "stalled":
            return fault(stack, f"{name}-dynamodb", proxy.stall, proxy.release, dynamodb=proxy.endpoint)
        return fault(stack, f"{name}-dynamodb", proxy.stop, proxy.start, dynamodb=proxy.endpoint)
    finally:
        proxy.release()
        proxy.stop()


def throttled(stack: Stack) -> dict[str, Any]:
    proxy = DynamoProxy(stack.state.port, THROTTLE_SHARE)
    proxy.start()
    try:
        api = stack.api(dynamodb=proxy.endpoint)
        result = summary(mixed(api, THROTTLE_REQUESTS, stack.known, stack.items, "throttled"))
        stack.stop(api)
        return {**result, "proxy": dict(proxy.counts)}
    finally:
        proxy.stop()


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


@contextmanager
def timed(figures: dict[str, Any], name: str) -> Iterator[None]:
    start = time.monotonic()
    print(f"user state: {name} ...", flush=True)
    yield
    figures.setdefault("seconds", {})[name] = time.monotonic() - start
    print(f"user state: {name}: {figures.get(name)}", flush=True)


def run(moto: Moto, model: tuple[Any, dict[str, bytes]], log: Path, known: list[str]) -> dict[str, Any]:
    """Every scenario against APIs serving ``model`` from ``moto``; the figures for :func:`report`."""
    state = Moto(STATE_BUCKET)
    stack = Stack(moto, state, log, list(known), model)
    figures: dict[str, Any] = {}
    log_before = log.stat().st_size if log.exists() else 0
    start = time.monotonic()
    try:
        state.start()
        provision(state)
        first = stack.api()
        _, _, body = first.call("GET", "/items?limit=100")  # real item ids
        stack.items = [row["item_id"] for row in body["items"]]
        stack.stop(first)

        def restart() -> None:  # same port, an empty server: the table and the stream are created again
            state.start()
            provision(state)

        scenarios: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("stalled", lambda: fault(stack, "stalled", state.pause, state.resume)),
            ("stalled_dynamodb", lambda: dynamodb_alone(stack, "stalled")),
            ("refused", lambda: fault(stack, "refused", state.stop, restart)),
            ("refused_dynamodb", lambda: dynamodb_alone(stack, "refused")),
            ("throttled", lambda: throttled(stack)),
        ]
        for name, scenario in scenarios:
            with timed(figures, name):
                figures[name] = scenario()
        api = stack.api()
        for name, with_api in (("contention", contention), ("heavy", heavy), ("bulk", bulk)):
            with timed(figures, name):
                figures[name] = with_api(stack, api)
        stack.stop(api)
        with timed(figures, "twins"):
            figures["twins"] = twins(stack)
        with timed(figures, "many"):
            figures["many"] = many_users(stack)
    finally:
        for api in list(stack.apis):
            stack.stop(api)
        state.stop()
    figures["total_s"] = time.monotonic() - start
    with log.open("rb") as handle:
        handle.seek(log_before)
        figures["tracebacks"] = handle.read().decode(errors="replace").count("Traceback")
    return figures


# --- the report ---------------------------------------------------------------------------------------------------


def _default(setting: str) -> Any:
    return ServiceSettings.model_fields[setting].default


def _ok(met: bool) -> str:
    return "yes" if met else "**NO**"


def _statuses(statuses: dict[str, dict[int, int]]) -> str:
    return "; ".join(
        f"`/{kind}` " + ", ".join(f"{n} × {s or 'no answer'}" for s, n in counts.items())
        for kind, counts in statuses.items()
    )


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"`{code}` × {n}" for code, n in errors.items()) or "none"


def _secs(value: float | None) -> str:
    return f"not within {RECOVERY_TIMEOUT:.0f} s" if value is None else f"{value:.2f} s"


def _table(rows: list[tuple[str, str, str, bool | None]]) -> list[str]:
    lines = ["| figure | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {goal} | {'' if met is None else _ok(met)} |" for name, value, goal, met in rows]
    return [*lines, ""]


def _fault_rows(f: dict[str, Any], heal: str) -> list[tuple[str, str, str, bool | None]]:
    during = f["during"]
    answered = during["statuses"].get("recommend", {}).get(200, 0)
    return [
        ("before the fault", _statuses(f["before"]["statuses"]), "all 200",
         all(set(counts) == {200} for counts in f["before"]["statuses"].values())),
        ("during: statuses", _statuses(during["statuses"]), "never 500", during["server_errors"] == 0
         and during["failed_connections"] == 0),
        ("during: 503 error codes", _errors(during["errors"]), "503, not 500", None),
        ("during: degraded `/recommend`", f"{during['degraded']} of {answered} answered", "every 200 degraded",
         during["degraded"] == answered),
        ("during: slowest request", f"{during['max_s']:.2f} s (median {during['p50_s']:.2f} s)", "≤ 3 s",
         during["max_s"] <= 3.0),
        (heal, f"{f['heal_s']:.2f} s", "", None),
        ("recovery: `/recommend` undegraded", _secs(f["recommend_s"]), "no restart", f["recommend_s"] is not None),
        ("recovery: `/events` 200", _secs(f["events_s"]), "no restart", f["events_s"] is not None),
    ]  # fmt: skip


def report(figures: dict[str, Any]) -> str:
    """The markdown section appended to docs/reliability.md."""
    stalled, refused, throttle = figures["stalled"], figures["refused"], figures["throttled"]
    cont, heavy_, bulk_, twins_, many = (figures[k] for k in ("contention", "heavy", "bulk", "twins", "many"))
    lines = [
        "",
        "## User state and the events path",
        "",
        f"`scripts/reliability_state.py`, {figures['total_s'] / 60:.1f} min. The user-state table (DynamoDB) and the",
        "event stream (Firehose) are on a second moto server (the model's S3 stays on the first), so they can be",
        "stalled or stopped without touching the model. In 1a and 2a the whole server fails, and `/events`, which",
        "writes the log before the table, fails on Firehose; in 1b and 2b a proxy in front of the server fails",
        "DynamoDB's calls alone, so `/events` reaches the table. Every API: uvicorn, 1 worker,",
        f"`REC_REQUEST_DEADLINE_SECONDS={DEADLINE:g}` (the default) shared by a request's backend calls; the table's",
        f"and the stream's clients are bounded like S3's (connect {_default('s3_connect_timeout'):g} s, read "
        f"{_default('s3_read_timeout'):g} s, {_default('s3_max_attempts')} attempts). Requests are sent from",
        "outside over HTTP on 127.0.0.1; in 1-3 they alternate `/recommend` for a user the model knows and one",
        "event for that user.",
        "",
        f"### 1a. DynamoDB and Firehose stalled (SIGSTOP), {stalled['during']['requests']} sequential requests",
        "",
        *_table(_fault_rows(stalled, "SIGCONT sent")),
        "### 1b. DynamoDB alone stalled (its calls held unanswered by a proxy; Firehose answers)",
        "",
        *_table(_fault_rows(figures["stalled_dynamodb"], "calls released")),
        f"### 2a. DynamoDB and Firehose refused (server stopped), {refused['during']['requests']} sequential requests",
        "",
        *_table(_fault_rows(refused, "restart on the same port, table and stream re-created")),
        "### 2b. DynamoDB alone refused (the proxy in front of it stopped; Firehose answers)",
        "",
        *_table(_fault_rows(figures["refused_dynamodb"], "proxy restarted on its port")),
        f"### 3. DynamoDB throttled ({THROTTLE_SHARE:.0%} of its calls answered 400 "
        f"`ProvisionedThroughputExceededException` by a proxy), {throttle['requests']} sequential requests",
        "",
        *_table([
            ("statuses", _statuses(throttle["statuses"]), "never 500", throttle["server_errors"] == 0),
            ("503 error codes", _errors(throttle["errors"]), "", None),
            ("degraded `/recommend`", str(throttle["degraded"]), "", None),
            ("latency", f"median {throttle['p50_s'] * 1e3:.0f} ms, max {throttle['max_s'] * 1e3:.0f} ms", "≤ 3 s",
             throttle["max_s"] <= 3.0),
            ("DynamoDB calls at the proxy / throttled", f"{throttle['proxy'].get('dynamodb_calls', 0)} / "
             f"{throttle['proxy'].get('throttled', 0)}", "", None),
        ]),
        f"### 4. Contention: {CONTENTION_CLIENTS} concurrent clients × {CONTENTION_EVENTS} single-event `/events`,"
        " one new user (distinct items and event ids)",
        "",
        *_table([
            ("statuses", _statuses(cont["statuses"]), "all 200",
             cont["statuses"].get("events") == {200: cont["posted"]}),
            ("503s", str(sum(n for s, n in cont["statuses"].get("events", {}).items() if s == 503))
             + (f" ({_errors(cont['errors'])})" if cont["errors"] else ""), "0",
             cont["statuses"].get("events", {}).get(503, 0) == 0),
            ("latency", f"median {cont['p50_s'] * 1e3:.0f} ms, max {cont['max_s'] * 1e3:.0f} ms", "", None),
            ("`GET /users/{id}` afterwards", f"{cont['history_status']}: n_interactions {cont['n_interactions']}, "
             f"{cont['history_items_found']} of {cont['distinct_items']} items in the history",
             f"all {cont['posted']}", cont["n_interactions"] == cont["posted"]
             and cont["history_items_found"] == cont["distinct_items"]),
        ]),
        f"### 5. A heavy user: {HEAVY_BATCHES} batches of {BATCH} events, {HEAVY_ID_CHARS}-character item ids",
        "",
        *_table([
            ("batch statuses", ", ".join(str(s) for s in heavy_["batch_statuses"]), "all 200",
             all(s == 200 for s in heavy_["batch_statuses"])),
            ("503 error codes", _errors(heavy_["errors"]), "", None),
            ("events accepted", f"{heavy_['accepted']:,} of {HEAVY_BATCHES * BATCH:,}", "", None),
            ("slowest batch", f"{heavy_['max_s'] * 1e3:.0f} ms (median {heavy_['p50_s'] * 1e3:.0f} ms)", "", None),
            ("stored live item", f"{heavy_['item_bytes']:,} bytes ({heavy_['stored_events']} events, "
             f"{heavy_['stored_seen']} seen ids)", "< 400 KB", 0 < heavy_["item_bytes"] < ITEM_LIMIT),
            ("`/recommend` for the user", f"{heavy_['recommend_status']}, {heavy_['recommend_s'] * 1e3:.0f} ms, "
             f"degraded {heavy_['recommend_degraded']}", "200", heavy_["recommend_status"] == 200),
        ]),
        f"### 6. {MANY_USERS:,} new users on the embedded store (no table, LRU cap {MANY_CAP:,}), "
        f"batches of {BATCH}, {MANY_THREADS} keep-alive clients",
        "",
        "RSS of the API process, read from `/proc/<pid>/status`"
        + (f". **{many['stopped']}**" if many["stopped"] else "") + ":",
        "",
        "| users posted | elapsed | VmRSS | VmHWM |",
        "|---:|---:|---:|---:|",
        *[
            f"| {s['users']:,} | {s.get('seconds', 0):.0f} s | {s['VmRSS']:.0f} MB | {s['VmHWM']:.0f} MB |"
            for s in many["samples"]
        ],
        "",
        *_many_rows(many),
        f"### 7. One `/events` POST of {BATCH} events for {BATCH} distinct new users, against the table "
        f"({BULK_POSTS} posts)",
        "",
        *_table([
            ("statuses", _statuses(bulk_["statuses"]), "all 200", bulk_["statuses"].get("events") == {200: BULK_POSTS}),
            ("503 error codes", _errors(bulk_["errors"]), "", None),
            ("latency", f"median {bulk_['p50_s'] * 1e3:.0f} ms, max {bulk_['max_s'] * 1e3:.0f} ms "
             f"({', '.join(f'{x * 1e3:.0f}' for x in bulk_['latencies_s'])} ms)", "≤ 1 s", bulk_["max_s"] <= 1.0),
            ("users in the table 2 s after each post (its status)", ", ".join(
                f"{n} ({o})" for n, o in zip(bulk_["stored"], bulk_["post_statuses"], strict=True)
            ) + f" of {BATCH}", "", None),
            ("CPU per post (median; /proc)", f"API {bulk_['api_cpu_s']:.2f} s, DynamoDB's moto "
             f"{bulk_['moto_cpu_s']:.2f} s, on {os.cpu_count()} cores", "", None),
        ]),
        "### 8. One event id (`order-1`) for two users, through the S3 event log to a training run",
        "",
        *_table(_twins_rows(twins_)),
        f"Server tracebacks logged by these APIs: {figures['tracebacks']}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _many_rows(many: dict[str, Any]) -> list[str]:
    samples = many["samples"]
    at_cap = next((s for s in samples if s["users"] == MANY_CAP), None)
    last = samples[-1]
    growth: tuple[str, bool | None] = ("n/a: the run did not pass the cap", False)
    if at_cap is not None and last["users"] > MANY_CAP:
        held = (at_cap["VmRSS"] - samples[0]["VmRSS"]) * 2**20 / MANY_CAP  # bytes per user held under the cap
        more = last["users"] - MANY_CAP
        per_user = (last["VmRSS"] - at_cap["VmRSS"]) * 2**20 / more
        growth = (
            f"{last['VmRSS'] - at_cap['VmRSS']:+.0f} MB over {more:,} more users ({per_user:.0f} B each; "
            f"a user held under the cap cost {held:.0f} B)",
            per_user < 0.05 * held,
        )
    return _table([
        ("statuses", ", ".join(f"{n} × {s or 'no answer'}" for s, n in sorted(many["statuses"].items())),
         "all 200", set(many["statuses"]) == {200}),
        ("users posted", f"{many['users']:,} in {many['seconds']:.0f} s "
         f"(a batch: median {many['p50_s'] * 1e3:.0f} ms, max {many['max_s'] * 1e3:.0f} ms)", f"{MANY_USERS:,}",
         many["users"] == MANY_USERS),
        ("RSS growth after the cap", growth[0], "flat: < 5% of a held user's cost per further user", growth[1]),
        ("`GET /users/{id}`: the first user / the last", f"{many['first_user_status']} / {many['last_user_status']}",
         "404 (evicted) / 200", (many["first_user_status"], many["last_user_status"]) == (404, 200)),
    ])  # fmt: skip


def _twins_rows(t: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    posted = "; ".join(f"{status}, accepted {acc}, duplicates {dup}" for status, acc, dup in t["posted"])
    rows: list[tuple[str, str, str, bool | None]] = [
        ("`/events` for twin-a; twin-b", posted, "200, accepted 1, each",
         all(p == (200, 1, 0) for p in t["posted"])),
        ("`python -m pipeline run --events …`", f"exit {t['exit']}, {t['seconds']:.0f} s", "exit 0", t["exit"] == 0),
    ]  # fmt: skip
    events = t.get("events")
    if events:
        rows += [
            ("`data.events.records`", str(events["records"]), "2", events["records"] == 2),
            ("`data.events.duplicates`", str(events["duplicates"]), "0", events["duplicates"] == 0),
        ]
    else:
        rows.append(("`data.events`", "absent" if t["exit"] == 0 else t.get("stderr", "")[-200:], "present", False))
    return rows
