"""The user-state store: both backends through one contract, DynamoDB over HTTP on moto's server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from reccore.errors import UserStateError
from reccore.userstate import MAX_SEEN, Event, UserState, UserStateStore
from reccore.userstate.dynamodb import DynamoStore
from reccore.userstate.embedded import EmbeddedStore
from reccore.userstate.table import create_table


@pytest.fixture(params=["embedded", "dynamodb"])
def store(request: pytest.FixtureRequest) -> UserStateStore:
    if request.param == "embedded":
        return EmbeddedStore(max_events=5)
    request.getfixturevalue("s3_server")  # moto's server; its env points DynamoDB at it
    table = f"users-{uuid.uuid4().hex[:8]}"
    client = boto3.client("dynamodb")
    create_table(client, table)
    return DynamoStore(table, max_events=5, client=client)


def ev(item: str, t: int, event: str = "view", event_id: str | None = None, value: float | None = None) -> Event:
    return Event(item_id=item, event=event, timestamp=t, value=value, event_id=event_id)


def test_unknown_user_has_no_state(store: UserStateStore) -> None:
    assert store.get("nobody") is None


def test_appended_events_come_back_newest_n_with_every_seen_item(store: UserStateStore) -> None:
    result = store.append([("u1", ev(f"i{t}", t)) for t in range(8)] + [("u2", ev("i0", 3, "purchase", value=2.0))])
    assert (result.accepted, result.duplicates) == (9, 0)
    state = store.get("u1")
    assert state is not None
    assert [e.item_id for e in state.live] == ["i3", "i4", "i5", "i6", "i7"]  # the newest 5, oldest first
    assert state.seen == [f"i{t}" for t in range(8)]  # exclusion reaches past the newest N
    other = store.get("u2")
    assert other is not None and other.live == [Event("i0", "purchase", 3, 2.0)]


def test_a_replayed_batch_with_event_ids_is_not_counted_twice(store: UserStateStore) -> None:
    batch = [("u1", ev("a", 1, event_id="e1")), ("u1", ev("b", 2, event_id="e2")), ("u1", ev("c", 3))]
    assert store.append(batch).accepted == 3
    again = store.append(batch)
    assert (again.accepted, again.duplicates) == (1, 2)  # the event without an id cannot be recognised
    state = store.get("u1")
    assert state is not None and [e.item_id for e in state.live] == ["a", "b", "c", "c"]


def test_base_from_training_and_fresh_live_events(store: UserStateStore) -> None:
    store.append([("u1", ev("new", 200)), ("u1", ev("old", 50))])
    base = UserState("u1", base=[ev("t1", 10), ev("t2", 90)], base_through=100, seen=["t1", "t2"])
    assert store.put_base([base], version="v1").written == 1
    state = store.get("u1")
    assert state is not None
    assert [e.item_id for e in state.base] == ["t1", "t2"] and state.base_through == 100
    assert [e.item_id for e in state.fresh(cutoff=100)] == ["new"]  # "old" predates the training cut-off
    assert set(state.seen) == {"t1", "t2", "new", "old"}


def test_seen_is_bounded() -> None:
    store = EmbeddedStore()
    store.append([("u", ev(f"i{n}", n)) for n in range(MAX_SEEN + 10)])
    state = store.get("u")
    assert state is not None and len(state.seen) == MAX_SEEN and state.seen[-1] == f"i{MAX_SEEN + 9}"


@pytest.fixture
def stoppable_dynamodb() -> Iterator[tuple[ThreadedMotoServer, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()


def test_an_unreachable_table_raises_one_error_type(
    stoppable_dynamodb: tuple[ThreadedMotoServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.config import Config

    server, endpoint = stoppable_dynamodb
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", config=config)
    create_table(client, "users")
    store = DynamoStore("users", client=client)
    store.append([("u", ev("i", 1))])
    server.stop()
    with pytest.raises(UserStateError) as caught:
        store.get("u")
    assert endpoint not in str(caught.value)  # no endpoint URL in what may reach a caller
    with pytest.raises(UserStateError):
        store.append([("u", ev("j", 2))])
