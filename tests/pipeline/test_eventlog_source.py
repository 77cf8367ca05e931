"""The event log as a training source (pipeline.sources.eventlog), written by reccore.eventlog's own writer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate import default_objective
from pipeline.sources import load_source
from pipeline.sources.eventlog import is_event_log, read_event_log
from reccore.errors import DataSourceError
from reccore.eventlog import StoreLog
from reccore.events import event_strength
from reccore.storage import LocalStore
from reccore.userstate import Event, UserStateStore
from reccore.userstate.dynamodb import DynamoStore
from reccore.userstate.embedded import EmbeddedStore
from reccore.userstate.table import create_table

BATCH = [
    ("alice", Event("i1", "view", 100, event_id="e1")),
    ("alice", Event("i2", "purchase", 110, event_id="e2")),
    ("bob", Event("i1", "rating", 120, value=4.0, event_id="e3")),
    ("bob", Event("i3", "click", 130)),
]


def write_log(root: Path, *batches: list[tuple[str, Event]]) -> str:
    log = StoreLog(LocalStore(root))
    for batch in batches:
        log.write(batch)
    return str(root / "events")


def test_log_alone_is_a_source_with_event_strengths(tmp_path: Path) -> None:
    uri = write_log(tmp_path, BATCH)
    assert is_event_log(uri) and is_event_log("s3://b/p/events/") and is_event_log("s3://b/p/events")
    assert not is_event_log("s3://b/p/events.csv")
    log = load_source(uri)
    assert list(log.user_ids[log.users]) == ["alice", "alice", "bob", "bob"]
    assert list(log.item_ids[log.items]) == ["i1", "i2", "i1", "i3"]
    expected = [event_strength(e.event, e.value) for _, e in BATCH]
    np.testing.assert_array_equal(log.weights, np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(log.weights, [1, 5, 4, 2])
    np.testing.assert_array_equal(log.timestamps, [100, 110, 120, 130])
    assert [log.event_types[e] for e in log.events] == ["view", "purchase", "rating", "click"]
    assert log.extra["events"] == {"uri": uri, "objects": 1, "records": 4, "duplicates": 0}
    assert default_objective(log) == "time"  # an event log is judged on what each user does next


def test_a_replayed_batch_counts_once_by_event_id(tmp_path: Path) -> None:
    uri = write_log(tmp_path, BATCH, BATCH)  # a client retry, or Firehose delivering twice
    records = read_event_log(uri)
    assert records.objects == 2 and records.duplicates == 3
    assert len(records) == 5  # the event without an id cannot be recognised, so it counts twice


# Two users reuse one client-side id ("order-1"); alice retries hers in a later batch; bob's id-less
# event comes twice. Event ids are unique per user: bob's "order-1" is his own purchase, not a repeat.
SHARED_IDS = (
    [
        ("alice", Event("i1", "purchase", 100, event_id="order-1")),
        ("bob", Event("i2", "purchase", 101, event_id="order-1")),
        ("bob", Event("i3", "view", 102)),
    ],
    [
        ("alice", Event("i9", "purchase", 103, event_id="order-1")),  # alice's retry: a repeat, dropped
        ("carol", Event("i1", "view", 104, event_id="order-1")),
        ("bob", Event("i3", "view", 102)),
    ],
)


def test_the_same_event_id_from_two_users_is_two_events(tmp_path: Path) -> None:
    uri = write_log(tmp_path, [("alice", Event("i1", "purchase", 100, event_id="order-1")),
                               ("bob", Event("i2", "purchase", 101, event_id="order-1"))])  # fmt: skip
    records = read_event_log(uri)
    assert (len(records), records.duplicates) == (2, 0)
    assert records.user_ids == ["alice", "bob"] and records.item_ids == ["i1", "i2"]
    assert load_source(uri).extra["events"] == {"uri": uri, "objects": 1, "records": 2, "duplicates": 0}


def test_event_ids_dedupe_per_user_keeping_the_first_in_key_order(tmp_path: Path) -> None:
    uri = write_log(tmp_path, *SHARED_IDS)
    records = read_event_log(uri)
    assert (records.objects, len(records), records.duplicates) == (2, 5, 1)
    rows = list(zip(records.user_ids, records.item_ids, records.timestamps, strict=True))
    assert rows == [("alice", "i1", 100), ("bob", "i2", 101), ("bob", "i3", 102), ("carol", "i1", 104),
                    ("bob", "i3", 102)]  # fmt: skip
    # the same user posting one id twice, in one batch, still counts once
    again = write_log(tmp_path / "again", [("alice", Event("i1", "purchase", 100, event_id="order-1")),
                                           ("alice", Event("i2", "purchase", 101, event_id="order-1"))])  # fmt: skip
    once = read_event_log(again)
    assert (len(once), once.duplicates, once.item_ids) == (1, 1, ["i1"])


@pytest.mark.parametrize("backend", ["embedded", "dynamodb"])
def test_the_log_and_the_user_state_store_agree_on_what_is_a_repeat(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store: UserStateStore = EmbeddedStore()
    if backend == "dynamodb":
        request.getfixturevalue("s3_server")  # moto's server; its env points DynamoDB at it
        client, table = boto3.client("dynamodb"), f"users-{uuid.uuid4().hex[:8]}"
        create_table(client, table)
        store = DynamoStore(table, client=client)
    accepted = sum(store.append(batch).accepted for batch in SHARED_IDS)
    duplicates = sum(store.append(batch).duplicates for batch in SHARED_IDS)  # the whole log, retried
    records = read_event_log(write_log(tmp_path, *SHARED_IDS))
    assert accepted == len(records) == 5 and records.duplicates == 1
    assert duplicates == 4  # every event with an id was stored already; the two id-less ones are not repeats


def test_log_added_to_a_base_table_keeps_its_catalogue_and_adds_new_ids(tmp_path: Path) -> None:
    base = tmp_path / "base.csv"
    frame = pd.DataFrame({"user_id": ["carol", "alice"], "item_id": ["i1", "i9"], "timestamp": [1, 2]})
    frame.to_csv(base, index=False)
    uri = write_log(tmp_path, BATCH)
    log = load_source(str(base), events=uri)
    assert log.n_interactions == 6 and list(log.user_ids) == ["carol", "alice", "bob"]
    assert list(log.item_ids) == ["i1", "i9", "i2", "i3"]
    assert log.categories == ["unknown"] * 4 and log.titles[2] == "i2"
    assert log.source == f"{base} + {uri}"
    assert set(log.event_types) >= {"interaction", "view", "purchase", "rating", "click"}


def test_events_for_items_outside_the_items_table_stop_the_run(tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["i1", "i2"], "category": ["a", "b"]}).to_csv(items, index=False)
    uri = write_log(tmp_path, BATCH)
    with pytest.raises(DataSourceError, match=r"items.csv: 1 event\(s\) in .* refer to 1 item_id\(s\) .*'i3'"):
        load_source(uri, str(items))
    known = write_log(tmp_path / "known", BATCH[:2])
    log = load_source(known, str(items))
    assert list(log.item_ids) == ["i1", "i2"] and log.categories == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"user_id": "", "item_id": "i1", "event": "view", "timestamp": 1}', "field 'user_id' is missing or empty"),
        ('{"user_id": "u", "item_id": "i1", "event": "view", "timestamp": "soon"}', "field 'timestamp' is not unix"),
        ('{"user_id": "u", "item_id": "i1", "event": "view", "value": -1, "timestamp": 1}', "field 'value' must be"),
        ('{"user_id": "u", "item_id": "i1", "event": "view", "timestamp": Infinity}', "field 'timestamp' is not unix"),
        ('{"user_id": "u", "item_id": "i1", "event": "view", "timestamp": 1', "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
    ],
)
def test_a_bad_record_is_one_message_naming_object_line_and_field(tmp_path: Path, line: str, problem: str) -> None:
    good = json.dumps({"user_id": "u", "item_id": "i1", "event": "view", "timestamp": 1})
    path = tmp_path / "events" / "2026" / "11" / "26" / "12" / "batch.json"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([good, line, good, line]) + "\n")
    with pytest.raises(DataSourceError) as error:
        load_source(str(tmp_path / "events"))
    message = str(error.value)
    assert "\n" not in message and problem in message
    assert "2 malformed record(s)" in message and "2026/11/26/12/batch.json line 2" in message


def test_an_empty_log_alone_is_an_error_but_an_empty_addition_is_not(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    with pytest.raises(DataSourceError, match="the event log is empty"):
        load_source(str(tmp_path / "events"))
    log = load_source("synthetic", interactions=2_000, events=str(tmp_path / "events"))
    assert log.n_interactions == 2_000 and log.extra["events"]["records"] == 0  # type: ignore[index]
