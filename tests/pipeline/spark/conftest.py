"""One local[2] SparkSession for every Spark test (starting one costs several seconds), and shared tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.sources.synthetic import write_parquet

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from pipeline.spark.session import get_session

    session = get_session("local[2]", "1g")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def synthetic_100k(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The 100k synthetic log as ONE Parquet file (the single-process engine reads single files) + items."""
    interactions, items = write_parquet(100_000, 42, tmp_path_factory.mktemp("synthetic-100k"), chunk_rows=10**9)
    (single,) = sorted(Path(interactions).glob("*.parquet"))
    return str(single), str(items)


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """5k interactions in several Parquet partitions (a directory) + items."""
    interactions, items = write_parquet(5_000, 3, tmp_path_factory.mktemp("synthetic-5k"), chunk_rows=1_500)
    return str(interactions), str(items)
