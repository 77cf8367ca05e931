"""The accuracy/diversity trade-off of ``POST /recommend``'s ``diversity`` (MMR), for the quality report.

On the time split, with the served default model: NDCG@10 and intra-list diversity (mean pairwise
cosine distance of the item vectors) at each λ, through :func:`reccore.recommend.recommend` itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import InteractionLog
from pipeline.evaluate import MAX_EVAL_USERS, K, sample_users
from pipeline.metrics import ndcg_at_k
from pipeline.quality.coldstart import SvdConfig, served_model
from pipeline.quality.protocols import make_split
from reccore.diversity import intra_list_diversity
from reccore.recommend import recommend

LAMBDAS = (0.0, 0.3, 0.7)


def diversity_tradeoff(log: InteractionLog, config: SvdConfig, seed: int = 42) -> list[tuple[float, float, float]]:
    """``(λ, NDCG@10, intra-list diversity)`` per λ in :data:`LAMBDAS`, on the same users."""
    split = make_split(log, "time", seed)
    model = served_model(split.train, config, seed)
    users = sample_users(split.relevant, MAX_EVAL_USERS, seed)
    rows = []
    for diversity in LAMBDAS:
        ndcg, spread = [], []
        for user in users:
            items = recommend(model, K, user=user, diversity=diversity).items
            ndcg.append(ndcg_at_k(items.tolist(), split.relevant[user], K))
            spread.append(intra_list_diversity(model, items))
        rows.append((diversity, float(np.mean(ndcg)), float(np.mean(spread))))
    return rows


def append_to_report(report: Path, log: InteractionLog, config: SvdConfig, seed: int = 42) -> str:
    """Append the trade-off table to the Markdown ``report``; returns a one-line console summary."""
    rows = diversity_tradeoff(log, config, seed)
    lines = [
        "",
        "## Diversity",
        "",
        f"`POST /recommend` with `diversity` λ re-ranks the top candidates by maximal marginal relevance "
        f"(cosine of item vectors). Served default ({config.label}), time split, the users above:",
        "",
        "| diversity λ | NDCG@10 | intra-list diversity (mean pairwise 1 − cosine) |",
        "|---:|---:|---:|",
        *(f"| {lam:.1f} | {ndcg:.4f} | {ild:.3f} |" for lam, ndcg, ild in rows),
        "",
    ]
    with report.open("a") as handle:
        handle.write("\n".join(lines))
    return "diversity λ → NDCG@10 / ILD: " + ", ".join(f"{lam:.1f} → {n:.4f} / {d:.3f}" for lam, n, d in rows)
