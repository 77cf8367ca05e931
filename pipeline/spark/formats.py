"""What a Spark source URI holds: a table (CSV or Parquet, a file or a directory of them) or the event log.

The readers of both (:mod:`pipeline.spark.read`, :mod:`pipeline.spark.events`) and the engine's choice between
them stand on this module, so neither reader imports the other to tell them apart.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pipeline.sources.files import SUPPORTED_SUFFIXES, table_suffix
from reccore.errors import DataSourceError
from reccore.eventlog import EVENTS_DIR


def directory_format(path: Path) -> str | None:
    """``csv`` or ``parquet`` from the table files in a directory (Spark skips ``_*`` and ``.*``), or None."""
    names = [p.name.lower() for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))]
    if any(n.endswith((".csv", ".csv.gz")) for n in names):
        return "csv"
    if any(n.endswith((".parquet", ".pq")) for n in names):
        return "parquet"
    return None


def table_format(uri: str) -> str:
    """``csv`` or ``parquet`` from the name, or for a directory from the files in it."""
    lower = uri.lower().rstrip("/")
    for suffix in SUPPORTED_SUFFIXES:
        if lower.endswith(suffix):
            return "csv" if suffix.startswith(".csv") else "parquet"
    if uri.startswith("s3://"):
        return "parquet"  # a prefix of partitioned files, as Spark and Firehose write them
    path = Path(uri)
    if not path.exists():
        raise DataSourceError(f"{uri}: file not found")
    if path.is_dir():
        kind = directory_format(path)
        if kind is None:
            raise DataSourceError(f"{uri}: no {', '.join(SUPPORTED_SUFFIXES)} files in this directory")
        return kind
    table_suffix(uri)  # raises the single-process engine's "unsupported source" message
    raise AssertionError("unreachable: table_suffix accepts only the suffixes checked above")


def is_log(uri: str) -> bool:
    """Whether ``--source uri`` is an event log for this engine, which also reads directories of tables.

    A local directory is a log when it holds no table files; an ``s3://`` prefix when its last segment
    is ``events``, where the service writes the log (``reccore.eventlog``).
    """
    if uri.startswith("s3://"):
        return urlparse(uri).path.rstrip("/").rsplit("/", 1)[-1] == EVENTS_DIR
    return Path(uri).is_dir() and directory_format(Path(uri)) is None
