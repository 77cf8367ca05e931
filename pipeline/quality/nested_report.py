"""The report's headline section: the nested (validation-chosen) numbers of every protocol."""

from __future__ import annotations

from pipeline.evaluate import K
from pipeline.quality.experiment import EvaluationResult
from pipeline.quality.nested import ALL, NestedResult
from pipeline.quality.protocols import PROTOCOL_TITLES

NDCG = f"ndcg@{K}"
# Validation NDCG@10 gaps below this are ties: about one standard error over ~1,000 validation users.
NOISE = 0.005
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


def default_line(label: str, nested: dict[str, NestedResult]) -> str:
    """Whether one setting at the untuned default's k (the same serving cost) beats it on validation everywhere."""
    scores = [dict(n.tuning.trials) for n in nested.values()]
    defaults = [n.default_validation for n in nested.values()]
    factors = next(iter(nested.values())).same_cost[0].factors
    common = [c for c in scores[0] if c.factors == factors and all(c in s for s in scores)]
    if not common:
        return f"Untuned default ({label}): no setting at its k was tried on every protocol."
    worst_gain = {c: min(s[c] - d for s, d in zip(scores, defaults, strict=True)) for c in common}
    best = max(common, key=lambda c: worst_gain[c])
    gains = ", ".join(f"{name} {s[best] - d:+.4f}" for name, s, d in zip(nested, scores, defaults, strict=True))
    if worst_gain[best] > NOISE:
        verdict = f"{best.label} beats it on validation on every protocol ({gains}): a candidate default"
    elif worst_gain[best] > 0:
        verdict = (
            f"{best.label} beats it on validation on every protocol, but only by {gains}, below the "
            f"{NOISE:g} noise margin, so the default is kept"
        )
    else:
        verdict = (
            f"no single setting at its k beats it on validation on every protocol (closest: {best.label}, {gains})"
        )
    return f"Untuned default ({label}, used with `--no-tune` and above the tuning size threshold): {verdict}."


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
        f"The search tried {len(tuning.trials)} of {tuning.planned} settings in {tuning.seconds:.0f} s on "
        f"{tuning.validation_users} validation users"
        + (" (stopped by its budget)" if tuning.stopped_by_budget else "")
        + f"; the untuned default scored {nested.default_validation:.4f} on validation, the best setting at "
        f"its k (the same serving cost) {nested.same_cost[1]:.4f} ({nested.same_cost[0].label}). EASE on validation: "
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
        "Honest numbers. Within each protocol's training data the same per-user split is applied once more "
        "(time: each user's newest 20% of the training data; random: a second seeded 80/20 draw) to make a "
        "validation split. The pipeline's own tuner (`pipeline.tune`, what `python -m pipeline run --tune` "
        "does) searches its space there; EASE's λ is chosen on the same validation split; each family's "
        "winner is then retrained on the whole training split and tested once, through the served path. "
        "The test split is never read while choosing.",
        "",
    ]
    lines += [f"- {goal_line(name, n)}." for name, n in nested.items()]
    lines.append(f"- {default_line(result.default.label, nested)}")
    lines.append("")
    for name, n in nested.items():
        lines += _protocol(name, n, result.protocols[name].baselines)
    return lines
