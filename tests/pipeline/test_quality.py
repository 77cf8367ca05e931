"""The quality evaluation: baselines on a known answer, leak-free cold-start splits, the report's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.data import InteractionLog
from pipeline.quality.baselines import binary_matrix, ease, item_knn, most_popular, popularity_rank, rank_with
from pipeline.quality.coldstart import (
    SvdConfig,
    cold_user_splits,
    evaluate_cold_items,
    evaluate_cold_users,
    served_model,
)
from pipeline.quality.experiment import run_evaluation
from pipeline.quality.nested import ALL, UNTUNED
from pipeline.quality.protocols import cold_item_split, cold_user_split, make_split
from pipeline.quality.report import SECTIONS, write_report
from pipeline.sources.synthetic import generate
from pipeline.tuning.search import SearchSpace
from reccore.scoring import fold_in, seen_items
from tests.pipeline.conftest import block_log


def tiny_log(pairs: list[tuple[int, int]], n_items: int) -> InteractionLog:
    users = np.array([u for u, _ in pairs], dtype=np.int32)
    n = len(pairs)
    return InteractionLog(
        user_ids=np.array([f"u{u}" for u in range(int(users.max()) + 1)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        users=users,
        items=np.array([i for _, i in pairs], dtype=np.int32),
        weights=np.ones(n, dtype=np.float32),
        timestamps=np.arange(n, dtype=np.int64),
        events=np.zeros(n, dtype=np.int8),
        event_types=["view"],
        titles=[f"t{i}" for i in range(n_items)],
        categories=["c"] * n_items,
        prices=np.zeros(n_items),
    )


@pytest.fixture(scope="module")
def synthetic() -> InteractionLog:
    return generate(2_000, seed=1)


def test_item_knn_and_ease_rank_the_obviously_right_item() -> None:
    # Items 0 and 1 always go together, as do 2 and 3; item 4 is the most popular of all.
    pairs = [(u, i) for u in range(4) for i in (0, 1, 4)] + [(u, i) for u in (4, 5) for i in (2, 3, 4)]
    pairs += [(6, 4), (7, 4), (8, 0)]  # user 8 has only seen item 0: item 1 is the right answer
    matrix = binary_matrix(tiny_log(pairs, 5))
    for scorer in (item_knn(matrix), ease(matrix, l2=1.0)):
        ranking = rank_with(scorer, matrix, [8], k=3)[8]
        assert ranking[0] == 1
        assert 0 not in ranking  # seen items are excluded, as the service does
    assert rank_with(most_popular(matrix), matrix, [8], k=1)[8] == [4]
    assert popularity_rank(matrix)[4] == 0


def test_ease_refuses_a_catalogue_too_large_for_a_dense_matrix() -> None:
    with pytest.raises(ValueError, match="items"):
        ease(binary_matrix(tiny_log([(0, 0)], 20_001)))


def test_unknown_protocol_is_a_value_error(synthetic: InteractionLog) -> None:
    with pytest.raises(ValueError, match="objective"):
        make_split(synthetic, "leave-one-out")  # type: ignore[arg-type]


def test_cold_user_split_keeps_held_out_users_out_of_training(synthetic: InteractionLog) -> None:
    split = cold_user_split(synthetic, share=0.1, seed=3)
    held = set(split.users.tolist())
    assert len(held) == round(0.1 * synthetic.n_users)
    assert not held & set(split.train.users.tolist())  # no held-out user's interaction in training
    assert len(split.train.users) + sum(len(np.flatnonzero(synthetic.users == u)) for u in held) == len(synthetic.users)
    for user, (items, _) in split.history.items():
        mine = synthetic.users == user
        n = int(mine.sum())
        assert len(items) == (n + 1) // 2
        assert not split.relevant.get(user, set()) & set(items.tolist())
        oldest_first = np.sort(synthetic.timestamps[mine])
        in_model = np.sort(split.in_model.timestamps[split.in_model.users == user])
        np.testing.assert_array_equal(in_model, oldest_first[: (n + 1) // 2])  # only the older half, in-model


def test_cold_item_split_keeps_held_out_items_out_of_training(synthetic: InteractionLog) -> None:
    split = cold_item_split(synthetic, share=0.05, seed=3)
    assert len(split.items) == round(0.05 * synthetic.n_items)
    assert not np.isin(split.train.items, split.items).any()
    real = set(zip(synthetic.users.tolist(), synthetic.items.tolist(), strict=True))
    pairs = set(zip(split.pair_users.tolist(), split.pair_items.tolist(), strict=True))
    assert pairs and pairs <= real
    assert set(split.pair_items.tolist()) <= set(split.items.tolist())
    model = served_model(split.train, SvdConfig(8, "log"))
    assert model.content_based[split.items].all()


@pytest.mark.parametrize("scaling", [0.0, 0.5])
def test_fold_in_reproduces_a_training_user_under_any_scaling(scaling: float) -> None:
    log = block_log()
    model = served_model(log, SvdConfig(4, "bm25", scaling))
    for user in (0, 25):
        rows = log.users == user
        vector = fold_in(model, log.items[rows], log.weights[rows])
        np.testing.assert_allclose(vector, model.user_factors[user], rtol=1e-4, atol=1e-5)
        assert len(seen_items(model, user)) == rows.sum()


def test_cold_start_studies_report_sane_figures(synthetic: InteractionLog) -> None:
    config = SvdConfig(8, "log")
    # 2,000 interactions leave a held-out user one or two test items: too few to compare the modes.
    users = evaluate_cold_users(cold_user_splits(generate(20_000, seed=1), seed=2), config)
    assert set(users.users) == {"time", "random"} and min(users.users.values()) > 0 and users.ratio > 0.5
    assert users.own_history_returned == {"time": 0, "random": 0}
    items = evaluate_cold_items(cold_item_split(synthetic, seed=2), config)
    assert 0.0 <= items.catalogue.mean_rank <= 1.0 and items.pairs > 0


def test_report_on_a_small_dataset_has_every_section(synthetic: InteractionLog, tmp_path: Path) -> None:
    space = SearchSpace(
        factors=(4, 8), weightings=("log",), scalings=(0.0, 0.5), shrinkages=(0.0, 0.3), pop_alphas=(0.0, 0.5)
    )
    result = run_evaluation(synthetic, SvdConfig(8, "bm25"), factors=(4, 8), weightings=("log", "bm25"),
                            scalings=(0.0, 0.5), ease_l2=(50.0,), space=space)  # fmt: skip
    report, image = write_report(result, tmp_path / "docs" / "evaluation.md")
    text = report.read_text()
    for section in SECTIONS:
        assert f"\n{section}\n" in text
    for word in (
        "most popular",
        "item-kNN",
        "EASE (λ=",
        "current default",
        "fold-in",
        "lift",
        "![",
        "img/evaluation.png",
        "chosen on validation",
        "untuned default (`--no-tune`)",
        "tuned: the pipeline's search",
        "tuning decision",
        "Chosen on test",
    ):
        assert word in text
    for protocol in result.protocols.values():
        nested = protocol.nested
        assert nested is not None and len(nested.tuning.rungs[0]) == 2 * 2 * 2 * 2 + 1  # the space and the default
        assert nested.chosen[ALL][0] == nested.tuning.best and nested.chosen[UNTUNED][0] == SvdConfig(8, "bm25")
        assert set(nested.test) == {ALL, UNTUNED}
        assert nested.ease_l2 == 50.0
    assert image == tmp_path / "docs" / "img" / "evaluation.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size < 150_000
    assert set(result.protocols) == {"time", "random"}
    assert len(result.protocols["time"].svd) == 2 * 2 * 2


def test_evaluate_command_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "eval.md"
    argv = ["evaluate", "--source", "synthetic", "--interactions", "1000", "--factors", "4", "--weightings", "log",
            "--scalings", "0", "--report", str(report)]  # fmt: skip
    assert main(argv) == 0
    assert "recommended:" in capsys.readouterr().out
    assert report.is_file() and (tmp_path / "img" / "eval.png").is_file()


def test_evaluate_command_rejects_an_unknown_weighting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--weightings", "log,sqrt"])
    assert exit_info.value.code == 2
    assert "weightings" in capsys.readouterr().err
