"""What the part-4 scenarios of `make reliability` share: the second moto's names, the stack of APIs, HTTP from outside.

The user-state table (DynamoDB) and the event stream (Firehose) live on a second moto server; :class:`Stack` starts
APIs that use them, and :func:`summary` turns the outcomes of requests sent over HTTP into figures.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability_stack import Api, Moto

from reccore.eventlog import create_stream
from reccore.userstate.table import create_table

STATE_BUCKET = "reliability-events"  # on the second moto: where its Firehose stream delivers
TABLE = "reliability-users"
STREAM = "reliability-events"
STREAM_PREFIX = "stream"


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


# --- the second moto and its APIs -------------------------------------------------------------------------------------


def provision(state: Moto) -> None:
    """The table and the stream (delivering into the second moto's own bucket)."""
    import boto3

    create_table(boto3.client("dynamodb", endpoint_url=state.endpoint), TABLE)
    create_stream(boto3.client("firehose", endpoint_url=state.endpoint), STREAM, state.bucket, STREAM_PREFIX)


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
