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

Scenarios 1-3 are in ``reliability_state_faults.py``, 4-8 in ``reliability_state_load.py``, what they share in
``reliability_state_stack.py``, the proxy in ``reliability_state_proxy.py``; the markdown section that
``reliability.py`` appends to docs/reliability.md is written by ``reliability_state_report.py``. Everything binds
127.0.0.1; every process these modules start is stopped in a ``finally``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reliability_stack import Moto
from reliability_state_faults import dynamodb_alone, fault, throttled
from reliability_state_load import bulk, contention, heavy, many_users, twins
from reliability_state_stack import STATE_BUCKET, Stack, provision


@contextmanager
def timed(figures: dict[str, Any], name: str) -> Iterator[None]:
    start = time.monotonic()
    print(f"user state: {name} ...", flush=True)
    yield
    figures.setdefault("seconds", {})[name] = time.monotonic() - start
    print(f"user state: {name}: {figures.get(name)}", flush=True)


def run(moto: Moto, model: tuple[Any, dict[str, bytes]], log: Path, known: list[str]) -> dict[str, Any]:
    """Every scenario against APIs serving ``model`` from ``moto``; the figures for ``reliability_state_report``."""
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
