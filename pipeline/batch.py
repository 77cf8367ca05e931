"""``python -m pipeline batch``: top-k for many users into Parquet, through the service's recommendation path.

Rows are ``(user_id, rank, item_id, score, source)``, rank 1-based, the same answers ``POST /recommend``
gives for ``{"user_id": ..., "k": ...}`` (seen items excluded, popularity backfill), computed by
:func:`reccore.batch.recommend_users` with one FAISS search per chunk of users and several threads.
Unknown user ids get the popular ranking, as the API gives them. (The Spark engine is a separate piece
of work and is not wired in here.)
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reccore.batch import recommend_users
from reccore.errors import ConfigError
from reccore.loading import load_model
from reccore.model import Model
from reccore.settings import BatchSettings
from reccore.storage import open_store


@dataclass
class BatchResult:
    model_version: str
    users: int
    rows: int
    seconds: float
    users_per_second: float
    output: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_user_ids(source: str) -> list[str]:
    """User ids, one per line (blank lines skipped), from a local file or an ``s3://`` URI."""
    try:
        directory, _, name = source.rpartition("/")
        text = (
            open_store(directory or ".").get(name).decode() if source.startswith("s3://") else Path(source).read_text()
        )
    except (FileNotFoundError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the user list {source}: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_output(uri: str, data: bytes) -> None:
    """Write ``data`` to a local path or an ``s3://bucket/key`` URI."""
    if uri.startswith("s3://"):
        directory, _, name = uri.rpartition("/")
        open_store(directory).put(name, data)
    else:
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def recommendations_table(model: Model, user_ids: list[str], k: int, threads: int) -> pa.Table:
    """The Parquet table of top-``k`` rows for ``user_ids``."""
    rows = model.user_index.rows_of(user_ids)
    out_users: list[str] = []
    ranks: list[int] = []
    items: list[str] = []
    scores: list[float] = []
    sources: list[str] = []
    for user_id, ranking in zip(user_ids, recommend_users(model, rows, k, threads=threads), strict=True):
        n = len(ranking.items)
        out_users += [user_id] * n
        ranks += range(1, n + 1)
        items += [model.item_ids[i] for i in ranking.items.tolist()]
        scores += ranking.scores.tolist()
        sources += ranking.sources
    return pa.table(
        {
            "user_id": pa.array(out_users, pa.string()),
            "rank": pa.array(ranks, pa.int16()),
            "item_id": pa.array(items, pa.string()),
            "score": pa.array(scores, pa.float32()),
            "source": pa.array(sources, pa.string()),
        }
    )


def run_batch(settings: BatchSettings, model: Model | None = None) -> BatchResult:
    """Load the published model (unless given), rank every requested user, write the Parquet file."""
    model = model or load_model(open_store(settings.batch_model))
    user_ids = list(model.user_ids) if settings.batch_users == "all" else read_user_ids(settings.batch_users)
    start = time.perf_counter()
    table = recommendations_table(model, user_ids, settings.batch_k, settings.batch_threads)
    seconds = time.perf_counter() - start
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_output(settings.batch_output, buffer.getvalue())
    return BatchResult(
        model_version=model.version,
        users=len(user_ids),
        rows=table.num_rows,
        seconds=round(seconds, 3),
        users_per_second=round(len(user_ids) / seconds, 1) if seconds > 0 else float("inf"),
        output=settings.batch_output,
    )
