"""Retraining from the event log and syncing users into the user-state table, over HTTP on moto's server.

The log is written the deployed way (FirehoseLog → a DirectPut stream → the bucket's <prefix>/events/).
"""

from __future__ import annotations

import uuid

import boto3
import numpy as np
import pytest

from pipeline.data import InteractionLog
from pipeline.job import RunResult, run
from pipeline.sources.synthetic import generate
from pipeline.usersync import user_states
from reccore.eventlog import EVENTS_DIR, FirehoseLog, create_stream
from reccore.settings import PipelineSettings
from reccore.storage import open_store
from reccore.userstate import MAX_SEEN, Event
from reccore.userstate.dynamodb import DynamoStore
from reccore.userstate.table import create_table
from reccore.versions import read_latest_version, read_manifest
from tests.conftest import BUCKET
from tests.pipeline.conftest import block_log


def as_events(log: InteractionLog) -> list[tuple[str, Event]]:
    return [
        (str(log.user_ids[u]), Event(str(log.item_ids[i]), log.event_types[e], int(t), event_id=f"s{n}"))
        for n, (u, i, e, t) in enumerate(zip(log.users, log.items, log.events, log.timestamps, strict=True))
    ]


@pytest.fixture()
def stack(s3_server: str) -> tuple[str, str, str]:
    """A fresh model prefix with a delivery stream into its events/ and a user-state table: (uri, stream, table)."""
    prefix = f"loop-{uuid.uuid4().hex[:8]}"
    stream, table = f"events-{prefix}", f"users-{prefix}"
    create_stream(boto3.client("firehose"), stream, BUCKET, prefix)
    create_table(boto3.client("dynamodb"), table)
    return f"s3://{BUCKET}/{prefix}", stream, table


def retrain(uri: str, table: str = "", **overrides: object) -> RunResult:
    settings = {"source": f"{uri}/{EVENTS_DIR}/", "output": uri, "factors": 8, "force": True, "user_table": table}
    return run(PipelineSettings(**{**settings, **overrides}))  # type: ignore[arg-type]


def test_the_pipeline_retrains_from_the_events_prefix_and_publishes(stack: tuple[str, str, str]) -> None:
    uri, stream, _ = stack
    log = generate(3_000, seed=5)
    events = as_events(log)
    FirehoseLog(stream).write(events)
    FirehoseLog(stream).write(events[:500])  # delivered twice: counts once by event id
    result = retrain(uri)
    manifest = read_manifest(open_store(uri), read_latest_version(open_store(uri)))
    assert manifest.version == result.version
    assert manifest.data["n_interactions"] == 3_000 and manifest.data["n_users"] == log.n_users
    assert manifest.data["events"]["records"] == 3_000 and manifest.data["events"]["duplicates"] == 500
    assert manifest.data["user_arrays"] is True  # no table: the artifact keeps the users
    assert result.user_sync is None and set(result.metrics) == {"model", "popularity"}


def test_sync_writes_base_items_then_skips_current_users(stack: tuple[str, str, str]) -> None:
    uri, stream, table = stack
    log = generate(3_000, seed=6)
    events = as_events(log)
    FirehoseLog(stream).write(events)
    first = retrain(uri, table, user_events=5)
    assert first.user_sync is not None and first.user_sync["status"] == "ok"
    assert first.user_sync["users_written"] == log.n_users and first.user_sync["users_skipped"] == 0
    manifest = read_manifest(open_store(uri), first.version)
    assert manifest.data["user_arrays"] is False  # a table is set: item-side only by default
    assert manifest.data["user_sync"] == first.user_sync

    store = DynamoStore(table)
    user = str(log.user_ids[np.bincount(log.users).argmax()])  # the most active user
    state = store.get(user)
    assert state is not None and len(state.base) == 5 and state.base_through == int(log.timestamps.max())
    theirs = sorted((ts, item) for (u, e), ts, item in ((p, p[1].timestamp, p[1].item_id) for p in events) if u == user)
    assert [e.item_id for e in state.base] == [item for _, item in theirs[-5:]]
    assert set(state.seen) == {item for _, item in theirs}

    later = int(log.timestamps.max()) + 60
    FirehoseLog(stream).write([(user, Event("i000000", "purchase", later, event_id="new-1")),
                               ("brand-new", Event("i000001", "view", later, event_id="new-2"))])  # fmt: skip
    second = retrain(uri, table, user_events=5)
    assert second.user_sync is not None and second.user_sync["changed_since"] == first.user_sync["through"]
    assert second.user_sync["users_written"] == 2 and second.user_sync["users_skipped"] == log.n_users - 1
    refreshed = store.get(user)
    assert refreshed is not None and refreshed.base[-1] == Event("i000000", "purchase", later)
    new_user = store.get("brand-new")
    assert new_user is not None and [e.item_id for e in new_user.base] == ["i000001"]


def test_a_failed_sync_is_reported_and_never_unpublishes(stack: tuple[str, str, str]) -> None:
    uri, stream, _ = stack
    FirehoseLog(stream).write(as_events(generate(2_000, seed=7)))
    result = retrain(uri, "no-such-table")
    assert result.user_sync is not None and result.user_sync["status"] == "failed"
    assert "user-state" in result.user_sync["error"]
    store = open_store(uri)
    assert read_latest_version(store) == result.version
    assert read_manifest(store, result.version).data["user_sync"]["status"] == "failed"


def test_item_side_only_run_still_gates_on_its_in_memory_model(s3_server: str) -> None:
    uri = f"s3://{BUCKET}/gate-{uuid.uuid4().hex[:8]}"
    result = run(PipelineSettings(output=uri, interactions=5_000, factors=8, user_arrays=False, force=False))
    assert result.metrics["model"]["ndcg@10"] > result.metrics["popularity"]["ndcg@10"]  # the gate passed on users
    assert read_manifest(open_store(uri), result.version).data["user_arrays"] is False


def test_user_states_hold_the_newest_n_values_and_seen_items() -> None:
    log = block_log(n_users=4, per_user=6)
    log.weights[0] = 3.5  # an explicit weight, not the event's default
    states, count = user_states(log, max_events=4)
    listed = list(states)
    assert count == len(listed) == 4
    first = listed[0]
    rows = np.flatnonzero(log.users == 0)
    assert [e.timestamp for e in first.base] == log.timestamps[rows][-4:].tolist()  # newest 4, oldest first
    assert all(e.value is None for e in first.base)  # defaults are not repeated as values
    assert first.seen == [str(log.item_ids[i]) for i in log.items[rows]][-MAX_SEEN:]
    assert first.base_through == int(log.timestamps.max())
    everything, _ = user_states(log, max_events=10)
    assert next(iter(everything)).base[0].value == 3.5
    changed, changed_count = user_states(log, max_events=4, changed_since=int(log.timestamps[rows].max()))
    assert changed_count == 3 and "u0" not in {s.user_id for s in changed}
