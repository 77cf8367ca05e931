"""Read the interaction (and items) tables with Spark SQL, check them, and index the ids.

Accepts what the single-process engine accepts (``pipeline/sources/files.py``: CSV or Parquet, the same
columns and value rules) plus a directory or ``s3://`` prefix of partitioned files. Every problem raises
:class:`DataSourceError` with the single-process engine's one-line message (the same functions build them).
Spark reads local paths, and ``s3://`` on EMR (EMRFS); locally the engine copies ``s3://`` inputs first
(:mod:`pipeline.spark.stage`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data import MAX_EVENT_TYPES
from pipeline.sources.eventlog import empty_log_message
from pipeline.sources.eventlog import unknown_items_message as unknown_event_items_message
from pipeline.sources.files import (
    malformed_message,
    missing_column_message,
    read_catalogue,
    too_many_events_message,
    unknown_items_message,
)
from pipeline.spark.formats import table_format
from reccore.errors import DataSourceError
from reccore.events import event_strengths

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from pipeline.spark.events import EventFrame


ROWS_PER_SHUFFLE_PARTITION = 2_000_000
# Id mappings up to this many rows are broadcast to the join (~100 bytes each in the JVM's hash table);
# larger ones are joined by a shuffle of the interactions.
BROADCAST_ROWS = 5_000_000


@dataclass
class IndexedInteractions:
    """The interactions as integer codes (columns ``u``, ``i``, ``w``, ``t``, ``e``, ``rid``) plus the catalogue."""

    frame: DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: list[str]
    categories: list[str]
    prices: np.ndarray
    event_types: list[str]


def read_table(spark: SparkSession, uri: str, required: tuple[str, ...]) -> DataFrame:
    """A table with stripped column names, the required columns and at least one row; ``rid`` is file order."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    kind = table_format(uri)
    if not uri.startswith("s3://") and not Path(uri).exists():
        raise DataSourceError(f"{uri}: file not found")
    try:
        if kind == "csv":
            frame = spark.read.csv(uri, header=True, ignoreLeadingWhiteSpace=True, ignoreTrailingWhiteSpace=True)
        else:
            frame = spark.read.parquet(uri)
        columns = frame.columns
    except PySparkException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise DataSourceError(f"{uri}: file not found") from exc
        first_line = str(exc).strip().splitlines()[0][:200]
        raise DataSourceError(
            f"{uri}: not a readable {'CSV' if kind == 'csv' else 'Parquet'} file ({first_line})"
        ) from exc
    if not columns:
        raise DataSourceError(f"{uri}: file is empty")
    frame = frame.toDF(*[str(c).strip() for c in columns])
    for column in required:
        if column not in frame.columns:
            raise DataSourceError(missing_column_message(uri, column, frame.columns))
    # Increasing in file order (files sorted by name, rows in order): the tie-break of the time split.
    return frame.withColumn("rid", F.monotonically_increasing_id())


def _id_text(frame: DataFrame, column: str) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    col = F.col(f"`{column}`")
    if isinstance(frame.schema[column].dataType, FloatType | DoubleType):
        col = F.when(col == F.floor(col), col.cast("long")).otherwise(col)  # integer ids made floats by a null
    return F.trim(col.cast("string"))


def _timestamp(frame: DataFrame) -> tuple[Column, Column, str]:
    """Unix seconds, the bad-row flag and its problem text, with the single-process engine's rules."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, NumericType, TimestampNTZType, TimestampType

    col, kind = F.col("timestamp"), frame.schema["timestamp"].dataType
    if isinstance(kind, TimestampType | TimestampNTZType | DateType):
        seconds = col.cast("timestamp").cast("long")
        return seconds, seconds.isNull(), "is missing"
    numeric = col.cast("double")
    if isinstance(kind, NumericType):
        return numeric.cast("long"), numeric.isNull(), "is not unix seconds or an ISO-8601 date-time"
    parsed = F.trim(col).cast("timestamp").cast("long")
    seconds = F.coalesce(numeric.cast("long"), parsed)
    return seconds, seconds.isNull(), "is not unix seconds or an ISO-8601 date-time"


def _fail_on_first(uri: str, frame: DataFrame, checks: list[tuple[str, str, Column]]) -> None:
    """One pass counts every check's bad rows; the first failing check (in order) raises with its first row."""
    from pyspark.sql import functions as F

    counts = frame.agg(*[F.sum(bad.cast("long")).alias(f"c{n}") for n, (_, _, bad) in enumerate(checks)]).first()
    for n, (column, problem, bad) in enumerate(checks):
        count = int((counts[f"c{n}"] if counts else 0) or 0)
        if count:
            first = frame.where(bad).orderBy("rid").select("rid", F.col(f"`{column}`").alias("value")).first()
            assert first is not None
            index = frame.where(F.col("rid") < first["rid"]).count()
            value = float("nan") if first["value"] is None else first["value"]  # pandas shows a missing value as nan
            raise DataSourceError(malformed_message(uri, count, column, problem, index, value))


def _maybe_broadcast(mapping: DataFrame, rows: int) -> DataFrame:
    """A code mapping small enough to copy to every task (no shuffle of the interactions to join it)."""
    from pyspark.sql import functions as F

    return F.broadcast(mapping) if rows <= BROADCAST_ROWS else mapping


def _dense_codes(frame: DataFrame, column: str, code: str) -> tuple[DataFrame, np.ndarray]:
    """Codes 0..n-1 for the distinct values of ``column`` in sorted order, and the values by code."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    mapping = frame.select(column).distinct().withColumn(code, F.dense_rank().over(Window.orderBy(column)) - 1)
    mapping = mapping.cache()
    ids = mapping.orderBy(code).select(column).toArrow().column(0).to_numpy(zero_copy_only=False)
    return mapping, np.asarray(ids, dtype=str)


def typed_table(spark: SparkSession, uri: str) -> DataFrame:
    """The checked table as columns ``user_id, item_id, rid, w, t, event`` (event names, not yet codes).

    Also sizes ``spark.sql.shuffle.partitions`` to the row count for the stages that follow.
    """
    from pyspark.sql import functions as F

    frame = read_table(spark, uri, ("user_id", "item_id"))
    n_rows = frame.count()  # Parquet answers from its footers
    if n_rows == 0:
        raise DataSourceError(f"{uri}: no data rows (only a header)")
    # Shuffles sized to the data: ~2M rows per partition, at least two per task slot.
    partitions = max(2 * spark.sparkContext.defaultParallelism, n_rows // ROWS_PER_SHUFFLE_PARTITION)
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    frame = frame.withColumn("user_id", _id_text(frame, "user_id")).withColumn("item_id", _id_text(frame, "item_id"))
    checks = [(c, "is empty", F.col(c).isNull() | (F.col(c) == "")) for c in ("user_id", "item_id")]
    weight_column = next((c for c in ("weight", "rating") if c in frame.columns), None)
    weight = F.lit(None).cast("double") if weight_column is None else F.col(weight_column).cast("double")
    if weight_column is not None:
        checks += [(weight_column, "is not a number", weight.isNull()), (weight_column, "must be > 0", ~(weight > 0))]
    # Without timestamps, file order is time order.
    timestamp = F.col("rid")
    if "timestamp" in frame.columns:
        timestamp, bad, problem = _timestamp(frame)
        checks.append(("timestamp", problem, bad))
    _fail_on_first(uri, frame, checks)

    if "event" in frame.columns:
        event = F.coalesce(F.trim(F.col("event").cast("string")), F.lit("unknown"))
        count = frame.select(event.alias("e")).distinct().count()
        if count > MAX_EVENT_TYPES:
            raise DataSourceError(too_many_events_message(uri, count))
    else:
        event = F.lit("rating" if weight_column == "rating" else "interaction")
    # Without a weight column each row weighs its event's default strength (set where the codes are known).
    typed = [weight.alias("w"), timestamp.cast("long").alias("t"), event.alias("event")]
    return frame.select("user_id", "item_id", "rid", *typed)


def read_interactions(
    spark: SparkSession, uri: str | None, items: str | None = None, events: EventFrame | None = None,
    strict_items: bool = True,
) -> IndexedInteractions:  # fmt: skip
    """Read, check and index an interactions table and/or the event log, and an optional items table.

    The single-process engine's ``load_source``: the table's rows first, then the log's records; with an
    items table, an id outside it stops the run (the table's or the log's message), except for the log's
    records when ``strict_items`` is false (the synthetic source), whose new items join the catalogue.
    """
    from pyspark.sql import functions as F

    frames = [] if uri is None else [typed_table(spark, uri)]
    if events is not None and events.frame is not None:
        frames.append(events.frame)
    if not frames:
        raise DataSourceError(empty_log_message(str(events.stats["uri"]) if events else str(uri)))
    frame = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    names = sorted(r[0] for r in frame.select("event").distinct().collect())
    if len(names) > MAX_EVENT_TYPES:
        raise DataSourceError(too_many_events_message(events.stats["uri"] if events else str(uri), len(names)))
    event = F.create_map(*[F.lit(x) for code, name in enumerate(names) for x in (name, code)])[F.col("event")]
    strengths = event_strengths(np.arange(len(names)), names).tolist()
    strength = F.create_map(*[F.lit(x) for code, s in enumerate(strengths) for x in (code, s)])[event]
    weight = F.coalesce(F.col("w"), strength).cast("float").alias("w")
    frame = frame.select("user_id", "item_id", "rid", weight, F.col("t"), event.cast("byte").alias("e"))

    users, user_ids = _dense_codes(frame, "user_id", "u")
    if items is None:
        item_map, item_ids = _dense_codes(frame, "item_id", "i")
        titles, categories, prices = item_ids.tolist(), ["unknown"] * len(item_ids), np.zeros(len(item_ids))
    else:
        item_ids, titles, categories, prices = read_catalogue(items)
        item_map = spark.createDataFrame([(str(x), n) for n, x in enumerate(item_ids)], "item_id string, i int")
        checks: list[tuple[DataFrame, str, bool, Callable[..., str]]] = []
        if uri is not None:
            checks.append((frames[0], uri, True, unknown_items_message))
        if events is not None and events.frame is not None:
            checks.append((events.frame, str(events.stats["uri"]), strict_items, unknown_event_items_message))
        for part, source, strict, message in checks:
            unknown = part.join(F.broadcast(item_map), "item_id", "left_anti")
            count = unknown.count()
            if not count:
                continue
            distinct = unknown.select("item_id").distinct().orderBy("item_id")
            if strict:
                first = [r[0] for r in distinct.limit(5).collect()]
                raise DataSourceError(message(items, count, source, first, distinct.count()))
            added = np.asarray([r[0] for r in distinct.collect()], dtype=str)  # new items join the catalogue
            codes = [(str(x), len(item_ids) + n) for n, x in enumerate(added)]
            item_map = item_map.unionByName(spark.createDataFrame(codes, "item_id string, i int"))
            item_ids = np.concatenate([np.asarray(item_ids, dtype=str), added])
            titles, categories = [*titles, *added.tolist()], [*categories, *(["unknown"] * len(added))]
            prices = np.concatenate([np.asarray(prices, dtype=np.float64), np.zeros(len(added))])
    indexed = frame.join(_maybe_broadcast(users, len(user_ids)), "user_id").join(F.broadcast(item_map), "item_id")
    indexed = indexed.select(F.col("u").cast("int"), F.col("i").cast("int"), "w", "t", "e", "rid")
    return IndexedInteractions(indexed, user_ids, np.asarray(item_ids, dtype=str), list(titles), list(categories),
                               np.asarray(prices, dtype=np.float64), names)  # fmt: skip
