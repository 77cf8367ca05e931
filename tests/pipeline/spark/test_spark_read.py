"""Reading with Spark: the same data and the same one-line errors as the single-process reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from pipeline.sources.files import load_files
from pipeline.spark.read import read_interactions
from reccore.errors import DataSourceError


def _both_fail_alike(spark: SparkSession, uri: str, items: str | None = None) -> str:
    with pytest.raises(DataSourceError) as single:
        load_files(uri, items)
    with pytest.raises(DataSourceError) as distributed:
        read_interactions(spark, uri, items)
    assert str(distributed.value) == str(single.value)
    return str(single.value)


def _write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_missing_column_is_the_same_message(spark: SparkSession, tmp_path: Path) -> None:
    message = _both_fail_alike(spark, _write_csv(tmp_path / "a.csv", "user_id,item\nu1,i1\n"))
    assert "missing required column 'item_id'" in message


def test_header_only_and_empty_files_are_the_same_message(spark: SparkSession, tmp_path: Path) -> None:
    assert "no data rows" in _both_fail_alike(spark, _write_csv(tmp_path / "h.csv", "user_id,item_id\n"))
    assert "file is empty" in _both_fail_alike(spark, _write_csv(tmp_path / "e.csv", ""))


def test_malformed_values_name_the_same_row(spark: SparkSession, tmp_path: Path) -> None:
    weights = _write_csv(tmp_path / "w.csv", "user_id,item_id,weight\nu1,i1,1\nu2,i2,-3\nu3,i3,0\n")
    assert "2 malformed row(s), column 'weight' must be > 0; first is data row 2 (line 3)" in _both_fail_alike(
        spark, weights
    )
    ids = _write_csv(tmp_path / "i.csv", "user_id,item_id\nu1,i1\n,i2\n")
    assert "column 'user_id' is empty" in _both_fail_alike(spark, ids)
    times = _write_csv(tmp_path / "t.csv", "user_id,item_id,timestamp\nu1,i1,1700000000\nu2,i2,yesterday\n")
    assert "'timestamp' is not unix seconds" in _both_fail_alike(spark, times)


def test_unknown_item_ids_are_the_same_message(spark: SparkSession, tmp_path: Path) -> None:
    interactions = _write_csv(tmp_path / "x.csv", "user_id,item_id\nu1,i1\nu2,nope\nu3,nope\n")
    items = _write_csv(tmp_path / "items.csv", "item_id,title\ni1,One\ni2,Two\n")
    message = _both_fail_alike(spark, interactions, items)
    assert "2 interaction(s)" in message and "1 item_id(s) not in this items table: 'nope'" in message


def test_missing_file_is_the_same_message(spark: SparkSession, tmp_path: Path) -> None:
    assert "file not found" in _both_fail_alike(spark, str(tmp_path / "absent.parquet"))


def test_empty_partitions_are_skipped_and_all_empty_is_no_data(spark: SparkSession, tmp_path: Path) -> None:
    rows = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["i1", "i1", "i2"], "weight": [1.0, 2.0, 5.0]})
    directory = tmp_path / "parts"
    directory.mkdir()
    rows.to_parquet(directory / "part-0.parquet")
    rows.iloc[:0].to_parquet(directory / "part-1.parquet")  # an empty partition
    indexed = read_interactions(spark, str(directory))
    assert indexed.frame.count() == 3
    assert sorted(indexed.user_ids.tolist()) == ["u1", "u2"] and sorted(indexed.item_ids.tolist()) == ["i1", "i2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    rows.iloc[:0].to_parquet(empty / "part-0.parquet")
    with pytest.raises(DataSourceError, match="no data rows"):
        read_interactions(spark, str(empty))


def test_partitioned_directory_reads_every_row_with_the_catalogue(
    spark: SparkSession, synthetic_small: tuple[str, str]
) -> None:
    interactions, items = synthetic_small
    indexed = read_interactions(spark, interactions, items)
    expected = pd.concat([pd.read_parquet(p) for p in sorted(Path(interactions).glob("*.parquet"))])
    got = indexed.frame.toPandas()
    assert len(got) == len(expected) > 0
    assert len(indexed.item_ids) == len(pd.read_parquet(items))  # cold items included
    pairs = sorted(zip(indexed.user_ids[got["u"]], indexed.item_ids[got["i"]], strict=True))  # type: ignore[index]
    assert pairs == sorted(zip(expected["user_id"], expected["item_id"], strict=True))
    np.testing.assert_allclose(np.sort(got["w"].to_numpy()), np.sort(expected["weight"].to_numpy()))  # type: ignore[index]
