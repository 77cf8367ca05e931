"""`make reliability`, part 4, scenarios 1-3: DynamoDB and Firehose stalled, refused and throttled.

Each runs on a new API: mixed sequential requests before and during the fault, then the time to recover once it
heals, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reliability_stack import RECOVERY_TIMEOUT, Api
from reliability_state_proxy import DynamoProxy
from reliability_state_stack import Outcome, Stack, outcome, summary

FAULT_REQUESTS = 20  # scenarios 1 and 2: requests while the fault lasts (half /recommend, half /events)
THROTTLE_REQUESTS = 40
THROTTLE_SHARE = 0.5


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
