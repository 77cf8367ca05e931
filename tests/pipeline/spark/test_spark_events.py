"""The Spark engine reads the event log (alone, or added to a table) and s3:// inputs like the single process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from pyspark.sql import SparkSession

from pipeline.data import InteractionLog
from pipeline.sources import load_source
from pipeline.spark.engine import SparkEngine
from pipeline.spark.formats import is_log
from pipeline.spark.stage import local_copy, reads_s3
from reccore.errors import DataSourceError
from reccore.settings import PipelineSettings
from reccore.userstate import Event
from tests.pipeline.test_eventlog_source import BATCH, SHARED_IDS, write_log


def _spark_load(
    spark: SparkSession, source: str, items: str | None = None, events: str | None = None
) -> InteractionLog:
    engine = SparkEngine(PipelineSettings(source=source, items=items, events=events, engine="spark"), spark)
    try:
        return engine.load()
    finally:
        engine.close()


def _rows(log: InteractionLog) -> list[tuple[str, str, float, int, str]]:
    """The log as (user, item, weight, time, event) rows: codes differ between engines, the rows may not."""
    return sorted(
        zip(log.user_ids[log.users].tolist(), log.item_ids[log.items].tolist(), log.weights.tolist(),
            log.timestamps.tolist(), [log.event_types[e] for e in log.events], strict=True)
    )  # fmt: skip


def _same_log(spark_log: InteractionLog, single: InteractionLog) -> None:
    assert _rows(spark_log) == _rows(single)
    assert sorted(spark_log.item_ids.tolist()) == sorted(single.item_ids.tolist())
    catalogue = dict(zip(single.item_ids.tolist(), single.categories, strict=True))
    assert dict(zip(spark_log.item_ids.tolist(), spark_log.categories, strict=True)) == catalogue
    assert spark_log.extra["events"] == single.extra["events"]
    assert spark_log.source == single.source


def _catalogue_events(frame: pd.DataFrame) -> list[tuple[str, Event]]:
    """Three events on the table's items: a new user, a known one, and one without an event id."""
    first, second = frame["item_id"].iloc[:2]
    return [
        ("alice", Event(first, "view", 100, event_id="e1")),
        (frame["user_id"].iloc[0], Event(second, "purchase", 4_000_000_000, event_id="e2")),
        ("alice", Event(second, "rating", 120, value=4.0)),
    ]


def test_the_log_alone_replayed_batches_count_once(spark: SparkSession, tmp_path: Path) -> None:
    uri = write_log(tmp_path, BATCH, BATCH)  # a retry: event ids dedupe, the id-less event counts twice
    assert is_log(uri) and not is_log(str(tmp_path / "missing")) and is_log("s3://b/p/events/")
    log = _spark_load(spark, uri)
    _same_log(log, load_source(uri))
    assert log.extra["events"] == {"uri": uri, "objects": 2, "records": 5, "duplicates": 3}


def test_event_ids_are_unique_per_user_in_both_engines(spark: SparkSession, tmp_path: Path) -> None:
    two_users = write_log(tmp_path / "two", [("alice", Event("i1", "purchase", 100, event_id="order-1")),
                                             ("bob", Event("i2", "purchase", 101, event_id="order-1"))])  # fmt: skip
    log = _spark_load(spark, two_users)
    _same_log(log, load_source(two_users))
    assert log.extra["events"] == {"uri": two_users, "objects": 1, "records": 2, "duplicates": 0}
    assert _rows(log) == [("alice", "i1", 5.0, 100, "purchase"), ("bob", "i2", 5.0, 101, "purchase")]

    # Cross-user repeats, a same-user retry in a later object (the first, in key order, is kept) and
    # id-less repeats, with more objects than Spark's default partitions so the window spans them.
    uri = write_log(tmp_path / "mixed", *SHARED_IDS, *SHARED_IDS, SHARED_IDS[1])
    log = _spark_load(spark, uri)
    single = load_source(uri)
    _same_log(log, single)
    assert log.extra["events"] == {"uri": uri, "objects": 5, "records": 8, "duplicates": 7}
    assert ("alice", "i9", 5.0, 103, "purchase") not in _rows(log)  # alice's retry, under another item


def test_the_log_added_to_a_partitioned_table_with_its_catalogue(
    spark: SparkSession, synthetic_small: tuple[str, str], tmp_path: Path
) -> None:
    interactions, items = synthetic_small
    frame = pd.read_parquet(interactions)
    uri = write_log(tmp_path, _catalogue_events(frame))
    single_file = tmp_path / "single.parquet"
    frame.to_parquet(single_file)  # the single-process engine reads one file
    log = _spark_load(spark, interactions, items, uri)
    single = load_source(str(single_file), items, events=uri)
    assert log.n_interactions == len(frame) + 3 and single.n_interactions == log.n_interactions
    assert _rows(log) == _rows(single) and log.extra["events"] == single.extra["events"]


def test_unknown_items_and_malformed_records_are_the_same_messages(spark: SparkSession, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["i1", "i2"], "category": ["a", "b"]}).to_csv(items, index=False)
    uri = write_log(tmp_path / "log", BATCH)
    for source, catalogue in ((uri, str(items)),):
        with pytest.raises(DataSourceError) as single:
            load_source(source, catalogue)
        with pytest.raises(DataSourceError) as distributed:
            _spark_load(spark, source, catalogue)
        assert str(distributed.value) == str(single.value) and "refer to 1 item_id(s)" in str(single.value)

    good = json.dumps({"user_id": "u", "item_id": "i1", "event": "view", "timestamp": 1})
    bad = '{"user_id": "u", "item_id": "i1", "event": "view", "value": -1, "timestamp": 1}'
    path = tmp_path / "bad" / "events" / "2026" / "11" / "26" / "12" / "batch.json"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([good, bad, "{not json", bad]) + "\n")
    (path.parent / "later.json").write_text(good + "\n" + bad + "\n")
    log_uri = str(tmp_path / "bad" / "events")
    with pytest.raises(DataSourceError) as single:
        load_source(log_uri)
    with pytest.raises(DataSourceError) as distributed:
        _spark_load(spark, log_uri)
    assert str(distributed.value) == str(single.value)
    assert "3 malformed record(s), field 'value' must be" in str(single.value)
    assert "2026/11/26/12/batch.json line 2" in str(single.value)


def test_an_empty_log_alone_is_the_same_error(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    with pytest.raises(DataSourceError, match="the event log is empty") as distributed:
        _spark_load(spark, str(tmp_path / "events"))
    with pytest.raises(DataSourceError) as single:
        load_source(str(tmp_path / "events"))
    assert str(distributed.value) == str(single.value)


@pytest.fixture
def bucket() -> Iterator[str]:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="data")
        yield "data"


def test_s3_inputs_are_copied_for_a_local_session_and_read_alike(
    spark: SparkSession, synthetic_small: tuple[str, str], tmp_path: Path, bucket: str
) -> None:
    assert not reads_s3(spark)  # no hadoop-aws in pyspark's jars: why the engine copies
    client = boto3.client("s3", region_name="us-east-1")
    interactions, items = synthetic_small
    for part in sorted(Path(interactions).glob("*.parquet")):
        client.upload_file(str(part), bucket, f"raw/interactions/{part.name}")
    log_root = Path(write_log(tmp_path, _catalogue_events(pd.read_parquet(interactions))))
    for path in sorted(p for p in log_root.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"raw/events/{path.relative_to(log_root).as_posix()}")

    from_s3 = _spark_load(spark, f"s3://{bucket}/raw/interactions/", items, f"s3://{bucket}/raw/events/")
    local = _spark_load(spark, interactions, items, str(log_root))
    assert _rows(from_s3) == _rows(local) and from_s3.n_interactions == 5_000 + 3
    assert from_s3.extra["events"]["records"] == 3  # type: ignore[index]
    np.testing.assert_array_equal(from_s3.prices, local.prices)

    with pytest.raises(DataSourceError, match=r"^s3://data/raw/nothing: file not found$"):
        local_copy(f"s3://{bucket}/raw/nothing", tmp_path / "copy", client)
    single = local_copy(f"s3://{bucket}/raw/interactions/part-00000.parquet", tmp_path / "one", client)
    assert single.name == "part-00000.parquet" and single.stat().st_size > 0
