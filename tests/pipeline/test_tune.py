"""The validation tuner: blind to the test split, deterministic, within budget; its scorer ranks as the service does."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import InteractionLog
from pipeline.evaluate import rank_users, served_model, time_split
from pipeline.sources.synthetic import generate
from pipeline.train import ModelConfig, interaction_matrix, train_config
from pipeline.tune import SearchSpace, offline_rankings, rating_space, tune, tune_for_run, tuning_enabled
from reccore.settings import PipelineSettings
from tests.pipeline.conftest import block_log

SMALL_SPACE = SearchSpace(
    factors=(8, 16), weightings=("log",), scalings=(0.0, 0.5), shrinkages=(0.0, 0.3), pop_alphas=(0.0, 0.5)
)
VARIANTS = [
    ModelConfig(8, "log", 0.5),
    ModelConfig(8, "log", 0.0, shrinkage=0.3),
    ModelConfig(8, "log", 0.5, pop_alpha=0.5),
    ModelConfig(8, "none", 1.0, shrinkage=1.0, min_rating=3.0),
    ModelConfig(8, "log", 0.5, centre=True),
    ModelConfig(8, "bm25", 0.5, shrinkage=0.1, pop_alpha=0.25, min_rating=2.0, centre=True),
]


@pytest.fixture(scope="module")
def log() -> InteractionLog:
    return generate(8_000, seed=5)


def rated(log: InteractionLog) -> InteractionLog:
    """``log`` with 1-5 star ratings as its weights."""
    copy = log.subset(np.ones(log.n_interactions, dtype=bool))
    copy.weights = np.random.default_rng(2).integers(1, 6, size=log.n_interactions).astype(np.float32)
    copy.event_types = ["rating"]
    return copy


def settings(**overrides: object) -> PipelineSettings:
    return PipelineSettings(seed=7, tune_budget=600.0, **overrides)  # type: ignore[arg-type]


def test_the_tuner_never_reads_the_test_split(log: InteractionLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.tune.SearchSpace", lambda: SMALL_SPACE)
    before = tune_for_run(log, settings())
    test = time_split(log)
    scrambled = log.subset(np.ones(log.n_interactions, dtype=bool))
    scrambled.items = scrambled.items.copy()
    scrambled.items[test] = np.random.default_rng(0).integers(0, log.n_items, size=int(test.sum()))
    after = tune_for_run(scrambled, settings())
    assert after.trials == before.trials  # not one validation score moved
    # The comparison can fail: the same scrambling applied to training rows does move the scores.
    train_rows = np.flatnonzero(~test)[: int(test.sum())]
    scrambled.items[train_rows] = np.random.default_rng(1).integers(0, log.n_items, size=len(train_rows))
    assert tune_for_run(scrambled, settings()).trials != before.trials


def test_the_choice_is_deterministic_for_a_seed(log: InteractionLog) -> None:
    train_log = log.subset(~time_split(log))
    first = tune(train_log, SMALL_SPACE, seed=3, budget=600.0)
    second = tune(train_log, SMALL_SPACE, seed=3, budget=600.0)
    assert first.trials == second.trials and first.best == second.best
    assert len(first.trials) == first.planned == 16
    assert first.best == max(first.trials, key=lambda t: t[1])[0]


def test_the_budget_stops_the_search_and_says_so(log: InteractionLog) -> None:
    default = ModelConfig(16, "log", 0.5)
    result = tune(log.subset(~time_split(log)), SMALL_SPACE, first=default, budget=1e-6)
    assert result.stopped_by_budget
    assert [config for config, _ in result.trials] == [default]  # the default is tried first, then time is up
    assert result.best == default
    assert "stopped by the 1e-06 s budget" in result.summary
    record = result.to_manifest()
    assert record["stopped_by_budget"] is True and record["tried"] == 1 and record["planned"] == 16


def test_manifest_record_lists_every_trial_and_the_winner(log: InteractionLog) -> None:
    result = tune(log.subset(~time_split(log)), SMALL_SPACE, budget=600.0)
    record = result.to_manifest()
    assert record["space"]["factors"] == [8, 16]
    assert len(record["trials"]) == 16
    assert record["best"] == result.best.params()
    assert record["best_ndcg@10"] == max(t["ndcg@10"] for t in record["trials"])
    assert record["seconds"] > 0


def test_ratings_add_thresholds_and_centring_to_the_space(log: InteractionLog) -> None:
    assert rating_space(SMALL_SPACE, log) == SMALL_SPACE  # implicit events: nothing to threshold
    space = rating_space(SMALL_SPACE, rated(log))
    assert space.min_ratings == (0.0, 3.0) and space.centres == (False, True)


def test_tuning_is_on_by_default_only_below_the_size_threshold(log: InteractionLog) -> None:
    assert tuning_enabled(settings(), log)
    assert not tuning_enabled(settings(tune_max_interactions=log.n_interactions - 1), log)
    assert tuning_enabled(settings(tune=True, tune_max_interactions=0), log)
    assert not tuning_enabled(settings(tune=False), log)


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: c.label)
def test_offline_scorer_gives_the_served_top_10(log: InteractionLog, config: ModelConfig) -> None:
    data = rated(log)
    users = np.flatnonzero(np.bincount(data.users, minlength=data.n_users)).tolist()[:300]
    options = {k: v for k, v in config.params().items() if k not in ("factors", "weighting", "scaling")}
    model = served_model(data, config.factors, config.weighting, config.scaling, 42, **options)
    served = rank_users(model, users, "model")
    offline = offline_rankings(train_config(data, config, 42), interaction_matrix(data), users)
    assert offline.keys() == served.keys()
    for user in users:
        assert_same_ranking(offline[user], served[user], model.item_factors @ model.user_factors[user])


def assert_same_ranking(mine: list[int], theirs: list[int], scores: np.ndarray) -> None:
    """The same lists up to the order of exactly tied items (items with identical vectors tie)."""
    assert len(mine) == len(theirs)
    np.testing.assert_allclose(scores[mine], scores[theirs], rtol=1e-5, atol=1e-7)
    boundary = scores[theirs[-1]] if theirs else 0.0
    untied = lambda items: {i for i in items if not np.isclose(scores[i], boundary, rtol=1e-5, atol=1e-7)}  # noqa: E731
    assert untied(mine) == untied(theirs)


def test_offline_scorer_falls_back_to_popularity_for_a_zero_vector() -> None:
    log = block_log()
    log.weights[log.users == 0] = 1.0
    log.weights[log.users != 0] = 5.0
    trained = train_config(log, ModelConfig(2, "none", 0.0, min_rating=3.0))
    assert not trained.user_factors[0].any()  # every rating of user 0 is below the threshold
    ranking = offline_rankings(trained, interaction_matrix(log), [0])[0]
    seen = set(log.items[log.users == 0].tolist())
    expected = [i for i in np.argsort(-trained.popularity, kind="stable").tolist() if i not in seen][:10]
    assert ranking == expected
