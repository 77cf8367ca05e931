"""The training event log: the same records and layout through Firehose (moto, over HTTP) and a store."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from reccore.errors import EventLogError
from reccore.eventlog import EVENTS_DIR, FirehoseLog, StoreLog, create_stream, parse_lines, record
from reccore.storage import LocalStore, S3Store
from reccore.userstate import Event
from tests.conftest import BUCKET

EVENTS = [("u1", Event("i1", "view", 100)), ("u2", Event("i2", "purchase", 101, 4.0, "e-1"))]


def test_store_log_writes_one_time_partitioned_ndjson_object(tmp_path: Path) -> None:
    StoreLog(LocalStore(tmp_path)).write(EVENTS)
    (path,) = (tmp_path / EVENTS_DIR).rglob("*.json")
    assert len(path.relative_to(tmp_path / EVENTS_DIR).parts) == 5  # YYYY/MM/DD/HH/object
    rows = parse_lines(path.read_bytes())
    assert [r["item_id"] for r in rows] == ["i1", "i2"]
    assert rows[1] == record("u2", EVENTS[1][1], rows[1]["received_at"])


def test_firehose_delivers_to_the_bucket_events_prefix(s3_server: str) -> None:
    prefix = f"fh-{uuid.uuid4().hex[:6]}"
    stream = f"events-{prefix}"
    create_stream(boto3.client("firehose"), stream, BUCKET, prefix)
    FirehoseLog(stream).write(EVENTS)
    store = S3Store(BUCKET, prefix)
    keys = store.list_keys(f"{EVENTS_DIR}/")
    rows = [row for key in keys for row in parse_lines(store.get(key))]
    assert sorted(r["item_id"] for r in rows) == ["i1", "i2"]
    assert {r["event_id"] for r in rows} == {None, "e-1"}


def test_an_unknown_stream_is_an_event_log_error(s3_server: str) -> None:
    with pytest.raises(EventLogError):
        FirehoseLog("no-such-stream").write(EVENTS)
