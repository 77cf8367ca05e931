"""The training event log (NDJSON objects under ``<prefix>/events/``) read by Spark, with the single-process rules.

Each object is one ``binaryFile`` row; the Python workers parse it with
:func:`pipeline.sources.eventlog.object_records`, the single-process reader's own function, so the
two engines accept, weight and reject exactly the same records with the same one-line messages.
Event ids are unique per user, as in the user-state store: a user's records sharing an ``event_id``
count once (the first in key order, which is time order), while the same id from two users is two events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pipeline.sources.eventlog import Problem, malformed_message, object_records
from reccore.errors import DataSourceError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

PARSED_SCHEMA = (
    "key string, line long, user_id string, item_id string, event string, w double, t long, event_id string, "
    "p_field string, p_problem string, p_value string"
)
# Row ids of the log's records sort after every table row (Spark's monotonically_increasing_id stays
# below 2^52 up to 2^19 partitions), by object then line: the time split's tie-break, as the
# single-process engine appends the log after its base.
RID_BASE, RID_OBJECT = 1 << 52, 1 << 32


@dataclass
class EventFrame:
    """The log's records as the typed columns of :func:`pipeline.spark.read.typed_table`, plus its stats."""

    frame: DataFrame | None  # None: no records
    stats: dict[str, Any]


def _root(uri: str) -> str:
    """The part of each object's path before its key, as Spark reports paths (no scheme, unquoted)."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return f"{parsed.netloc}/{parsed.path.strip('/')}/"
    return str(Path(uri).resolve()) + "/"


def _parser(root: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        schema = _arrow_schema()
        for batch in batches:
            rows: list[dict[str, Any]] = []
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                key = unquote(path).split(root, 1)[-1]
                for number, parsed in object_records(content):
                    if isinstance(parsed, Problem):
                        rows.append({"key": key, "line": number, "p_field": parsed.field,
                                     "p_problem": parsed.problem, "p_value": repr(parsed.value)})  # fmt: skip
                    else:
                        rows.append({"key": key, "line": number, "user_id": parsed.user_id,
                                     "item_id": parsed.item_id, "event": parsed.event, "w": parsed.strength,
                                     "t": parsed.timestamp, "event_id": parsed.event_id})  # fmt: skip
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return parse


def _arrow_schema() -> pa.Schema:
    """PARSED_SCHEMA in Arrow's terms (built in the workers, where pyarrow is imported)."""
    import pyarrow as pa

    text, whole = pa.string(), pa.int64()
    return pa.schema([("key", text), ("line", whole), ("user_id", text), ("item_id", text), ("event", text),
                      ("w", pa.float64()), ("t", whole), ("event_id", text), ("p_field", text),
                      ("p_problem", text), ("p_value", text)])  # fmt: skip


def _objects(spark: SparkSession, path: str, uri: str) -> DataFrame | None:
    """One row (path, content) per object under ``path``, or None when there is none."""
    from pyspark.errors import PySparkException

    if not path.startswith("s3://") and not Path(path).is_dir():
        return None
    try:
        raw = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path.rstrip("/"))
        return raw.select("path", "content")
    except PySparkException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            return None
        raise DataSourceError(f"{uri}: cannot list the event log ({str(exc).strip().splitlines()[0][:200]})") from exc


def read_events(spark: SparkSession, path: str, uri: str | None = None) -> EventFrame:
    """The log at ``path`` (messages name it ``uri``) as deduplicated records: ``user_id, item_id, rid, w, t, event``.

    Deduplicated as the single-process reader does: per ``(user_id, event_id)``, the first in key-then-line
    order kept; records without an id all kept. ``stats["duplicates"]`` counts the repeats dropped.

    Raises
    ------
    DataSourceError
        A record is malformed: the single-process reader's message, for the first problem in key order.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    uri = uri or path
    raw = _objects(spark, path, uri)
    stats: dict[str, Any] = {"uri": uri, "objects": 0, "records": 0, "duplicates": 0}
    if raw is None:
        return EventFrame(None, stats)
    stats["objects"] = raw.select("path").count()
    parsed = raw.mapInArrow(_parser(_root(path)), PARSED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    bad = parsed.where(F.col("p_field").isNotNull())
    first = bad.orderBy("key", "line").first()
    if first is not None:
        count = bad.where((F.col("p_field") == first["p_field"]) & (F.col("p_problem") == first["p_problem"])).count()
        parsed.unpersist()
        raise DataSourceError(malformed_message(uri, count, first["p_field"], first["p_problem"],
                                                f"{first['key']} line {first['line']}", first["p_value"]))  # fmt: skip
    with_id = parsed.where(F.col("event_id").isNotNull())
    # Event ids are unique per user (reccore.userstate): the same id from two users is two events.
    order = F.row_number().over(Window.partitionBy("user_id", "event_id").orderBy("key", "line"))
    first_of_id = with_id.withColumn("n", order).where(F.col("n") == 1).drop("n")
    records = first_of_id.unionByName(parsed.where(F.col("event_id").isNull()))
    # Objects numbered in key order (one row per object: small), for row ids in key-then-line order.
    objects = parsed.select("key").distinct().withColumn("k", F.row_number().over(Window.orderBy("key")))
    rid = (F.lit(RID_BASE) + F.col("k").cast("long") * F.lit(RID_OBJECT) + F.col("line")).alias("rid")
    frame = records.join(F.broadcast(objects), "key").select("user_id", "item_id", rid, "w", "t", "event")
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    stats["records"] = frame.count()
    stats["duplicates"] = parsed.count() - stats["records"]
    parsed.unpersist()
    return EventFrame(frame if stats["records"] else None, stats)
