"""The user-state store under every botocore failure shape, DynamoDB's item limit, contention and many users."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from reccore.deadline import request_deadline
from reccore.errors import UserStateBusyError, UserStateError
from reccore.userstate import MAX_SEEN, Event, UserState
from reccore.userstate.dynamodb import DynamoStore, error_code
from reccore.userstate.embedded import EmbeddedStore
from reccore.userstate.table import SEEN_BYTES, create_table

ENDPOINT = "http://127.0.0.1:9"


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Query")


SHAPES: dict[str, Callable[[], Exception]] = {
    "refused": lambda: EndpointConnectionError(endpoint_url=ENDPOINT),
    "reset": lambda: ConnectionClosedError(endpoint_url=ENDPOINT),
    "stalled (read timeout)": lambda: ReadTimeoutError(endpoint_url=ENDPOINT),
    "connect timeout": lambda: ConnectTimeoutError(endpoint_url=ENDPOINT),
    "throttled for good": lambda: client_error("ProvisionedThroughputExceededException"),
    "access denied": lambda: client_error("AccessDeniedException"),
    "not a botocore error": lambda: RuntimeError("boom"),
}


class FailingClient:
    """A DynamoDB client whose every call raises the same exception (``failures`` times, then answers)."""

    def __init__(self, error: Callable[[], Exception], failures: int = 10**6) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        def call(**_: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error()
            return {"Items": [], "Item": None}

        return call


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_every_failure_shape_is_one_error_type(shape: str) -> None:
    store = DynamoStore("t", client=FailingClient(SHAPES[shape]))
    with pytest.raises(UserStateError, match="user-state table unavailable"):
        store.get("u1")
    with pytest.raises(UserStateError):
        store.append([("u1", Event("i1", "view", 1))])


def test_shapes_without_a_response_have_no_error_code() -> None:
    assert error_code(ReadTimeoutError(endpoint_url=ENDPOINT)) == ""  # response is None: no AttributeError
    assert error_code(client_error("ThrottlingException")) == "ThrottlingException"


def test_throttling_is_retried_until_it_passes() -> None:
    client = FailingClient(lambda: client_error("ThrottlingException"), failures=2)
    assert DynamoStore("t", client=client).get("u1") is None
    assert client.calls == 3


def test_throttling_retries_stop_at_the_requests_deadline() -> None:
    client = FailingClient(lambda: client_error("ThrottlingException"))
    with request_deadline(0.05), pytest.raises(UserStateError):
        DynamoStore("t", client=client).get("u1")
    assert client.calls <= 3


@pytest.fixture()
def table(s3_server: str) -> tuple[Any, str]:
    client = boto3.client("dynamodb")
    name = f"faults-{uuid.uuid4().hex[:8]}"
    create_table(client, name)
    return client, name


def item_bytes(client: Any, table: str, user: str, kind: str = "live") -> int:
    item = client.get_item(TableName=table, Key={"user_id": {"S": user}, "kind": {"S": kind}})["Item"]
    return sum(len(name) + len(value.get("S", value.get("N", ""))) for name, value in item.items())


@pytest.mark.parametrize("id_chars", [64, 256])
def test_a_heavy_user_is_never_blocked_by_the_item_limit(table: tuple[Any, str], id_chars: int) -> None:
    client, name = table
    store = DynamoStore(name, max_events=1000, client=client)
    user = "heavy"
    for batch in range(12):  # 6,000 new items, far past 400 KB of ids
        events = [(user, Event(f"{batch:02d}-{n:04d}".ljust(id_chars, "x"), "view", batch * 1000 + n,
                               event_id=f"e{batch}-{n}".ljust(id_chars, "y"))) for n in range(500)]  # fmt: skip
        assert store.append(events).accepted == 500  # moto enforces the 400 KB limit: this would raise
    assert item_bytes(client, name, user) < 400_000
    state = store.get(user)
    assert state is not None and state.live[-1].timestamp == 11 * 1000 + 499  # the newest events are kept
    assert 0 < len(json.dumps(state.seen)) <= SEEN_BYTES and len(state.seen) <= MAX_SEEN
    assert state.seen[-1].startswith("11-0499")  # the seen-set keeps the newest ids


class RefusingOne:
    """moto's DynamoDB, except that the user ``refused`` is rejected as DynamoDB rejects an invalid item: a
    ValidationException for the whole BatchWriteItem, and for that item's own PutItem."""

    def __init__(self, client: Any, refused: str) -> None:
        self.client, self.refused = client, refused

    def _has_refused(self, payload: Any) -> bool:
        return self.refused in json.dumps(payload)

    def batch_write_item(self, **kwargs: Any) -> Any:
        if self._has_refused(kwargs):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "invalid item"}}, "BatchWriteItem")
        return self.client.batch_write_item(**kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        if self._has_refused(kwargs):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "invalid item"}}, "PutItem")
        return self.client.put_item(**kwargs)

    def __getattr__(self, operation: str) -> Any:
        return getattr(self.client, operation)


def test_the_sync_skips_a_user_the_table_refuses_and_writes_the_others(table: tuple[Any, str]) -> None:
    client, name = table
    store = DynamoStore(name, client=RefusingOne(client, "refused-user"))
    good = [UserState(f"u{n}", [Event("i1", "view", 1)], 1, [], ["i1"]) for n in range(30)]
    bad = UserState("refused-user", [Event("i1", "view", 1)], 1, [], ["i1"])
    result = store.put_base([*good[:10], bad, *good[10:]], "v1")
    assert result.written == 30 and result.skipped == [bad.user_id]
    assert all(store.get(f"u{n}") is not None for n in range(30))


def test_eight_concurrent_writers_for_one_user_lose_nothing(table: tuple[Any, str]) -> None:
    _, name = table
    stores = [DynamoStore(name, max_events=500, client=boto3.client("dynamodb")) for _ in range(8)]
    errors: list[Exception] = []

    def writer(n: int) -> None:
        for k in range(10):
            try:
                stores[n].append([("hot", Event(f"i{n}-{k}", "click", n * 100 + k, event_id=f"{n}-{k}"))])
            except UserStateError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    state = stores[0].get("hot")
    assert state is not None and len(state.live) == 80 and len(state.seen) == 80


def test_conflicts_past_the_deadline_are_busy_not_down(table: tuple[Any, str]) -> None:
    client, name = table

    class AlwaysConflicting:
        def __getattr__(self, operation: str) -> Any:
            if operation == "put_item":
                return lambda **_: (_ for _ in ()).throw(client_error("ConditionalCheckFailedException"))
            return getattr(client, operation)

    store = DynamoStore(name, client=AlwaysConflicting())
    with request_deadline(0.3), pytest.raises(UserStateBusyError, match="concurrent writes"):
        store.append([("u1", Event("i1", "view", 1))])


def test_a_batch_for_many_users_writes_each(table: tuple[Any, str]) -> None:
    client, name = table
    store = DynamoStore(name, client=client)
    result = store.append([(f"user-{n}", Event("i1", "view", n, event_id="order-1")) for n in range(500)])
    assert result.accepted == 500 and result.duplicates == 0  # one event id for 500 users: 500 events
    assert all(store.get(f"user-{n}") is not None for n in (0, 250, 499))


def test_the_embedded_store_holds_at_most_max_users_least_recently_used_out() -> None:
    store = EmbeddedStore(max_users=100)
    for n in range(1_000):
        store.append([(f"u{n}", Event("i1", "view", n))])
        if n == 500:
            assert store.get("u0") is None and store.get("u450") is not None  # u450 is now recently used
    assert len(store) == 100
    assert store.get("u999") is not None and store.get("u899") is None
