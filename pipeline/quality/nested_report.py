"""The report's headline section: the nested (validation-chosen) numbers of every protocol."""

from __future__ import annotations

from pipeline.evaluate import K
from pipeline.quality.experiment import EvaluationResult
from pipeline.quality.nested import ALL, UNTUNED, NestedResult
from pipeline.quality.protocols import PROTOCOL_TITLES

NDCG = f"ndcg@{K}"
COLUMNS = (f"precision@{K}", f"recall@{K}", NDCG, f"map@{K}", "coverage")


def _cells(metrics: dict[str, float]) -> list[str]:
    cells = [f"{metrics[c]:.4f}" for c in COLUMNS]
    cells[2] = f"**{metrics[NDCG]:.4f}** ± {metrics[f'{NDCG}_se']:.3f}"
    cells[4] = f"{metrics['coverage']:.1%}"
    return cells


def goal_line(name: str, nested: NestedResult) -> str:
    """Whether the pipeline's validation-chosen model reaches validation-chosen EASE on this protocol's test."""
    ours, ease = nested.test[ALL][NDCG], nested.ease_test[NDCG]
    se = max(nested.test[ALL][f"{NDCG}_se"], nested.ease_test[f"{NDCG}_se"])
    gap = ours - ease
    verdict = "**reaches EASE**" if gap >= 0 else "**falls short of EASE**"
    return (
        f"{name} split: {verdict}: {ours:.4f} vs {ease:.4f} ({gap:+.4f}, {gap / ease:+.1%}; one standard error "
        f"is ±{se:.3f})"
    )


def decision_line(name: str, nested: NestedResult) -> str:
    """What the tuner's guard decided on this protocol, and the untuned default's test score beside the tuned one."""
    decision, tuned, untuned = nested.tuning.decision, nested.test[ALL][NDCG], nested.test[UNTUNED][NDCG]
    return (
        f"{name} split, tuning decision: {decision.reason} (best on validation: {decision.best.label}); "
        f"test NDCG@10 tuned {tuned:.4f}, untuned {untuned:.4f} ({tuned - untuned:+.4f})"
    )


def _protocol(name: str, nested: NestedResult, baselines: dict[str, dict[str, float]]) -> list[str]:
    rows = [
        ["most popular", "—", "—", *_cells(baselines["most popular"])],
        ["item-kNN (cosine)", "—", "—", *_cells(baselines["item-kNN"])],
        ["EASE", f"λ={nested.ease_l2:g}", f"{nested.ease_validation[nested.ease_l2]:.4f}", *_cells(nested.ease_test)],
    ]
    for family, (config, validation) in nested.chosen.items():
        label = f"**{family}**" if family == ALL else family
        rows.append([label, config.label, f"{validation:.4f}", *_cells(nested.test[family])])
    headers = ["method", "chosen on validation", "validation NDCG@10", "P@10", "R@10", "NDCG@10 ± s.e.", "MAP@10"]
    align = ["---", "---", *["---:"] * (len(headers) - 1)]
    lines = [f"### {PROTOCOL_TITLES.get(name, name)}", "", "| " + " | ".join([*headers, "coverage"]) + " |"]
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    tuning = nested.tuning
    lines += [
        "",
        f"The search scored {tuning.planned} settings by successive halving in {tuning.seconds:.0f} s on "
        f"{sum(tuning.validation_users):,} validation users over {len(tuning.validation_users)} folds. "
        f"{decision_line(name, nested)}. EASE on validation: "
        + ", ".join(f"λ={l2:g} {v:.4f}" for l2, v in nested.ease_validation.items())
        + ".",
        "",
    ]
    return lines


def render_nested(result: EvaluationResult) -> list[str]:
    """The headline: test metrics of what validation chose, per protocol, next to EASE tuned the same way."""
    nested = {name: p.nested for name, p in result.protocols.items() if p.nested is not None}
    if not nested:
        return []
    lines = [
        "## Headline: every choice made on validation",
        "",
        "Honest numbers. Within each protocol's training data the same per-user split is applied once more, "
        "three times, to make validation folds (time: each user's newest 20% of the training data, then the "
        "20% before that, and so on; random: fresh seeded 80/20 draws). The pipeline's own tuner "
        "(`pipeline.tuning`, what the default `python -m pipeline run` does) searches its space there and keeps "
        "the untuned default unless a setting beats it by more than one standard error; EASE's λ is chosen on "
        "the same folds; each choice is then retrained on the whole training split and tested once, through "
        "the served path. The test split is never read while choosing.",
        "",
    ]
    lines += [f"- {goal_line(name, n)}." for name, n in nested.items()]
    lines += [f"- {decision_line(name, n)}." for name, n in nested.items()]
    lines.append("")
    for name, n in nested.items():
        lines += _protocol(name, n, result.protocols[name].baselines)
    return lines
