"""The diversity row of the quality report: λ = 0 is the served ranking's NDCG; the table is appended."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.evaluate import K, rank_users, sample_users
from pipeline.metrics import ndcg_at_k
from pipeline.quality.coldstart import SvdConfig, served_model
from pipeline.quality.diversity import LAMBDAS, append_to_report, diversity_tradeoff
from pipeline.quality.protocols import make_split
from tests.pipeline.conftest import block_log

CONFIG = SvdConfig(3, "none", 0.0)


def test_zero_diversity_row_is_the_served_rankings_ndcg() -> None:
    log = block_log(n_users=60, n_items=30, per_user=8)
    rows = diversity_tradeoff(log, CONFIG, seed=3)
    assert [r[0] for r in rows] == list(LAMBDAS)
    split = make_split(log, "time", 3)
    model = served_model(split.train, CONFIG, 3)
    users = sample_users(split.relevant, 10_000, 3)
    rankings = rank_users(model, users, "model", K)
    expected = sum(ndcg_at_k(rankings[u], split.relevant[u], K) for u in users) / len(users)
    assert rows[0][1] == pytest.approx(expected)
    assert all(0.0 <= ild <= 2.0 for _, _, ild in rows)


def test_the_table_is_appended_to_the_report(tmp_path: Path) -> None:
    report = tmp_path / "evaluation.md"
    report.write_text("# Evaluation\n")
    line = append_to_report(report, block_log(n_users=60, n_items=30, per_user=8), CONFIG, seed=3)
    text = report.read_text()
    assert text.startswith("# Evaluation\n") and "## Diversity" in text
    assert all(f"| {lam:.1f} |" in text for lam in LAMBDAS) and "NDCG@10" in line
