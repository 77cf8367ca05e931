"""The validation tuner: blind to the test split, the same on any machine, guarded against noise; ranks as served."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import pipeline.tuning.folds
from pipeline.data import InteractionLog
from pipeline.evaluate import Objective, holdout_split, rank_users, served_model, time_split
from pipeline.job import run
from pipeline.sources.synthetic import generate
from pipeline.train import ModelConfig, interaction_matrix, train_config
from pipeline.tuning.decision import decide
from pipeline.tuning.folds import offline_rankings
from pipeline.tuning.search import KEEP, SearchSpace, rating_space, tune, tune_for_run, tuning_enabled
from reccore.settings import PipelineSettings
from tests.pipeline.conftest import block_log

DEFAULT = ModelConfig(16, "log", 0.5)
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
    return PipelineSettings(seed=7, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("objective", ["time", "random"])
def test_the_tuner_never_reads_the_test_split(
    log: InteractionLog, monkeypatch: pytest.MonkeyPatch, objective: Objective
) -> None:
    monkeypatch.setattr("pipeline.tuning.search.SearchSpace", lambda: SMALL_SPACE)
    test = holdout_split(log, objective, 7)
    before = tune_for_run(log, test, settings(), objective)
    scrambled = log.subset(np.ones(log.n_interactions, dtype=bool))
    scrambled.items = scrambled.items.copy()
    scrambled.items[test] = np.random.default_rng(0).integers(0, log.n_items, size=int(test.sum()))
    after = tune_for_run(scrambled, test, settings(), objective)
    assert after.rungs == before.rungs  # not one validation score moved
    # The comparison can fail: the same scrambling applied to training rows does move the scores.
    train_rows = np.flatnonzero(~test)[: int(test.sum())]
    scrambled.items[train_rows] = np.random.default_rng(1).integers(0, log.n_items, size=len(train_rows))
    assert tune_for_run(scrambled, test, settings(), objective).rungs != before.rungs


def test_the_search_is_the_same_on_a_slow_machine(log: InteractionLog, monkeypatch: pytest.MonkeyPatch) -> None:
    train_log = log.subset(~time_split(log))
    fast = tune(train_log, SMALL_SPACE, DEFAULT, seed=3)
    clock = iter(range(0, 10**9, 3600))  # every reading of the clock an hour later than the last
    monkeypatch.setattr("pipeline.tuning.search.time.perf_counter", lambda: float(next(clock)))
    rank = pipeline.tuning.folds.rank_vectors

    def slow_rank(*args: object, **kwargs: object) -> list[list[int]]:
        time.sleep(0.002)
        return rank(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("pipeline.tuning.folds.rank_vectors", slow_rank)
    slow = tune(train_log, SMALL_SPACE, DEFAULT, seed=3)
    assert slow.seconds >= 3600  # the clock really was slow ...
    assert slow.rungs == fast.rungs and slow.decision == fast.decision  # ... and nothing else changed
    assert len(fast.rungs) == 3 and len(fast.rungs[0]) == 16  # every rung ran: no budget cut the search short


def test_successive_halving_keeps_the_best_third_and_the_default(log: InteractionLog) -> None:
    result = tune(log.subset(~time_split(log)), SMALL_SPACE, DEFAULT, seed=3)
    for rung, following in itertools.pairwise(result.rungs):
        ranked = sorted(rung, key=lambda c: -rung[c])
        assert set(following) == set(ranked[: math.ceil(len(rung) * KEEP)]) | {DEFAULT}
    assert result.decision.users == sum(result.validation_users)  # the last rung: every user of every fold


def paired(mean: float, n: int = 400, noise: float = 0.2, seed: int = 0) -> np.ndarray:
    """Per-user scores around a shared base: ``mean`` is the gain over the base, ``noise`` the per-user spread."""
    base = np.random.default_rng(99).uniform(0, 1, n)
    spread = np.random.default_rng(seed).normal(0, noise, n)
    return base + mean + spread - spread.mean()  # the mean gain is exactly ``mean``


def test_the_guard_keeps_the_default_when_no_setting_beats_it_by_more_than_the_noise() -> None:
    other = ModelConfig(100, "none", 0.0, shrinkage=3.0)
    scores = {DEFAULT: paired(0.0), other: paired(0.005, seed=1)}  # s.e. of the difference is ~0.014
    assert scores[other].mean() > scores[DEFAULT].mean()  # the argmax would have switched
    decision = decide(scores, DEFAULT)
    assert decision.chosen == DEFAULT and decision.best == other and decision.margin == 0.0
    assert "within one standard error" in decision.reason


def test_the_guard_takes_a_setting_that_beats_the_default_beyond_the_noise() -> None:
    other = ModelConfig(100, "none", 0.0, shrinkage=3.0)
    decision = decide({DEFAULT: paired(0.0), other: paired(0.05, seed=1)}, DEFAULT)
    assert decision.chosen == other and decision.margin > decision.standard_error > 0


def test_among_settings_within_the_noise_of_the_best_the_smallest_k_wins() -> None:
    big, small = ModelConfig(200, "log", 0.0, shrinkage=3.0), ModelConfig(20, "log", 0.0, shrinkage=3.0)
    scores = {DEFAULT: paired(0.0), big: paired(0.06, seed=1), small: paired(0.055, seed=2)}
    decision = decide(scores, DEFAULT)
    assert decision.best == big and decision.chosen == small


def test_manifest_record_holds_every_rung_and_the_decision(log: InteractionLog) -> None:
    result = tune(log.subset(~time_split(log)), SMALL_SPACE, DEFAULT)
    record = json.loads(json.dumps(result.to_manifest()))
    assert record["space"]["factors"] == [8, 16]
    assert [len(rung) for rung in record["rungs"]] == [len(r) for r in result.rungs]
    assert record["decision"]["chosen"] == result.best.label
    assert record["decision"]["margin"] >= 0 and record["decision"]["standard_error"] >= 0
    assert record["best"] == result.best.params() and record["objective"] == "time"
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


def test_a_tuned_run_publishes_byte_identical_files_however_slow_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.tuning.search.SearchSpace", lambda: SMALL_SPACE)

    def published(folder: str) -> dict[str, bytes]:
        result = run(PipelineSettings(output=str(tmp_path / folder), interactions=20_000, seed=3, tune=True))
        files = tmp_path / folder / "models" / result.version
        return {p.name: p.read_bytes() for p in files.iterdir() if p.name != "manifest.json"}

    with threadpool_limits(1):
        fast = published("fast")
    clock = iter(range(0, 10**9, 3600))
    monkeypatch.setattr("pipeline.tuning.search.time.perf_counter", lambda: float(next(clock)))
    with threadpool_limits(2):  # another core count: a 2-thread BLAS SVD differs in the last bits, unless run() pins it
        slow = published("slow")
    assert fast.keys() == slow.keys() and "item_factors.npy" in fast
    assert all(fast[name] == slow[name] for name in fast)  # arrays and index, byte for byte
