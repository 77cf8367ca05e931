"""Tests of the pipeline's data sources: synthetic generator, CSV/Parquet/S3 files, MovieLens."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.data import InteractionLog
from pipeline.sources import load_source, synthetic_catalogue
from pipeline.sources import synthetic as synthetic_module
from pipeline.sources.synthetic import COLD_USER_WINDOW, generate, write_parquet
from reccore.errors import ConfigError, DataSourceError


@pytest.fixture(scope="module")
def synthetic() -> InteractionLog:
    return generate(100_000, seed=42)


# --- synthetic -------------------------------------------------------------------------------


def test_generator_is_deterministic_under_a_seed(synthetic: InteractionLog) -> None:
    again = generate(100_000, seed=42)
    for name in ("users", "items", "weights", "timestamps", "events", "user_ids", "item_ids", "prices"):
        np.testing.assert_array_equal(getattr(synthetic, name), getattr(again, name), err_msg=name)
    assert synthetic.titles == again.titles and synthetic.categories == again.categories


def test_different_seeds_give_different_logs(synthetic: InteractionLog) -> None:
    other = generate(100_000, seed=43)
    assert not np.array_equal(synthetic.items, other.items)
    assert not np.array_equal(synthetic.timestamps, other.timestamps)


def test_sizes_scale_with_interactions(synthetic: InteractionLog) -> None:
    assert synthetic.n_interactions == 100_000
    assert synthetic.n_items == 10_000
    assert 5_000 <= synthetic.n_users <= 8_000
    small = generate(1_000, seed=1)
    assert small.n_interactions == 1_000 and small.n_items < synthetic.n_items
    assert np.bincount(small.users, minlength=small.n_users).min() >= 1  # no empty users


def test_items_follow_a_power_law(synthetic: InteractionLog) -> None:
    counts = np.sort(np.bincount(synthetic.items, minlength=synthetic.n_items))[::-1]
    top_share = counts[: synthetic.n_items // 100].sum() / synthetic.n_interactions
    assert top_share > 0.20
    assert np.median(counts) <= 5
    assert counts[0] > 50 * np.median(counts)


def test_users_follow_a_power_law(synthetic: InteractionLog) -> None:
    counts = np.bincount(synthetic.users, minlength=synthetic.n_users)
    assert counts.max() > 20 * np.median(counts)
    assert counts.min() >= 1


def test_density_is_well_under_one_percent(synthetic: InteractionLog) -> None:
    pairs = np.unique(synthetic.users.astype(np.int64) * synthetic.n_items + synthetic.items)
    assert len(pairs) / (synthetic.n_users * synthetic.n_items) < 0.01
    assert len(pairs) < synthetic.n_interactions  # repeat interactions exist


def test_cold_items_and_cold_users_exist(synthetic: InteractionLog) -> None:
    counts = np.bincount(synthetic.items, minlength=synthetic.n_items)
    assert 0.03 <= np.mean(counts == 0) <= 0.08
    first_seen = np.full(synthetic.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, synthetic.users, synthetic.timestamps)
    start, end = synthetic.timestamps.min(), synthetic.timestamps.max()
    late = first_seen >= end - COLD_USER_WINDOW * (end - start)
    assert 0.02 <= np.mean(late) <= 0.06


def test_tastes_are_persistent_so_history_predicts_the_future(synthetic: InteractionLog) -> None:
    categories = np.array(synthetic.categories)[synthetic.items]
    half = np.median(synthetic.timestamps)
    early, late = synthetic.timestamps < half, synthetic.timestamps >= half
    frame = pd.DataFrame({"user": synthetic.users, "category": categories})
    top_early = frame[early].groupby("user")["category"].agg(lambda s: s.mode().iloc[0])
    late_frame = frame[late]
    hit = late_frame["category"].to_numpy() == top_early.reindex(late_frame["user"]).to_numpy()
    assert hit.mean() > 0.4  # chance is about 1 in 20 categories


def test_metadata_and_events(synthetic: InteractionLog) -> None:
    assert len(set(synthetic.categories)) == 20 and "books" in synthetic.categories
    assert synthetic.titles[0].split(" #")[0].lower() == synthetic.categories[0]
    assert len(set(synthetic.titles)) == synthetic.n_items
    assert (synthetic.prices > 0).all()
    by_category = pd.Series(synthetic.prices).groupby(synthetic.categories).median()
    assert by_category["electronics"] > 5 * by_category["books"]
    assert synthetic.event_types == ["view", "click", "purchase"]
    shares = np.bincount(synthetic.events, minlength=3) / synthetic.n_interactions
    assert shares[0] > shares[1] > shares[2] > 0
    np.testing.assert_array_equal(synthetic.weights, np.array([1, 2, 5], np.float32)[synthetic.events])
    assert np.all(np.diff(synthetic.timestamps) >= 0)
    assert synthetic.timestamps.max() <= 1_719_705_600
    assert synthetic.timestamps.min() >= 1_719_705_600 - 180 * 86_400


def test_load_source_synthetic_and_bad_size() -> None:
    log = load_source("synthetic", interactions=5_000, seed=3)
    assert log.n_interactions == 5_000 and log.source == "synthetic"
    with pytest.raises(ConfigError):
        load_source("synthetic", interactions=5)


def _digest(log: InteractionLog) -> str:
    digest = hashlib.sha256()
    for array in (log.users, log.items, log.weights, log.timestamps, log.events, log.user_ids, log.item_ids,
                  log.prices):  # fmt: skip
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps([log.titles, log.categories]).encode())
    return digest.hexdigest()


# Recorded (numpy 2.4.6) with the generator as it was before n_items existed: the rule-sized logs must not change.
PINNED = {
    (5_000, 3, 1_500): "010927d7bceea7ff05e7d8abf91707f6dbbdb8dddd1716e458e05568e50ba902",
    (20_000, 3, synthetic_module.CHUNK_ROWS): "7813ab0d6f14de60f10eb828a2939452bb151168f0aec5731fb15ed040a3902d",
}


@pytest.mark.parametrize(("n", "seed", "chunk_rows"), list(PINNED))
def test_default_catalogue_size_leaves_the_log_unchanged(n: int, seed: int, chunk_rows: int) -> None:
    log = generate(n, seed, chunk_rows=chunk_rows)
    assert _digest(log) == PINNED[(n, seed, chunk_rows)]
    assert _digest(generate(n, seed, chunk_rows=chunk_rows, n_items=None)) == PINNED[(n, seed, chunk_rows)]


def test_n_items_sets_the_catalogue_whatever_the_interactions(synthetic: InteractionLog) -> None:
    log = generate(5_000, seed=3, n_items=12_345)
    assert log.n_items == 12_345 and log.n_interactions == 5_000
    assert log.n_users == generate(5_000, seed=3).n_users  # users still follow the interactions
    assert log.item_ids[0] == "i000001" and log.item_ids[-1] == "i012345" and len(set(log.item_ids)) == 12_345
    assert len(log.titles) == len(log.categories) == len(log.prices) == 12_345
    assert set(log.categories) == set(synthetic.categories) and log.items.max() < 12_345
    small = generate(1_000, seed=1, n_items=60)
    assert small.n_items == 60 and len(set(small.categories)) == 20
    # The explicit size equal to the rule's gives the rule-sized log when the rule-sized draw left every donor >= 2.
    assert _digest(generate(100_000, seed=42, n_items=10_000)) == _digest(synthetic)


def test_large_catalogue_many_single_interaction_items_and_about_5_percent_cold() -> None:
    log = generate(200_000, seed=1, n_items=100_000)
    counts = np.bincount(log.items, minlength=log.n_items)
    assert 0.045 <= np.mean(counts == 0) <= 0.055  # enough donors: every warm item covered
    assert np.mean(counts == 1) > 0.5 and np.median(counts) == 1
    assert counts.max() > 500  # the Zipf head is still there
    categories = np.array(log.categories)
    assert len(set(categories[log.items])) == 20


def test_catalogue_far_larger_than_the_log_leaves_the_tail_cold() -> None:
    log = generate(2_000, seed=4, n_items=50_000)
    counts = np.bincount(log.items, minlength=log.n_items)
    assert log.n_items == 50_000 and log.n_interactions == 2_000
    assert np.mean(counts == 0) > 0.9  # not enough donors: the uncovered warm items stay without interactions
    assert counts.max() == 2  # every item with >= 3 draws gave rows, down to the two a donor keeps


def _cover(strict: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # One category of 10 items: item 0 has 3 rows, item 1 has 4, items 2-9 none (popularity falls with the id).
    items = np.array([0, 0, 0, 1, 1, 1, 1], dtype=np.int32)
    catalogue = {"category": np.zeros(10, dtype=np.int64), "cold": np.zeros(10, dtype=bool),
                 "popularity": 1.0 / np.arange(1, 11)}  # fmt: skip
    inter_cat = np.zeros(len(items), dtype=np.int16)
    synthetic_catalogue.cover_warm_items(
        np.random.default_rng(seed), items, inter_cat, catalogue, np.zeros(10, np.int64), strict
    )
    return items, np.bincount(items, minlength=10)


@pytest.mark.parametrize("seed", range(5))
def test_covering_never_drains_a_donor_and_covers_the_most_popular_first(seed: int) -> None:
    _, counts = _cover(strict=True, seed=seed)
    assert counts[0] == 2 and counts[1] == 2  # each donor keeps two; only 3 rows could be given
    np.testing.assert_array_equal(counts[2:], [1, 1, 1, 0, 0, 0, 0, 0])  # the three most popular missed items
    _, legacy = _cover(strict=False, seed=seed)
    assert legacy[0] == 0 and legacy[1] == 0  # the rule-sized path's known flaw, kept for byte-identical logs


def test_generate_and_write_parquet_give_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refills: list[bool] = []
    within = synthetic_catalogue._within_spare

    def spy(rng: np.random.Generator, rows: np.ndarray, *args: np.ndarray) -> np.ndarray:
        kept = within(rng, rows, *args)
        refills.append(not np.array_equal(kept, rows))
        return kept

    monkeypatch.setattr(synthetic_catalogue, "_within_spare", spy)
    for n_items in (None, 3_000):
        log = generate(5_000, seed=3, chunk_rows=1_500, n_items=n_items)
        directory = tmp_path / str(n_items)
        interactions, items = write_parquet(5_000, 3, directory, chunk_rows=1_500, n_items=n_items)
        parts = sorted(interactions.glob("part-*.parquet"))
        assert len(parts) >= 3  # several chunks, the covering in the last one
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        frame = frame.iloc[np.argsort(frame["timestamp"].to_numpy(), kind="stable")]
        np.testing.assert_array_equal(frame["user_id"].to_numpy(str), log.user_ids[log.users])
        np.testing.assert_array_equal(frame["item_id"].to_numpy(str), log.item_ids[log.items])
        np.testing.assert_array_equal(frame["timestamp"].to_numpy(), log.timestamps)
        np.testing.assert_array_equal(frame["event"].to_numpy(str), np.array(log.event_types)[log.events])
        np.testing.assert_array_equal(frame["weight"].to_numpy(), log.weights)
        catalogue = pd.read_parquet(items)
        assert catalogue["item_id"].tolist() == log.item_ids.tolist() and catalogue["title"].tolist() == log.titles
        assert catalogue["category"].tolist() == log.categories
        np.testing.assert_array_equal(catalogue["price"].to_numpy(), log.prices)
        assert len(catalogue) == (3_000 if n_items else generate(5_000, seed=3).n_items)
    assert any(refills)  # the explicit size's capped covering ran and was exercised


def test_n_items_through_load_source_and_bad_sizes() -> None:
    log = load_source("synthetic", interactions=5_000, seed=3, n_items=777)
    assert log.n_items == 777 and log.source == "synthetic"
    with pytest.raises(ConfigError, match="n_items must be >= 60"):
        load_source("synthetic", interactions=5_000, n_items=59)
    assert load_source("movielens-100k", n_items=777).n_items == 1682  # ignored by other sources


# --- files -----------------------------------------------------------------------------------

INTERACTIONS = pd.DataFrame(
    {
        "user_id": ["alice", "bob", "alice", "carol"],
        "item_id": [10, 20, 30, 10],
        "rating": [5.0, 3.0, 4.0, 1.0],
        "timestamp": [100, 200, 300, 400],
        "event": ["view", "purchase", "view", "view"],
    }
)
ITEMS = pd.DataFrame({"item_id": [10, 20, 30, 40], "title": ["Ten", None, "Thirty", "Forty"], "price": [1.5, 2, 3, 4]})


def _check_round_trip(log: InteractionLog) -> None:
    assert log.n_interactions == 4 and log.n_users == 3
    assert list(log.user_ids[log.users]) == ["alice", "bob", "alice", "carol"]
    assert list(log.item_ids[log.items]) == ["10", "20", "30", "10"]
    np.testing.assert_array_equal(log.weights, [5, 3, 4, 1])
    np.testing.assert_array_equal(log.timestamps, [100, 200, 300, 400])
    assert [log.event_types[e] for e in log.events] == ["view", "purchase", "view", "view"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip_with_items_table(tmp_path: Path, suffix: str) -> None:
    inter_path, items_path = tmp_path / f"inter{suffix}", tmp_path / f"items{suffix}"
    if suffix == ".csv":
        INTERACTIONS.to_csv(inter_path, index=False)
        ITEMS.to_csv(items_path, index=False)
    else:
        INTERACTIONS.to_parquet(inter_path)
        ITEMS.to_parquet(items_path)
    log = load_source(str(inter_path), str(items_path))
    _check_round_trip(log)
    assert list(log.item_ids) == ["10", "20", "30", "40"]  # "40" is a cold item
    assert log.titles == ["Ten", "20", "Thirty", "Forty"]  # missing title falls back to the id
    assert log.categories == ["unknown"] * 4
    np.testing.assert_array_equal(log.prices, [1.5, 2, 3, 4])


def test_events_without_a_weight_column_get_the_events_default_strengths(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    INTERACTIONS.drop(columns=["rating"]).assign(event=["view", "purchase", "click", "share"]).to_csv(path, index=False)
    log = load_source(str(path))
    np.testing.assert_array_equal(log.weights, [1, 5, 2, 1])


def test_csv_without_optional_columns_and_with_iso_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,2024-01-01T00:00:00Z\n2,b,2024-01-02\n")
    log = load_source(str(path))
    np.testing.assert_array_equal(log.timestamps, [1_704_067_200, 1_704_153_600])
    np.testing.assert_array_equal(log.weights, [1, 1])
    assert log.titles == ["a", "b"] and log.prices.tolist() == [0, 0]
    parquet = tmp_path / "inter.parquet"
    when = pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True).as_unit("ns")
    pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "timestamp": when}).to_parquet(parquet)
    np.testing.assert_array_equal(load_source(str(parquet)).timestamps, [1_704_067_200, 1_704_153_600])


BAD_CSV = [
    ("empty.csv", "", "empty"),
    ("header.csv", "user_id,item_id\n", "no data rows"),
    ("nouser.csv", "item_id,rating\na,1\n", "'user_id'"),
    (
        "weight.csv",
        "user_id,item_id,weight\nu,a,1\nu,b,heavy\nu,c,x\n",
        "2 malformed row(s), column 'weight' is not a number; first is data row 2 (line 3): 'heavy'",
    ),
    ("negative.csv", "user_id,item_id,rating\nu,a,1\nu,b,0\n", "must be > 0; first is data row 2"),
    ("nullid.csv", "user_id,item_id\nu,a\n,b\n", "column 'user_id' is empty; first is data row 2"),
    (
        "time.csv",
        "user_id,item_id,timestamp\nu,a,2024-01-01\nu,b,1700000000\nu,c,yesterday\n",
        "1 malformed row(s), column 'timestamp' is not unix seconds or an ISO-8601 date-time; first is data row 3",
    ),
    ("ragged.csv", 'user_id,item_id\nu,a\nu,b,c,d\n', "not a readable CSV"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "problem"), BAD_CSV)
def test_bad_csv_raises_one_clear_error(tmp_path: Path, name: str, content: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataSourceError) as caught:
        load_source(str(path))
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_file_and_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"nope\.csv: file not found"):
        load_source(str(tmp_path / "nope.csv"))
    json_path = tmp_path / "inter.json"
    json_path.write_text("{}")
    with pytest.raises(DataSourceError, match=r"inter\.json: unsupported source"):
        load_source(str(json_path))
    with pytest.raises(DataSourceError, match="unsupported source"):
        load_source("movielens")


def test_corrupt_and_empty_parquet(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match=r"corrupt\.parquet: not a readable Parquet file"):
        load_source(str(corrupt))
    empty = tmp_path / "empty.parquet"
    INTERACTIONS.iloc[:0].to_parquet(empty)
    with pytest.raises(DataSourceError, match=r"empty\.parquet: no data rows"):
        load_source(str(empty))


def test_interactions_with_items_missing_from_items_table(tmp_path: Path) -> None:
    inter_path, items_path = tmp_path / "inter.csv", tmp_path / "items.csv"
    INTERACTIONS.to_csv(inter_path, index=False)
    ITEMS[ITEMS.item_id != 30].to_csv(items_path, index=False)
    with pytest.raises(DataSourceError) as caught:
        load_source(str(inter_path), str(items_path))
    message = str(caught.value)
    assert str(items_path) in message and "'30'" in message and "not in this items table" in message


def test_items_table_problems(tmp_path: Path) -> None:
    inter_path = tmp_path / "inter.csv"
    INTERACTIONS.to_csv(inter_path, index=False)
    cases = {
        "noid.csv": ("title\nx\n", "missing required column 'item_id'"),
        "dup.csv": ("item_id\n10\n20\n30\n10\n", "'item_id' is a duplicate; first is data row 4"),
        "price.csv": ("item_id,price\n10,1\n20,cheap\n30,2\n", "'price' is not a number; first is data row 2"),
    }
    for name, (content, problem) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataSourceError) as caught:
            load_source(str(inter_path), str(path))
        assert str(path) in str(caught.value) and problem in str(caught.value), name
    with pytest.raises(DataSourceError, match="only to file sources"):
        load_source("synthetic", str(inter_path))


def test_s3_csv_and_parquet(mock_s3: Any) -> None:
    mock_s3.create_bucket(Bucket="rec-data")
    mock_s3.put_object(Bucket="rec-data", Key="in/inter.csv", Body=INTERACTIONS.to_csv(index=False).encode())
    mock_s3.put_object(Bucket="rec-data", Key="in/items.parquet", Body=ITEMS.to_parquet())
    log = load_source("s3://rec-data/in/inter.csv", "s3://rec-data/in/items.parquet")
    _check_round_trip(log)
    assert log.n_items == 4 and log.source == "s3://rec-data/in/inter.csv"
    with pytest.raises(DataSourceError, match=r"s3://rec-data/in/missing\.csv: file not found"):
        load_source("s3://rec-data/in/missing.csv")
    with pytest.raises(DataSourceError, match=r"s3://no-such-bucket/x\.csv: file not found"):
        load_source("s3://no-such-bucket/x.csv")


# --- MovieLens -------------------------------------------------------------------------------


def test_movielens_100k_loads_without_torch() -> None:
    # A fresh interpreter, so that "torch was not imported" is a real observation.
    code = (
        "import sys; from pipeline.sources import load_source; log = load_source('movielens-100k'); "
        "print(log.n_interactions, log.n_users, log.n_items, 'torch' in sys.modules, "
        "any(m.startswith('recbole') for m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["100000", "943", "1682", "False", "False"]


def test_movielens_100k_content() -> None:
    log = load_source("movielens-100k")
    assert (log.n_interactions, log.n_users, log.n_items) == (100_000, 943, 1682)
    assert log.titles[0] == "Toy Story (1995)" and log.categories[0] == "animation"
    assert set(np.unique(log.weights)) == {1, 2, 3, 4, 5}
    assert log.event_types == ["rating"] and (log.prices == 0).all()
    assert log.timestamps.min() > 800_000_000


def test_movielens_without_recbole_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "recbole" else real_find_spec(name, *a)
    )
    with pytest.raises(DataSourceError, match=r"pip install --no-deps recbole==1\.2\.1"):
        load_source("movielens-100k")
