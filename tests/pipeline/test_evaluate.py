"""Splits (no leakage) and the evaluation through the production scoring path."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import order_by_user
from pipeline.evaluate import default_objective, evaluate, holdout_split, random_split, relevant_items, time_split
from pipeline.package import package
from pipeline.sources import load_source
from pipeline.sources.synthetic import generate
from pipeline.train import train
from reccore.model import build_model


@pytest.fixture(scope="module")
def log():
    return generate(20_000, seed=5)


def test_time_split_holds_out_each_users_newest_interactions(log) -> None:
    test = time_split(log, holdout=0.2, min_interactions=5)
    counts = np.bincount(log.users, minlength=log.n_users)
    held = np.bincount(log.users[test], minlength=log.n_users)
    eligible = counts >= 5
    assert (held[~eligible] == 0).all()
    np.testing.assert_array_equal(held[eligible], np.maximum(1, np.floor(counts[eligible] * 0.2)))
    for user in np.flatnonzero(eligible)[:200]:
        mine = log.users == user
        assert log.timestamps[mine & test].min() >= log.timestamps[mine & ~test].max()


@pytest.mark.parametrize("split", ["time", "random"])
def test_no_held_out_interaction_is_in_training(log, split: str) -> None:
    test = time_split(log) if split == "time" else random_split(log, seed=3)
    train_rows = set(np.flatnonzero(~test).tolist())
    test_rows = set(np.flatnonzero(test).tolist())
    assert not train_rows & test_rows
    assert len(train_rows) + len(test_rows) == log.n_interactions
    relevant = relevant_items(log.subset(~test), log.subset(test))
    train_pairs = set(zip(log.users[~test].tolist(), log.items[~test].tolist(), strict=True))
    assert all((user, item) not in train_pairs for user, items in relevant.items() for item in items)


def test_random_split_is_seeded(log) -> None:
    np.testing.assert_array_equal(random_split(log, seed=1), random_split(log, seed=1))
    assert (random_split(log, seed=1) != random_split(log, seed=2)).any()


def test_svd_beats_popularity_on_synthetic_data(log) -> None:
    test = time_split(log)
    train_log = log.subset(~test)
    model = build_model(*package(train_log, train(train_log, factors=20)))
    metrics = evaluate(model, relevant_items(train_log, log.subset(test)))
    assert metrics["model"]["ndcg@10"] > 1.5 * metrics["popularity"]["ndcg@10"] > 0
    assert metrics["model"]["coverage"] > metrics["popularity"]["coverage"]
    assert metrics["model"]["users"] == metrics["popularity"]["users"] > 100


def test_order_by_user_matches_lexsort() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 5000).astype(np.int32)
    key = rng.integers(-(10**9), 10**9, 5000)
    np.testing.assert_array_equal(order_by_user(users, key), np.lexsort((key, users)))
    np.testing.assert_array_equal(order_by_user(users, -key), np.lexsort((-key, users)))
    huge = np.array([0, 2**62, 5], dtype=np.int64)  # too wide for one combined key: falls back to lexsort
    np.testing.assert_array_equal(order_by_user(np.array([1, 0, 1]), huge), np.lexsort((huge, np.array([1, 0, 1]))))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("user_id,item_id,rating\nu1,a,4\nu1,b,2\nu2,a,5\n", "random"),  # explicit ratings
        ("user_id,item_id,event\nu1,a,view\nu1,b,purchase\nu2,a,click\n", "time"),  # an event table
        ("user_id,item_id,event,rating\nu1,a,rating,4\nu1,b,rating,2\nu2,a,view,1\n", "time"),  # ratings among events
        ("user_id,item_id,weight\nu1,a,1\nu1,b,3\nu2,a,2\n", "time"),  # implicit strengths
        ("user_id,item_id\nu1,a\nu1,b\nu2,a\n", "time"),  # bare interactions
    ],
)
def test_the_default_objective_of_a_table(tmp_path, table: str, expected: str) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(table)
    assert default_objective(load_source(str(path))) == expected


def test_the_default_objective_of_the_named_sources() -> None:
    assert default_objective(generate(2_000, seed=1)) == "time"  # synthetic events: views, clicks, purchases
    assert default_objective(load_source("movielens-100k")) == "random"  # a rating benchmark


def test_holdout_split_is_the_objectives_split(log) -> None:
    np.testing.assert_array_equal(holdout_split(log, "time"), time_split(log))
    np.testing.assert_array_equal(holdout_split(log, "random", 3), random_split(log, seed=3))
    with pytest.raises(ValueError, match="objective"):
        holdout_split(log, "leave-one-out")  # type: ignore[arg-type]
