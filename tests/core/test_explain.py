"""Explanations are exact: the contributions add up to the score, and the first reason is the largest."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.package import package
from pipeline.train import train
from reccore.events import event_strengths
from reccore.explain import explain, history
from reccore.model import Model, build_model
from reccore.recommend import Interactions, recommend
from reccore.scoring import fold_in
from tests.pipeline.conftest import block_log


@pytest.fixture(scope="module")
def model() -> Model:
    log = block_log(cold_items=2)
    manifest, files = package(log, train(log, factors=3))
    return build_model(manifest, files)


def _brute_force(model: Model, items: np.ndarray, weights: np.ndarray, target: int) -> dict[int, float]:
    """Each history item's contribution, one product at a time (no vectorisation to share a mistake with)."""
    sigma = model.singular_values.astype(np.float64)
    found: dict[int, float] = {}
    for item, weight in zip(items.tolist(), weights.tolist(), strict=True):
        value = sum(weight * float(model.item_factors[item, d]) * float(model.item_factors[target, d]) / sigma[d] ** 2
                    for d in range(len(sigma)))  # fmt: skip
        found[item] = found.get(item, 0.0) + value
    return found


def test_a_sessions_reasons_add_up_to_its_scores_and_come_in_order(model: Model) -> None:
    session = Interactions.of([0, 1, 5, 1], [1.0, 2.0, 5.0, 1.0])
    answer = recommend(model, 5, interactions=session)
    row, weights = history(model, None, session)
    reasons = explain(model, row, weights, answer.items, top=10)
    query = fold_in(model, session.items, session.strengths).astype(np.float64)
    for target, score, found in zip(answer.items.tolist(), answer.scores.tolist(), reasons, strict=True):
        truth = _brute_force(model, row, weights, target)
        total = sum(truth.values())
        assert total == pytest.approx(float(query @ model.item_factors[target]), rel=1e-5)  # the score, exactly
        assert total == pytest.approx(score, rel=1e-4)  # ... as the index served it
        positive = sorted((v, k) for k, v in truth.items() if v > 0)[::-1]
        assert [r.item for r in found] == [k for _, k in positive]  # every positive one, largest first
        assert [r.share for r in found] == pytest.approx([v / total for v, _ in positive], rel=1e-6)


def test_a_known_users_reasons_add_up_to_the_stored_vectors_scores(model: Model) -> None:
    for user in range(model.n_users):
        answer = recommend(model, 3, user=user)
        if answer.strategy != "personalized":
            continue
        row, weights = history(model, user, None)
        contributions = explain(model, row, weights, answer.items, top=100)
        for target, found in zip(answer.items.tolist(), contributions, strict=True):
            truth = _brute_force(model, row, weights, target)
            stored = float(model.user_factors[user].astype(np.float64) @ model.item_factors[target])
            assert sum(truth.values()) == pytest.approx(stored, rel=1e-4, abs=1e-6)
            if found:  # the first reason is the largest contributor
                assert found[0].item == max(truth, key=lambda k: truth[k])


def test_the_same_history_gives_the_same_reasons_folded_in_or_known(model: Model) -> None:
    user = next(u for u in range(model.n_users) if recommend(model, 3, user=u).strategy == "personalized")
    rows = model.user_history(user)
    session = Interactions.of(
        model.history_items[rows], event_strengths(model.history_events[rows], model.manifest.event_types)
    )
    known = recommend(model, 4, user=user)
    targets = known.items
    as_known = explain(model, *history(model, user, None), targets)
    as_session = explain(model, *history(model, None, session), targets)
    assert [[r.item for r in found] for found in as_known] == [[r.item for r in found] for found in as_session]
    for a, b in zip(as_known, as_session, strict=True):
        assert [r.share for r in a] == pytest.approx([r.share for r in b], rel=1e-6)


def test_no_history_means_no_reasons(model: Model) -> None:
    assert explain(model, np.empty(0, dtype=np.int64), np.empty(0), np.array([0, 1])) == [[], []]
