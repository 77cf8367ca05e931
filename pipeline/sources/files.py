"""Interaction and item tables from CSV or Parquet, on local disk or in S3.

Interactions table columns:

- ``user_id``, ``item_id`` (required; strings or integers, kept as strings);
- ``weight`` or ``rating`` (optional, numeric, > 0; ``weight`` wins if both exist; without either, each
  event's default strength from :mod:`reccore.events`: view 1, click 2, purchase 5, anything else 1);
- ``timestamp`` (optional; unix seconds or ISO-8601 strings; without it, row order is time order);
- ``event`` (optional; free text such as ``view``/``purchase``).

Items table (optional): ``item_id`` plus any of ``title``, ``category``, ``price``. Its items
form the catalogue, including items nobody interacted with (cold items); every interaction's
item must be in it. Every problem raises :class:`DataSourceError` naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.data import MAX_EVENT_TYPES, InteractionLog
from reccore.errors import DataSourceError
from reccore.events import event_strengths

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def table_suffix(uri: str) -> str:
    name = uri.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DataSourceError(
        f"{uri}: unsupported source; expected 'synthetic', 'movielens-100k', or a table ending in "
        f"{', '.join(SUPPORTED_SUFFIXES)} (local path or s3://bucket/key)"
    )


def _read_bytes(uri: str, s3_client: Any = None) -> bytes:
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        if not bucket or not key:
            raise DataSourceError(f"{uri}: not a valid s3://bucket/key URI")
        if s3_client is None:
            import boto3  # deferred: local runs need no AWS code path

            s3_client = boto3.client("s3")  # honours AWS_ENDPOINT_URL_S3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise DataSourceError(f"{uri}: file not found ({code})") from exc
            raise DataSourceError(f"{uri}: cannot read from S3 ({code or exc})") from exc
        except BotoCoreError as exc:
            raise DataSourceError(f"{uri}: cannot read from S3 ({exc})") from exc
        return body
    path = Path(uri)
    if not path.is_file():
        raise DataSourceError(f"{uri}: file not found" + (" (it is a directory)" if path.is_dir() else ""))
    return path.read_bytes()


def read_table(uri: str, required: tuple[str, ...], s3_client: Any = None) -> pd.DataFrame:
    """Read a CSV or Parquet table and check that it has rows and the ``required`` columns.

    Parameters
    ----------
    uri : str
        Local path or ``s3://bucket/key``; the format follows the extension.
    required : tuple of str
        Column names that must be present.
    s3_client : optional
        A boto3 S3 client; by default one is created on first use.

    Returns
    -------
    pandas.DataFrame
        CSV columns are all strings (parsed later, so bad values can be reported by row).

    Raises
    ------
    DataSourceError
        Not found, unsupported extension, unreadable, empty, or a required column is missing.
    """
    suffix = table_suffix(uri)
    data = _read_bytes(uri, s3_client)
    if not data.strip():
        raise DataSourceError(f"{uri}: file is empty")
    try:
        if suffix.startswith(".csv"):
            compression = "gzip" if suffix == ".csv.gz" else None
            frame = pd.read_csv(io.BytesIO(data), dtype=str, compression=compression, skipinitialspace=True)
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(f"{uri}: file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowException, ValueError) as exc:
        kind = "CSV" if suffix.startswith(".csv") else "Parquet"
        raise DataSourceError(f"{uri}: not a readable {kind} file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in required:
        if column not in frame.columns:
            raise DataSourceError(missing_column_message(uri, column, list(frame.columns)))
    if len(frame) == 0:
        raise DataSourceError(f"{uri}: no data rows (only a header)")
    return frame


# The messages below are shared with the Spark engine (pipeline/spark/read.py), so both engines fail alike.


def missing_column_message(uri: str, column: str, found: list[str]) -> str:
    return f"{uri}: missing required column {column!r} (found: {', '.join(map(repr, found))})"


def malformed_message(uri: str, count: int, column: str, problem: str, first: int, value: object) -> str:
    """``count`` bad rows in ``column``; ``first`` is the 0-based data row of the first one."""
    where = f"data row {first + 1}"
    if ".csv" in uri.lower():
        where += f" (line {first + 2})"  # the header is line 1
    return f"{uri}: {count} malformed row(s), column {column!r} {problem}; first is {where}: {value!r}"


def unknown_items_message(items: str, count: int, interactions: str, first_names: list[str], n_names: int) -> str:
    """``count`` interactions name ``n_names`` distinct unknown items; ``first_names`` holds at least 5 of them."""
    shown = ", ".join(repr(x) for x in first_names[:5]) + (", ..." if n_names > 5 else "")
    return (
        f"{items}: {count} interaction(s) in {interactions} refer to "
        f"{n_names} item_id(s) not in this items table: {shown}"
    )


def too_many_events_message(uri: str, count: int) -> str:
    return f"{uri}: {count} distinct events; at most {MAX_EVENT_TYPES} are supported"


def _bad_rows(uri: str, column: str, problem: str, bad: np.ndarray, values: pd.Series) -> None:
    """Raise if any row is flagged: how many, and the first one's row number and value."""
    count = int(bad.sum())
    if count:
        first = int(np.argmax(bad))
        raise DataSourceError(malformed_message(uri, count, column, problem, first, values.iloc[first]))


def _ids(uri: str, frame: pd.DataFrame, column: str) -> np.ndarray:
    raw = frame[column]
    if pd.api.types.is_float_dtype(raw) and raw.dropna().mod(1).eq(0).all():
        raw = raw.astype("Int64")  # integer ids that became floats because of a null
    text = raw.astype("string").str.strip()
    _bad_rows(uri, column, "is empty", (text.isna() | (text == "")).to_numpy(dtype=bool), raw)
    return text.to_numpy(dtype=str)


def _numbers(uri: str, frame: pd.DataFrame, column: str, *, positive: bool) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    _bad_rows(uri, column, "is not a number", values.isna().to_numpy(), raw)
    result = values.to_numpy(dtype=np.float64)
    if positive:
        _bad_rows(uri, column, "must be > 0", ~(result > 0), raw)
    return result


def _unix_seconds(parsed: pd.Series) -> np.ndarray:
    # pandas picks the datetime unit (s, ms, us, ns) per input, so convert explicitly.
    return parsed.dt.as_unit("s").astype("int64").to_numpy(dtype=np.int64)


def _timestamps(uri: str, frame: pd.DataFrame) -> np.ndarray:
    raw = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw, utc=True)
        _bad_rows(uri, "timestamp", "is missing", parsed.isna().to_numpy(), raw)
        return _unix_seconds(parsed)
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    # Each value is unix seconds or else an ISO-8601 date-time; anything else is malformed.
    text = raw.astype("string").where(numeric.isna())
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = (numeric.isna() & parsed.isna()).to_numpy()
    _bad_rows(uri, "timestamp", "is not unix seconds or an ISO-8601 date-time", bad, raw)
    seconds = numeric.to_numpy(dtype=np.float64, na_value=0.0).astype(np.int64)
    from_text = _unix_seconds(parsed.fillna(pd.Timestamp(0, tz="UTC")))
    return np.where(numeric.isna().to_numpy(), from_text, seconds)


def read_catalogue(uri: str, s3_client: Any = None) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Item ids, titles, categories and prices from an items table."""
    frame = read_table(uri, ("item_id",), s3_client)
    item_ids = _ids(uri, frame, "item_id")
    duplicated = pd.Series(item_ids).duplicated().to_numpy()
    _bad_rows(uri, "item_id", "is a duplicate", duplicated, pd.Series(item_ids))
    n = len(item_ids)
    titles = frame["title"].astype("string") if "title" in frame else pd.Series([pd.NA] * n, dtype="string")
    titles = titles.fillna(pd.Series(item_ids, index=frame.index, dtype="string"))
    categories = frame["category"].astype("string") if "category" in frame else pd.Series(["unknown"] * n)
    categories = categories.fillna("unknown")
    prices = np.zeros(n)
    if "price" in frame:
        filled = frame[["price"]].assign(price=frame["price"].fillna("0"))
        prices = _numbers(uri, filled, "price", positive=False)
        _bad_rows(uri, "price", "must be >= 0", prices < 0, frame["price"])
    return item_ids, titles.tolist(), categories.astype(str).tolist(), prices


def load_files(interactions: str, items: str | None = None, *, s3_client: Any = None) -> InteractionLog:
    """Build an :class:`InteractionLog` from an interactions table and an optional items table.

    Parameters
    ----------
    interactions : str
        Path or ``s3://`` URI of a ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` file.
    items : str, optional
        Items table; without it the catalogue is the items seen in ``interactions``,
        with title = item id, category ``"unknown"`` and price 0.
    s3_client : optional
        A boto3 S3 client; by default one is created on first use.

    Returns
    -------
    InteractionLog
        Rows in file order; ``source`` is the interactions URI.

    Raises
    ------
    DataSourceError
        With a single message naming the file and the problem.
    """
    frame = read_table(interactions, ("user_id", "item_id"), s3_client)
    user_keys = _ids(interactions, frame, "user_id")
    item_keys = _ids(interactions, frame, "item_id")
    weight_column = next((c for c in ("weight", "rating") if c in frame), None)
    # Without timestamps, file order is time order.
    timestamps = _timestamps(interactions, frame) if "timestamp" in frame else np.arange(len(frame), dtype=np.int64)
    if "event" in frame:
        event_codes, event_types = pd.factorize(frame["event"].astype("string").str.strip().fillna("unknown"))
        if len(event_types) > MAX_EVENT_TYPES:
            raise DataSourceError(too_many_events_message(interactions, len(event_types)))
        events, event_names = event_codes.astype(np.int8), [str(e) for e in event_types]
    else:
        events = np.zeros(len(frame), dtype=np.int8)
        event_names = [weight_column if weight_column == "rating" else "interaction"]
    if weight_column is not None:
        weights = _numbers(interactions, frame, weight_column, positive=True)
    else:  # each event's default strength, as the API weighs it (view 1, click 2, purchase 5; others 1)
        weights = event_strengths(events, event_names)

    user_codes, user_ids = pd.factorize(pd.Series(user_keys))
    if items is None:
        item_codes, item_index = pd.factorize(pd.Series(item_keys))
        item_ids = item_index.to_numpy(dtype=str)
        titles, categories, prices = item_ids.tolist(), ["unknown"] * len(item_ids), np.zeros(len(item_ids))
    else:
        item_ids, titles, categories, prices = read_catalogue(items, s3_client)
        item_codes = pd.Index(item_ids).get_indexer(item_keys)
        unknown = item_codes < 0
        if unknown.any():
            names = [str(x) for x in pd.unique(item_keys[unknown])]
            raise DataSourceError(unknown_items_message(items, int(unknown.sum()), interactions, names[:5], len(names)))
    log = InteractionLog(
        user_ids=user_ids.to_numpy(dtype=str),
        item_ids=np.asarray(item_ids, dtype=str),
        users=user_codes.astype(np.int32),
        items=item_codes.astype(np.int32),
        weights=weights.astype(np.float32),
        timestamps=timestamps,
        events=events,
        event_types=event_names,
        titles=titles,
        categories=categories,
        prices=np.asarray(prices, dtype=np.float64),
        source=interactions,
        extra={"interactions_file": interactions, "items_file": items},
    )
    log.validate()
    return log
