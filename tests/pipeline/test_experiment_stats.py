"""mSPRT decisions and confidence sequences on simulated experiments where the right answer is known."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from pipeline.experiment.stats import MIN_IMPRESSIONS, TAU, Arm, ctr_interval, decide

ALPHA = 0.05
RUNS = 500
BATCH = 100  # impressions per arm between two looks of the decision job
LOOKS = 200  # up to 20,000 impressions per arm
# A run's "ever wrong" event is Bernoulli; at the worst allowed rate α its share over 500 runs has a standard
# deviation of sqrt(0.05 · 0.95 / 500) ≈ 0.0097, so α + 0.03 (three standard deviations) separates sampling
# noise from a broken bound.
BOUND = ALPHA + 0.03


def running_clicks(rng: np.random.Generator, ctr: float, runs: int, looks: int) -> np.ndarray:
    """Cumulative clicks at each look: ``[run, look]``, ``BATCH`` impressions per look."""
    return rng.binomial(BATCH, ctr, size=(runs, looks)).cumsum(axis=1)


def first_decision(champion: np.ndarray, challenger: np.ndarray) -> tuple[str, int]:
    """Call ``decide`` after every batch of one run; the first non-"continue" and its impressions per arm."""
    for look, (clicks_a, clicks_b) in enumerate(zip(champion.tolist(), challenger.tolist(), strict=True)):
        impressions = (look + 1) * BATCH
        outcome = decide(Arm(impressions, clicks_a), Arm(impressions, clicks_b), alpha=ALPHA).decision
        if outcome != "continue":
            return outcome, impressions
    return "continue", len(champion) * BATCH


@pytest.mark.parametrize("ctr", [0.05, 0.3])
def test_aa_false_decision_rate_under_repeated_looks_is_at_most_alpha(ctr: float) -> None:
    rng = np.random.default_rng(20170 + int(ctr * 100))
    champion, challenger = running_clicks(rng, ctr, RUNS, LOOKS), running_clicks(rng, ctr, RUNS, LOOKS)
    decided = sum(first_decision(a, b)[0] != "continue" for a, b in zip(champion, challenger, strict=True))
    rate = decided / RUNS
    print(f"A/A CTR {ctr}: {decided}/{RUNS} runs ever decided ({rate:.3f}), {LOOKS} looks every {BATCH} impressions")
    assert rate <= BOUND


@pytest.mark.parametrize(
    ("champion_ctr", "challenger_ctr", "expected"), [(0.08, 0.04, "rollback"), (0.08, 0.16, "promote")]
)
def test_halved_ctr_is_rolled_back_and_doubled_ctr_promoted(
    champion_ctr: float, challenger_ctr: float, expected: str
) -> None:
    seeds, looks = 20, 50  # within 5,000 impressions per arm
    outcomes = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        champion, challenger = (
            running_clicks(rng, champion_ctr, 1, looks),
            running_clicks(rng, challenger_ctr, 1, looks),
        )
        outcomes.append(first_decision(champion[0], challenger[0]))
    right = [impressions for outcome, impressions in outcomes if outcome == expected]
    figures = f"median {np.median(right or [0]):.0f}, max {max(right, default=0)} impressions per arm"
    print(f"{champion_ctr} → {challenger_ctr}: {expected} in {len(right)}/{seeds} seeds, {figures}")
    assert len(right) >= seeds - 1
    assert all(outcome in ("continue", expected) for outcome, _ in outcomes)  # never the wrong way round


@pytest.mark.parametrize("ctr", [0.01, 0.05, 0.3])
def test_ctr_interval_covers_the_true_ctr_at_every_look(ctr: float) -> None:
    clicks = running_clicks(np.random.default_rng(7 + int(ctr * 100)), ctr, RUNS, LOOKS)
    missed = 0
    for run in clicks.tolist():
        for look, total in enumerate(run):
            low, high = ctr_interval(Arm((look + 1) * BATCH, total), alpha=ALPHA)
            if not low <= ctr <= high:
                missed += 1
                break
    print(f"CTR {ctr}: the interval missed at some look in {missed}/{RUNS} runs ({missed / RUNS:.3f})")
    assert missed / RUNS <= BOUND


def test_ctr_interval_narrows_as_impressions_grow() -> None:
    intervals = [ctr_interval(Arm(n, n // 10)) for n in (100, 1_000, 10_000, 100_000)]
    widths = [high - low for low, high in intervals]
    assert all(later < earlier for earlier, later in itertools.pairwise(widths))
    low, high = ctr_interval(Arm(100_000, 10_000))
    assert low < 0.1 < high and high - low < 0.01


def test_decision_and_difference_interval_agree() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n_a, n_b = rng.integers(MIN_IMPRESSIONS, 5_000, size=2)
        champion = Arm(int(n_a), int(rng.binomial(n_a, 0.1)))
        challenger = Arm(int(n_b), int(rng.binomial(n_b, rng.uniform(0.05, 0.15))))
        result = decide(champion, challenger)
        low, high = result.difference_interval
        assert result.difference == pytest.approx(challenger.ctr - champion.ctr)
        assert low <= result.difference <= high
        assert (result.decision != "continue") == (not low <= 0.0 <= high)
        assert (result.decision != "continue") == (result.likelihood_ratio >= 1 / ALPHA)


def test_reason_gives_the_figures() -> None:
    result = decide(Arm(2_000, 166), Arm(2_000, 82))
    assert result.decision == "rollback"
    assert "challenger CTR 0.041 < champion 0.083" in result.reason
    assert f"Λ={result.likelihood_ratio:.3g} ≥ 20" in result.reason and "α=0.05" in result.reason
    assert decide(Arm(2_000, 82), Arm(2_000, 166)).decision == "promote"
    assert "not significant yet" in decide(Arm(2_000, 160), Arm(2_000, 165)).reason


@pytest.mark.parametrize(("champion", "challenger"), [(Arm(199, 0), Arm(5_000, 5_000)), (Arm(199, 199), Arm(199, 0))])
def test_below_min_impressions_always_continues(champion: Arm, challenger: Arm) -> None:
    result = decide(champion, challenger)
    assert result.decision == "continue"
    assert f"needs {MIN_IMPRESSIONS}" in result.reason
    assert result.likelihood_ratio >= 1 / ALPHA  # the data alone would have decided
    assert decide(champion, challenger, min_impressions=199).decision != "continue"


def test_edge_cases() -> None:
    empty = Arm(0, 0)
    assert empty.ctr == 0.0
    assert ctr_interval(empty) == (0.0, 1.0)
    no_data = decide(empty, empty, min_impressions=0)
    assert (no_data.decision, no_data.likelihood_ratio, no_data.difference_interval) == ("continue", 1.0, (-1.0, 1.0))

    for clicks in (0, 1_000):  # zero clicks in both arms, then all clicks in both
        same = decide(Arm(1_000, clicks), Arm(1_000, clicks))
        assert same.decision == "continue" and same.difference == 0.0 and same.likelihood_ratio < 1.0
        low, high = ctr_interval(Arm(1_000, clicks))
        assert 0.0 <= low <= clicks / 1_000 <= high <= 1.0 and high - low > 0.0

    assert decide(Arm(1_000, 0), Arm(1_000, 1_000)).decision == "promote"
    assert decide(Arm(1_000, 1_000), Arm(1_000, 0)).decision == "rollback"
    huge = decide(Arm(10**9, 10**8), Arm(10**9, 2 * 10**8))  # log Λ far past float range
    assert huge.decision == "promote" and math.isinf(huge.likelihood_ratio)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((-1, 0), "impressions must be non-negative"),
        ((10, -1), "clicks must be non-negative"),
        ((10, 11), r"clicks \(11\) must not exceed impressions \(10\)"),
        ((10, 1, 11), r"conversions \(11\) must not exceed impressions \(10\)"),
    ],
)
def test_arm_rejects_impossible_counts(arguments: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Arm(*arguments)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"alpha": 0.0}, "alpha must be in"),
        ({"alpha": 1.0}, "alpha must be in"),
        ({"tau": 0.0}, "tau must be positive"),
        ({"min_impressions": -1}, "min_impressions must be non-negative"),
    ],
)
def test_decide_rejects_bad_parameters(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide(Arm(500, 50), Arm(500, 60), **keywords)


def test_ctr_interval_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        ctr_interval(Arm(100, 5), alpha=1.5)
    with pytest.raises(ValueError, match="tau must be positive"):
        ctr_interval(Arm(100, 5), tau=-TAU)
